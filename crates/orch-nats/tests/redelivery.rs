//! Task messages delivered again, against a real nats-server: a task whose result is
//! slow to store is not delivered to another worker meanwhile, and a task delivered again
//! after its result was stored does not run again.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use common::NatsServer;
use orch_core::{Task, TaskStatus, Workflow};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{Layout, RemoteHandler, Worker};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A layout whose tasks go to another worker 400 ms after their last sign of life.
fn layout() -> Layout {
    Layout {
        ack_wait: Duration::from_millis(400),
        ..Layout::default()
    }
}

/// An engine whose `count` tasks run remotely.
async fn coordinator(server: &NatsServer) -> WorkflowEngine {
    let remote = RemoteHandler::builder()
        .layout(layout())
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("count", remote);
    engine
}

/// Starts a worker whose `count` handler counts its calls in `calls` and returns the
/// count; it runs until `stop`.
async fn start_counting_worker(server: &NatsServer, calls: &Arc<AtomicU32>) -> CancellationToken {
    let worker = Worker::builder()
        .layout(layout())
        .state(Arc::clone(calls))
        .handler("count", |ctx: TaskContext| async move {
            let calls = ctx.state::<Arc<AtomicU32>>()?;
            Ok::<_, TaskError>(calls.fetch_add(1, Ordering::SeqCst) + 1)
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    stop
}

/// Sets the largest message the results stream stores (`-1`: no limit).
async fn limit_results(js: &jetstream::Context, max_msg_size: i32) {
    let mut stream = js.get_stream("ORCH_RESULTS").await.expect("the stream");
    let mut config = stream.info().await.expect("its info").config.clone();
    config.max_message_size = max_msg_size;
    js.update_stream(config).await.expect("updated");
}

/// Waits until the tasks stream holds no message (every task message acknowledged).
async fn wait_for_no_task_message(js: &jetstream::Context) {
    let mut tasks = js.get_stream("ORCH_TASKS").await.expect("the stream");
    for _ in 0..3000 {
        if tasks.info().await.expect("info").state.messages == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a task message was still there after 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_slow_to_store_keeps_its_task_from_going_to_another_worker() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server).await;
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker(&server, &calls).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    // The server refuses every result for a while: the worker keeps trying.
    limit_results(&js, 1).await;
    let run = common::run_in_background(
        &engine,
        &Workflow::new("w", "W").task(Task::new("a", "count")),
    );
    common::wait_for(|| calls.load(Ordering::SeqCst) > 0).await;
    tokio::time::sleep(layout().ack_wait * 4).await;
    limit_results(&js, -1).await;

    let result = run.await.expect("the run ends");
    assert_eq!(
        result.task("a").map(|t| (t.status, t.result.clone())),
        Some((TaskStatus::Completed, Some(json!(1))))
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the task was delivered again"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_delivered_again_after_its_result_was_stored_does_not_run_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let run = common::run_in_background(
        &engine,
        &Workflow::new("w", "W").task(Task::new("a", "count")),
    );

    // A worker takes the task, stores its result, and dies before acknowledging it.
    let consumer: jetstream::consumer::PullConsumer = loop {
        if let Ok(consumer) = js.get_consumer_from_stream("count", "ORCH_TASKS").await {
            break consumer;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let message = {
        use futures_util::StreamExt;
        let mut batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(10))
            .messages()
            .await
            .expect("a fetch");
        batch
            .next()
            .await
            .expect("the task message")
            .expect("readable")
    };
    let task: Value = serde_json::from_slice(&message.payload).expect("json");
    let (run_id, attempt) = (task["run_id"].as_str().expect("a run id"), &task["attempt"]);
    let result = json!({"v": 1, "run_id": run_id, "task_id": "a", "attempt": attempt,
        "worker": "dead", "outcome": {"status": "completed", "output": "from the dead worker"}});
    let publish = jetstream::message::PublishMessage::build()
        .payload(result.to_string().into())
        .message_id(format!("{run_id}.a.{attempt}"));
    js.send_publish(format!("orch.result.{run_id}.a.{attempt}"), publish)
        .await
        .expect("published")
        .await
        .expect("stored");
    drop(message);
    let result = run.await.expect("the run ends");
    assert_eq!(
        result.task("a").and_then(|t| t.result.clone()),
        Some(json!("from the dead worker"))
    );

    // Another worker gets the task message again, and acknowledges it without running it.
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker(&server, &calls).await;
    wait_for_no_task_message(&js).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the task ran again");
    stop.cancel();
}
