//! How long an attempt waits for a worker, against a real nats-server: the time no
//! worker served a type counts only while attempts kept asking, a zero timeout fails an
//! attempt only when no worker serves its type, and an attempt whose message no stream
//! takes fails after the timeout too.

mod common;

use std::time::Duration;

use common::NatsServer;
use orch_core::{Task, TaskStatus, Workflow};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{RemoteHandler, Worker};
use tokio_util::sync::CancellationToken;

/// A worker serving `nap` (sleeps `ms` of its config, then answers "rested"), until
/// `stop`.
async fn start_worker(server: &NatsServer, stop: &CancellationToken) {
    let worker = Worker::builder()
        .handler("nap", |ctx: TaskContext| async move {
            let ms = ctx.config()["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, TaskError>("rested")
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    tokio::spawn(worker.run(stop.clone()));
}

async fn engine(server: &NatsServer, missing_worker_timeout: Duration) -> WorkflowEngine {
    let remote = RemoteHandler::builder()
        .missing_worker_timeout(missing_worker_timeout)
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::builder().build().expect("valid settings");
    engine.register_handler("nap", remote);
    engine
}

fn nap(ms: u64) -> Workflow {
    Workflow::new("w", "W").task(Task::new("nap", "nap").config(serde_json::json!({"ms": ms})))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_missing_long_ago_does_not_count_against_a_later_attempt() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // Long enough for a worker started after the attempt's first check to serve it on a
    // busy machine.
    let engine = engine(&server, Duration::from_secs(2)).await;
    // No worker: the attempt fails once none answered for the timeout.
    let result = engine.execute_workflow(&nap(0)).await.expect("valid");
    let first = result.task("nap").expect("a task");
    assert_eq!(first.status, TaskStatus::Failed, "{:?}", first.error);

    // Well after, a new attempt finds no worker at first, and one starts soon after:
    // the absence before is not counted, so the attempt waits for it.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let stop = CancellationToken::new();
    // Everything sent, in order. Listening, it also keeps the attempt's first ask for a
    // worker unanswered, so that the attempt looks at the type's consumer next.
    let watcher = async_nats::connect(server.url()).await.expect("connects");
    let mut sent = watcher.subscribe(">").await.expect("subscribes");
    async fn until(sent: &mut async_nats::Subscriber, subject: &str) {
        let seen = async {
            while let Some(message) = futures_util::StreamExt::next(sent).await {
                if message.subject.as_str() == subject {
                    return;
                }
            }
            panic!("the subscription ended");
        };
        // A guard against waiting for ever, not a measure.
        (tokio::time::timeout(Duration::from_secs(30), seen).await)
            .unwrap_or_else(|_| panic!("nothing sent on {subject} within 30 s"));
    }
    // In place once it hears itself.
    watcher.publish("ready", "".into()).await.expect("sent");
    until(&mut sent, "ready").await;
    let start_late = async {
        // The worker starts once the attempt's first check found none: it asked, then
        // looked at the consumer, which no worker had used.
        until(&mut sent, "orch.worker.nap").await;
        until(&mut sent, "$JS.API.CONSUMER.INFO.ORCH_TASKS.nap").await;
        drop(sent);
        start_worker(&server, &stop).await;
    };
    let workflow = nap(0);
    let (result, ()) = tokio::join!(engine.execute_workflow(&workflow), start_late);
    let second = result.expect("valid");
    let nap = second.task("nap").expect("a task");
    assert_eq!(
        (nap.status, nap.error.as_deref()),
        (TaskStatus::Completed, None)
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_timeout_fails_an_attempt_only_while_no_worker_serves_its_type() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = engine(&server, Duration::ZERO).await;
    let result = engine.execute_workflow(&nap(0)).await.expect("valid");
    let alone = result.task("nap").expect("a task");
    assert_eq!(alone.status, TaskStatus::Failed);
    let error = alone.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("no worker serves task type `nap`"),
        "{error}"
    );

    let stop = CancellationToken::new();
    start_worker(&server, &stop).await;
    // Checked many times while the handler naps, with the worker there each time.
    let result = engine.execute_workflow(&nap(300)).await.expect("valid");
    let served = result.task("nap").expect("a task");
    assert_eq!(
        (served.status, served.error.as_deref()),
        (TaskStatus::Completed, None)
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_fails_when_no_stream_takes_its_message_for_the_timeout() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = engine(&server, Duration::from_millis(400)).await;
    let stop = CancellationToken::new();
    start_worker(&server, &stop).await;
    let result = engine.execute_workflow(&nap(0)).await.expect("valid");
    assert_eq!(
        result.task("nap").map(|t| t.status),
        Some(TaskStatus::Completed)
    );
    // Someone deletes the tasks stream under the running coordinator.
    let client = async_nats::connect(server.url()).await.expect("connects");
    let js = async_nats::jetstream::new(client);
    js.delete_stream("ORCH_TASKS").await.expect("deleted");
    let result = engine.execute_workflow(&nap(0)).await.expect("valid");
    let nap = result.task("nap").expect("a task");
    assert_eq!(nap.status, TaskStatus::Failed);
    let error = nap.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("no stream takes task messages on `orch.task.nap`"),
        "{error}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_timeout_of_seconds_an_attempt_no_worker_serves_fails() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // Checked once a second: the absence counts across every check.
    let engine = engine(&server, Duration::from_secs(5)).await;
    let workflow = nap(0);
    let run = engine.execute_workflow(&workflow);
    // A guard against waiting for ever, not a measure.
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the attempt gave up")
        .expect("valid");
    let alone = result.task("nap").expect("a task");
    let error = alone.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("no worker serves task type `nap`"),
        "{error}"
    );
}

/// Attempts that fail because no worker serves their type leave nothing queued, even
/// when the coordinator's process ends as the run does (its runtime dropped at once): a
/// worker started later runs none of them.
#[test]
fn attempts_no_worker_serves_leave_nothing_queued_when_the_coordinator_ends_at_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let workflow = (1..=6).fold(Workflow::new("w", "W"), |workflow, n| {
        workflow.task(Task::new(format!("nap{n}"), "nap"))
    });
    let result = runtime.block_on(async {
        let engine = engine(&server, Duration::ZERO).await;
        engine.execute_workflow(&workflow).await.expect("valid")
    });
    drop(runtime);
    assert_eq!(result.tasks_with(TaskStatus::Failed).len(), 6, "{result:?}");
    let left = tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(async {
            let client = async_nats::connect(server.url()).await.expect("connects");
            let js = async_nats::jetstream::new(client);
            let mut tasks = js.get_stream("ORCH_TASKS").await.expect("the stream");
            tasks.info().await.expect("info").state.messages
        });
    assert_eq!(left, 0, "task messages of the failed run are still queued");
}
