//! A worker that stops, against a real nats-server: a task its open request for tasks
//! delivers late is handed back without using up its deliveries, and runs on the next
//! worker (handed back at once, it went straight back to the same open request, delivery
//! after delivery, until it failed as "worker lost" without ever running), and so is one
//! it stops running, or was still looking up (not started); a handler it cancels that
//! completes within the cancel grace reports its output; a worker cut off from its server, its connection full, still stops, also
//! with many tasks come late; one whose connection closes returns from `run` by itself.

mod common;

use async_nats::jetstream::{self, consumer::PullConsumer};
use common::NatsServer;
use futures_util::future::BoxFuture;
use orch_core::{Task, TaskStatus, Workflow};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{Layout, NatsConfig, RemoteHandler, Worker, WorkerBuilder};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio_util::sync::CancellationToken;

/// An engine whose tasks of type `task_type` run on workers.
async fn coordinator(server: &NatsServer, task_type: &str) -> WorkflowEngine {
    let remote = RemoteHandler::connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler(task_type, remote);
    engine
}

async fn echo_worker(server: &NatsServer, name: &str) -> Worker {
    Worker::builder()
        .name(name)
        // Room for more tasks than a task has deliveries.
        .concurrency(16)
        .handler("echo", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(ctx.task_id().to_string())
        })
        .connect(&server.config())
        .await
        .expect("the worker connects")
}

/// How many deliveries the consumer of `task_type` made so far.
async fn delivered(server: &NatsServer, task_type: &str) -> u64 {
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let mut consumer: PullConsumer = js
        .get_consumer_from_stream(task_type, "ORCH_TASKS")
        .await
        .expect("the consumer");
    consumer
        .info()
        .await
        .expect("its state")
        .delivered
        .consumer_sequence
}

/// A handler that says it started (`started`), then waits for its cancellation and
/// fails.
fn waits_for_cancellation(
    started: impl Fn() + Send + Sync + 'static,
) -> impl Fn(TaskContext) -> BoxFuture<'static, Result<(), TaskError>> + Send + Sync + 'static {
    move |ctx: TaskContext| {
        started();
        Box::pin(async move {
            ctx.cancellation().cancelled().await;
            Err(TaskError::new("cancelled"))
        })
    }
}

/// An echo handler whose second call holds the thread it runs on (a worker's only one,
/// which takes up tasks) until the test lets it go.
struct HoldsSecondCall {
    /// How many times it was called.
    calls: Arc<AtomicUsize>,
    /// Whether the second call holds its thread.
    busy: Arc<AtomicBool>,
    /// Lets the second call go.
    release: mpsc::Sender<()>,
}

impl HoldsSecondCall {
    /// The handler, and what the test watches it by.
    fn new() -> (Self, impl orch_engine::Handler) {
        let (calls, busy) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let (counted, busy_now) = (Arc::clone(&calls), Arc::clone(&busy));
        let handler = move |ctx: TaskContext| {
            if counted.fetch_add(1, Ordering::SeqCst) == 1 {
                busy_now.store(true, Ordering::SeqCst);
                let released = released.lock().expect("not poisoned");
                // A bound only so that a broken test ends.
                let _ = released.recv_timeout(std::time::Duration::from_secs(60));
            }
            async move { Ok::<_, TaskError>(ctx.task_id().to_string()) }
        };
        let held = Self {
            calls,
            busy,
            release,
        };
        (held, orch_engine::inline(handler))
    }
}

/// Runs the worker `builder` makes on a thread and runtime of its own, which a held
/// handler holds whole (the coordinator and the test's own connections go on
/// meanwhile), until `stop`; the worker's client comes on the channel returned.
fn on_its_own_thread(
    builder: WorkerBuilder,
    config: NatsConfig,
    stop: CancellationToken,
) -> (
    std::thread::JoinHandle<()>,
    mpsc::Receiver<async_nats::Client>,
) {
    let (lend, lent) = mpsc::channel();
    let stopped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let client = config.connect().await.expect("the worker connects");
            // The test may not want it.
            let _ = lend.send(client.clone());
            let worker = builder.start(client).await.expect("the worker starts");
            worker.run(stop).await;
        });
    });
    (stopped, lent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_delivered_to_a_stopping_worker_runs_on_the_next_one() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server, "echo").await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));

    let stopping = echo_worker(&server, "stopping").await;
    let consumer: PullConsumer = js
        .get_consumer_from_stream("echo", "ORCH_TASKS")
        .await
        .expect("the worker set up its consumer");
    let stop = CancellationToken::new();
    let stopped = tokio::spawn(stopping.run(stop.clone()));
    // Its first request for tasks is open, with most of its two seconds to go.
    common::wait_for_async(|| {
        let mut consumer = consumer.clone();
        async move { consumer.info().await.expect("info").num_waiting > 0 }
    })
    .await;
    stop.cancel();
    let workflow = Workflow::new("w", "W").task(Task::new("late", "echo"));
    let run = common::run_in_background(&engine, &workflow);
    stopped.await.expect("the worker stops");
    assert_eq!(
        delivered(&server, "echo").await,
        1,
        "the task reached the stopping worker (else this test proves nothing)"
    );

    let next = echo_worker(&server, "next").await;
    let stop_next = CancellationToken::new();
    tokio::spawn(next.run(stop_next.clone()));
    let result = run.await.expect("the run's task");
    let late = result.task("late").expect("a task");
    assert_eq!(late.status, TaskStatus::Completed, "{late:?}");
    stop_next.cancel();
}

/// A cancel grace too long to add to the clock (`Duration::MAX`, meaning "never drop a
/// handler") still lets a stopping worker hand back the task of a handler that ends
/// when asked: it used to overflow the clock, so the task stayed held until its ack wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_grace_too_long_for_the_clock_still_hands_tasks_back() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server, "hold").await;
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noted = std::sync::Arc::clone(&started);
    let worker = Worker::builder()
        .cancel_grace(std::time::Duration::MAX)
        .shutdown_grace(std::time::Duration::ZERO)
        .handler(
            "hold",
            waits_for_cancellation(move || noted.store(true, std::sync::atomic::Ordering::SeqCst)),
        )
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    let stopped = tokio::spawn(worker.run(stop.clone()));
    let workflow = Workflow::new("w", "W").task(Task::new("held", "hold"));
    let run = common::run_in_background(&engine, &workflow);
    common::wait_for_async(|| async { started.load(std::sync::atomic::Ordering::SeqCst) }).await;
    stop.cancel();
    stopped.await.expect("the worker stops");
    let next = Worker::builder()
        .handler("hold", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>("done")
        })
        .connect(&server.config())
        .await
        .expect("the next worker connects");
    let stop_next = CancellationToken::new();
    tokio::spawn(next.run(stop_next.clone()));
    // Handed back, the task runs on the next worker at once; held, it would come back
    // only after its ack wait (30 s).
    let result = tokio::time::timeout(std::time::Duration::from_secs(20), run)
        .await
        .expect("handed back, not held until its ack wait")
        .expect("the run's task");
    let held = result.task("held").expect("a task");
    assert_eq!(held.status, TaskStatus::Completed, "{held:?}");
    stop_next.cancel();
}

/// Tasks that reached a worker while it was busy (here, a handler holding its only
/// thread in its first poll) and that it takes up after `stop` are handed back, not run:
/// they run on the next worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_taken_up_after_stop_are_handed_back_not_run() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = common::remote_engine(&server, Layout::default(), &["echo"], 5).await;
    // The second task keeps the worker's thread until the test has stopped the worker;
    // the others come with it.
    let (held, handler) = HoldsSecondCall::new();
    let stopping = Worker::builder()
        .name("stopping")
        .concurrency(4)
        .handler("echo", handler);
    let ids = ["a", "b", "c", "d", "e"];
    let workflow = Workflow::from_tasks("w", "W", ids.map(|id| Task::new(id, "echo")));
    let run = common::run_in_background(&engine, &workflow);
    // All queued before the worker asks: its first request takes one task, which makes
    // it ask for several, which all come at once.
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    common::wait_for_task_messages(&js, 5).await;
    let stop = CancellationToken::new();
    let (stopped, _) = on_its_own_thread(stopping, server.config(), stop.clone());
    common::wait_for(|| held.busy.load(Ordering::SeqCst)).await;
    // Some of the other three reached the worker while it is held.
    common::wait_for_async(|| async { delivered(&server, "echo").await > 2 }).await;
    stop.cancel();
    held.release.send(()).expect("the held handler waits");
    let stopped = tokio::task::spawn_blocking(move || stopped.join());
    (stopped.await.expect("joined")).expect("the worker stops");
    assert_eq!(
        held.calls.load(Ordering::SeqCst),
        2,
        "only the first and the one it held ran"
    );

    let next = echo_worker(&server, "next").await;
    let stop_next = CancellationToken::new();
    tokio::spawn(next.run(stop_next.clone()));
    let result = run.await.expect("the run's task");
    for id in ids {
        let task = result.task(id).expect("a task");
        assert_eq!(task.status, TaskStatus::Completed, "{id}: {task:?}");
    }
    stop_next.cancel();
}

/// A handler the stopping worker cancelled that completes within the cancel grace
/// reports its output instead of handing its task back (progress is acknowledged while
/// it winds down): the task runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_winding_down_keeps_its_task_from_other_workers() {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    let Some(server) = NatsServer::start() else {
        return;
    };
    let layout = orch_nats::Layout {
        ack_wait: Duration::from_secs(1),
        ..orch_nats::Layout::default()
    };
    let calls = Arc::new(AtomicU32::new(0));
    let stubborn = |name: &'static str| {
        let (calls, layout, config) = (Arc::clone(&calls), layout.clone(), server.config());
        async move {
            Worker::builder()
                .name(name)
                .layout(layout)
                .cancel_grace(Duration::from_secs(10))
                .handler("stubborn", move |_ctx: TaskContext| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // Deaf to its cancellation, it ends after seven ack waits: past the
                    // end of the stopping worker's open request for tasks (at most 3 s),
                    // which takes a delivery made before it ends.
                    async move {
                        tokio::time::sleep(Duration::from_secs(7)).await;
                        Ok::<_, TaskError>("done")
                    }
                })
                .connect(&config)
                .await
                .expect("the worker connects")
        }
    };
    let remote = RemoteHandler::builder()
        .layout(layout.clone())
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("stubborn", remote);
    let first = stubborn("first").await;
    let (stop, stop_now) = (CancellationToken::new(), CancellationToken::new());
    let stopped = tokio::spawn(first.run_until(stop.clone(), stop_now.clone()));
    let workflow = Workflow::new("w", "W").task(Task::new("t", "stubborn"));
    let run = common::run_in_background(&engine, &workflow);
    common::wait_for(|| calls.load(Ordering::SeqCst) == 1).await;
    let second = stubborn("second").await;
    let stop_second = CancellationToken::new();
    tokio::spawn(second.run(stop_second.clone()));
    stop.cancel();
    stop_now.cancel();
    let result = run.await.expect("the run's task");
    stopped.await.expect("the first worker stops");
    let t = result.task("t").expect("a task");
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the task ran on one worker only"
    );
    stop_second.cancel();
}

/// A worker stopped while its server is gone, its connection full of what it could not
/// send (about 2,048 commands), still returns: neither its request for tasks nor the
/// hand-back of the task it was running waits for room on the connection for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stops_with_its_server_gone_and_its_connection_full() {
    use std::time::Duration;

    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server, "wait").await;
    let started = Arc::new(AtomicBool::new(false));
    let client = server.config().connect().await.expect("connects");
    let worker = Worker::builder()
        .name("cut-off")
        // Room for one more task: it keeps asking for tasks while one runs.
        .concurrency(2)
        .shutdown_grace(Duration::from_secs(1))
        .handler("wait", {
            let started = Arc::clone(&started);
            waits_for_cancellation(move || started.store(true, Ordering::SeqCst))
        })
        .start(client.clone())
        .await
        .expect("the worker starts");
    let stop = CancellationToken::new();
    let stopped = tokio::spawn(worker.run(stop.clone()));
    let workflow = Workflow::new("w", "W").task(Task::new("t", "wait"));
    let run = common::run_in_background(&engine, &workflow);
    common::wait_for(|| started.load(Ordering::SeqCst)).await;
    drop(server);
    let filler = common::fill_connection(client).await;
    // Past the end of the worker's open request for tasks (at most 3 s since the server
    // went), after which it makes a new one on the full connection.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!filler.is_finished(), "the connection is still full");
    stop.cancel();
    // A guard, not a measure: grace, hand-back and last flush take about 15 s at most.
    tokio::time::timeout(Duration::from_secs(60), stopped)
        .await
        .expect("the worker stopped")
        .expect("no panic");
    filler.abort();
    // The run waits for a server that is gone.
    run.abort();
}

/// A stopping worker whose server stopped answering, its connection full, hands back the
/// many tasks its open request delivered late (about 25 here), each waiting a few seconds
/// for room, and still stops soon. (Before the request's time bounded the hand-backs as
/// a whole, the limit was looked at between them only, and won the draw against the next
/// task half the time: a stop took a hand-back's wait or two longer. This test does not
/// tell the two apart; it shows that path on a connection that stays full.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_late_tasks_on_a_full_connection_do_not_hold_up_the_stop() {
    use std::time::Duration;

    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = common::remote_engine(&server, Layout::default(), &["echo"], 64).await;
    // The second task holds the worker's only thread while the others come.
    let (held, handler) = HoldsSecondCall::new();
    let worker = Worker::builder()
        .name("cut-off")
        .concurrency(32)
        .shutdown_grace(Duration::from_secs(1))
        .handler("echo", handler);
    let ids: Vec<String> = (0..40).map(|n| format!("t{n}")).collect();
    let tasks = ids.iter().map(|id| Task::new(id.as_str(), "echo"));
    let workflow = Workflow::from_tasks("w", "W", tasks);
    let run = common::run_in_background(&engine, &workflow);
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    common::wait_for_task_messages(&js, 40).await;
    let stop = CancellationToken::new();
    let (stopped, lent) = on_its_own_thread(worker, server.config(), stop.clone());
    common::wait_for(|| held.busy.load(Ordering::SeqCst)).await;
    common::wait_for_async(|| async { delivered(&server, "echo").await > 20 }).await;
    // The worker's thread is held: its connection is read and written again only once
    // the server is paused and the filler has taken all room on it.
    let client = lent.recv().expect("the worker's client");
    server.pause();
    // Keeps the worker's connection full once its thread is let go (what it writes
    // piles up unread), until the connection is gone with the worker's runtime.
    let filler = tokio::spawn(async move {
        let piece = bytes::Bytes::from(vec![b'x'; 16 << 10]);
        while client.publish("filler", piece.clone()).await.is_ok() {}
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!filler.is_finished(), "the connection is full");
    stop.cancel();
    held.release.send(()).expect("the held handler waits");
    let stopped = tokio::task::spawn_blocking(move || stopped.join());
    // A guard, not a measure: grace, hand-backs and last flush take about 25 s at most.
    tokio::time::timeout(Duration::from_secs(60), stopped)
        .await
        .expect("the worker stopped")
        .expect("joined")
        .expect("no panic");
    assert!(
        held.calls.load(Ordering::SeqCst) < 40,
        "some tasks came late"
    );
    filler.abort();
    run.abort();
}

/// A worker whose connection is closed (drained by the application that lent it) can
/// take no more tasks: its `run` returns instead of waiting for a stop that may never
/// come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connection_closes_returns_from_run() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let client = server.config().connect().await.expect("connects");
    let worker = Worker::builder()
        .handler(
            "echo",
            |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
        )
        .start(client.clone())
        .await
        .expect("the worker starts");
    // Never cancelled: only the closed connection ends the run.
    let stopped = tokio::spawn(worker.run(CancellationToken::new()));
    client.drain().await.expect("drained");
    // A guard, not a measure.
    tokio::time::timeout(std::time::Duration::from_secs(30), stopped)
        .await
        .expect("run returned without a stop")
        .expect("no panic");
}

/// A worker whose connection closes while a handler runs, one that waits for its
/// cancellation (no timeout), still returns from `run`: the handler's result could not
/// be sent, so it is cancelled and its task handed back rather than waited for. Also
/// when that handler holds the worker's only slot: nothing then asked the closed
/// connection for anything, and `run` waited for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connection_closes_while_a_handler_runs_returns_from_run() {
    for concurrency in [16, 1] {
        returns_when_the_connection_closes_under_a_handler(concurrency).await;
    }
}

async fn returns_when_the_connection_closes_under_a_handler(concurrency: usize) {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server, "wait").await;
    let client = server.config().connect().await.expect("connects");
    let started = Arc::new(tokio::sync::Notify::new());
    let worker = Worker::builder()
        .concurrency(concurrency)
        .cancel_grace(std::time::Duration::from_secs(1))
        .handler("wait", {
            let started = Arc::clone(&started);
            waits_for_cancellation(move || started.notify_one())
        })
        .start(client.clone())
        .await
        .expect("the worker starts");
    let stopped = tokio::spawn(worker.run(CancellationToken::new()));
    let workflow = Workflow::new("w", "W").task(Task::new("t", "wait"));
    let run = common::run_in_background(&engine, &workflow);
    started.notified().await;
    client.drain().await.expect("drained");
    // A guard, not a measure: the handler is cancelled at once.
    tokio::time::timeout(std::time::Duration::from_secs(30), stopped)
        .await
        .unwrap_or_else(|_| panic!("run returned without a stop ({concurrency} slots)"))
        .expect("no panic");
    run.abort();
}

/// A task that a worker told to stop at once hands back goes back only once the worker's
/// own request for more tasks of its type has ended: given back while that request was
/// open, the server delivered it straight back to it, which used one of its deliveries
/// (and three seconds) for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_handed_back_does_not_go_to_the_stopping_workers_own_request() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = coordinator(&server, "stops").await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let worker = Worker::builder()
        .concurrency(4)
        .handler("stops", {
            let started = std::sync::Arc::clone(&started);
            move |ctx: TaskContext| {
                let started = std::sync::Arc::clone(&started);
                async move {
                    started.notify_one();
                    ctx.cancellation().cancelled().await;
                    Err::<(), _>(TaskError::new("stopped"))
                }
            }
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let consumer: PullConsumer = js
        .get_consumer_from_stream("stops", "ORCH_TASKS")
        .await
        .expect("the worker set up its consumer");
    let (stop, stop_now) = (CancellationToken::new(), CancellationToken::new());
    let stopped = tokio::spawn(worker.run_until(stop.clone(), stop_now.clone()));
    let run = tokio::spawn(engine.run(&Workflow::new("w", "W").task(Task::new("a", "stops"))));
    started.notified().await;
    // The worker asks for more tasks of the type, with three slots free.
    common::wait_for_async(|| {
        let mut consumer = consumer.clone();
        async move { consumer.info().await.expect("info").num_waiting > 0 }
    })
    .await;
    stop.cancel();
    stop_now.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(20), stopped)
        .await
        .expect("the worker stops")
        .expect("the worker's task");
    let mut consumer = consumer;
    let delivered = consumer
        .info()
        .await
        .expect("info")
        .delivered
        .consumer_sequence;
    assert_eq!(delivered, 1, "the task went back to the stopping worker");
    run.abort();
}

/// A worker that counts its calls in `calls`.
async fn counting_worker(server: &NatsServer, calls: &Arc<AtomicUsize>) -> Worker {
    Worker::builder()
        .state(Arc::clone(calls))
        .handler("count", |ctx: TaskContext| async move {
            ctx.state::<Arc<AtomicUsize>>()?
                .fetch_add(1, Ordering::SeqCst);
            Ok::<_, TaskError>(())
        })
        .connect(&server.config())
        .await
        .expect("the worker connects")
}

/// A task delivered again, or of a resumed run, is looked up on the results stream before
/// it runs. A worker that stops while it waits for that answer hands the task back: it
/// was not running when the worker stopped (started once answered, it ran while the
/// worker was stopping, and would have been cut off at the end of the shutdown grace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_still_looked_up_when_its_worker_stops_is_handed_back_not_run() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let _streams_made = coordinator(&server, "count").await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let calls = Arc::new(AtomicUsize::new(0));
    let stopping = counting_worker(&server, &calls).await;
    // Until the results stream is back, no worker can tell whether a result is stored.
    let mut results = js
        .get_stream("ORCH_RESULTS")
        .await
        .expect("the results stream");
    let config = results.info().await.expect("its state").config.clone();
    js.delete_stream("ORCH_RESULTS").await.expect("deleted");
    let task = r#"{"v": 1, "run_id": "r-stopping", "workflow_id": "w", "attempt": 1,
        "resumed": true, "task": {"task_id": "a", "task_type": "count"}}"#;
    let publish = jetstream::message::PublishMessage::build()
        .payload(task.into())
        .message_id("r-stopping.a.1");
    let sent = js.send_publish("orch.task.count", publish).await;
    sent.expect("published").await.expect("stored");

    let stop = CancellationToken::new();
    let stopped = tokio::spawn(stopping.run(stop.clone()));
    common::wait_for_async(|| async { delivered(&server, "count").await == 1 }).await;
    // Time to take the task up and ask about it (the answer waits for the stream).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.cancel();
    js.create_stream(config)
        .await
        .expect("the results stream made anew");
    stopped.await.expect("the worker stops");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the stopping worker ran the task"
    );

    let next = counting_worker(&server, &calls).await;
    let stop_next = CancellationToken::new();
    tokio::spawn(next.run(stop_next.clone()));
    common::wait_for(|| calls.load(Ordering::SeqCst) == 1).await;
    stop_next.cancel();
}
