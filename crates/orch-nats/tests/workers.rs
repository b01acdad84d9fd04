//! Worker processes that die, stop or hold long tasks, against a real nats-server: a
//! killed worker's task is finished by another, a stopping worker hands its task back,
//! a live long task is delivered once, and a task whose every worker died fails as
//! "worker lost".

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{NatsServer, WorkerProcess, WorkerSettings, side_lines, wait_for};
use orch_core::{Task, TaskStatus, Workflow};
use orch_engine::WorkflowEngine;
use orch_nats::{Layout, RemoteHandler};
use serde_json::json;

/// A coordinator for task type `slow` with the workers' layout.
async fn coordinator(server: &NatsServer, settings: WorkerSettings) -> WorkflowEngine {
    let layout = Layout {
        ack_wait: Duration::from_millis(settings.ack_wait_ms),
        max_deliver: settings.max_deliver,
        ..Layout::default()
    };
    let remote = RemoteHandler::builder()
        .layout(layout)
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::with_max_concurrent(16).expect("valid");
    engine.register_handler("slow", remote);
    engine
}

fn side_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("side.log")
}

/// Whether the side file says `worker` started `task`.
fn started(side: &std::path::Path, task: &str, worker: &str) -> bool {
    side_lines(side)
        .iter()
        .any(|(what, t, _, w)| what == "start" && t == task && w == worker)
}

/// A task that is slow on workers whose name starts with `slow-`, quick elsewhere.
fn victim() -> Workflow {
    Workflow::new("w", "W")
        .task(Task::new("victim", "slow").config(json!({"ms": 600_000, "slow_on": "slow-"})))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_has_its_task_finished_by_another_worker() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let side = side_file(&dir);
    let settings = WorkerSettings {
        ack_wait_ms: 1000,
        max_deliver: 5,
        shutdown_grace_ms: 1000,
    };
    let engine = coordinator(&server, settings).await;
    let mut doomed = WorkerProcess::start(&server, "slow-A", &side, settings);
    let run = common::run_in_background(&engine, &victim());
    wait_for(|| started(&side, "victim", "slow-A")).await;
    let _survivor = WorkerProcess::start(&server, "fast-B", &side, settings);
    doomed.kill();

    let result = run.await.expect("the run ends");
    let victim = result.task("victim").expect("a task");
    assert_eq!(victim.status, TaskStatus::Completed);
    assert_eq!(victim.result, Some(json!("fast-B")));
    assert_eq!(victim.attempts, 1, "redelivery is the same attempt");
    let lines = side_lines(&side);
    let done: Vec<&str> = lines
        .iter()
        .filter(|l| l.0 == "done")
        .map(|l| l.3.as_str())
        .collect();
    assert_eq!(done, ["fast-B"]);
    assert!(started(&side, "victim", "fast-B"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_task_running_longer_than_three_ack_waits_is_delivered_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let side = side_file(&dir);
    let settings = WorkerSettings {
        ack_wait_ms: 400,
        max_deliver: 5,
        shutdown_grace_ms: 1000,
    };
    let engine = coordinator(&server, settings).await;
    let _a = WorkerProcess::start(&server, "w-A", &side, settings);
    let _b = WorkerProcess::start(&server, "w-B", &side, settings);
    let workflow = Workflow::from_tasks(
        "long",
        "Long",
        (0..6).map(|i| Task::new(format!("long{i}"), "slow").config(json!({"ms": 1500}))),
    );
    let result = common::run_in_background(&engine, &workflow)
        .await
        .expect("the run ends");
    assert!(
        result
            .tasks
            .records()
            .iter()
            .all(|t| t.status == TaskStatus::Completed)
    );
    let lines = side_lines(&side);
    for i in 0..6 {
        let task = format!("long{i}");
        let starts = lines
            .iter()
            .filter(|l| l.0 == "start" && l.1 == task)
            .count();
        assert_eq!(starts, 1, "`{task}` started {starts} times: {lines:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_hands_its_task_back_to_another_worker() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let side = side_file(&dir);
    // A long ack wait: only a hand-back, not a redelivery, can move the task in time.
    let settings = WorkerSettings {
        ack_wait_ms: 600_000,
        max_deliver: 5,
        shutdown_grace_ms: 200,
    };
    let engine = coordinator(&server, settings).await;
    let mut stopping = WorkerProcess::start(&server, "slow-A", &side, settings);
    let run = common::run_in_background(&engine, &victim());
    wait_for(|| started(&side, "victim", "slow-A")).await;
    let _other = WorkerProcess::start(&server, "fast-B", &side, settings);
    let status = stopping.stop();
    assert!(
        status.success(),
        "the stopping worker exits cleanly: {status}"
    );

    let result = run.await.expect("the run ends");
    let victim = result.task("victim").expect("a task");
    assert_eq!(victim.result, Some(json!("fast-B")));
    assert!(started(&side, "victim", "fast-B"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_workers_all_died_fails_as_worker_lost() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let side = side_file(&dir);
    let settings = WorkerSettings {
        ack_wait_ms: 500,
        max_deliver: 1,
        shutdown_grace_ms: 1000,
    };
    let engine = coordinator(&server, settings).await;
    let mut doomed = WorkerProcess::start(&server, "slow-A", &side, settings);
    let run = common::run_in_background(&engine, &victim());
    wait_for(|| started(&side, "victim", "slow-A")).await;
    // A live worker asks for tasks, so the server finds the task out of deliveries.
    let _idle = WorkerProcess::start(&server, "fast-B", &side, settings);
    doomed.kill();

    let result = run.await.expect("the run ends");
    let victim = result.task("victim").expect("a task");
    assert_eq!(victim.status, TaskStatus::Failed);
    let error = victim.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("worker lost: task `victim` (type `slow`) was delivered once"),
        "{error}"
    );
    assert!(!started(&side, "victim", "fast-B"));
}
