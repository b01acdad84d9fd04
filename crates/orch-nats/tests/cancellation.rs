//! Cancellations reach a worker's handlers, against a real nats-server that requires
//! authentication (a worker with the permissions the crate docs give): also when the
//! worker's connection was down while the coordinator sent them, when the stream that
//! keeps them was deleted (and when it was created anew) while the worker ran, and when
//! they come from `RemoteHandler::cancel_run`. A worker back after the server restarted
//! does not take a cancellation kept from before it started as new.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use common::NatsServer;
use common::permissions::{SERVER_CONFIG, as_user};
use futures_util::{StreamExt, TryStreamExt};
use orch_core::{RunId, TaskStatus};
use orch_core::{Task, Workflow, WorkflowStatus};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{Auth, NatsConfig, RemoteHandler, Worker};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the `wait` handler tells the test: that it started, and that it heard its
/// cancellation.
#[derive(Default)]
struct Signals {
    started: Notify,
    cancelled: Notify,
}

/// The worker user's settings, connecting through `url` (a relay the test can cut).
fn embedder_through(url: String) -> NatsConfig {
    NatsConfig::new(url).auth(Auth::user_password("embedder", "embedder-pw"))
}

/// An engine whose `embed` tasks run remotely, with cancelled handlers given 100 ms.
async fn coordinator(server: &NatsServer) -> WorkflowEngine {
    let remote = RemoteHandler::builder()
        .connect(&as_user(server, "coordinator", "coordinator-pw"))
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::builder()
        .cancel_grace_period(Duration::from_millis(100))
        .build()
        .expect("valid settings");
    engine.register_handler("embed", remote);
    engine
}

/// The coordinator user's view of the stream that keeps cancellations.
async fn cancels_stream(server: &NatsServer) -> jetstream::stream::Stream {
    let admin = as_user(server, "coordinator", "coordinator-pw");
    let js = jetstream::new(admin.connect().await.expect("connects"));
    js.get_stream("ORCH_CANCELS").await.expect("the stream")
}

/// A worker, connected with `config`, whose `embed` handler waits for its cancellation.
async fn waiting_worker(config: &NatsConfig, signals: &Arc<Signals>) -> Worker {
    let signals = Arc::clone(signals);
    Worker::builder()
        .handler("embed", move |ctx: TaskContext| {
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

/// Runs a one-task workflow on `engine` whose task waits on the worker, and cancels the
/// run while the worker's connection (through `outage`) is down; then lets the worker
/// back, and waits for the handler to hear the cancellation.
async fn cancel_while_the_worker_is_away(
    server: &NatsServer,
    engine: &WorkflowEngine,
    outage: &common::Outage,
    signals: &Signals,
) {
    let run = engine.run(&Workflow::new("w", "W").task(Task::new("a", "embed")));
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
    let mut cancels = cancels_stream(server).await;
    let kept = cancels.info().await.expect("its state").state.messages;
    assert!(kept >= 1, "the cancellation is kept");
    outage.end();

    signalled(
        &signals.cancelled,
        "the handler hears the cancellation once the worker is back",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connection_was_down_hears_the_cancellations_sent_meanwhile() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let outage = common::Outage::relay_to(server.port());
    // The coordinator sets up the streams (the worker may not).
    let engine = coordinator(&server).await;
    let signals = Arc::new(Signals::default());
    let worker = waiting_worker(&embedder_through(outage.url()), &signals).await;
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    cancel_while_the_worker_is_away(&server, &engine, &outage, &signals).await;
    stop.cancel();
}

/// `cancel_run` is for a run whose coordinator is gone; on a running run it once left
/// the attempts it stopped waiting for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_run_on_a_running_run_stops_its_remote_attempts_and_fails_them() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let remote = RemoteHandler::connect(&as_user(&server, "coordinator", "coordinator-pw"))
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("embed", remote.clone());
    let signals = Arc::new(Signals::default());
    let worker = waiting_worker(&as_user(&server, "embedder", "embedder-pw"), &signals).await;
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));

    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "embed"))
        .task(Task::new("after_a", "local").depends_on(["a"]));
    engine.register_handler("local", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(())
    });
    let run = engine.run(&workflow);
    let run_id = run.run_id().clone();
    let run = tokio::spawn(tokio::time::timeout(Duration::from_secs(60), run));
    signalled(&signals.started, "the task reaches the worker").await;
    remote
        .cancel_run(&run_id)
        .await
        .expect("the tasks stream can be read");
    signalled(&signals.cancelled, "the handler hears the cancellation").await;
    let result = run
        .await
        .expect("the run's task")
        .expect("the run ends")
        .expect("a valid workflow");
    let a = result.task("a").expect("a task");
    assert_eq!(a.status, TaskStatus::Failed);
    let error = a.error.as_deref().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "run `{run_id}` was cancelled through RemoteHandler::cancel_run"
        )),
        "{error}"
    );
    assert_eq!(a.attempts, 1, "not retried");
    let after = result.task("after_a").expect("a task");
    assert_eq!(after.status, TaskStatus::Skipped);
    stop.cancel();
}

/// A cancelled run whose remote handler stops when told ends as soon as the worker ended
/// the attempt (its message gone, no result stored), not when the engine's grace period
/// for handlers runs out. The attempt's cancellation is sent once (it was sent again as
/// the wait ended, taking twice the room on the stream that keeps cancellations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_ends_once_the_worker_stopped_its_attempt() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let remote = RemoteHandler::connect(&as_user(&server, "coordinator", "coordinator-pw"))
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::builder()
        .cancel_grace_period(Duration::from_secs(600))
        .build()
        .expect("valid settings");
    engine.register_handler("embed", remote);
    let signals = Arc::new(Signals::default());
    let worker = waiting_worker(&as_user(&server, "embedder", "embedder-pw"), &signals).await;
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let run = engine.run(&Workflow::new("w", "W").task(Task::new("a", "embed")));
    let cancel = run.cancellation_token();
    let run = tokio::spawn(run);
    signalled(&signals.started, "the task reaches the worker").await;
    cancel.cancel();
    signalled(&signals.cancelled, "the handler hears the cancellation").await;
    // A guard far inside the grace period, not a measure.
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ended before its grace period ran out")
        .expect("the run's task")
        .expect("a valid workflow");
    assert_eq!(result.status, WorkflowStatus::Cancelled);
    assert_eq!(
        result.task("a").map(|a| a.status),
        Some(TaskStatus::Cancelled)
    );
    // A second cancellation would be on its way by now: the attempt's wait has ended.
    // A second is ample for it to be kept; none comes when the fault is not there.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut cancels = cancels_stream(&server).await;
    let kept = cancels.info().await.expect("its state").state.messages;
    assert_eq!(kept, 1, "the attempt's cancellation is sent once");
    stop.cancel();
}

/// A cancellation that cannot name the tasks stream's last message once went out naming
/// none, which stopped on every worker the run's attempts sent later too; now nothing
/// goes out, and `cancel_run` says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_run_sends_nothing_when_the_tasks_stream_cannot_be_read() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let remote = RemoteHandler::connect(&server.config())
        .await
        .expect("the coordinator connects");
    let client = async_nats::connect(server.url()).await.expect("connects");
    let mut heard = client.subscribe("orch.cancel.>").await.expect("subscribes");
    client.flush().await.expect("the subscription is in place");
    let js = jetstream::new(client);
    js.delete_stream("ORCH_TASKS").await.expect("deleted");
    let run_id = RunId::parse("gone-run").expect("a run id");
    let error = remote
        .cancel_run(&run_id)
        .await
        .expect_err("the tasks stream is gone");
    let message = error.to_string();
    assert!(
        message.starts_with(
            "cannot cancel run `gone-run` on the workers: cannot read stream `ORCH_TASKS`"
        ),
        "{message}"
    );
    // A marker sent after `cancel_run` returned comes first: nothing went out before it.
    js.client()
        .publish("orch.cancel.marker", "marker".into())
        .await
        .expect("published");
    let first = heard.next().await.expect("a message");
    assert_eq!(first.subject.as_str(), "orch.cancel.marker");
}

/// A run cancelled with `cancel_run` while no worker was up (its coordinator gone, its
/// attempts still queued): a worker that starts later does not run them. Before, it heard
/// cancellations from its start on only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_after_cancel_run_does_not_run_the_cancelled_runs_queued_tasks() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let coordinator_user = as_user(&server, "coordinator", "coordinator-pw");
    let remote = RemoteHandler::builder()
        .connect(&coordinator_user)
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("embed", remote.clone());
    // An attempt of run `r-gone`, queued by a coordinator that is gone.
    let js = jetstream::new(coordinator_user.connect().await.expect("connects"));
    queue_gone_attempt(&js).await;
    let gone = RunId::parse("r-gone").expect("an id");
    remote.cancel_run(&gone).await.expect("cancelled");

    let (worker, ran) = recording_worker(&as_user(&server, "embedder", "embedder-pw")).await;
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));

    // A later run's task, queued behind the cancelled one, runs; the queue then empties.
    let workflow = Workflow::new("w", "W").task(Task::new("a", "embed"));
    let later = tokio::time::timeout(Duration::from_secs(20), engine.execute_workflow(&workflow));
    let later = later.await.expect("the later run ends").expect("valid");
    assert_eq!(later.status, WorkflowStatus::Completed);
    tasks_stream_emptied(&js).await;
    let ran = ran.lock().expect("not poisoned").clone();
    assert_eq!(
        ran,
        [later.run_id.to_string()],
        "only the later run's task ran"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_back_after_a_server_restart_does_not_take_earlier_cancellations_as_new() {
    let Some(mut server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let engine = coordinator(&server).await;
    // A cancellation of run `r-again` from before the worker started (the run comes back
    // later under the same id, as after its coordinator's restart).
    let cancels = keep_cancellations(&server, &["r-again"]).await;
    let worker = Worker::builder()
        .handler("embed", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>("embedded")
        })
        .connect(&as_user(&server, "embedder", "embedder-pw"))
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));

    // The server restarts before the worker heard any cancellation, and the worker's
    // reader of the stream is set up again: read from the stream's first message, it
    // would take the old cancellation as new.
    let before = consumer_names(&cancels).await;
    server.restart();
    // Until the new reader has handed on everything it read of the stream.
    common::wait_for_async(|| async {
        let readers: Vec<jetstream::consumer::Info> =
            (cancels.consumers().try_collect().await).unwrap_or_default();
        readers.iter().any(|reader| {
            let read_up_to = reader.delivered.stream_sequence;
            !before.contains(&reader.name) && reader.num_pending == 0 && read_up_to >= 1
        })
    })
    .await;

    let workflow = Workflow::new("w", "W").task(Task::new("a", "embed"));
    let run = engine.run_with_id(&workflow, RunId::parse("r-again").expect("an id"));
    let result = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the run ends: its task is not refused as cancelled")
        .expect("a valid workflow");
    assert_eq!(
        result.task("a").map(|t| t.status),
        Some(TaskStatus::Completed)
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_hears_cancellations_on_a_stream_created_anew_while_it_runs() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let outage = common::Outage::relay_to(server.port());
    let engine = coordinator(&server).await;
    keep_cancellations(&server, &["old-1", "old-2", "old-3"]).await;
    let signals = Arc::new(Signals::default());
    let worker = waiting_worker(&embedder_through(outage.url()), &signals).await;
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));

    // The stream is deleted, and a coordinator that starts creates it again: its
    // messages are numbered from 1 again.
    let js = delete_cancels_stream(&server).await;
    let _second = coordinator(&server).await;
    common::wait_for_async(|| {
        let js = js.clone();
        async move {
            let Ok(mut stream) = js.get_stream("ORCH_CANCELS").await else {
                return false;
            };
            stream
                .info()
                .await
                .is_ok_and(|i| i.state.consumer_count == 1)
        }
    })
    .await;

    cancel_while_the_worker_is_away(&server, &engine, &outage, &signals).await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_hears_cancellations_while_their_stream_is_missing() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let engine = coordinator(&server).await;
    let signals = Arc::new(Signals::default());
    let embedder = as_user(&server, "embedder", "embedder-pw");
    let worker = waiting_worker(&embedder, &signals).await;
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    delete_cancels_stream(&server).await;

    let run = engine.run(&Workflow::new("w", "W").task(Task::new("a", "embed")));
    let cancel = run.cancellation_token();
    let run = tokio::spawn(tokio::time::timeout(Duration::from_secs(20), run));
    signalled(&signals.started, "the task reaches the worker").await;
    cancel.cancel();
    signalled(&signals.cancelled, "the handler hears the cancellation").await;
    let result = run.await.expect("the run ends").expect("within 20 s");
    assert_eq!(result.expect("valid").status, WorkflowStatus::Cancelled);
    stop.cancel();
}

/// Deletes the stream that keeps cancellations, as an operator may; returns the
/// coordinator user's JetStream context.
async fn delete_cancels_stream(server: &NatsServer) -> jetstream::Context {
    let admin = as_user(server, "coordinator", "coordinator-pw");
    let js = jetstream::new(admin.connect().await.expect("connects"));
    js.delete_stream("ORCH_CANCELS").await.expect("deleted");
    js
}

/// Cancels `runs` (every attempt of each) and waits until the stream that keeps
/// cancellations holds them; returns the stream.
async fn keep_cancellations(server: &NatsServer, runs: &[&str]) -> jetstream::stream::Stream {
    let admin = as_user(server, "coordinator", "coordinator-pw");
    let client = admin.connect().await.expect("connects");
    for run in runs {
        let cancel = format!(r#"{{"v": 1, "run_id": "{run}"}}"#);
        let subject = format!("orch.cancel.{run}");
        client
            .publish(subject, cancel.into())
            .await
            .expect("published");
    }
    client.flush().await.expect("flushed");
    let cancels = cancels_stream(server).await;
    common::wait_for_async(|| {
        let mut cancels = cancels.clone();
        async move {
            cancels
                .info()
                .await
                .is_ok_and(|i| i.state.messages == runs.len() as u64)
        }
    })
    .await;
    cancels
}

/// The names of the consumers on `stream`.
async fn consumer_names(stream: &jetstream::stream::Stream) -> Vec<String> {
    stream
        .consumer_names()
        .try_collect()
        .await
        .expect("the consumers' names")
}

/// With its server gone for long (its connection full of what it could not send),
/// `cancel_run` says it could not cancel instead of waiting for the server for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_run_with_its_server_gone_and_its_connection_full_is_an_error() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let client = server.config().connect().await.expect("connects");
    let remote = RemoteHandler::builder()
        .start(client.clone())
        .await
        .expect("the coordinator starts");
    drop(server);
    let filler = common::fill_connection(client).await;
    let run_id = RunId::parse("cut-off").expect("a run id");
    // A guard, not a measure: three tries of a few seconds each.
    let cancelled = tokio::time::timeout(Duration::from_secs(60), remote.cancel_run(&run_id))
        .await
        .expect("cancel_run returned");
    let error = cancelled.expect_err("nothing could be sent");
    assert!(
        error
            .to_string()
            .starts_with("cannot cancel run `cut-off` on the workers"),
        "{error}"
    );
    assert!(!filler.is_finished(), "the connection stayed full");
    filler.abort();
}

/// A worker told to stop at once while a handler winds down from `cancel_run` (its
/// coordinator gone) removes the task message, as for any cancelled attempt: handed back,
/// another worker, which never hears that cancellation, would run the task again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopping_during_a_cancelled_attempt_removes_its_task_message() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let (remote, engine) = remote_coordinator(&server).await;
    let signals = Arc::new(Signals::default());
    let started = Arc::clone(&signals);
    // Stops a moment after it hears the cancellation, well inside the worker's grace.
    let worker = Worker::builder()
        .cancel_grace(Duration::from_secs(30))
        .handler("embed", move |ctx: TaskContext| {
            let signals = Arc::clone(&started);
            async move {
                signals.started.notify_one();
                ctx.cancellation().cancelled().await;
                signals.cancelled.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err::<(), _>(TaskError::new("stopped"))
            }
        });
    let worker = StoppableWorker::start(worker, &server).await;

    cancelled_from_elsewhere(&engine, &remote, &signals).await;
    worker.stopped_at_once().await;

    let coordinator_config = as_user(&server, "coordinator", "coordinator-pw");
    let js = jetstream::new(coordinator_config.connect().await.expect("connects"));
    let mut tasks = js.get_stream("ORCH_TASKS").await.expect("the tasks stream");
    let left = tasks.info().await.expect("its state").state.messages;
    assert_eq!(
        left, 0,
        "the cancelled attempt's task message was handed back"
    );
}

/// A handler that ignores its cancellation is dropped once the cancel grace from that
/// cancellation has passed, even when the worker stops during it: stopping does not
/// start the grace again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_ignoring_its_cancellation_gets_one_cancel_grace_though_the_worker_stops() {
    const GRACE: Duration = Duration::from_secs(3);
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let (remote, engine) = remote_coordinator(&server).await;
    let signals = Arc::new(Signals::default());
    let started = Arc::clone(&signals);
    let (dropped_at, dropped) = std::sync::mpsc::channel();
    /// Says when the handler's future was dropped.
    struct SaysWhenDropped(std::sync::mpsc::Sender<std::time::Instant>);
    impl Drop for SaysWhenDropped {
        fn drop(&mut self) {
            let _ = self.0.send(std::time::Instant::now());
        }
    }
    let worker = Worker::builder()
        .cancel_grace(GRACE)
        .handler("embed", move |ctx: TaskContext| {
            let signals = Arc::clone(&started);
            let guard = SaysWhenDropped(dropped_at.clone());
            async move {
                let _guard = guard;
                signals.started.notify_one();
                ctx.cancellation().cancelled().await;
                signals.cancelled.notify_one();
                std::future::pending::<Result<(), TaskError>>().await
            }
        });
    let worker = StoppableWorker::start(worker, &server).await;

    cancelled_from_elsewhere(&engine, &remote, &signals).await;
    // Two thirds into the grace, the worker stops at once.
    tokio::time::sleep(GRACE * 2 / 3).await;
    assert!(
        dropped.try_recv().is_err(),
        "dropped before the worker stopped: the test would prove nothing"
    );
    let stopped = std::time::Instant::now();
    worker.stopped_at_once().await;
    // Dropped on a runtime thread once its task is aborted: maybe just after the worker
    // returned (the time is taken at the drop).
    let dropped_at = dropped.recv_timeout(Duration::from_secs(10));
    let dropped_at = dropped_at.expect("the handler was dropped");
    // Given the grace again at the stop, it would have run a whole grace past it (a
    // timer never fires early); its one grace ends a third of one after the stop.
    assert!(
        dropped_at < stopped + GRACE,
        "dropped {:?} after the stop",
        dropped_at - stopped
    );
}

/// Runs a workflow of one `embed` task on `engine` until its handler starts, then lets
/// the coordinator go and cancels the run from elsewhere (`remote`), returning once the
/// handler heard of it.
async fn cancelled_from_elsewhere(
    engine: &WorkflowEngine,
    remote: &RemoteHandler,
    signals: &Signals,
) {
    let run = engine.run(&Workflow::new("w", "W").task(Task::new("a", "embed")));
    let run_id = run.run_id().clone();
    let run = tokio::spawn(run);
    signalled(&signals.started, "the task reaches the worker").await;
    run.abort();
    remote
        .cancel_run(&run_id)
        .await
        .expect("the tasks stream can be read");
    signalled(&signals.cancelled, "the handler hears the cancellation").await;
}

/// The coordinator user's remote handler, and a default engine that runs `embed` tasks
/// with it.
async fn remote_coordinator(server: &NatsServer) -> (RemoteHandler, WorkflowEngine) {
    let remote = RemoteHandler::connect(&as_user(server, "coordinator", "coordinator-pw"))
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("embed", remote.clone());
    (remote, engine)
}

/// An embedder's worker running until told to stop.
struct StoppableWorker {
    stop: CancellationToken,
    stop_now: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl StoppableWorker {
    /// Connects `worker` as the embedder user and runs it.
    async fn start(worker: orch_nats::WorkerBuilder, server: &NatsServer) -> Self {
        let worker = (worker
            .connect(&as_user(server, "embedder", "embedder-pw"))
            .await)
            .expect("the worker connects");
        let (stop, stop_now) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(worker.run_until(stop.clone(), stop_now.clone()));
        Self {
            stop,
            stop_now,
            task,
        }
    }

    /// Tells it to stop at once, and waits for it to return.
    async fn stopped_at_once(self) {
        self.stop.cancel();
        self.stop_now.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the worker stops")
            .expect("the worker's task");
    }
}

/// A run cancelled after the worker connected but before it was run (its attempt queued
/// before): the worker does not run the attempt, though the cancellation came live only
/// (the stream that keeps cancellations is missing), with thousands of others before it.
/// Before, the worker took tasks while it still worked through what it had heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_between_a_workers_connect_and_run_does_not_run_there() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let (remote, js) = gone_runs_attempt_queued(&server).await;
    delete_cancels_stream(&server).await;
    let (worker, ran) = recording_worker(&as_user(&server, "embedder", "embedder-pw")).await;
    cancel_thousands_then_the_gone_run(&remote).await;
    // The worker hears them as they are sent: this only lets the last reach it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    run_and_assert_dropped_unrun(worker, &js, &ran).await;
}

/// A run cancelled, with thousands of others, while a connected worker's connection was
/// down (so it heard none of them live), before it was run: the worker reads them from
/// the stream that keeps them before it takes a task, and does not run the run's queued
/// attempt. Before, it read only those kept when it connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_while_a_connected_workers_link_was_down_does_not_run_there() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let outage = common::Outage::relay_to(server.port());
    let (remote, js) = gone_runs_attempt_queued(&server).await;
    let (worker, ran) = recording_worker(&embedder_through(outage.url())).await;
    outage.begin();
    cancel_thousands_then_the_gone_run(&remote).await;
    // The worker is back once its cut connection closed and a new one opened.
    common::wait_for(|| outage.open_connections() == 0).await;
    outage.end();
    common::wait_for(|| outage.open_connections() > 0).await;
    run_and_assert_dropped_unrun(worker, &js, &ran).await;
}

/// A coordinator (which sets up the streams), and run `r-gone`'s attempt queued as a
/// coordinator that is gone left it; with the coordinator user's JetStream context.
async fn gone_runs_attempt_queued(server: &NatsServer) -> (RemoteHandler, jetstream::Context) {
    let coordinator_user = as_user(server, "coordinator", "coordinator-pw");
    let remote = RemoteHandler::builder()
        .connect(&coordinator_user)
        .await
        .expect("the coordinator connects");
    let js = jetstream::new(coordinator_user.connect().await.expect("connects"));
    queue_gone_attempt(&js).await;
    (remote, js)
}

/// Runs `worker` until the tasks stream is empty, and asserts that no attempt ran on it
/// (in `ran`): the cancelled run's attempt was dropped, its message removed.
async fn run_and_assert_dropped_unrun(
    worker: Worker,
    js: &jetstream::Context,
    ran: &std::sync::Mutex<Vec<String>>,
) {
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    tasks_stream_emptied(js).await;
    let ran = ran.lock().expect("not poisoned").clone();
    assert!(ran.is_empty(), "the cancelled run's attempt ran: {ran:?}");
    stop.cancel();
}

/// A worker connected with `config` whose `embed` handler notes the run of each attempt
/// it runs, and those runs.
async fn recording_worker(config: &NatsConfig) -> (Worker, Arc<std::sync::Mutex<Vec<String>>>) {
    let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&ran);
    let worker = Worker::builder()
        .handler("embed", move |ctx: TaskContext| {
            seen.lock()
                .expect("not poisoned")
                .push(ctx.run_id().to_string());
            async move { Ok::<_, TaskError>("embedded") }
        })
        .connect(config)
        .await
        .expect("the worker connects");
    (worker, ran)
}

/// Queues an attempt of run `r-gone`, as a coordinator that is gone left it.
async fn queue_gone_attempt(js: &jetstream::Context) {
    let task = r#"{"v": 1, "run_id": "r-gone", "workflow_id": "w", "attempt": 1,
        "task": {"task_id": "a", "task_type": "embed"}}"#;
    let publish = jetstream::message::PublishMessage::build()
        .payload(task.into())
        .message_id("r-gone.a.1");
    let stored = js.send_publish("orch.task.embed", publish).await;
    stored.expect("published").await.expect("stored");
}

/// Cancels 5,000 other runs, then run `r-gone`.
async fn cancel_thousands_then_the_gone_run(remote: &RemoteHandler) {
    for n in 0..5000 {
        let other = RunId::parse(&format!("other-{n}")).expect("an id");
        remote.cancel_run(&other).await.expect("cancelled");
    }
    let gone = RunId::parse("r-gone").expect("an id");
    remote.cancel_run(&gone).await.expect("cancelled");
}

/// Waits until the tasks stream holds no message.
async fn tasks_stream_emptied(js: &jetstream::Context) {
    let tasks = js.get_stream("ORCH_TASKS").await.expect("the tasks stream");
    common::wait_for_async(|| {
        let mut tasks = tasks.clone();
        async move { tasks.info().await.is_ok_and(|i| i.state.messages == 0) }
    })
    .await;
}

/// Cancels the run, then hands the attempt to the remote handler: as when the run is
/// cancelled while the attempt gets ready.
struct CancelledFirst {
    remote: RemoteHandler,
    run: Arc<std::sync::OnceLock<CancellationToken>>,
}

#[orch_engine::async_trait]
impl orch_engine::Handler for CancelledFirst {
    async fn call(&self, ctx: TaskContext) -> Result<orch_engine::Output, TaskError> {
        self.run.get().expect("the run started").cancel();
        self.remote.call(ctx).await
    }
}

/// An attempt whose run is cancelled before its message is sent sends none: no worker
/// can start the task of a run that was cancelled already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_of_a_run_cancelled_before_it_was_sent_sends_nothing() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let remote = RemoteHandler::connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    let token = Arc::new(std::sync::OnceLock::new());
    let cancelled_first = CancelledFirst {
        remote,
        run: Arc::clone(&token),
    };
    engine.register_handler("embed", cancelled_first);
    let workflow = Workflow::new("w", "W").task(Task::new("doc", "embed"));
    let run = engine.run(&workflow);
    token.get_or_init(|| run.cancellation_token());
    let result = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the cancelled run ends")
        .expect("valid");
    assert_eq!(result.status, WorkflowStatus::Cancelled);
    let admin = jetstream::new(server.config().connect().await.expect("connects"));
    let mut tasks = admin.get_stream("ORCH_TASKS").await.expect("the stream");
    let info = tasks.info().await.expect("its state");
    assert_eq!(info.state.last_sequence, 0, "no task message was ever sent");
}
