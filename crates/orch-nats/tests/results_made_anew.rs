//! The results stream made anew while a coordinator's link is down: the coordinator,
//! back, reads the new stream from its first message, even when that stream has already
//! grown past the sequence the coordinator was waiting for in the old one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use common::{NatsServer, wait_for, wait_for_async};
use orch_core::{Task, TaskStatus, Workflow, WorkflowStatus};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{NatsConfig, RemoteHandler, Worker};
use tokio::sync::Notify;

/// Lets the handler of `hold` tasks finish once notified.
#[derive(Default)]
struct Gate {
    started: AtomicBool,
    release: Notify,
}

/// The coordinator's link is down while the stream is made anew: the client sets its
/// consumer up again by itself once back, at the old stream's place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_stored_in_a_results_stream_made_anew_reaches_its_coordinator() {
    made_anew(true).await;
}

/// The coordinator's link stays up: its consumer goes with the old stream, and is set up
/// again on the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_results_stream_made_anew_while_connected_is_read_from_its_start() {
    made_anew(false).await;
}

/// Runs a held task, makes the results stream anew while it runs (with the
/// coordinator's link cut meanwhile if `cut`), and checks that its result, stored first
/// in the new stream, reaches the coordinator once the new stream holds more messages
/// than the old one had.
async fn made_anew(cut: bool) {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let gate = Arc::new(Gate::default());
    let worker = Worker::builder()
        .state(Arc::clone(&gate))
        .handler("quick", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(ctx.task_id().to_string())
        })
        .handler("hold", |ctx: TaskContext| async move {
            let gate = ctx.state::<Arc<Gate>>()?;
            gate.started.store(true, Ordering::SeqCst);
            gate.release.notified().await;
            Ok::<_, TaskError>(ctx.task_id().to_string())
        });
    let stop = common::run_worker(&server, worker).await;
    let link = common::Outage::relay_to(server.port());
    // No worker serves `nobody`: its task waits, and is not failed for that meanwhile.
    let remote = RemoteHandler::builder()
        .missing_worker_timeout(Duration::from_secs(3600))
        .connect(&NatsConfig::new(link.url()))
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    for task_type in ["quick", "hold", "nobody"] {
        engine.register_handler(task_type, remote.clone());
    }
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));

    // Three results seen: the coordinator reads the results stream from its fourth on.
    let tasks = (1..=3).map(|n| Task::new(format!("q{n}"), "quick"));
    let warm_up = Workflow::from_tasks("warm", "Warm", tasks);
    let warm_up = engine.execute_workflow(&warm_up).await.expect("valid");
    assert_eq!(warm_up.status, WorkflowStatus::Completed);
    // A task no worker serves keeps the tasks stream's first message where it is, so
    // that the coordinator cannot tell from that stream that the held task left it (and
    // look its result up on its own).
    let queued = Workflow::from_tasks("queued", "Queued", [Task::new("n", "nobody")]);
    let queued = tokio::spawn(engine.run(&queued));
    wait_for_async(|| async { stream_messages(&js, "ORCH_TASKS").await == 1 }).await;
    let held = Workflow::from_tasks("held", "Held", [Task::new("h", "hold")]);
    let held = tokio::spawn(engine.run(&held));
    wait_for(|| gate.started.load(Ordering::SeqCst)).await;

    if cut {
        link.begin();
    }
    let mut results = js.get_stream("ORCH_RESULTS").await.expect("found");
    let config = results.info().await.expect("its settings").config.clone();
    js.delete_stream("ORCH_RESULTS").await.expect("deleted");
    js.create_stream(config).await.expect("made anew");
    gate.release.notify_one();
    wait_for_async(|| async { stream_messages(&js, "ORCH_RESULTS").await == 1 }).await;
    for n in 1..=5 {
        let subject = format!("orch.result.elsewhere.other.{n}");
        let ack = js.publish(subject, "another run's result".into()).await;
        ack.expect("sent").await.expect("stored");
    }
    if cut {
        link.end();
    }

    // A guard against waiting for ever, not a measure (a follower looks at its stream
    // at least every 40 s).
    let result = tokio::time::timeout(Duration::from_secs(90), held)
        .await
        .expect("the held task's result was read from the new stream")
        .expect("the run's task")
        .expect("a valid workflow");
    let task = result.task("h").expect("a task");
    assert_eq!(
        (task.status, task.result.as_ref().and_then(|r| r.as_str())),
        (TaskStatus::Completed, Some("h"))
    );
    queued.abort();
    stop.cancel();
}

async fn stream_messages(js: &jetstream::Context, name: &str) -> u64 {
    let mut stream = js.get_stream(name).await.expect("found");
    stream.info().await.expect("its state").state.messages
}
