//! `orch runs list` and `orch runs show` over a journal directory written through
//! orch-journal's `FileJournal`: the listing's ids, workflows, statuses, counts and times,
//! a run's tasks, JSON for programs, and clear errors for what is not there.

mod common;

use std::time::{Duration, SystemTime};

use common::{Dir, parts, run_in};
use orch::core::{RunId, Task, TaskRecord, TaskStatus, Workflow, WorkflowStatus};
use orch::journal::{Durability, FileJournal, Journal};
use serde_json::{Value, json};

fn workflow(id: &str) -> Workflow {
    Workflow::new(id, format!("The {id} workflow"))
        .task(Task::new("extract", "echo"))
        .task(Task::new("transform", "echo").depends_on(["extract"]))
        .task(Task::new("load", "echo").depends_on(["transform"]))
}

fn record(status: TaskStatus, error: Option<&str>) -> TaskRecord {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    TaskRecord {
        status,
        attempts: 1,
        result: (status == TaskStatus::Completed).then(|| json!({"rows": 3})),
        error: error.map(str::to_owned),
        start_time: Some(start),
        end_time: Some(start + Duration::from_secs(2)),
        ..TaskRecord::default()
    }
}

/// Two runs: `etl-1` failed at `transform` (ended), `etl-2` of workflow `other` with only
/// `extract` done and no end (the process stopped).
fn journal(dir: &Dir) -> std::path::PathBuf {
    let path = dir.join("journal");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let journal = FileJournal::new(&path).expect("a journal");
        let first = journal
            .open(&RunId::parse("etl-1").expect("id"), &workflow("etl"))
            .await
            .expect("opened");
        let done = record(TaskStatus::Completed, None);
        let failed = record(TaskStatus::Failed, Some("exit status 3\nmore lines"));
        let skipped = record(TaskStatus::Skipped, Some("a dependency failed"));
        first
            .writer
            .commit(
                &[
                    (&"extract".into(), &done),
                    (&"transform".into(), &failed),
                    (&"load".into(), &skipped),
                ],
                Durability::Process,
            )
            .await
            .expect("recorded");
        first
            .writer
            .finish(WorkflowStatus::Failed)
            .await
            .expect("ended");
        let second = journal
            .open(&RunId::parse("etl-2").expect("id"), &workflow("other"))
            .await
            .expect("opened");
        second
            .writer
            .commit(&[(&"extract".into(), &done)], Durability::Process)
            .await
            .expect("recorded");
    });
    path
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn list_gives_each_run_with_its_workflow_status_counts_and_times() {
    let dir = Dir::new();
    let path = journal(&dir);
    let path = path.to_str().expect("utf-8");
    let (code, stdout, stderr) = parts(&run_in(&dir, &["runs", "list", path, "--format", "json"]));
    assert_eq!(code, Some(0), "{stderr}");
    let listed = json_of(&stdout);
    let runs = listed["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    let first = &runs[0];
    assert_eq!(first["run_id"], "etl-1");
    assert_eq!(first["workflow_id"], "etl");
    assert_eq!(first["status"], "failed");
    assert_eq!(
        (
            &first["tasks"],
            &first["completed"],
            &first["failed"],
            &first["skipped"]
        ),
        (&json!(3), &json!(1), &json!(1), &json!(1))
    );
    // To the microsecond, as the tasks' times are: a run's end is never shown before
    // its last task's.
    for time in [&first["started"], &first["ended"]] {
        let time = time.as_str().expect("a time");
        let fraction = time.rsplit_once('.').map(|(_, f)| f);
        assert_eq!(fraction.map(str::len), Some("123456Z".len()), "{time}");
    }
    let second = &runs[1];
    assert_eq!(second["run_id"], "etl-2");
    assert_eq!(second["workflow_id"], "other");
    assert_eq!(second["status"], "unfinished");
    assert_eq!(
        (&second["completed"], &second["not_run"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(second["ended"], Value::Null);

    let (code, text, _) = parts(&run_in(&dir, &["runs", "list", path]));
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("RUN "), "{text}");
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &cells[..8],
        ["etl-1", "etl", "failed", "3", "1", "1", "1", "0"]
    );
    let cells: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&cells[..3], ["etl-2", "other", "unfinished"]);
    assert_eq!(cells.last(), Some(&"-"), "no end yet: {text}");
}

#[test]
fn show_gives_every_task_of_a_run_with_its_record() {
    let dir = Dir::new();
    let path = journal(&dir);
    let path = path.to_str().expect("utf-8");
    let args = ["runs", "show", path, "etl-1", "--format", "json"];
    let (code, stdout, stderr) = parts(&run_in(&dir, &args));
    assert_eq!(code, Some(0), "{stderr}");
    let shown = json_of(&stdout);
    assert_eq!(shown["workflow_name"], "The etl workflow");
    let tasks = shown["tasks"].as_array().expect("tasks");
    let ids: Vec<&str> = tasks.iter().filter_map(|t| t["task_id"].as_str()).collect();
    assert_eq!(ids, ["extract", "transform", "load"]);
    assert_eq!(tasks[0]["status"], "completed");
    assert_eq!(tasks[0]["result"], json!({"rows": 3}));
    assert_eq!(tasks[1]["status"], "failed");
    assert_eq!(tasks[1]["error"], "exit status 3\nmore lines");
    assert_eq!(tasks[2]["status"], "skipped");

    // The unfinished run: tasks without a record are pending.
    let (code, stdout, _) = parts(&run_in(&dir, &["runs", "show", path, "etl-2"]));
    assert_eq!(code, Some(0));
    assert!(stdout.contains("status    unfinished"), "{stdout}");
    assert!(stdout.contains("1 completed"), "{stdout}");
    let row = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(id))
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>())
    };
    assert_eq!(row("extract"), Some(vec!["extract", "completed", "1"]));
    assert_eq!(row("load"), Some(vec!["load", "pending", "0"]));
}

#[test]
fn missing_runs_and_directories_are_clear_errors() {
    let dir = Dir::new();
    let path = journal(&dir);
    let path = path.to_str().expect("utf-8");
    let (code, _, stderr) = parts(&run_in(&dir, &["runs", "show", path, "etl-9"]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no run `etl-9`"), "{stderr}");
    let (code, _, stderr) = parts(&run_in(&dir, &["runs", "show", path, "bad/id"]));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("`bad/id` is not a run id"), "{stderr}");
    let missing = dir.join("nowhere");
    let missing = missing.to_str().expect("utf-8");
    let (code, _, stderr) = parts(&run_in(&dir, &["runs", "list", missing]));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no such journal directory"), "{stderr}");
    assert!(
        !dir.join("nowhere").exists(),
        "listing created the directory"
    );
    // A file is not a directory, nor missing.
    dir.write("notes.txt", "not a journal");
    let (code, _, stderr) = parts(&run_in(&dir, &["runs", "list", "notes.txt"]));
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("notes.txt: not a directory (a journal is a directory)"),
        "{stderr}"
    );
    // An empty journal lists no runs.
    std::fs::create_dir(dir.join("empty")).expect("created");
    let (code, stdout, _) = parts(&run_in(&dir, &["runs", "list", "empty"]));
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("no runs in"), "{stdout}");
}

/// A run whose file holds no head line yet (a run being started, or one never recorded)
/// is left out, as the journal's own listing leaves it out and opening it starts it
/// afresh, and so is a file of something else named like a run's; a file that cannot
/// be read is listed as such.
#[test]
fn an_unreadable_run_is_listed_with_its_error_beside_the_others() {
    let dir = Dir::new();
    let path = journal(&dir);
    std::fs::write(path.join("empty.jsonl"), "").expect("written");
    // Begins as a run's file does, and is not one.
    std::fs::write(path.join("corrupt.jsonl"), "{\"v\":1, not json\n").expect("written");
    // Something else named like a run's file: not a run's beginning, whole or not.
    std::fs::write(path.join("notes.jsonl"), "hello").expect("written");
    std::fs::write(path.join("data.jsonl"), "{\"a\":1}\n").expect("written");
    let path = path.to_str().expect("utf-8");
    let (code, stdout, stderr) = parts(&run_in(&dir, &["runs", "list", path, "--format", "json"]));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let listed = json_of(&stdout);
    let runs = listed["runs"].as_array().expect("runs");
    let ids: Vec<&str> = runs.iter().filter_map(|r| r["run_id"].as_str()).collect();
    assert_eq!(ids, ["etl-1", "etl-2", "corrupt"]);
    assert_eq!(runs[0]["status"], "failed");
    for bad in &runs[2..] {
        assert_eq!(bad["status"], "unreadable", "{bad}");
        assert!(
            bad["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}"
        );
    }
    assert!(
        !stderr.contains("empty") && !stderr.contains("notes"),
        "{stderr}"
    );
    assert!(stderr.contains("cannot read run corrupt: "), "{stderr}");

    let (code, text, _) = parts(&run_in(&dir, &["runs", "list", path]));
    assert_eq!(code, Some(1));
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(3).collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["etl-1", "etl", "failed"],
            ["etl-2", "other", "unfinished"],
            ["corrupt", "-", "unreadable"],
        ]
    );

    // `show` agrees with `list`: no such run yet, or a run it cannot read (exit 1).
    let (code, _, stderr) = parts(&run_in(&dir, &["runs", "show", path, "empty"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no run `empty`"), "{stderr}");
    assert!(stderr.contains("no complete first line"), "{stderr}");
    let (code, _, stderr) = parts(&run_in(&dir, &["runs", "show", path, "notes"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no run `notes`"), "{stderr}");
    let (code, _, stderr) = parts(&run_in(&dir, &["runs", "show", path, "corrupt"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot read run corrupt: "), "{stderr}");
}

#[test]
fn terminal_escapes_in_errors_and_names_are_shown_escaped() {
    let dir = Dir::new();
    let path = dir.join("journal");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let journal = FileJournal::new(&path).expect("a journal");
        let workflow = Workflow::new("esc", "named \u{1b}[31mred\nstatus    completed")
            .task(Task::new("extract", "echo"));
        let run = journal
            .open(&RunId::parse("esc-1").expect("id"), &workflow)
            .await
            .expect("opened");
        let failed = record(TaskStatus::Failed, Some(ERROR_WITH_ESCAPES));
        run.writer
            .commit(&[(&"extract".into(), &failed)], Durability::Process)
            .await
            .expect("recorded");
    });
    let path = path.to_str().expect("utf-8");
    for args in [
        ["runs", "show", path, "esc-1"].as_slice(),
        &["runs", "list", path],
    ] {
        let (code, stdout, stderr) = parts(&run_in(&dir, args));
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(
            !stdout.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: {stdout:?}"
        );
    }
    let (_, stdout, _) = parts(&run_in(&dir, &["runs", "show", path, "esc-1"]));
    assert!(
        stdout.contains(r"named \u{1b}[31mred\u{a}status"),
        "{stdout}"
    );
    assert!(stdout.contains(r"10%\u{d}20%\u{1b}[2J"), "{stdout}");
    assert!(stdout.contains(r"\u{7f}\u{9b}"), "{stdout}");
    // As JSON: no control character raw, and the texts as they were.
    for args in [
        ["runs", "show", path, "esc-1", "--format", "json"].as_slice(),
        &["runs", "list", path, "--format", "json"],
    ] {
        let (code, stdout, stderr) = parts(&run_in(&dir, args));
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(
            !stdout.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: {stdout:?}"
        );
        let shown: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"));
        assert!(
            shown.to_string().contains("red\\nstatus    completed"),
            "{args:?}: {shown}"
        );
        if args[1] == "show" {
            assert_eq!(shown["tasks"][0]["error"], ERROR_WITH_ESCAPES, "{shown}");
        }
    }
}

/// A command's error that ends with what it wrote to standard error: terminal escapes,
/// DEL and a C1 control (CSI).
const ERROR_WITH_ESCAPES: &str =
    "`sh` exited with status 1; stderr ends: 10%\r20%\u{1b}[2J\u{1b}]0;pwned\u{7}\u{7f}\u{9b}2J";
