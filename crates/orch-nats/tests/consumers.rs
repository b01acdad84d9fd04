//! A coordinator makes sure of each remote task type's consumer before the type's first
//! task goes out, against a real nats-server: once per type however many attempts start
//! at once, and a failed look-up fails every attempt that waited on it together (one that
//! starts later asks again).

mod common;

use common::NatsServer;
use futures_util::{FutureExt as _, StreamExt};
use orch_core::{Task, TaskStatus, Workflow, WorkflowResult, WorkflowStatus};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{RemoteHandler, Worker};
use tokio_util::sync::CancellationToken;

/// 64 tasks of type `double`, independent, so that a run starts them all at once.
fn burst() -> Workflow {
    Workflow::from_tasks(
        "burst",
        "Burst",
        (0..64).map(|i| Task::new(format!("t{i}"), "double")),
    )
}

/// A coordinator's engine running up to 64 `double` tasks at once.
async fn coordinator(server: &NatsServer) -> WorkflowEngine {
    let remote = RemoteHandler::connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::with_max_concurrent(64).expect("valid");
    engine.register_handler("double", remote);
    engine
}

/// Runs `workflow` on `engine`; returns its result and the look-ups of the tasks'
/// consumers the server was asked for meanwhile.
async fn run_watching_look_ups(
    server: &NatsServer,
    engine: &WorkflowEngine,
    workflow: &Workflow,
) -> (WorkflowResult, Vec<String>) {
    let watcher = async_nats::connect(server.url()).await.expect("connects");
    let mut requests = watcher
        .subscribe("$JS.API.CONSUMER.INFO.ORCH_TASKS.>")
        .await
        .expect("subscribes");
    common::subscriptions_in_place(&watcher).await;
    let result = engine.execute_workflow(workflow).await.expect("valid");
    // Every attempt waited for its look-up's answer, so the server had passed each
    // look-up on to the watcher before it answered: they arrive before this round trip.
    // (A look-up sent after the run ended, which no attempt waited for, is not counted.)
    common::subscriptions_in_place(&watcher).await;
    let mut look_ups = Vec::new();
    while let Some(Some(request)) = requests.next().now_or_never() {
        look_ups.push(request.subject.to_string());
    }
    (result, look_ups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_looks_up_a_task_types_consumer_once_for_many_attempts() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let worker = Worker::builder()
        .handler("double", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(2)
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let engine = coordinator(&server).await;
    let (result, look_ups) = run_watching_look_ups(&server, &engine, &burst()).await;
    assert_eq!(result.status, WorkflowStatus::Completed);
    // One look-up: the consumer, then its settings.
    assert_eq!(
        look_ups, ["$JS.API.CONSUMER.INFO.ORCH_TASKS.double"; 2],
        "for 64 attempts"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_consumer_look_up_fails_every_attempt_that_waited_on_it() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server).await;
    // With the tasks stream gone, the server answers a look-up with an error.
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    js.delete_stream("ORCH_TASKS").await.expect("deleted");
    let (result, look_ups) = run_watching_look_ups(&server, &engine, &burst()).await;
    assert_eq!(result.status, WorkflowStatus::Failed);
    for record in result.tasks.records() {
        assert_eq!(record.status, TaskStatus::Failed);
        let error = record.error.as_deref().unwrap_or_default();
        assert!(error.contains("consumer `double`"), "{error}");
    }
    // Attempts that start while a look-up is under way share its failure; one that
    // starts after it failed asks again. Each asking for itself would make 64; how many
    // waves of attempts there are depends on how busy the machine is (CI once saw 19, a
    // busy machine 36): fewer than one per attempt is what sharing guarantees.
    assert!(
        !look_ups.is_empty() && look_ups.len() < 64,
        "{} look-ups for 64 attempts: {look_ups:?}",
        look_ups.len()
    );
}
