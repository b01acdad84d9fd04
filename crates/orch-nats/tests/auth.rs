//! Against a nats-server that requires authentication, with per-user permissions (the
//! configuration the crate docs give): a worker without credentials, with a wrong
//! password, or with the credentials of a worker of another task type cannot take tasks;
//! the worker the permissions are for can. A worker that may take tasks but not store
//! results gives each task back, and the task fails as "worker lost" after its deliveries.
//! A coordinator that may not send a task type's messages fails their attempts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::NatsServer;
use common::permissions::{SERVER_CONFIG, as_user};
use orch_core::{Task, TaskStatus, Workflow};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{ConnectError, Layout, NatsConfig, RemoteHandler, Worker};
use serde_json::json;
use tokio_util::sync::CancellationToken;

async fn embed_worker(config: &NatsConfig) -> Result<Worker, ConnectError> {
    Worker::builder()
        .name("embedder-1")
        .handler("embed", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(format!("embedded {}", ctx.task_id()))
        })
        .connect(config)
        .await
}

#[test]
fn the_crate_docs_give_the_permissions_the_tests_use() {
    let docs: Vec<&str> = include_str!("../src/lib.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .collect();
    for user in ["coordinator", "embedder"] {
        let tested = permissions_of(SERVER_CONFIG.lines(), user);
        assert!(tested.len() > 2, "{user}'s permissions are found");
        assert_eq!(permissions_of(docs.iter().copied(), user), tested, "{user}");
    }
}

/// The lines of `user`'s permissions in a server configuration, trimmed, without a
/// comma at the end.
fn permissions_of<'a>(config: impl Iterator<Item = &'a str>, user: &str) -> Vec<&'a str> {
    let start = format!("{{ user: {user},");
    let mut lines = config
        .map(str::trim)
        .skip_while(|line| !line.starts_with(&start));
    lines.next(); // with the password
    let mut permissions = Vec::new();
    for line in lines {
        let line = line.trim_end_matches(',');
        permissions.push(line);
        if line.ends_with("} }") {
            break;
        }
    }
    permissions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_worker_permitted_for_a_task_type_takes_its_tasks() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let coordinator = as_user(&server, "coordinator", "coordinator-pw");
    let remote = RemoteHandler::connect(&coordinator)
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("embed", remote);
    let workflow = Workflow::new("w", "W").task(Task::new("doc1", "embed"));
    let run = engine.run(&workflow);
    let run = tokio::spawn(run);

    let anonymous = embed_worker(&server.config())
        .await
        .expect_err("no credentials");
    assert!(
        matches!(anonymous, ConnectError::Refused { .. }),
        "{anonymous:?}"
    );
    let wrong = embed_worker(&as_user(&server, "embedder", "guess"))
        .await
        .expect_err("wrong password");
    assert!(matches!(wrong, ConnectError::Refused { .. }), "{wrong:?}");
    assert!(!wrong.to_string().contains("guess"), "{wrong}");
    let other = embed_worker(&as_user(&server, "parser", "parser-pw"))
        .await
        .expect_err("the parser may not serve `embed`");
    assert!(matches!(other, ConnectError::Setup { .. }), "{other:?}");
    assert!(
        other.to_string().contains("may this user use it?"),
        "{other}"
    );

    // Below the worker API too, the parser's user cannot pull an `embed` task.
    let parser = as_user(&server, "parser", "parser-pw")
        .connect()
        .await
        .expect("connects");
    let pull = parser.request(
        "$JS.API.CONSUMER.MSG.NEXT.ORCH_TASKS.embed",
        r#"{"batch":1,"expires":500000000}"#.into(),
    );
    let pulled = tokio::time::timeout(Duration::from_secs(2), pull).await;
    assert!(
        !matches!(pulled, Ok(Ok(ref m)) if m.status.is_none()),
        "the parser got a task"
    );
    let admin = async_nats::jetstream::new(coordinator.connect().await.expect("connects"));
    let mut tasks = admin.get_stream("ORCH_TASKS").await.expect("the stream");
    assert_eq!(
        tasks.info().await.expect("info").state.messages,
        1,
        "the task waits"
    );

    let worker = embed_worker(&as_user(&server, "embedder", "embedder-pw"))
        .await
        .expect("the embedder may serve `embed`");
    // It may also follow the stream that keeps cancellations (so it misses none while
    // its connection is down).
    let mut cancels = admin.get_stream("ORCH_CANCELS").await.expect("the stream");
    assert_eq!(
        cancels.info().await.expect("info").state.consumer_count,
        1,
        "the worker follows the cancellations stream"
    );
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends within a minute")
        .expect("the run's task")
        .expect("valid");
    let doc = result.task("doc1").expect("a task");
    assert_eq!(
        (doc.status, doc.result.clone()),
        (TaskStatus::Completed, Some(json!("embedded doc1")))
    );
    stop.cancel();
}

/// The embedder may create no stream: started before any coordinator made them, it
/// says to start one first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_may_not_create_streams_started_first_says_to_start_a_coordinator() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let error = embed_worker(&as_user(&server, "embedder", "embedder-pw"))
        .await
        .expect_err("no stream to take tasks from");
    let ConnectError::Setup { what, reason } = &error else {
        panic!("a set-up error: {error:?}");
    };
    assert_eq!(what, "stream `ORCH_TASKS`");
    assert!(
        reason.contains("does not exist yet") && reason.contains("usually a coordinator"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_may_not_store_results_gives_its_tasks_back_until_they_are_lost() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let layout = Layout {
        max_deliver: 2,
        ..Layout::default()
    };
    let remote = RemoteHandler::builder()
        .layout(layout.clone())
        .connect(&as_user(&server, "coordinator", "coordinator-pw"))
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("embed", remote);
    let workflow = Workflow::new("w", "W").task(Task::new("doc1", "embed"));
    let run = tokio::spawn(engine.run(&workflow));

    let calls = Arc::new(AtomicU32::new(0));
    let worker = Worker::builder()
        .layout(layout)
        .result_patience(Duration::from_millis(300))
        .state(Arc::clone(&calls))
        .handler("embed", |ctx: TaskContext| async move {
            ctx.state::<Arc<AtomicU32>>()?
                .fetch_add(1, Ordering::SeqCst);
            Ok::<_, TaskError>("embedded")
        })
        .connect(&as_user(&server, "mute", "mute-pw"))
        .await
        .expect("the mute worker may take `embed` tasks");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends: the worker does not hold the task for ever")
        .expect("the run's task")
        .expect("valid");
    let doc = result.task("doc1").expect("a task");
    assert_eq!(doc.status, TaskStatus::Failed);
    let error = doc.error.as_deref().unwrap_or_default();
    assert!(error.starts_with("worker lost"), "{error}");
    // Run on each delivery but the last, whose worker would store the verdict.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    stop.cancel();
}

/// A coordinator that may send `embed` tasks only: the server refuses its `parse` task
/// messages, which it once sent again for ever, the attempt never ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_message_the_server_keeps_refusing_fails_its_attempt() {
    const NARROW: &str = r#"
authorization {
  users: [
    { user: narrow, password: "narrow-pw",
      permissions: {
        publish: ["orch.task.embed", "orch.cancel.>", "orch.worker.>", "$JS.API.>", "$JS.FC.>"],
        subscribe: ["orch.>", "_INBOX.>", "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORCH_TASKS.*"] } }
  ]
}
"#;
    let Some(server) = NatsServer::start_with_config(Some(NARROW)) else {
        return;
    };
    let layout = Layout {
        duplicate_window: Duration::from_secs(2),
        ..Layout::default()
    };
    let remote = RemoteHandler::builder()
        .layout(layout)
        .connect(&as_user(&server, "narrow", "narrow-pw"))
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("parse", remote);
    let workflow = Workflow::new("w", "W").task(Task::new("doc1", "parse"));
    let result = tokio::time::timeout(Duration::from_secs(60), engine.run(&workflow))
        .await
        .expect("the run ends")
        .expect("valid");
    let doc = result.task("doc1").expect("a task");
    assert_eq!(doc.status, TaskStatus::Failed);
    let error = doc.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("the server did not store the message of task `doc1` within 1s"),
        "{error}"
    );
    assert!(
        error.ends_with("may this user publish on `orch.task.parse`? the server leaves a publish it refuses for want of permission unanswered)"),
        "{error}"
    );
}
