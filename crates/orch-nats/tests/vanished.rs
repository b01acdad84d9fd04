//! A task message that leaves the tasks stream with no result while its attempt waits
//! (someone purged the stream or its subject, or made it anew): the attempt, with no
//! timeout to end it, sends the message again instead of waiting for ever; and one that
//! did not leave it is not looked up over and over.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use common::{NatsServer, wait_for, wait_for_async};
use futures_util::{FutureExt as _, StreamExt};
use orch_core::{Task, TaskStatus, Workflow, WorkflowResult};
use orch_engine::{RunError, TaskContext, TaskError};
use orch_nats::{Layout, Worker};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The first attempt a worker starts, which holds its only slot until released.
#[derive(Default)]
struct Gate {
    started: AtomicU32,
    /// The id of the task held.
    held: std::sync::Mutex<Option<String>>,
    release: Notify,
}

/// A run of two tasks on a worker that runs one at a time, paused with one task held by
/// the worker and the other's message queued on the stream.
struct Paused {
    gate: Arc<Gate>,
    run: JoinHandle<Result<WorkflowResult, RunError>>,
    js: jetstream::Context,
    stop: CancellationToken,
}

async fn pause_a_run(server: &NatsServer) -> Paused {
    // The short ack wait makes the coordinator look at its messages often.
    let layout = Layout {
        ack_wait: Duration::from_millis(300),
        ..Layout::default()
    };
    let gate = Arc::new(Gate::default());
    let worker = Worker::builder()
        .layout(layout.clone())
        .concurrency(1)
        .state(Arc::clone(&gate))
        .handler("hold", |ctx: TaskContext| async move {
            let gate = ctx.state::<Arc<Gate>>()?;
            (gate.held.lock().expect("not poisoned"))
                .get_or_insert_with(|| ctx.task_id().to_string());
            if gate.started.fetch_add(1, Ordering::SeqCst) == 0 {
                gate.release.notified().await;
            }
            Ok::<_, TaskError>(ctx.task_id().to_string())
        });
    let stop = common::run_worker(server, worker).await;
    let engine = common::remote_engine(server, layout, &["hold"], 2).await;
    let workflow = Workflow::from_tasks(
        "vanished",
        "Vanished",
        [Task::new("a", "hold"), Task::new("b", "hold")],
    );
    let run = tokio::spawn(async move { engine.execute_workflow(&workflow).await });
    wait_for(|| gate.started.load(Ordering::SeqCst) == 1).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    wait_for_async(|| {
        let js = js.clone();
        async move { tasks_on_stream(&js).await == 2 }
    })
    .await;
    Paused {
        gate,
        run,
        js,
        stop,
    }
}

async fn tasks_on_stream(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream("ORCH_TASKS").await.expect("the tasks stream");
    stream.info().await.expect("its state").state.messages
}

/// Lets the held task finish; both tasks must complete.
async fn finish(paused: Paused) {
    paused.gate.release.notify_one();
    // A guard against waiting for ever, not a measure.
    let result = tokio::time::timeout(Duration::from_secs(30), paused.run)
        .await
        .expect("the waiting attempt sent its message again")
        .expect("the run's task")
        .expect("a valid workflow");
    for id in ["a", "b"] {
        let task = result.task(id).expect("a task");
        assert_eq!(
            (task.status, task.result.as_ref().and_then(|r| r.as_str())),
            (TaskStatus::Completed, Some(id)),
            "{id}"
        );
    }
    paused.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_queued_message_was_purged_sends_it_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let paused = pause_a_run(&server).await;
    let stream = paused.js.get_stream("ORCH_TASKS").await.expect("found");
    stream.purge().await.expect("purged");
    assert_eq!(tasks_on_stream(&paused.js).await, 0);
    finish(paused).await;
}

/// A queued message removed from the stream while the one sent before it stays (by a
/// purge of its subject, say, or a worker that heard another process cancel the run):
/// the stream's first and last sequences do not move, and the attempt sends it again
/// once an ack wait has passed since it last looked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_message_was_removed_behind_another_sends_it_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let paused = pause_a_run(&server).await;
    let held = paused.gate.held.lock().expect("not poisoned").clone();
    let queued = if held.as_deref() == Some("a") {
        "b"
    } else {
        "a"
    };
    let stream = paused.js.get_stream("ORCH_TASKS").await.expect("found");
    let state = stream.cached_info().state.clone();
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(sequence).await.expect("stored");
        let id = message.headers.get("Nats-Msg-Id").expect("an id").as_str();
        // `<run>.<task>.<attempt>`
        if id.split('.').nth(1) == Some(queued) {
            assert_eq!(sequence, state.last_sequence, "queued behind the held one");
            stream.delete_message(sequence).await.expect("removed");
        }
    }
    let mut stream = paused.js.get_stream("ORCH_TASKS").await.expect("found");
    let state = stream.info().await.expect("its state").state.clone();
    assert_eq!(state.messages, 1);
    assert_eq!(
        (state.first_sequence, state.last_sequence),
        (state.last_sequence - 1, state.last_sequence),
        "the stream's bounds stay where they were"
    );
    // A second worker runs the message sent again while the held task still holds the
    // first worker (and with it the stream's first message).
    let worker = Worker::builder()
        .layout(Layout {
            ack_wait: Duration::from_millis(300),
            ..Layout::default()
        })
        .state(Arc::clone(&paused.gate))
        .handler("hold", |ctx: TaskContext| async move {
            ctx.state::<Arc<Gate>>()?
                .started
                .fetch_add(1, Ordering::SeqCst);
            Ok::<_, TaskError>(ctx.task_id().to_string())
        });
    let second = common::run_worker(&server, worker).await;
    wait_for(|| paused.gate.started.load(Ordering::SeqCst) == 2).await;
    finish(paused).await;
    second.cancel();
}

/// The stream made anew holds other messages at the sequences the lost ones had; the
/// worker, busy when its consumer went with the stream, sets the consumer up again when
/// its next pull request gets no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_message_went_with_its_stream_sends_it_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let paused = pause_a_run(&server).await;
    let js = &paused.js;
    let mut stream = js.get_stream("ORCH_TASKS").await.expect("found");
    let config = stream.info().await.expect("its settings").config.clone();
    js.delete_stream("ORCH_TASKS").await.expect("deleted");
    js.create_stream(config).await.expect("made anew");
    for n in 1..=2 {
        let message = jetstream::message::PublishMessage::build()
            .payload("not a task for `hold`".into())
            .message_id(format!("elsewhere.other.{n}"));
        let ack = js.send_publish("orch.task.other", message).await;
        let stored = ack.expect("sent").await.expect("stored");
        assert_eq!(stored.sequence, n);
    }
    finish(paused).await;
}

/// A cancelled attempt whose message went with its stream does not remove, when its wait
/// ends, another message stored at the sequence its own had (the stream made anew
/// numbers from 1 again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_attempt_removes_only_its_own_message() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // No worker serves `nobody`: its message stays queued. The coordinator's link is cut
    // while the stream is made anew, so that it looks at the stream again only once the
    // other message is there.
    let link = common::Outage::relay_to(server.port());
    let remote = orch_nats::RemoteHandler::connect(&orch_nats::NatsConfig::new(link.url()))
        .await
        .expect("the coordinator connects");
    let engine = orch_engine::WorkflowEngine::builder()
        .cancel_grace_period(Duration::from_secs(30))
        .build()
        .expect("valid");
    engine.register_handler("nobody", remote);
    let workflow = Workflow::from_tasks("w", "W", [Task::new("a", "nobody")]);
    let run = engine.run(&workflow);
    let cancel = run.cancellation_token();
    let run = tokio::spawn(run);
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    wait_for_async(|| async { tasks_on_stream(&js).await == 1 }).await;
    let mut removals = (js.client())
        .subscribe("$JS.API.STREAM.MSG.DELETE.ORCH_TASKS")
        .await
        .expect("subscribed");
    common::subscriptions_in_place(&js.client()).await;

    cancel.cancel();
    link.begin();
    let mut stream = js.get_stream("ORCH_TASKS").await.expect("found");
    let config = stream.info().await.expect("its settings").config.clone();
    js.delete_stream("ORCH_TASKS").await.expect("deleted");
    js.create_stream(config).await.expect("made anew");
    let other = jetstream::message::PublishMessage::build()
        .payload("another attempt's task".into())
        .message_id("elsewhere.other.1");
    let stored = (js.send_publish("orch.task.other", other).await)
        .expect("sent")
        .await
        .expect("stored");
    assert_eq!(
        stored.sequence, 1,
        "at the sequence the cancelled attempt's had"
    );
    link.end();

    // A guard against waiting for ever, not a measure.
    let result = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the cancelled run ends")
        .expect("the run's task")
        .expect("a valid workflow");
    assert_eq!(
        result.task("a").map(|t| t.status),
        Some(TaskStatus::Cancelled)
    );
    // The attempt's removal, if any, is sent after its wait ended, while the coordinator
    // is still connected. Once the server closed the coordinator's connection, it has
    // passed on every request the coordinator sent.
    drop(engine);
    wait_for(|| link.open_connections() == 0).await;
    common::subscriptions_in_place(&js.client()).await;
    assert!(
        removals.next().now_or_never().is_none(),
        "no message was asked to be removed"
    );
    let stream = js.get_stream("ORCH_TASKS").await.expect("found");
    let kept = stream
        .get_raw_message(1)
        .await
        .expect("the other message is kept");
    assert_eq!(kept.payload.as_ref(), b"another attempt's task");
}

/// A stream made anew while the coordinator was idle: an attempt whose message went to
/// the new stream before the coordinator noticed is looked up once (found still there),
/// not on every tick for as long as it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_to_a_stream_made_anew_is_looked_up_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let link = common::Outage::relay_to(server.port());
    // Ticks every 100 ms.
    let remote = orch_nats::RemoteHandler::builder()
        .missing_worker_timeout(Duration::from_millis(400))
        .connect(&orch_nats::NatsConfig::new(link.url()))
        .await
        .expect("the coordinator connects");
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let mut stream = js.get_stream("ORCH_TASKS").await.expect("found");
    let config = stream.info().await.expect("its settings").config.clone();
    js.delete_stream("ORCH_TASKS").await.expect("deleted");
    js.create_stream(config).await.expect("made anew");
    let worker = Worker::builder().handler("nap", |_ctx: TaskContext| async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok::<_, TaskError>(serde_json::Value::Null)
    });
    let stop = common::run_worker(&server, worker).await;
    // Sees the look-ups and the server's answers to them (sent to the asker's inbox);
    // its own inbox is elsewhere, so that a request of its own finds nobody answering.
    let client = async_nats::ConnectOptions::new()
        .custom_inbox_prefix("_WATCHER")
        .connect(server.url())
        .await
        .expect("connects");
    let mut look_ups = client
        .subscribe("$JS.API.STREAM.MSG.GET.ORCH_TASKS")
        .await
        .expect("subscribed");
    let mut answers = client.subscribe("_INBOX.>").await.expect("subscribed");
    let engine = orch_engine::WorkflowEngine::new();
    engine.register_handler("nap", remote);
    let workflow = Workflow::from_tasks("w", "W", [Task::new("a", "nap")]);
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    assert_eq!(
        result.task("a").map(|t| t.status),
        Some(TaskStatus::Completed)
    );
    // Once the server closed the coordinator's connection, it has passed on every
    // look-up the coordinator sent.
    drop(engine);
    wait_for(|| link.open_connections() == 0).await;
    common::subscriptions_in_place(&client).await;
    let mut asked = std::collections::HashSet::new();
    while let Some(Some(look_up)) = look_ups.next().now_or_never() {
        asked.insert(
            look_up
                .reply
                .expect("a look-up waits for its answer")
                .to_string(),
        );
    }
    // The worker's acknowledgement removes the message before its result reaches the
    // coordinator, which may then look once more, and find the message gone: only the
    // look-ups that found it still queued count.
    let mut found_queued = 0;
    while let Some(Some(answer)) = answers.next().now_or_never() {
        if asked.contains(answer.subject.as_str()) {
            let answer: serde_json::Value =
                serde_json::from_slice(&answer.payload).expect("the server's JSON");
            found_queued += u32::from(answer.get("message").is_some());
        }
    }
    assert_eq!(
        found_queued,
        1,
        "the message is looked up once while still queued ({} look-ups in all)",
        asked.len()
    );
    stop.cancel();
}
