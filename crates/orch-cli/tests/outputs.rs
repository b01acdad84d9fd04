//! Where `orch` writes: an unwritable result file (or one that would replace a pipe, a
//! device or the workflow file) found before the run starts, an
//! interrupted run whose result cannot be written still reporting the interruption, a
//! result whose name was taken or whose disk filled up kept elsewhere, no
//! temporary file left by a killed run, `report` and `graph` refusing to write over the
//! files they read, errors and timelines that escape the control characters they quote,
//! and a standard output nobody reads.

mod common;

use common::{Dir, orch, parts, run_in, start_sleeper};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A workflow whose only task leaves `ran` behind when it runs.
const MARKS: &str = "workflow_id: w\ntasks:\n  a: { task_type: command, config: { program: touch, args: [ran] } }\n";

#[test]
fn an_unwritable_result_file_stops_the_run_before_any_task_runs() {
    let dir = Dir::new();
    dir.write("w.yaml", MARKS);
    std::fs::create_dir(dir.join("adir")).expect("a directory");
    dir.write("afile.json", "{}");
    // A pipe, and the workflow file itself: the result would replace them.
    nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("a pipe");
    for target in [
        "adir",
        "/nonexistent/r.json",
        "no/such/dir/r.json",
        "newdir/",
        "afile.json/",
        "newdir/.",
        "afile.json/.",
        "..",
        "fifo",
        "w.yaml",
        "./w.yaml",
    ] {
        let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", target]));
        assert_eq!(code, Some(2), "{target}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("orch run: cannot write result file {target}: ")),
            "{target}: {stderr}"
        );
        assert!(!dir.join("ran").exists(), "{target}: the task ran");
    }
    // Nothing was left in the directory the result file was to go to.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listed")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 4, "{left:?}");
    let fifo = std::fs::metadata(dir.join("fifo")).expect("still there");
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
    assert_eq!(
        std::fs::read_to_string(dir.join("w.yaml")).expect("kept"),
        MARKS
    );
}

/// A directory holding `w.yaml`, a workflow of one task `a`, and `r.json`, its run.
fn ran_one_task() -> Dir {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: echo, config: { message: 1 } }\n",
    );
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", "r.json"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    dir
}

/// `graph -o` writes through a temporary file renamed into place, as `report -o` and
/// `run -o` do: a file it replaces is not written into, so a hard link to it keeps
/// its text (and a write cut short would leave the old file whole).
#[test]
fn graph_replaces_its_output_file_rather_than_writing_into_it() {
    let dir = ran_one_task();
    dir.write("g.dot", "the old graph\n");
    std::fs::hard_link(dir.join("g.dot"), dir.join("kept.dot")).expect("a hard link");
    let (code, stdout, stderr) = parts(&run_in(
        &dir,
        &["graph", "w.yaml", "--format", "dot", "-o", "g.dot"],
    ));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let graph = std::fs::read_to_string(dir.join("g.dot")).expect("the graph");
    assert!(graph.starts_with("digraph"), "{graph}");
    let kept = std::fs::read_to_string(dir.join("kept.dot")).expect("the link");
    assert_eq!(kept, "the old graph\n");
}

/// `orch report r.json -o r.json` once replaced the run's only record with the page.
#[test]
fn report_and_graph_refuse_to_write_over_the_files_they_read() {
    let dir = ran_one_task();
    let record = std::fs::read_to_string(dir.join("r.json")).expect("the result");
    std::fs::hard_link(dir.join("w.yaml"), dir.join("linked.yaml")).expect("a hard link");
    for args in [
        &["report", "r.json", "-o", "r.json"][..],
        &["report", "r.json", "-o", "./r.json"],
        &["graph", "w.yaml", "-o", "w.yaml"],
        &["graph", "w.yaml", "--result", "r.json", "-o", "r.json"],
        &["graph", "w.yaml", "-o", "linked.yaml"],
    ] {
        let (code, stdout, stderr) = parts(&run_in(&dir, args));
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("which this command reads"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("r.json")).expect("kept"),
        record
    );
    assert!(
        std::fs::read_to_string(dir.join("w.yaml"))
            .expect("kept")
            .starts_with("workflow_id")
    );
}

/// An error quotes what it was given (here a file name holding a clear-screen
/// sequence) with its control characters escaped.
#[test]
fn errors_escape_the_control_characters_they_quote() {
    let dir = Dir::new();
    let (code, _, stderr) = parts(&run_in(&dir, &["gantt", "no\u{1b}[2Jfile.json"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(stderr.contains("no\\u{1b}[2Jfile.json"), "{stderr}");
}

/// `gantt` draws a row per task of the result file, whose keys may be any text: a key's
/// control characters are escaped, not sent to the terminal.
#[test]
fn gantt_escapes_the_control_characters_of_a_result_files_task_ids() {
    let dir = ran_one_task();
    let mut result = dir.json("r.json");
    let tasks = result["tasks"].as_object_mut().expect("the tasks");
    let record = tasks.remove("a").expect("task a");
    // A line break in a key would start a row of its own.
    tasks.insert("a\u{1b}]0;title\u{7}\n* forged".to_owned(), record);
    dir.write("crafted.json", &result.to_string());
    let (code, stdout, stderr) = parts(&run_in(&dir, &["gantt", "crafted.json", "--width", "80"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains(['\u{1b}', '\u{7}']), "{stdout:?}");
    assert!(stdout.contains("a\\u{1b}]0;title\\u{7}\\u{a}*"), "{stdout}");
    assert!(
        !stdout.lines().any(|line| line.starts_with("* forged")),
        "{stdout}"
    );
}

#[test]
fn an_interrupted_run_whose_result_cannot_be_written_still_exits_130() {
    let dir = Dir::new();
    let (child, _) = start_sleeper(&dir, &["--output", "r.json"]);
    // The result file's place is taken by a directory while the run lasts.
    std::fs::create_dir(dir.join("r.json")).expect("a directory");
    std::fs::write(dir.join("r.json").join("keep"), "").expect("written");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT sent");
    let (code, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
    assert_eq!(code, Some(130), "{stdout}{stderr}");
    assert!(
        stderr.contains("cannot write result file r.json"),
        "{stderr}"
    );
}

/// Runs `orch ARGS` in `dir` with a standard output nobody reads (`orch ... | true`).
fn with_stdout_closed(dir: &Dir, args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = nix::unistd::pipe().expect("a pipe");
    drop(reader);
    let mut command = orch();
    command.args(args).current_dir(dir.path()).stdout(writer);
    let output = command
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("orch runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_closed_standard_output_neither_panics_nor_stops_a_run() {
    let dir = Dir::new();
    dir.write("w.yaml", MARKS);
    let (code, stderr) =
        with_stdout_closed(&dir, &["run", "w.yaml", "--journal", "j", "-o", "r.json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(dir.join("ran").exists(), "the task did not run");
    assert_eq!(dir.json("r.json")["status"], "completed");
    for args in [
        &["run", "w.yaml", "--progress", "lines"][..],
        &["runs", "list", "j"],
        &["runs", "list", "j", "--format", "json"],
        &["report", "r.json", "-o", "r.html"],
        &["validate", "w.yaml"],
        &["gantt", "r.json"],
    ] {
        let (code, stderr) = with_stdout_closed(&dir, args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let run_id = std::fs::read_dir(dir.join("j"))
        .expect("the journal")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".jsonl")
                .map(str::to_owned)
        })
        .next()
        .expect("a run");
    let (code, stderr) = with_stdout_closed(&dir, &["runs", "show", "j", &run_id]);
    assert_eq!(code, Some(0), "{stderr}");
}

/// A standard error nobody reads (a closed pipe, as a terminal gone after SIGHUP can
/// also be) does not make orch panic where it reports a problem: it exits as it would
/// with the error shown.
#[test]
fn a_closed_standard_error_does_not_panic() {
    let dir = Dir::new();
    dir.write(
        "bad.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: nope }\n",
    );
    for args in [&["run", "bad.yaml"][..], &["run", "missing.yaml"]] {
        let shown = orch()
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("orch runs");
        assert!(!shown.stderr.is_empty(), "{args:?} reports nothing");
        let (reader, writer) = nix::unistd::pipe().expect("a pipe");
        drop(reader);
        let closed = orch()
            .args(args)
            .current_dir(dir.path())
            .stderr(writer)
            .output()
            .expect("orch runs");
        assert_eq!(closed.status.code(), shown.status.code(), "{args:?}");
        assert_ne!(closed.status.code(), Some(101), "{args:?}");
    }
    // Nor does an invalid `RUST_LOG`, which is reported before any command runs.
    let (reader, writer) = nix::unistd::pipe().expect("a pipe");
    drop(reader);
    let closed = orch()
        .args(["validate", "bad.yaml"])
        .current_dir(dir.path())
        .env("RUST_LOG", "orch=loud")
        .stderr(writer)
        .output()
        .expect("orch runs");
    assert_eq!(closed.status.code(), Some(1));
    let shown = orch()
        .args(["validate", "bad.yaml"])
        .current_dir(dir.path())
        .env("RUST_LOG", "orch=loud,info")
        .output()
        .expect("orch runs");
    let stderr = String::from_utf8_lossy(&shown.stderr);
    assert!(
        stderr.contains("ignoring `orch=loud` in RUST_LOG"),
        "{stderr}"
    );
}

/// orch killed outright during a run (SIGKILL, or a signal during its set-up) leaves no
/// temporary file beside the result file it was to write.
#[test]
fn a_killed_run_leaves_no_temporary_file_beside_its_output() {
    let dir = Dir::new();
    let (mut child, pid) = start_sleeper(&dir, &["--output", "r.json"]);
    child.kill().expect("orch killed");
    let _ = child.wait();
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("listed")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["a.pid", "w.yaml"]);
}

#[test]
fn a_config_too_deep_for_a_result_file_is_refused_before_the_run() {
    let dir = Dir::new();
    // `{"message": [[...[0]...]]}`: the object and `lists` arrays.
    let nested = |lists: usize| {
        let message = format!("{}0{}", "[".repeat(lists), "]".repeat(lists));
        format!(
            r#"{{"workflow_id": "w", "tasks": {{"a": {{"task_type": "echo", "config": {{"message": {message}}}}}}}}}"#
        )
    };
    dir.write("deep.json", &nested(123));
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "deep.json", "-o", "r.json"]));
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "the config of task `a` nests 124 levels deep, and a result file holds at most 123"
        ),
        "{stderr}"
    );
    assert!(!dir.join("r.json").exists());

    // One level less is written, and read back.
    dir.write("deep.json", &nested(122));
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "deep.json", "-o", "r.json"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (code, _, stderr) = parts(&run_in(&dir, &["report", "r.json", "-o", "r.html"]));
    assert_eq!(code, Some(0), "{stderr}");
}

/// The result file that orch's error (`stderr`) says it kept elsewhere, read, and its
/// path.
fn kept_result(dir: &Dir, stderr: &str) -> (serde_json::Value, std::path::PathBuf) {
    let (_, kept) = stderr
        .split_once("what was written is kept in ")
        .unwrap_or_else(|| panic!("no file kept: {stderr}"));
    let kept = dir.path().join(kept.lines().next().unwrap_or_default());
    let text = std::fs::read_to_string(&kept).expect("kept");
    (serde_json::from_str(&text).expect("JSON"), kept)
}

/// A result file whose disk fills up during the run (here a 64 KiB file system, mounted
/// for orch alone, and a 200 KB result) is kept in the working directory, and the error
/// says where.
#[test]
fn a_result_whose_disk_filled_up_is_kept_elsewhere_and_found() {
    let dir = Dir::new();
    std::fs::create_dir(dir.join("small")).expect("a directory");
    // In a mount namespace of its own: the file system goes when the shell ends.
    const MOUNT: &str = "mount -t tmpfs -o size=64k orch-test small";
    // Another user than root mounts in a user namespace of its own, as its root.
    let as_root = [&["--mount"][..], &["--map-root-user", "--mount"][..]];
    let namespace = |user: &[&'static str], script: &str| {
        let mut command = std::process::Command::new("unshare");
        (command.args(user))
            .args(["--propagation", "private", "sh", "-c", script])
            .current_dir(dir.path());
        command
    };
    // Root may not mount either (a container without the right to): tried first.
    let mounts = |user: &[&'static str]| {
        (namespace(user, MOUNT).output()).is_ok_and(|done| done.status.success())
    };
    let Some(user) = as_root.into_iter().find(|user| mounts(user)) else {
        assert!(
            !common::in_ci(),
            "CI must be able to mount a file system in a namespace"
        );
        eprintln!("skipped: this user cannot mount a file system in a mount namespace");
        return;
    };
    let in_namespace = |script: &str| namespace(user, script);
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  big: { task_type: command, config: { shell: true, script: 'head -c 200000 /dev/zero | tr \"\\\\0\" a' } }\n",
    );
    let mut command = in_namespace(&format!(
        "{MOUNT} && exec \"$0\" run w.yaml -o small/r.json"
    ));
    command
        .arg(env!("CARGO_BIN_EXE_orch"))
        .env_remove("RUST_LOG");
    let (code, stdout, stderr) = parts(&common::output(command));
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let (written, kept) = kept_result(&dir, &stderr);
    assert_eq!(kept.parent(), Some(dir.path()), "{stderr}");
    let result = written["tasks"]["big"]["result"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(result.len(), 200_000);
}

/// A result file that cannot take its name once the run is over (here, a name longer
/// than the file system allows, which the check before the run does not try) is kept
/// under the name it was written with, and the error says where.
#[test]
fn a_result_that_cannot_take_its_name_is_kept_and_found() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: echo, config: { message: kept } }\n",
    );
    let long = format!("{}.json", "r".repeat(300));
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", &long]));
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    let (written, _) = kept_result(&dir, &stderr);
    assert_eq!(written["tasks"]["a"]["result"], "kept");
}

/// A result whose name a task took (or whose directory a task removed) during the run is
/// kept under a temporary name in the working directory, and the error says where.
#[test]
fn a_result_whose_place_a_task_took_is_kept_and_found() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: command, config: { program: mkdir, args: [r.json] } }\n  b: { task_type: command, config: { program: rm, args: [-r, out] } }\n",
    );
    std::fs::create_dir(dir.join("out")).expect("a directory");
    for output in ["r.json", "out/r.json"] {
        let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", output]));
        assert_eq!(code, Some(2), "{output}: {stdout}{stderr}");
        let (written, kept) = kept_result(&dir, &stderr);
        assert_eq!(written["tasks"]["a"]["status"], "completed", "{output}");
        std::fs::remove_file(kept).expect("removed");
        let _ = std::fs::remove_dir(dir.join("r.json"));
        std::fs::create_dir_all(dir.join("out")).expect("a directory");
    }
}

/// `orch report r.json -o DIR` is refused before anything is written: it once wrote the
/// page beside the directory, failed to rename it onto it, and left the page behind
/// under a temporary name.
#[test]
fn report_to_a_directory_is_refused_and_leaves_nothing_behind() {
    let dir = ran_one_task();
    std::fs::create_dir(dir.join("pages")).expect("a directory");
    let before: Vec<_> = std::fs::read_dir(dir.path()).expect("listed").collect();
    let (code, _, stderr) = parts(&run_in(&dir, &["report", "r.json", "-o", "pages"]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("it is a directory"), "{stderr}");
    let after: Vec<_> = std::fs::read_dir(dir.path()).expect("listed").collect();
    assert_eq!(
        after.len(),
        before.len(),
        "something was left behind: {stderr}"
    );
}

/// `orch report r.json -o NAME/` (a name ending in `/`, which can only be a directory)
/// is refused before anything is written, as `run --output` refuses it: it once wrote
/// the page in the current directory, failed to rename it, and left it there under a
/// temporary name.
#[test]
fn report_to_a_name_ending_in_a_slash_is_refused_and_leaves_nothing_behind() {
    let ran = ran_one_task();
    let dir = Dir::new();
    std::fs::copy(ran.join("r.json"), dir.join("r.json")).expect("copied");
    for output in ["name/", "m.json/", "r.json/", "name/.", "r.json/."] {
        let (code, _, stderr) = parts(&run_in(&dir, &["report", "r.json", "-o", output]));
        assert_eq!(code, Some(2), "{output}: {stderr}");
        assert!(stderr.contains("names a directory"), "{output}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("listed")
            .map(|entry| entry.expect("an entry").file_name())
            .collect();
        assert_eq!(left, ["r.json"], "{output}: {stderr}");
    }
}

/// An `-o` that names a directory is refused (exit 2) before the inputs are read: also
/// when they would fail too (exit 1), as the manual says.
#[test]
fn an_output_that_names_a_directory_is_refused_before_the_inputs_are_read() {
    let dir = Dir::new();
    dir.write("r.json", "not a result");
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: echo, dependencies: [gone] }\n",
    );
    std::fs::create_dir(dir.join("out")).expect("a directory");
    let commands: [&[&str]; 3] = [
        &["report", "r.json", "-o", "out"],
        &["graph", "w.yaml", "-o", "out"],
        &["graph", "w.yaml", "-o", "page/"],
    ];
    for args in commands {
        let (code, _, stderr) = parts(&run_in(&dir, args));
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("directory"), "{args:?}: {stderr}");
    }
}

/// Output lost to a full disk fails a command that otherwise succeeded, saying why; a
/// reader that went away does not (see `a_closed_standard_error_does_not_panic`).
#[test]
fn standard_output_that_cannot_be_written_fails_the_command() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: echo }\n",
    );
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let shown = orch()
        .args(["plan", "w.yaml"])
        .current_dir(dir.path())
        .stdout(full)
        .output()
        .expect("orch runs");
    let stderr = String::from_utf8_lossy(&shown.stderr);
    assert_eq!(shown.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot write to standard output: No space left on device"),
        "{stderr}"
    );
}
