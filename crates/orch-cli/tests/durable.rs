//! `orch run --journal DIR` and `--resume RUN_ID` end to end: a run stopped by Ctrl-C or
//! killed outright is continued without running its completed commands again (each
//! command appends a line to a side file, so the test counts runs), and bad resumes give
//! clear errors; a run whose journal fails while tasks run stops with what it recorded
//! kept, to resume from.

mod common;

use std::process::Stdio;

use common::{Dir, alive, orch, parts, pid_in, run_in, start_run, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// Three quick commands and a fourth, after them, that blocks until the file `go` exists
/// (writing its pid to `last.pid` first). Every command notes itself in `ran.txt`.
const WORKFLOW: &str = r#"workflow_id: durable
tasks:
  a: { task_type: command, config: { shell: true, script: 'echo a >> ran.txt; echo 1' } }
  b: { task_type: command, config: { shell: true, script: 'echo b >> ran.txt; echo 2' } }
  c: { task_type: command, config: { shell: true, script: 'echo c >> ran.txt; echo 3' } }
  last:
    task_type: command
    dependencies: [a, b, c]
    config: { shell: true, script: 'echo last >> ran.txt; [ -e go ] || { echo $$ > last.pid; exec sleep 60; }; echo done' }
"#;

/// How many times each command ran, from `ran.txt`.
fn runs_of(dir: &Dir, task: &str) -> usize {
    let text = std::fs::read_to_string(dir.join("ran.txt")).unwrap_or_default();
    text.lines().filter(|l| *l == task).count()
}

/// The journal's runs, as `orch runs list --format json` gives them.
fn listed(dir: &Dir) -> Vec<Value> {
    let (code, stdout, stderr) = parts(&run_in(
        dir,
        &["runs", "list", "journal", "--format", "json"],
    ));
    assert_eq!(code, Some(0), "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).expect("JSON");
    listed["runs"].as_array().cloned().unwrap_or_default()
}

/// Lets the blocked command finish (the file `go`) and resumes run `run_id` of `w.yaml`
/// with its result in `r.json`; the resume must succeed. Its standard output.
fn release_and_resume(dir: &Dir, run_id: &str) -> String {
    dir.write("go", "");
    let args = ["run", "w.yaml", "--journal", "journal", "--resume", run_id];
    let (code, stdout, stderr) =
        parts(&run_in(dir, &[&args[..], &["--output", "r.json"]].concat()));
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

/// Starts a durable run, waits until `last` blocks (a, b and c are done and recorded),
/// stops orch with `signal`, and resumes the run; completed commands are not run again.
fn interrupt_and_resume(signal: Signal) {
    let dir = Dir::new();
    dir.write("w.yaml", WORKFLOW);
    let mut first = orch()
        .args([
            "run",
            "w.yaml",
            "--journal",
            "journal",
            "--progress",
            "lines",
        ])
        .args(["--max-concurrent", "3"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("orch starts");
    wait_for("`last` to start", || dir.join("last.pid").exists());
    let last = pid_in(&dir.join("last.pid"));
    kill(Pid::from_raw(first.id() as i32), signal).expect("signal orch");
    let status = first.wait().expect("orch ends");
    if signal == Signal::SIGKILL {
        // Nothing stopped the command: do what a machine's restart would.
        let _ = kill(Pid::from_raw(last), Signal::SIGKILL);
    } else {
        assert_eq!(status.code(), Some(130));
    }
    wait_for("`last` to end", || !alive(last));
    for task in ["a", "b", "c", "last"] {
        assert_eq!(runs_of(&dir, task), 1, "{task} before the resume");
    }

    let runs = listed(&dir);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run_id = runs[0]["run_id"].as_str().expect("an id").to_owned();
    let stopped = if signal == Signal::SIGKILL {
        "unfinished"
    } else {
        "cancelled"
    };
    assert_eq!(runs[0]["status"], stopped);
    assert_eq!(runs[0]["completed"], 3);

    let stdout = release_and_resume(&dir, &run_id);
    assert!(
        stdout.contains(&format!("run {run_id} recorded in journal")),
        "{stdout}"
    );
    for task in ["a", "b", "c"] {
        assert_eq!(runs_of(&dir, task), 1, "{task} ran again on resume");
    }
    assert_eq!(runs_of(&dir, "last"), 2);
    let result = dir.json("r.json");
    assert_eq!(result["status"], "completed");
    assert_eq!(result["run_id"], run_id.as_str());
    assert_eq!(result["tasks"]["a"]["result"], 1);
    assert_eq!(result["tasks"]["last"]["result"], "done");
    let runs = listed(&dir);
    assert_eq!(
        (runs.len(), &runs[0]["status"]),
        (1, &Value::from("completed"))
    );
}

#[test]
fn a_run_stopped_by_ctrl_c_resumes_without_running_completed_commands_again() {
    interrupt_and_resume(Signal::SIGINT);
}

#[test]
fn a_killed_run_resumes_without_running_completed_commands_again() {
    interrupt_and_resume(Signal::SIGKILL);
}

/// A map over six items, one at a time: each instance notes its item in `ran.txt`; the
/// last one blocks until the file `go` exists (writing its pid to `last.pid` first).
const MAPPED: &str = r#"workflow_id: mapped
tasks:
  list: { task_type: echo, config: { message: [0, 1, 2, 3, 4, 5] } }
  each:
    task_type: command
    dependencies: [list]
    map: { over: list }
    config: { shell: true, script: 'echo "item $ORCH_ITEM" >> ran.txt; [ "$ORCH_ITEM" != 5 ] || [ -e go ] || { echo $$ > last.pid; exec sleep 60; }; echo $ORCH_ITEM' }
"#;

/// How many times the instance of each item ran, from `ran.txt`.
fn items_run(dir: &Dir) -> Vec<usize> {
    (0..6).map(|i| runs_of(dir, &format!("item {i}"))).collect()
}

/// Stops orch with `signal` while the last instance of a map runs, and resumes the run:
/// the instances that completed are not run again.
fn interrupt_a_map_and_resume(signal: Signal) {
    let dir = Dir::new();
    let args = ["--journal", "journal", "--max-concurrent", "1"];
    let (mut first, last) = start_run(&dir, MAPPED, "last.pid", &args);
    // The journal holds an instance once its pass ends, as the next one starts.
    let journal = dir.join("journal");
    wait_for("the journal to hold `each[4]`", || {
        let files = std::fs::read_dir(&journal).into_iter().flatten().flatten();
        (files.filter_map(|f| std::fs::read_to_string(f.path()).ok()))
            .any(|text| text.contains("\"each[4]\""))
    });
    kill(Pid::from_raw(first.id() as i32), signal).expect("signal orch");
    first.wait().expect("orch ends");
    if signal == Signal::SIGKILL {
        let _ = kill(Pid::from_raw(last), Signal::SIGKILL);
    }
    wait_for("the last instance to end", || !alive(last));
    assert_eq!(items_run(&dir), [1; 6]);

    let runs = listed(&dir);
    let run_id = runs[0]["run_id"].as_str().expect("an id").to_owned();
    // `runs show` tells how far the map got.
    let show = ["runs", "show", "journal", &run_id];
    let (code, stdout, stderr) = parts(&run_in(&dir, &show));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("each: 5 map instances completed"),
        "{stdout}"
    );
    let (_, stdout, _) = parts(&run_in(&dir, &[&show[..], &["--format", "json"]].concat()));
    let shown: Value = serde_json::from_str(&stdout).expect("JSON");
    let each = &shown["tasks"][1];
    assert_eq!(
        (&each["task_id"], &each["instances_completed"]),
        (&"each".into(), &5.into())
    );
    release_and_resume(&dir, &run_id);
    assert_eq!(
        items_run(&dir),
        [1, 1, 1, 1, 1, 2],
        "only the last ran again"
    );
    let result = dir.json("r.json");
    assert_eq!(
        result["tasks"]["each"]["result"],
        serde_json::json!([0, 1, 2, 3, 4, 5])
    );
}

#[test]
fn a_map_stopped_by_ctrl_c_resumes_without_running_completed_instances_again() {
    interrupt_a_map_and_resume(Signal::SIGINT);
}

#[test]
fn a_killed_map_resumes_without_running_completed_instances_again() {
    interrupt_a_map_and_resume(Signal::SIGKILL);
}

#[test]
fn bad_resumes_are_clear_errors() {
    let dir = Dir::new();
    dir.write("w.yaml", WORKFLOW);
    let (code, _, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "--resume", "x-1"]));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--journal"), "{stderr}");
    // Options of a journal or of NATS without them are refused, not ignored.
    let alone = [["--durability", "power"], ["--worker-timeout", "5s"]];
    for (option, needs) in alone.iter().zip(["--journal", "--nats"]) {
        let (code, _, stderr) = parts(&run_in(&dir, &[&["run", "w.yaml"][..], option].concat()));
        assert_eq!(code, Some(2), "{option:?}");
        assert!(stderr.contains(needs), "{stderr}");
    }
    let resume = ["run", "w.yaml", "--journal", "journal", "--resume"];
    let (code, _, stderr) = parts(&run_in(&dir, &[&resume[..], &["x-1"]].concat()));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no run `x-1` in journal"), "{stderr}");
    let (code, _, stderr) = parts(&run_in(&dir, &[&resume[..], &["../x"]].concat()));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("`../x` is not a run id"), "{stderr}");
    // A URL is not taken for a directory name.
    let (code, _, stderr) = parts(&run_in(
        &dir,
        &["run", "w.yaml", "--journal", "postgres://u:s3cret@host/db"],
    ));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("looks like a URL"), "{stderr}");
    assert!(
        !stderr.contains("s3cret"),
        "the password is not shown: {stderr}"
    );
    assert!(!dir.join("postgres:").exists());
    // A run that cannot start gives no run id to continue.
    let (code, stdout, stderr) = parts(&run_in(
        &dir,
        &[
            "run",
            "w.yaml",
            "--journal",
            "journal",
            "--nats",
            "nats://127.0.0.1:1",
        ],
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stdout.contains("--resume"), "{stdout}");
    assert_eq!(runs_of(&dir, "a"), 0, "nothing ran");

    // A completed task whose command changed: the run cannot continue with it.
    dir.write("go", "");
    let (code, _, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "--journal", "journal"]));
    assert_eq!(code, Some(0), "{stderr}");
    let run_id = listed(&dir)[0]["run_id"].as_str().expect("id").to_owned();
    dir.write("w.yaml", &WORKFLOW.replace("echo 1", "echo 10"));
    let (code, stdout, stderr) = parts(&run_in(&dir, &[&resume[..], &[run_id.as_str()]].concat()));
    assert_eq!(code, Some(1));
    assert!(!stdout.contains("recorded in"), "not started: {stdout}");
    assert!(stderr.contains("have changed since (`a`)"), "{stderr}");
    assert!(stderr.contains("w.yaml: not run: "), "{stderr}");
    assert!(
        !stderr.contains("--resume"),
        "no run to go on from: {stderr}"
    );
    assert_eq!(runs_of(&dir, "a"), 1, "nothing ran again");
}

/// A run refused for what can be checked without a journal (a `--resume` that is no run
/// id, or of a journal directory that does not exist, a NATS server that cannot be
/// reached) creates no journal directory: it once created it, and its parents, first.
#[test]
fn a_refused_run_creates_no_journal_directory() {
    let dir = Dir::new();
    dir.write("w.yaml", WORKFLOW);
    let (code, _, stderr) = parts(&run_in(
        &dir,
        &[
            "run",
            "w.yaml",
            "--journal",
            "typo1/x",
            "--resume",
            "bad/id",
        ],
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`bad/id` is not a run id"), "{stderr}");
    assert!(!dir.join("typo1").exists(), "created: {stderr}");
    // Nothing listens on port 1.
    let (code, _, stderr) = parts(&run_in(
        &dir,
        &[
            "run",
            "w.yaml",
            "--journal",
            "typo2",
            "--nats",
            "nats://127.0.0.1:1",
        ],
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--nats"), "{stderr}");
    assert!(!dir.join("typo2").exists(), "created: {stderr}");
    assert_eq!(runs_of(&dir, "a"), 0, "nothing ran");
    // A run id that is one, in a journal directory that does not exist: there is no run
    // to go on from, and nothing to create. (`go` lets `last` end at once.)
    dir.write("go", "");
    let (code, _, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "--journal", "journal"]));
    assert_eq!(code, Some(0), "{stderr}");
    let run_id = listed(&dir)[0]["run_id"].as_str().expect("id").to_owned();
    let typo = ["run", "w.yaml", "--journal", "typo3/x", "--resume", &run_id];
    let (code, _, stderr) = parts(&run_in(&dir, &typo));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("no run `{run_id}` in typo3/x")),
        "{stderr}"
    );
    assert!(!dir.join("typo3").exists(), "created: {stderr}");
    assert_eq!(runs_of(&dir, "a"), 1, "only the first run ran");
}

#[test]
fn a_run_that_another_orch_is_writing_is_not_resumed_twice() {
    let dir = Dir::new();
    let (mut first, pid) = common::start_sleeper(&dir, &["--journal", "journal"]);
    let run_id = listed(&dir)[0]["run_id"].as_str().expect("id").to_owned();
    let resume = ["run", "w.yaml", "--journal", "journal", "--resume", &run_id];
    let (code, _, stderr) = parts(&run_in(&dir, &resume));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("w.yaml: not run: "), "{stderr}");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("the sleeper is ours");
    let _ = first.wait();
}

/// Three quick commands, then one (after them) whose output is about 200 KB.
const LARGE_LAST: &str = r#"workflow_id: durable
tasks:
  a: { task_type: command, config: { shell: true, script: 'echo a >> ran.txt; echo 1' } }
  b: { task_type: command, config: { shell: true, script: 'echo b >> ran.txt; echo 2' } }
  c: { task_type: command, config: { shell: true, script: 'echo c >> ran.txt; echo 3' } }
  large:
    task_type: command
    dependencies: [a, b, c]
    config: { shell: true, script: 'echo large >> ran.txt; head -c 200000 /dev/zero | tr "\0" x' }
"#;

#[test]
fn a_journal_that_fails_while_tasks_run_stops_the_run_and_keeps_what_it_recorded() {
    let dir = Dir::new();
    dir.write("w.yaml", LARGE_LAST);
    // No file of this run may grow past 100 KiB: the journal takes the quick commands'
    // results and fails on the large one's. (The signal such a write raises is ignored,
    // so that the write fails instead.)
    let script = format!(
        "trap '' XFSZ; ulimit -f 100; exec '{}' run w.yaml --journal journal",
        env!("CARGO_BIN_EXE_orch")
    );
    let mut limited = std::process::Command::new("bash");
    limited
        .args(["-c", &script])
        .env_remove("RUST_LOG")
        .current_dir(dir.path());
    let (code, _, stderr) = parts(&common::output(limited));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("w.yaml: stopped: the journal failed"),
        "{stderr}"
    );
    let runs = listed(&dir);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["completed"], 3, "{runs:?}");
    let run_id = runs[0]["run_id"].as_str().expect("an id").to_owned();
    assert!(
        stderr.contains(&format!("--resume {run_id} goes on from there")),
        "{stderr}"
    );

    let args = ["run", "w.yaml", "--journal", "journal", "--resume", &run_id];
    let (code, _, stderr) = parts(&run_in(
        &dir,
        &[&args[..], &["--output", "r.json"]].concat(),
    ));
    assert_eq!(code, Some(0), "{stderr}");
    for task in ["a", "b", "c"] {
        assert_eq!(runs_of(&dir, task), 1, "{task} ran again on resume");
    }
    assert_eq!(runs_of(&dir, "large"), 2);
    let result = dir.json("r.json");
    assert_eq!(result["status"], "completed");
    let large = result["tasks"]["large"]["result"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(large.len(), 200_000);
}

/// Ctrl-C while `--resume` still reads a long journal stops orch before the run starts:
/// nothing runs and no run is begun (the read once held the signal off until it ended,
/// and the run then started, to be interrupted).
#[test]
fn ctrl_c_while_a_resume_reads_its_journal_stops_orch_before_the_run_starts() {
    let dir = Dir::new();
    let failing = "workflow_id: w\ntasks:\n  a: { task_type: command, config: { shell: true, \
                   script: 'echo a >> ran.txt; exit 3' } }\n";
    dir.write("w.yaml", failing);
    let (code, _, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "--journal", "journal"]));
    assert_eq!(code, Some(1), "{stderr}");
    let run_id = listed(&dir)[0]["run_id"].as_str().expect("id").to_owned();
    // Many more failed attempts of `a`, so that reading the run takes a while (some
    // seconds in a debug build here; the signal must come while orch reads it, before
    // the engine opens the run and reads it again).
    let path = dir.join(&format!("journal/{run_id}.jsonl"));
    let recorded = std::fs::read_to_string(&path).expect("the run's file");
    let last: Value = serde_json::from_str(recorded.lines().last().expect("lines")).expect("JSON");
    let first_seq = last["seq"].as_u64().expect("seq") + 1;
    let mut more = String::new();
    for seq in first_seq..first_seq + 2_000_000 {
        more.push_str(&format!(
            "{{\"v\":1,\"seq\":{seq},\"kind\":\"task\",\"task_id\":\"a\",\"attempt\":1,\
             \"status\":\"failed\",\"error\":\"exit 3\"}}\n"
        ));
    }
    std::fs::write(&path, recorded + &more).expect("written");

    let resume = orch()
        .current_dir(dir.path())
        .args(["run", "w.yaml", "--journal", "journal", "--resume", &run_id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orch starts");
    std::thread::sleep(std::time::Duration::from_millis(150));
    kill(Pid::from_raw(resume.id() as i32), Signal::SIGINT).expect("signal orch");
    let (code, stdout, stderr) = parts(&resume.wait_with_output().expect("orch ends"));
    assert_eq!(code, Some(130), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("stopped before the run started"),
        "{stderr}"
    );
    assert_eq!(runs_of(&dir, "a"), 1, "nothing ran again");
}
