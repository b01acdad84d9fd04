//! Messages their reader could not read, against a real nats-server: values nested deeper
//! than a message may carry are refused where they are written, with an error that says
//! so; a result the coordinator cannot read still ends its attempt; a task message a
//! worker cannot run is terminated only once its failure is stored. Each of these once
//! left its run waiting for ever. A result that names another attempt's stored output
//! fails its attempt instead of handing that output over.

mod common;

use std::time::Duration;

use async_nats::jetstream::consumer::{self, PullConsumer};
use async_nats::jetstream::{self, stream::LastRawMessageErrorKind};
use common::NatsServer;
use common::permissions::{SERVER_CONFIG, as_user};
use futures_util::StreamExt as _;
use orch_core::{Task, TaskStatus, Workflow, WorkflowResult};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{RemoteHandler, Worker};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A value `depth` arrays deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

/// How deep the arrays of `value` (as [`nested`] builds them) go.
fn depth_of(mut value: &Value) -> usize {
    let mut depth = 0;
    while let Some(inner) = value.get(0) {
        (depth, value) = (depth + 1, inner);
    }
    depth
}

/// Returns a value as deep as the task's config says (`depth`).
async fn nest(ctx: TaskContext) -> Result<Value, TaskError> {
    let depth = ctx.config()["depth"].as_u64().unwrap_or(0);
    Ok(nested(depth as usize))
}

/// An engine whose `remote` task types run on a worker (running until `stop`) whose
/// `nest` tasks run [`nest`], and whose `measure` tasks return how deep the output of
/// their dependency is.
async fn engine_with_worker(
    server: &NatsServer,
    remote: &[&str],
    stop: &CancellationToken,
) -> WorkflowEngine {
    let worker = Worker::builder()
        .handler("nest", nest)
        .handler("measure", |ctx: TaskContext| async move {
            let source = ctx.task_definition().dependencies[0].clone();
            let source: Value = ctx.input(&source)?;
            Ok::<_, TaskError>(depth_of(&source))
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    tokio::spawn(worker.run(stop.clone()));
    let handler = RemoteHandler::connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    for task_type in remote {
        engine.register_handler(*task_type, handler.clone());
    }
    engine
}

/// Runs `workflow` on `engine`; the bound only keeps a run that waits for ever from
/// hanging the test.
async fn run(engine: &WorkflowEngine, workflow: &Workflow) -> WorkflowResult {
    tokio::time::timeout(Duration::from_secs(60), engine.execute_workflow(workflow))
        .await
        .expect("the run ends: no attempt waits for a result that cannot arrive")
        .expect("valid")
}

fn error_of(result: &WorkflowResult, id: &str) -> String {
    let task = result.task(id).expect("a task");
    assert_eq!(task.status, TaskStatus::Failed, "{id}: {task:?}");
    task.error.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_too_deep_for_a_result_fails_its_task_and_one_level_less_arrives() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    let engine = engine_with_worker(&server, &["nest"], &stop).await;
    let workflow = Workflow::new("deep", "Deep")
        .task(Task::new("deepest_carried", "nest").config(json!({"depth": 125})))
        .task(Task::new("too_deep", "nest").config(json!({"depth": 126})));
    let result = run(&engine, &workflow).await;
    let carried = result.task("deepest_carried").expect("a task");
    assert_eq!(carried.status, TaskStatus::Completed);
    assert_eq!(carried.result.as_ref().map(depth_of), Some(125));
    let error = error_of(&result, "too_deep");
    assert!(
        error.contains(
            "the output nests 126 levels deep (arrays and objects within each other), \
             and a result can carry at most 125"
        ),
        "{error}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_too_deep_for_a_task_message_fails_the_task_naming_the_input() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    let engine = engine_with_worker(&server, &["measure"], &stop).await;
    engine.register_handler("local_nest", nest);
    let workflow = Workflow::new("deep_input", "Deep input")
        .task(Task::new("carried", "local_nest").config(json!({"depth": 125})))
        .task(Task::new("deep", "local_nest").config(json!({"depth": 126})))
        .task(Task::new("fits", "measure").depends_on(["carried"]))
        .task(Task::new("does_not_fit", "measure").depends_on(["deep"]));
    let result = run(&engine, &workflow).await;
    let fits = result.task("fits").expect("a task");
    assert_eq!(fits.result, Some(json!(125)), "{fits:?}");
    let error = error_of(&result, "does_not_fit");
    assert!(
        error.contains(
            "the message for attempt 1 of task `does_not_fit` nests 128 levels deep \
             (arrays and objects within each other), and a worker reads at most 127; its \
             deepest input is the output of `deep`, 126 levels deep"
        ),
        "{error}"
    );
    stop.cancel();
}

/// What `found` finds, tried every 50 ms; the bound only keeps a broken test from
/// hanging.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut found: impl FnMut() -> F,
) -> T {
    for _ in 0..600 {
        if let Some(found) = found().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 30 s");
}

/// The result stored under `subject`, once there is one.
async fn stored_result(js: &jetstream::Context, subject: &str) -> Value {
    let results = js.get_stream("ORCH_RESULTS").await.expect("the stream");
    let stored = eventually("the failure's storing", || async {
        results.get_last_raw_message_by_subject(subject).await.ok()
    })
    .await;
    serde_json::from_slice(&stored.payload).expect("json")
}

/// Waits until the tasks stream holds no message.
async fn tasks_removed(js: &jetstream::Context) {
    let tasks = js.get_stream("ORCH_TASKS").await.expect("the stream");
    eventually("the message's removal", || {
        let mut tasks = tasks.clone();
        async move { (tasks.info().await.expect("info").state.messages == 0).then_some(()) }
    })
    .await;
}

/// The consumer of `task_type` on the tasks stream, once it exists.
async fn consumer_of(js: &jetstream::Context, task_type: &str) -> PullConsumer {
    eventually("the consumer's creation", || async {
        js.get_consumer_from_stream(task_type, "ORCH_TASKS")
            .await
            .ok()
    })
    .await
}

/// The next message `messages` pulls. On a loaded machine the server's heartbeat for
/// the pull may come late: the stream says so and goes on, and so does this.
async fn next_message(messages: &mut consumer::pull::Stream) -> jetstream::Message {
    loop {
        match messages.next().await.expect("a message") {
            Ok(message) => return message,
            Err(error) if error.kind() == consumer::pull::MessagesErrorKind::MissingHeartbeat => {}
            Err(error) => panic!("the task message: {error}"),
        }
    }
}

/// A run of one task, `answered`, of type `manual`, which no worker serves: the test
/// takes its task message (kept with its JSON and the run, still going) and answers it
/// with [`answer`].
struct ByHand {
    js: jetstream::Context,
    task: jetstream::Message,
    sent: Value,
    running: tokio::task::JoinHandle<WorkflowResult>,
}

async fn run_by_hand(server: &NatsServer) -> ByHand {
    let remote = RemoteHandler::builder()
        .missing_worker_timeout(Duration::from_secs(600))
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("manual", remote);
    let workflow = Workflow::new("w", "W").task(Task::new("answered", "manual"));
    let running = tokio::spawn(async move { run(&engine, &workflow).await });
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let consumer = consumer_of(&js, "manual").await;
    let mut messages = consumer.messages().await.expect("pulls");
    let task = next_message(&mut messages).await;
    let sent: Value = serde_json::from_slice(&task.payload).expect("json");
    ByHand {
        js,
        task,
        sent,
        running,
    }
}

/// Stores the result of protocol version `v` with `outcome` from `worker` as the answer
/// to the task message, acknowledges it, and returns the run's result.
async fn answer(by_hand: ByHand, v: u32, worker: &str, outcome: Value) -> WorkflowResult {
    let ByHand {
        js,
        task,
        sent,
        running,
    } = by_hand;
    let result = json!({
        "v": v,
        "run_id": sent["run_id"],
        "task_id": sent["task"]["task_id"],
        "attempt": sent["attempt"],
        "worker": worker,
        "outcome": outcome,
    });
    js.publish("orch.result.any.subject.1", result.to_string().into())
        .await
        .expect("published")
        .await
        .expect("stored");
    task.ack().await.expect("acknowledged");
    running.await.expect("the run's task")
}

/// A result stored on an attempt's result subject that names another attempt (as one of
/// a task whose shortened name is the same would) is not taken for this attempt when the
/// coordinator looks its result up: it sends the task again, and takes its own result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_result_naming_another_attempt_is_not_taken_for_this_one() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let ByHand {
        js,
        task,
        sent,
        running,
    } = run_by_hand(&server).await;
    let run = sent["run_id"].as_str().expect("a run id").to_owned();
    let subject = format!("orch.result.{run}.answered.1");
    let result = |task_id: &str, output: &str| {
        json!({"v": 1, "run_id": run, "task_id": task_id, "attempt": 1, "worker": "w",
            "outcome": {"status": "completed", "output": output}})
        .to_string()
    };
    let stored = js.publish(subject.clone(), result("someone-else", "not yours").into());
    stored.await.expect("published").await.expect("stored");
    // The message is removed without a result of its own: the coordinator looks for one.
    task.ack_with(jetstream::AckKind::Term)
        .await
        .expect("terminated");
    let consumer = consumer_of(&js, "manual").await;
    let mut messages = consumer.messages().await.expect("pulls");
    let again = tokio::time::timeout(Duration::from_secs(30), next_message(&mut messages));
    let again = again.await.expect("the task sent again");
    let own = js.publish(subject, result("answered", "mine").into());
    own.await.expect("published").await.expect("stored");
    again.ack().await.expect("acknowledged");
    let result = running.await.expect("the run's task");
    let answered = result.task("answered").expect("a record");
    assert_eq!(answered.result, Some(json!("mine")), "{:?}", answered.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_the_coordinator_cannot_read_fails_its_attempt_with_the_reason() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // The test answers in a newer version.
    let by_hand = run_by_hand(&server).await;
    let teleported = json!({"status": "teleported"});
    let result = answer(by_hand, 9, "from-the-future", teleported).await;
    let error = error_of(&result, "answered");
    assert!(
        error.contains(
            "the result from worker `from-the-future` cannot be read: protocol version 9 is \
             newer than this build reads (1); upgrade orch-nats"
        ),
        "{error}"
    );
}

async fn embed_worker(server: &NatsServer, user: &str, password: &str) -> Worker {
    Worker::builder()
        .name(user)
        .result_patience(Duration::from_millis(300))
        .handler("embed", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>("embedded")
        })
        .connect(&as_user(server, user, password))
        .await
        .expect("the worker connects")
}

/// A mute worker (one that may take `embed` tasks but not store results) running until
/// the token is cancelled, on a server with the docs' permissions whose streams a
/// coordinator set up, and `message` published on the `embed` queue; with the
/// coordinator user's JetStream context.
async fn mute_worker_given(
    server: &NatsServer,
    message: &Value,
) -> (
    jetstream::Context,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let coordinator = as_user(server, "coordinator", "coordinator-pw");
    let _streams = RemoteHandler::connect(&coordinator)
        .await
        .expect("the coordinator connects");
    let stop = CancellationToken::new();
    let mute = embed_worker(server, "mute", "mute-pw").await;
    let mute = tokio::spawn(mute.run(stop.clone()));
    let js = jetstream::new(coordinator.connect().await.expect("connects"));
    js.publish("orch.task.embed", message.to_string().into())
        .await
        .expect("published")
        .await
        .expect("stored");
    (js, stop, mute)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_message_refused_by_a_worker_that_cannot_store_results_is_given_back() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    // It names its attempt, but has no task type.
    let unrunnable = json!({"v": 1, "run_id": "r1", "task": {"task_id": "t"}, "attempt": 1});
    let (js, stop_mute, mute) = mute_worker_given(&server, &unrunnable).await;
    let consumer = consumer_of(&js, "embed").await;
    eventually("a second delivery", || {
        let mut consumer = consumer.clone();
        async move {
            let info = consumer.info().await.expect("info");
            (info.num_redelivered > 0).then_some(())
        }
    })
    .await;
    stop_mute.cancel();
    mute.await.expect("the mute worker stops");

    // A worker that may store results reports the failure, then terminates the message.
    let stop = CancellationToken::new();
    let embedder = embed_worker(&server, "embedder", "embedder-pw").await;
    tokio::spawn(embedder.run(stop.clone()));
    let stored = stored_result(&js, "orch.result.r1.t.1").await;
    assert_eq!(stored["worker"], "embedder");
    let error = stored["outcome"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "cannot run the task message: not a valid message: missing field `task_type`"
        ),
        "{error}"
    );
    tasks_removed(&js).await;
    stop.cancel();
}

/// Past its deadline, a task message whose failure cannot be stored is terminated all
/// the same: nobody waits for its attempt, and given back it only went through its
/// deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_task_message_past_its_deadline_is_terminated_unreported() {
    let Some(server) = NatsServer::start_with_config(Some(SERVER_CONFIG)) else {
        return;
    };
    let past =
        json!({"v": 1, "run_id": "r2", "task": {"task_id": "t"}, "attempt": 1, "deadline_ms": 1});
    let (js, stop, _mute) = mute_worker_given(&server, &past).await;
    tasks_removed(&js).await;
    let mut consumer = consumer_of(&js, "embed").await;
    assert_eq!(consumer.info().await.expect("info").num_redelivered, 0);
    stop.cancel();
}

/// A worker that heard of a run's cancellation terminates a task message of that run it
/// cannot run with no failure stored: a coordinator that comes back on the run sends
/// the attempt again, and took the stored failure for its outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_task_message_of_a_cancelled_run_is_terminated_unreported() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (js, stop) = embed_worker_at(&server).await;
    let publish = |subject: &'static str, message: Value| {
        let js = js.clone();
        async move {
            (js.publish(subject, message.to_string().into()).await)
                .expect("published")
                .await
                .expect("stored");
        }
    };
    publish("orch.cancel.r5", json!({"v": 1, "run_id": "r5"})).await;
    let results = js.get_stream("ORCH_RESULTS").await.expect("the stream");
    let unreported = |subject: String| {
        let results = results.clone();
        async move {
            (results.get_last_raw_message_by_subject(&subject).await)
                .is_err_and(|e| e.kind() == LastRawMessageErrorKind::NoMessageFound)
        }
    };
    // A runnable task of the run, terminated unrun, shows the worker heard of the
    // cancellation (one it ran before that has its result stored).
    let mut heard = false;
    for attempt in 1..=50 {
        publish(
            "orch.task.embed",
            json!({
                "v": 1, "run_id": "r5", "workflow_id": "w",
                "task": {"task_id": "probe", "task_type": "embed"}, "attempt": attempt,
            }),
        )
        .await;
        tasks_removed(&js).await;
        if unreported(format!("orch.result.r5.probe.{attempt}")).await {
            heard = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(heard, "the worker never heard of the cancellation");

    let unrunnable = json!({"v": 1, "run_id": "r5", "task": {"task_id": "t"}, "attempt": 1});
    publish("orch.task.embed", unrunnable).await;
    tasks_removed(&js).await;
    assert!(unreported("orch.result.r5.t.1".to_owned()).await);
    stop.cancel();
}

/// A worker of `embed` tasks that may do anything, running on `server` (whose streams
/// a coordinator set up) until the token returned is cancelled; with a JetStream context.
async fn embed_worker_at(server: &NatsServer) -> (jetstream::Context, CancellationToken) {
    let _streams = RemoteHandler::connect(&server.config())
        .await
        .expect("the coordinator connects");
    let worker = Worker::builder()
        .name("reader")
        .handler("embed", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>("embedded")
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    (js, stop)
}

/// A task message refused with an error that quotes most of it (a long string where an
/// object belongs) gets its failure stored cut to fit a result message, and is
/// terminated; uncut, every publish of the failure was refused by the client, and the
/// message went round its deliveries for minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_quoting_a_long_message_is_stored_cut_to_fit() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (js, stop) = embed_worker_at(&server).await;
    // Quotes: escaped once in the task message, twice once quoted in the failure's.
    let long = "\"".repeat(300 * 1024);
    let message = json!({
        "v": 1, "run_id": "r4", "workflow_id": "w",
        "task": {"task_id": "t", "task_type": "embed"}, "attempt": 1, "inputs": long,
    });
    js.publish("orch.task.embed", message.to_string().into())
        .await
        .expect("published")
        .await
        .expect("stored");

    let stored = stored_result(&js, "orch.result.r4.t.1").await;
    let error = stored["outcome"]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("worker `reader` cannot run the task message"),
        "{}",
        &error[..200]
    );
    assert!(
        error.contains("more bytes cut"),
        "{}",
        &error[error.len() - 200..]
    );
    tasks_removed(&js).await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_naming_another_attempts_stored_output_fails_its_attempt() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let by_hand = run_by_hand(&server).await;
    let bucket = (by_hand.js.get_object_store("ORCH_RESULTS").await)
        .expect("the coordinator made the bucket");
    bucket
        .put("other-run.t.1", &mut &b"\"not yours\""[..])
        .await
        .expect("stored");
    let stored = json!({"status": "stored", "object": "other-run.t.1", "bytes": 11});
    let result = answer(by_hand, 1, "forger", stored).await;
    let error = error_of(&result, "answered");
    assert!(
        error.starts_with("the result names stored output `other-run.t.1`, not this attempt's `"),
        "{error}"
    );
}
