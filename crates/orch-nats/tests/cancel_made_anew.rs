//! A run cancellation kept on its stream covers the task messages stored before it, not
//! the same attempts sent again to a tasks stream made anew (which numbers its messages
//! from 1 again): a worker runs those. Both for a cancellation that says when the last
//! message it covers was stored, and for one that does not (sent by an older
//! coordinator), which is bounded by when it was kept, give or take a second.

mod common;

use std::sync::{Arc, Mutex};

use async_nats::jetstream;
use common::NatsServer;
use orch_core::RunId;
use orch_engine::{TaskContext, TaskError};
use orch_nats::{RemoteHandler, Worker};

/// Stores an attempt of task `a` of run `run` on the tasks stream, as a coordinator
/// sends it.
async fn queue_attempt(js: &jetstream::Context, run: &str) -> u64 {
    let task = format!(
        r#"{{"v": 1, "run_id": "{run}", "workflow_id": "w", "attempt": 1,
        "task": {{"task_id": "a", "task_type": "embed"}}}}"#
    );
    let publish = jetstream::message::PublishMessage::build()
        .payload(task.into())
        .message_id(format!("{run}.a.1"));
    let stored = js.send_publish("orch.task.embed", publish).await;
    stored.expect("published").await.expect("stored").sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_run_cancellation_covers_no_attempt_sent_to_the_tasks_stream_made_anew() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let remote = RemoteHandler::connect(&server.config())
        .await
        .expect("the coordinator connects");
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    // Two runs whose coordinators are gone, their attempts queued, then cancelled: one
    // by this coordinator, one by an older one whose message says only the sequence.
    for run in ["r-new", "r-old"] {
        queue_attempt(&js, run).await;
    }
    let last = queue_attempt(&js, "r-other").await;
    let new = RunId::parse("r-new").expect("an id");
    remote.cancel_run(&new).await.expect("cancelled");
    let older = format!(r#"{{"v": 1, "run_id": "r-old", "up_to_sequence": {last}}}"#);
    let kept = js.publish("orch.cancel.r-old", older.into()).await;
    kept.expect("published").await.expect("kept");

    // The tasks stream made anew; the runs are taken up again, their attempts sent anew,
    // at sequences the cancellations cover. A run cancelled after its attempt reached the
    // new stream stays cancelled.
    let mut stream = js.get_stream("ORCH_TASKS").await.expect("found");
    let config = stream.info().await.expect("its settings").config.clone();
    js.delete_stream("ORCH_TASKS").await.expect("deleted");
    js.create_stream(config).await.expect("made anew");
    // Past the second by which a worker allows the clocks of servers to differ.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for run in ["r-new", "r-old", "r-after"] {
        let sequence = queue_attempt(&js, run).await;
        assert!(
            sequence <= last,
            "{run} at {sequence}, covered by sequence alone"
        );
    }
    let after = RunId::parse("r-after").expect("an id");
    remote.cancel_run(&after).await.expect("cancelled");
    // All three kept before the worker starts, which reads them before it takes a task.
    let cancels = js.get_stream("ORCH_CANCELS").await.expect("found");
    common::wait_for_async(|| {
        let mut cancels = cancels.clone();
        async move { cancels.info().await.is_ok_and(|i| i.state.messages == 3) }
    })
    .await;

    let ran = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ran);
    let worker = Worker::builder().handler("embed", move |ctx: TaskContext| {
        let run = ctx.run_id().to_string();
        seen.lock().expect("not poisoned").push(run);
        async move { Ok::<_, TaskError>("embedded") }
    });
    let stop = common::run_worker(&server, worker).await;
    // Each attempt ran, or was terminated as cancelled: the queue empties.
    common::wait_for_task_messages(&js, 0).await;
    let mut ran = ran.lock().expect("not poisoned").clone();
    ran.sort();
    assert_eq!(
        ran,
        ["r-new", "r-old"],
        "the attempts sent anew ran, and only they"
    );
    stop.cancel();
}
