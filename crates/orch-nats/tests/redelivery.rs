//! Task messages delivered again, against a real nats-server: a task whose result is
//! slow to store is not delivered to another worker meanwhile; a task delivered again
//! after its result was stored does not run again; and a coordinator that comes back on a
//! run finds what happened to the messages it sent before it went away: out of
//! deliveries ("worker lost"), or removed without a result (sent again).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use common::{NatsServer, wait_for_async};
use orch_core::{Task, TaskStatus, Workflow, WorkflowStatus};
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

/// [`layout`], with tasks run at most once (a second delivery gets the verdict).
fn one_run_per_task() -> Layout {
    Layout {
        max_deliver: 1,
        ..layout()
    }
}

/// An engine whose `count` tasks run remotely, with `layout`.
async fn coordinator(server: &NatsServer, layout: Layout) -> WorkflowEngine {
    let remote = RemoteHandler::builder()
        .layout(layout)
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("count", remote);
    engine
}

/// Starts a worker with `layout` whose `count` handler counts its calls in `calls` and
/// returns the count; it runs until the token returned is cancelled.
async fn start_counting_worker(
    server: &NatsServer,
    layout: Layout,
    calls: &Arc<AtomicU32>,
) -> CancellationToken {
    start_counting_worker_of(server, layout, calls, 16).await
}

/// [`start_counting_worker`], running at most `concurrency` tasks at once.
async fn start_counting_worker_of(
    server: &NatsServer,
    layout: Layout,
    calls: &Arc<AtomicU32>,
    concurrency: usize,
) -> CancellationToken {
    let worker = Worker::builder()
        .concurrency(concurrency)
        .layout(layout)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_slow_to_store_keeps_its_task_from_going_to_another_worker() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server, layout()).await;
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker(&server, layout(), &calls).await;
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
async fn a_worker_gives_up_storing_a_result_once_its_attempt_is_past_its_deadline() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server, layout()).await;
    engine.register_handler(
        "sized",
        RemoteHandler::builder()
            .layout(layout())
            .connect(&server.config())
            .await
            .expect("connects"),
    );
    // One task at a time: a slot held by a result that is never stored stalls the worker.
    let worker = Worker::builder()
        .layout(layout())
        .concurrency(1)
        .handler("sized", |ctx: TaskContext| async move {
            let bytes = ctx.config()["bytes"].as_u64().unwrap_or(0) as usize;
            Ok::<_, TaskError>("x".repeat(bytes))
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    // The results stream refuses results over 1 KiB (below the server's largest message).
    limit_results(&js, 1024).await;
    let big = Workflow::new("w", "W").task(
        Task::new("big", "sized")
            .config(json!({"bytes": 4096}))
            .timeout(Duration::from_millis(500)),
    );
    let result = common::run_in_background(&engine, &big)
        .await
        .expect("ends");
    assert_eq!(
        result.task("big").map(|t| t.status),
        Some(TaskStatus::Failed)
    );
    // The worker is free for the next task once the big one's deadline passed.
    let small =
        Workflow::new("w2", "W").task(Task::new("small", "sized").config(json!({"bytes": 1})));
    let result = tokio::time::timeout(Duration::from_secs(30), engine.execute_workflow(&small))
        .await
        .expect("the worker took the next task")
        .expect("valid");
    assert_eq!(
        result.task("small").map(|t| t.result.clone()),
        Some(Some(json!("x")))
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_delivered_again_after_its_result_was_stored_does_not_run_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server, layout()).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let run = common::run_in_background(
        &engine,
        &Workflow::new("w", "W").task(Task::new("a", "count")),
    );

    // A worker takes the task, stores its result, and dies before acknowledging it.
    let message = take_one_task(&js).await;
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
    let stop = start_counting_worker(&server, layout(), &calls).await;
    common::wait_for_task_messages(&js, 0).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the task ran again");
    stop.cancel();
}

/// A worker given a task a second time runs it only once the server said that no result
/// is stored for it: while the results stream cannot be asked, the task waits, and a
/// result stored meanwhile still keeps it from running again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_delivered_again_waits_while_the_server_cannot_say_whether_its_result_is_stored() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    set_up_as_a_run_before(&server, layout()).await;
    publish_task_of_a_gone_coordinator(&js, "r-unasked", None).await;
    // The first delivery goes to a worker that holds the task.
    let first_delivery = take_one_task(&js).await;
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker(&server, layout(), &calls).await;
    // The results stream goes away (nothing can say whether a result is stored), and the
    // task goes to the other worker.
    let results = js
        .get_stream("ORCH_RESULTS")
        .await
        .expect("the stream")
        .info()
        .await
        .expect("its info")
        .config
        .clone();
    js.delete_stream("ORCH_RESULTS").await.expect("deleted");
    first_delivery
        .ack_with(jetstream::AckKind::Nak(None))
        .await
        .expect("handed back");
    // Delivered again (to the counting worker), and given time to run if it would.
    wait_for_async(|| {
        let js = js.clone();
        async move {
            let mut consumer = count_consumer(&js).await;
            let info = consumer.info().await.expect("its state");
            info.delivered.consumer_sequence >= 2
        }
    })
    .await;
    tokio::time::sleep(layout().ack_wait * 4).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the task ran unasked");

    // The stream is back, with the result the first worker stored: the task does not run.
    js.create_stream(results).await.expect("created again");
    let result = json!({"v": 1, "run_id": "r-unasked", "task_id": "a", "attempt": 1,
        "worker": "first", "outcome": {"status": "completed", "output": "stored"}});
    js.publish("orch.result.r-unasked.a.1", result.to_string().into())
        .await
        .expect("published")
        .await
        .expect("stored");
    common::wait_for_task_messages(&js, 0).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the task ran again");
    stop.cancel();
}

/// A coordinator coming back on a run takes the first result stored for an attempt,
/// however many were stored after it (two deliveries that both ran, past the window in
/// which the server drops repeated message ids).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_coordinator_takes_the_first_result_stored_for_an_attempt() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    // Made by a coordinator first, as for a run that went on before.
    drop(coordinator(&server, layout()).await);
    publish_task_of_a_gone_coordinator(&js, "r-twice", None).await;
    for output in ["first", "second"] {
        let result = json!({"v": 1, "run_id": "r-twice", "task_id": "a", "attempt": 1,
            "worker": "w", "outcome": {"status": "completed", "output": output}});
        js.publish("orch.result.r-twice.a.1", result.to_string().into())
            .await
            .expect("published")
            .await
            .expect("stored");
    }
    let engine = coordinator(&server, layout()).await;
    let result = run_again(&engine, "r-twice").await;
    assert_eq!(
        result.task("a").and_then(|t| t.result.clone()),
        Some(json!("first"))
    );
}

/// Sets up the streams and the `count` consumer, as a coordinator and a worker with
/// `layout` would have for a run that went on before.
async fn set_up_as_a_run_before(server: &NatsServer, layout: Layout) {
    drop(coordinator(server, layout.clone()).await);
    let worker = Worker::builder()
        .layout(layout)
        .handler("count", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(())
        })
        .connect(&server.config())
        .await
        .expect("the worker sets up its consumer");
    drop(worker);
}

/// The `count` consumer, once there is one.
async fn count_consumer(js: &jetstream::Context) -> jetstream::consumer::PullConsumer {
    for _ in 0..3000 {
        if let Ok(consumer) = js.get_consumer_from_stream("count", "ORCH_TASKS").await {
            return consumer;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no consumer `count` within 30 s");
}

/// Takes one task message from the `count` consumer (once there is one), as a worker
/// would, and leaves it unacknowledged.
async fn take_one_task(js: &jetstream::Context) -> jetstream::Message {
    use futures_util::StreamExt;
    let consumer = count_consumer(js).await;
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
}

/// Publishes the task message a coordinator that then went away would have sent for
/// attempt 1 of task `a` (type `count`) of run `run`, with a deadline `deadline_ms`.
async fn publish_task_of_a_gone_coordinator(
    js: &jetstream::Context,
    run: &str,
    deadline_ms: Option<u64>,
) {
    let mut task = json!({"v": 1, "run_id": run, "workflow_id": "w", "attempt": 1,
        "task": {"task_id": "a", "task_type": "count"}});
    if let Some(deadline) = deadline_ms {
        task["deadline_ms"] = json!(deadline);
    }
    let publish = jetstream::message::PublishMessage::build()
        .payload(task.to_string().into())
        .message_id(format!("{run}.a.1"));
    js.send_publish("orch.task.count", publish)
        .await
        .expect("published")
        .await
        .expect("stored");
}

/// A worker whose handler never ends, which dies (its task aborted) mid-task.
struct Doomed {
    started: Arc<AtomicU32>,
    running: tokio::task::JoinHandle<()>,
}

impl Doomed {
    /// Once its handler runs, the worker dies.
    async fn die_mid_task(self) {
        common::wait_for(|| self.started.load(Ordering::SeqCst) == 1).await;
        self.running.abort();
    }
}

/// Starts a [`Doomed`] worker with `layout`.
async fn doomed_worker(server: &NatsServer, layout: Layout) -> Doomed {
    let started = Arc::new(AtomicU32::new(0));
    let doomed = Worker::builder()
        .layout(layout)
        .state(Arc::clone(&started))
        .handler("count", |ctx: TaskContext| async move {
            ctx.state::<Arc<AtomicU32>>()?
                .fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
            Ok::<_, TaskError>(())
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    Doomed {
        started,
        running: tokio::spawn(doomed.run(CancellationToken::new())),
    }
}

/// Runs the one-task workflow on run id `run`, as a coordinator that came back would.
async fn run_again(engine: &WorkflowEngine, run: &str) -> orch_core::WorkflowResult {
    let workflow = Workflow::new("w", "W").task(Task::new("a", "count"));
    let run = engine.run_with_id(&workflow, orch_core::RunId::parse(run).expect("a run id"));
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ended within a minute")
        .expect("a valid workflow")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_out_of_deliveries_while_its_coordinator_was_away_fails_as_worker_lost() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let layout = one_run_per_task;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let doomed = doomed_worker(&server, layout()).await;
    publish_task_of_a_gone_coordinator(&js, "r-away", None).await;
    doomed.die_mid_task().await;
    // Another worker gets the task once more than `max_deliver`: it does not run it.
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker(&server, layout(), &calls).await;
    common::wait_for_task_messages(&js, 0).await;

    // The coordinator comes back on the run: the attempt ends as "worker lost".
    let engine = coordinator(&server, layout()).await;
    let result = run_again(&engine, "r-away").await;
    let a = result.task("a").expect("a record");
    assert_eq!(a.status, TaskStatus::Failed);
    let error = a.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("worker lost: task `a` (type `count`) was delivered once"),
        "{error}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the task ran again");
    stop.cancel();
}

/// A cancelled attempt gets no result, not even the "worker lost" verdict of its last
/// delivery: a coordinator that comes back on the run would take that failure as the
/// attempt's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_attempt_out_of_deliveries_gets_no_verdict() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // Long enough a lease for the worker below to hear the cancellation first.
    let layout = || Layout {
        ack_wait: Duration::from_secs(2),
        ..one_run_per_task()
    };
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let doomed = doomed_worker(&server, layout()).await;
    publish_task_of_a_gone_coordinator(&js, "r-cancelled-lost", None).await;
    doomed.die_mid_task().await;
    // The worker that gets the last delivery hears of the run's cancellation first.
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker(&server, layout(), &calls).await;
    let remote = RemoteHandler::builder()
        .layout(layout())
        .connect(&server.config())
        .await
        .expect("connects");
    let run = orch_core::RunId::parse("r-cancelled-lost").expect("an id");
    remote.cancel_run(&run).await.expect("cancelled");
    common::wait_for_task_messages(&js, 0).await;

    let results = js.get_stream("ORCH_RESULTS").await.expect("the stream");
    let stored = results
        .get_last_raw_message_by_subject("orch.result.r-cancelled-lost.a.1")
        .await;
    assert!(
        stored.is_err(),
        "a result was stored: {:?}",
        stored.map(|m| m.payload)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the task ran again");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_removed_without_a_result_while_its_coordinator_was_away_is_sent_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server, layout()).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker(&server, layout(), &calls).await;
    // The message's deadline has passed: the worker removes it without running it.
    publish_task_of_a_gone_coordinator(&js, "r-gone", Some(1)).await;
    common::wait_for_task_messages(&js, 0).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let result = run_again(&engine, "r-gone").await;
    assert_eq!(
        result.task("a").map(|t| (t.status, t.result.clone())),
        Some((TaskStatus::Completed, Some(json!(1))))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    stop.cancel();
}

/// A coordinator that comes back on a run after the server's window for repeated
/// message ids sends a still-queued attempt again as a new message: once the first one
/// has run and stored its result, the second does not run (the worker looks for the
/// stored result of a resumed task's attempt, whatever its delivery count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_sent_again_past_the_duplicate_window_does_not_run_twice() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let layout = || Layout {
        duplicate_window: Duration::from_millis(500),
        ..layout()
    };
    set_up_as_a_run_before(&server, layout()).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    publish_task_of_a_gone_coordinator(&js, "r-away", None).await;
    common::past_duplicate_window(&server.url()).await;

    // The coordinator resumes the run, whose task had not ended, and sends it again.
    let engine = coordinator(&server, layout()).await;
    let workflow = Workflow::new("w", "W").task(Task::new("a", "count"));
    // (What the earlier run left: the task not ended.)
    let earlier = engine.run_with_id(&workflow, orch_core::RunId::parse("r-away").expect("an id"));
    earlier.cancellation_token().cancel();
    let earlier = earlier.await.expect("valid");
    let run = engine.resume(&workflow, &earlier);
    let run = tokio::spawn(tokio::time::timeout(Duration::from_secs(60), run));
    common::wait_for_task_messages(&js, 2).await;

    // One worker, one task at a time: the first message runs, then the second.
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker_of(&server, layout(), &calls, 1).await;
    let result = (run.await.expect("no panic"))
        .expect("the run ended within a minute")
        .expect("valid");
    assert_eq!(result.status, WorkflowStatus::Completed);
    common::wait_for_task_messages(&js, 0).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the attempt ran twice");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_sets_up_again_a_consumer_deleted_under_it() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server, layout()).await;
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker(&server, layout(), &calls).await;
    let workflow = Workflow::new("w", "W").task(Task::new("a", "count"));
    let first = common::run_in_background(&engine, &workflow).await;
    assert_eq!(
        first.expect("the run ends").status,
        WorkflowStatus::Completed
    );

    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    js.delete_consumer_from_stream("count", "ORCH_TASKS")
        .await
        .expect("deleted");
    // The coordinator knows the consumer, and publishes; the worker's requests are
    // refused until it sets the consumer up again, which then delivers the task.
    let second = common::run_in_background(&engine, &workflow)
        .await
        .expect("the run ends");
    assert_eq!(
        second.task("a").map(|t| (t.status, t.result.clone())),
        Some((TaskStatus::Completed, Some(json!(2))))
    );
    stop.cancel();
}

/// A worker goes by the consumer's settings as it found them (its progress
/// acknowledgements come every quarter of that `ack_wait`): one that sets the consumer
/// up again sets it up with those, not with its own layout's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_set_up_again_by_a_worker_keeps_the_settings_the_worker_goes_by() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let made_with = Layout {
        ack_wait: Duration::from_secs(2),
        max_deliver: 3,
        ..layout()
    };
    set_up_as_a_run_before(&server, made_with.clone()).await;
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker(&server, layout(), &calls).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let config = |consumer: jetstream::consumer::PullConsumer| {
        let config = &consumer.cached_info().config;
        (config.ack_wait, config.max_deliver)
    };
    let settings = config(count_consumer(&js).await);
    assert_eq!(settings, (Duration::from_secs(2), 4));
    js.delete_consumer_from_stream("count", "ORCH_TASKS")
        .await
        .expect("deleted");
    // The worker's pull request is refused, and it sets the consumer up again.
    assert_eq!(config(count_consumer(&js).await), settings);
    stop.cancel();
}

/// A consumer made by hand to deliver once, or any number of times: set up again by a
/// worker, it still does (before, it got the worker's layout's count plus one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_set_up_again_keeps_a_single_or_unlimited_delivery() {
    let max_deliver =
        |consumer: jetstream::consumer::PullConsumer| consumer.cached_info().config.max_deliver;
    for by_hand in [1, -1] {
        // A server each: the first worker, stopping, could still set its consumer up.
        let Some(server) = NatsServer::start() else {
            return;
        };
        set_up_as_a_run_before(&server, layout()).await;
        let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
        js.delete_consumer_from_stream("count", "ORCH_TASKS")
            .await
            .expect("deleted");
        let config = jetstream::consumer::pull::Config {
            durable_name: Some("count".to_owned()),
            filter_subject: "orch.task.count".to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(2),
            max_deliver: by_hand,
            ..Default::default()
        };
        js.create_consumer_on_stream(config, "ORCH_TASKS")
            .await
            .expect("made by hand");
        let calls = Arc::new(AtomicU32::new(0));
        let stop = start_counting_worker(&server, layout(), &calls).await;
        js.delete_consumer_from_stream("count", "ORCH_TASKS")
            .await
            .expect("deleted");
        // The worker's pull request is refused, and it sets the consumer up again.
        assert_eq!(max_deliver(count_consumer(&js).await), by_hand);
        stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_cancelled_before_its_coordinator_stopped_runs_when_the_run_comes_back() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // The worker stays up throughout, and hears the cancellation.
    let calls = Arc::new(AtomicU32::new(0));
    let worker = Worker::builder()
        .layout(layout())
        .state(Arc::clone(&calls))
        .handler("count", |ctx: TaskContext| async move {
            let calls = ctx.state::<Arc<AtomicU32>>()?;
            // The first call waits to be cancelled, and fails; later ones return at once.
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                ctx.cancellation().cancelled().await;
                return Err(TaskError::new("cancelled"));
            }
            Ok(calls.load(Ordering::SeqCst))
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let engine = coordinator(&server, layout()).await;
    let workflow = Workflow::new("w", "W").task(Task::new("a", "count"));
    let run = engine.run_with_id(
        &workflow,
        orch_core::RunId::parse("r-cancelled").expect("an id"),
    );
    let cancel = run.cancellation_token();
    let first = tokio::spawn(run);
    common::wait_for(|| calls.load(Ordering::SeqCst) == 1).await;
    cancel.cancel();
    let first = first.await.expect("the run ends").expect("valid");
    assert_eq!(
        first.task("a").map(|t| t.status),
        Some(TaskStatus::Cancelled)
    );

    // The coordinator comes back on the run: the attempt runs, neither refused as
    // cancelled nor ended by the cancelled handler's failure.
    let second = run_again(&engine, "r-cancelled").await;
    assert_eq!(
        second.task("a").map(|t| (t.status, t.result.clone())),
        Some((TaskStatus::Completed, Some(json!(2))))
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_out_of_deliveries_with_no_worker_left_to_say_so_fails_as_worker_lost() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let layout = one_run_per_task;
    let engine = coordinator(&server, layout()).await;
    let run = common::run_in_background(
        &engine,
        &Workflow::new("w", "W").task(Task::new("a", "count")),
    );
    // Every delivery goes to a worker that dies at once (a pull that never acknowledges),
    // the one a worker would answer with the verdict too: the server's advisory tells.
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let dying = take_tasks_and_die(&js).await;
    let result = run.await.expect("the run ends");
    dying.abort();
    assert_lost_after_two_deliveries(&result);
}

/// Takes `count` task messages, one at a time, and never acknowledges them, as workers
/// that die as soon as they get a task would; runs until aborted.
async fn take_tasks_and_die(js: &jetstream::Context) -> tokio::task::JoinHandle<()> {
    let consumer = count_consumer(js).await;
    tokio::spawn(async move {
        use futures_util::StreamExt;
        loop {
            let Ok(mut batch) = consumer
                .fetch()
                .max_messages(1)
                .expires(Duration::from_secs(1))
                .messages()
                .await
            else {
                continue;
            };
            while batch.next().await.is_some() {}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_out_of_deliveries_with_no_worker_to_say_so_while_its_coordinator_was_away_fails_as_worker_lost()
 {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let layout = one_run_per_task;
    // A coordinator and a worker set up the streams and went away; the task the
    // coordinator sent is published below.
    set_up_as_a_run_before(&server, layout()).await;
    let client = async_nats::connect(server.url()).await.expect("connects");
    let mut advisories = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORCH_TASKS.*")
        .await
        .expect("subscribes");
    let js = jetstream::new(client);
    publish_task_of_a_gone_coordinator(&js, "r-gone", None).await;
    run_out_of_deliveries(&js, &mut advisories).await;

    // The coordinator comes back on the run, with a worker to serve it: the attempt ends
    // as "worker lost", and nothing runs it. (The coordinator's layout has another
    // `ack_wait` than the consumer's: the error gives the consumer's, which workers go by.)
    let calls = Arc::new(AtomicU32::new(0));
    let stop = start_counting_worker(&server, layout(), &calls).await;
    let other_ack_wait = Layout {
        ack_wait: layout().ack_wait * 3,
        ..layout()
    };
    let engine = coordinator(&server, other_ack_wait).await;
    let result = run_again(&engine, "r-gone").await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the task ran");
    stop.cancel();
    assert_lost_after_two_deliveries(&result);
}

/// The server's advisory that a task ran out of deliveries, given while the coordinator's
/// connection was down, still ends the attempt once the connection is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_out_of_deliveries_while_its_coordinators_connection_was_down_fails_as_worker_lost()
{
    let Some(server) = NatsServer::start() else {
        return;
    };
    let outage = common::Outage::relay_to(server.port());
    let remote = RemoteHandler::builder()
        .layout(one_run_per_task())
        .connect(&orch_nats::NatsConfig::new(outage.url()))
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("count", remote);
    let client = async_nats::connect(server.url()).await.expect("connects");
    let mut advisories = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORCH_TASKS.*")
        .await
        .expect("subscribes");
    common::subscriptions_in_place(&client).await;
    let js = jetstream::new(client);
    let run = engine.run(&Workflow::new("w", "W").task(Task::new("a", "count")));
    let run = tokio::spawn(async move {
        // Well before a missing worker would fail the task (30 s).
        tokio::time::timeout(Duration::from_secs(20), run).await
    });
    common::wait_for_task_messages(&js, 1).await;
    outage.begin();
    run_out_of_deliveries(&js, &mut advisories).await;
    outage.end();
    let result = run
        .await
        .expect("the run ends")
        .expect("the run ended once the connection was back")
        .expect("a valid workflow");
    assert_lost_after_two_deliveries(&result);
}

/// Gives every delivery of the task message to a worker that dies, the verdict's too,
/// until the server's advisory (on `advisories`) says it ran out of deliveries.
async fn run_out_of_deliveries(js: &jetstream::Context, advisories: &mut async_nats::Subscriber) {
    let dying = take_tasks_and_die(js).await;
    tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::StreamExt::next(advisories),
    )
    .await
    .expect("the task ran out of deliveries");
    dying.abort();
}

/// Task `a` of `result` failed as "worker lost" after two deliveries.
fn assert_lost_after_two_deliveries(result: &orch_core::WorkflowResult) {
    let a = result.task("a").expect("a record");
    assert_eq!(a.status, TaskStatus::Failed);
    let error = a.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("worker lost: task `a` (type `count`) was delivered 2 times"),
        "{error}"
    );
    let ack_wait = format!("stopped acknowledging it within {:?}", layout().ack_wait);
    assert!(error.contains(&ack_wait), "{error}");
}

/// A worker reads its consumer's settings again while it runs: an `ack_wait` edited on
/// the server is taken up, its progress acknowledgements coming every quarter of the
/// new one, so that a task running for five times the new `ack_wait` is not delivered
/// again (it would be, acknowledged every quarter of the old one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_takes_up_an_ack_wait_edited_on_the_server() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let made_with = Layout {
        ack_wait: Duration::from_secs(4),
        ..layout()
    };
    set_up_as_a_run_before(&server, made_with.clone()).await;
    let calls = Arc::new(AtomicU32::new(0));
    let worker = Worker::builder()
        .layout(made_with.clone())
        .state(Arc::clone(&calls))
        .handler("count", |ctx: TaskContext| async move {
            let calls = ctx.state::<Arc<AtomicU32>>()?;
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, TaskError>(call)
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));

    let client = async_nats::connect(server.url()).await.expect("connects");
    let js = jetstream::new(client.clone());
    let mut config = count_consumer(&js).await.cached_info().config.clone();
    let mut looks = client
        .subscribe("$JS.API.CONSUMER.INFO.ORCH_TASKS.count")
        .await
        .expect("subscribed");
    client.flush().await.expect("the subscription is in place");
    config.ack_wait = Duration::from_millis(400);
    js.create_consumer_on_stream(config, "ORCH_TASKS")
        .await
        .expect("the consumer is edited");
    // The worker's first look after the edit read the new `ack_wait`; it was taken up
    // before the next look was made.
    for look in ["first", "second"] {
        let seen = tokio::time::timeout(
            Duration::from_secs(30),
            futures_util::StreamExt::next(&mut looks),
        )
        .await;
        assert!(
            matches!(seen, Ok(Some(_))),
            "the worker made no {look} look at its consumer within 30 s"
        );
    }

    let engine = coordinator(&server, made_with).await;
    let workflow = Workflow::new("w", "W").task(Task::new("a", "count"));
    let result = common::run_in_background(&engine, &workflow)
        .await
        .expect("the run ends");
    assert_eq!(
        result.task("a").map(|t| (t.status, t.result.clone())),
        Some((TaskStatus::Completed, Some(json!(1))))
    );
    common::wait_for_task_messages(&js, 0).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the task was delivered again"
    );
    stop.cancel();
}
