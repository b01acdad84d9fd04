//! Coordinator death: a coordinator process running a 10,000-task run (5 ms tasks on 2
//! worker processes) with the JetStream journal is killed with SIGKILL at 10 random
//! moments and restarted on the same run id each time; the last one finishes the run,
//! and the workers' side file shows every task run exactly once.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{NatsServer, WorkerProcess, WorkerSettings};
use orch_core::{RunId, TaskStatus};
use orch_journal::{Journal, RunStatus};
use orch_nats::{Layout, NatsJournal};

const TASKS: usize = 10_000;
const KILLS: usize = 10;

/// Starts a coordinator on run `run` and waits until it has connected.
fn coordinator(server: &NatsServer, run: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orch-nats-test-coordinator"))
        .args([server.url(), run.to_owned(), TASKS.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a coordinator");
    let mut out = BufReader::new(child.stdout.take().expect("its output"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read its output");
    assert_eq!(line.trim(), "started");
    (child, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_ten_times_finishes_its_run_with_every_task_run_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let side = dir.path().join("side");
    let settings = WorkerSettings {
        ack_wait_ms: 30_000,
        max_deliver: 5,
        shutdown_grace_ms: 1_000,
    };
    let _workers: Vec<WorkerProcess> = (1..=2)
        .map(|n| WorkerProcess::start(&server, &format!("w{n}"), &side, settings))
        .collect();
    let run = "crash-1";

    // Kill moments between 100 and 900 ms after a coordinator is up (a small generator
    // seeded from the clock; the seed is printed to replay a failure).
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("kill moments seed: {seed}");
    for _ in 0..KILLS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (mut child, _out) = coordinator(&server, run);
        tokio::time::sleep(Duration::from_millis(100 + seed % 800)).await;
        child.kill().expect("SIGKILL the coordinator");
        child.wait().expect("reap it");
    }
    let (mut child, mut out) = coordinator(&server, run);
    let mut last = String::new();
    out.read_line(&mut last).expect("read its output");
    assert!(child.wait().expect("it exits").success());
    assert_eq!(last.trim(), "completed");

    let lines = common::side_lines(&side);
    let mut runs: HashMap<(&str, &str), u32> = HashMap::new();
    for (what, task, _, _) in &lines {
        *runs.entry((what.as_str(), task.as_str())).or_default() += 1;
    }
    for i in 0..TASKS {
        let task = format!("t{i}");
        assert_eq!(
            runs.get(&("start", task.as_str())),
            Some(&1),
            "{task} started"
        );
        assert_eq!(runs.get(&("done", task.as_str())), Some(&1), "{task} done");
    }
    let journal = NatsJournal::connect(&server.config(), &Layout::default())
        .await
        .expect("connects");
    let loaded = journal
        .load(&RunId::parse(run).expect("a run id"))
        .await
        .expect("reads")
        .expect("the run");
    assert_eq!(loaded.status(), RunStatus::Completed);
    assert!((0..TASKS).all(|i| {
        loaded
            .task(&format!("t{i}"))
            .is_some_and(|r| r.status == TaskStatus::Completed)
    }));
}
