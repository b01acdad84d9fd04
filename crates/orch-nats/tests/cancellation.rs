//! Cancellations reach a worker's handlers, against a real nats-server, also when the
//! worker's connection was down while the coordinator sent them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use common::NatsServer;
use orch_core::{Task, Workflow, WorkflowStatus};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{NatsConfig, RemoteHandler, Worker};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the `wait` handler tells the test: that it started, and that it heard its
/// cancellation.
#[derive(Default)]
struct Signals {
    started: Notify,
    cancelled: Notify,
}

/// A worker, connected with `config`, whose `wait` handler waits for its cancellation.
async fn waiting_worker(config: &NatsConfig, signals: &Arc<Signals>) -> Worker {
    let signals = Arc::clone(signals);
    Worker::builder()
        .handler("wait", move |ctx: TaskContext| {
            let signals = Arc::clone(&signals);
            async move {
                signals.started.notify_one();
                ctx.cancellation().cancelled().await;
                signals.cancelled.notify_one();
                Err::<(), _>(TaskError::new("stopped"))
            }
        })
        .connect(config)
        .await
        .expect("the worker connects")
}

/// Waits up to 20 s for `signal`; fails saying that `what` did not happen otherwise.
async fn signalled(signal: &Notify, what: &str) {
    tokio::time::timeout(Duration::from_secs(20), signal.notified())
        .await
        .unwrap_or_else(|_| panic!("expected {what} within 20 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connection_was_down_hears_the_cancellations_sent_meanwhile() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let outage = common::Outage::relay_to(server.port());
    let signals = Arc::new(Signals::default());
    let worker = waiting_worker(&NatsConfig::new(outage.url()), &signals).await;
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let remote = RemoteHandler::builder()
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::builder()
        .cancel_grace_period(Duration::from_millis(100))
        .build()
        .expect("valid settings");
    engine.register_handler("wait", remote);
    let run = engine.run(&Workflow::new("w", "W").task(Task::new("a", "wait")));
    let cancel = run.cancellation_token();
    let run = tokio::spawn(tokio::time::timeout(Duration::from_secs(20), run));
    signalled(&signals.started, "the task reaches the worker").await;

    outage.begin();
    cancel.cancel();
    let result = run
        .await
        .expect("the run ends")
        .expect("the cancelled run ends")
        .expect("a valid workflow");
    assert_eq!(result.status, WorkflowStatus::Cancelled);
    // The cancellation was sent while the worker could not hear it.
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let mut cancels = js.get_stream("ORCH_CANCELS").await.expect("the stream");
    let kept = cancels.info().await.expect("its state").state.messages;
    assert!(kept >= 1, "the cancellation is kept");
    outage.end();

    signalled(
        &signals.cancelled,
        "the handler hears the cancellation once the worker is back",
    )
    .await;
    stop.cancel();
}
