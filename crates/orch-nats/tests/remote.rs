//! A coordinator engine with remote task types and in-process workers, against a real
//! nats-server: results, failures, retries, skips, cancellation, timeouts, sizes, and
//! the errors for what cannot work.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::NatsServer;
use orch_core::{Task, TaskStatus, Workflow, WorkflowStatus};
use orch_engine::{Durability, Output, TaskContext, TaskError, WorkflowEngine, inline};
use orch_nats::{ConnectError, Inputs, Layout, NatsConfig, RemoteBuilder, RemoteHandler, Worker};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Calls per task id, shared by a test and its worker's handlers.
#[derive(Default)]
struct Calls(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl Calls {
    fn count(&self, id: &str) -> u32 {
        let mut calls = self.0.lock().expect("not poisoned");
        let n = calls.entry(id.to_owned()).or_default();
        *n += 1;
        *n
    }

    fn get(&self, id: &str) -> u32 {
        let calls = self.0.lock().expect("not poisoned");
        calls.get(id).copied().unwrap_or(0)
    }
}

/// Counts `.1` in `.0` when dropped: when a handler's future ends, however it ends.
struct Ended(Arc<Calls>, String);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.count(&self.1);
    }
}

/// A worker serving the test's task types, running until `stop`.
async fn start_worker(server: &NatsServer, calls: Arc<Calls>, stop: &CancellationToken) {
    let worker = Worker::builder()
        .name("test-worker")
        .state(calls)
        .handler("double", |ctx: TaskContext| async move {
            let n: i64 = match ctx.task_definition().dependencies.first() {
                Some(dep) => ctx.input(dep)?,
                None => ctx.config()["n"].as_i64().unwrap_or(0),
            };
            Ok::<_, TaskError>(n * 2)
        })
        .handler("flaky", |ctx: TaskContext| async move {
            let calls = ctx.state::<Arc<Calls>>()?;
            if calls.count(ctx.task_id()) < 2 {
                return Err(TaskError::new(
                    anyhow::anyhow!("disk full").context("writing rows"),
                ));
            }
            Ok(format!("ok on attempt {}", ctx.attempt()))
        })
        .handler("broken", |_ctx: TaskContext| async move {
            Err::<(), _>(TaskError::permanent("bad input"))
        })
        .handler("optional", |_ctx: TaskContext| async move {
            Err::<(), _>(TaskError::skip("feature is off"))
        })
        .handler("panics", |_ctx: TaskContext| async move {
            if true {
                panic!("out of cheese");
            }
            Ok::<_, TaskError>(())
        })
        // An inline handler runs on the attempt's own task on the worker: its panic too
        // fails the attempt.
        .handler(
            "panics_inline",
            inline(|_ctx: TaskContext| async move {
                if true {
                    panic!("out of bread");
                }
                Ok::<_, TaskError>(())
            }),
        )
        .handler("wait", |ctx: TaskContext| async move {
            let calls = ctx.state::<Arc<Calls>>()?;
            calls.count(&format!("{}:started", ctx.task_id()));
            let _ended = Ended(Arc::clone(calls), format!("{}:ended", ctx.task_id()));
            ctx.cancellation().cancelled().await;
            calls.count(&format!("{}:cancelled", ctx.task_id()));
            Err::<(), _>(TaskError::new("stopped"))
        })
        .handler("huge", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>("x".repeat(2 << 20))
        })
        .handler("seen", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(ctx.resumed())
        })
        .handler("unjournaled", |ctx: TaskContext| async move {
            let length = ctx.config()["length"].as_u64().unwrap_or(8) as usize;
            Ok::<_, TaskError>(Output::new("p".repeat(length))?.not_journaled("holds a password"))
        })
        .handler("huge_error", |_ctx: TaskContext| async move {
            Err::<(), _>(TaskError::permanent(format!(
                "bad row: {}",
                "é".repeat(100_000)
            )))
        })
        .handler("element", |ctx: TaskContext| async move {
            let x: i64 = ctx.map_item()?;
            let seen = json!({"x": x, "index": ctx.item_index(), "task": ctx.task_id()});
            Ok::<_, TaskError>(seen)
        })
        .handler("echo", |ctx: TaskContext| async move {
            let inputs: Vec<(String, Value)> = ctx
                .dependency_results()
                .map(|(id, v)| (id.to_string(), v.clone()))
                .collect();
            Ok::<_, TaskError>(json!({"inputs": inputs, "config": ctx.config()}))
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    tokio::spawn(worker.run(stop.clone()));
}

async fn remote_engine(server: &NatsServer, types: &[&str]) -> WorkflowEngine {
    let remote = RemoteHandler::builder().missing_worker_timeout(Duration::from_millis(400));
    engine_through(remote, server, types).await
}

/// An engine whose `types` go to workers through a coordinator built by `remote`.
async fn engine_through(
    remote: RemoteBuilder,
    server: &NatsServer,
    types: &[&str],
) -> WorkflowEngine {
    let remote = remote
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::builder()
        .cancel_grace_period(Duration::from_secs(5))
        .build()
        .expect("valid settings");
    for task_type in types {
        engine.register_handler(*task_type, remote.clone());
    }
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_on_a_worker_with_its_outputs_errors_retries_and_skips() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    let calls = Arc::new(Calls::default());
    start_worker(&server, Arc::clone(&calls), &stop).await;
    let engine = remote_engine(
        &server,
        &[
            "double",
            "flaky",
            "broken",
            "optional",
            "panics",
            "panics_inline",
        ],
    )
    .await;
    let workflow = Workflow::new("remote", "Remote")
        .task(Task::new("a", "double").config(json!({"n": 21})))
        .task(Task::new("b", "double").depends_on(["a"]))
        .task(Task::new("retry", "flaky").retries(2))
        .task(Task::new("no_retry", "flaky"))
        .task(Task::new("bad", "broken").retries(3))
        .task(Task::new("after_bad", "double").depends_on(["bad"]))
        .task(Task::new("skip", "optional"))
        .task(Task::new("after_skip", "double").depends_on(["skip"]))
        .task(Task::new("panic", "panics"))
        .task(Task::new("panic_inline", "panics_inline"));
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    let task = |id: &str| result.task(id).expect("a task of the workflow");
    assert_eq!(task("a").result, Some(json!(42)));
    assert_eq!(task("b").result, Some(json!(84)));
    assert_eq!(task("retry").status, TaskStatus::Completed);
    assert_eq!(task("retry").result, Some(json!("ok on attempt 2")));
    assert_eq!(task("retry").attempts, 2);
    assert_eq!(task("no_retry").status, TaskStatus::Failed);
    assert_eq!(
        task("no_retry").error.as_deref(),
        Some("writing rows: disk full")
    );
    assert_eq!(
        (task("bad").status, task("bad").attempts),
        (TaskStatus::Failed, 1)
    );
    assert_eq!(task("bad").error.as_deref(), Some("bad input"));
    assert_eq!(task("after_bad").status, TaskStatus::Skipped);
    assert_eq!(task("skip").status, TaskStatus::Skipped);
    assert_eq!(task("skip").error.as_deref(), Some("feature is off"));
    assert_eq!(task("after_skip").status, TaskStatus::Skipped);
    assert_eq!(task("panic").status, TaskStatus::Failed);
    assert_eq!(
        task("panic").error.as_deref(),
        Some("handler panicked: out of cheese")
    );
    assert_eq!(
        task("panic_inline").error.as_deref(),
        Some("handler panicked: out of bread")
    );
    assert_eq!(result.status, WorkflowStatus::Failed);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reads_the_inputs_it_was_sent_and_is_told_which_it_was_not() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let worker = Worker::builder()
        .handler("grandparent", |ctx: TaskContext| async move {
            ctx.input::<i64>("a")
        })
        .connect(&server.config())
        .await
        .expect("connects");
    tokio::spawn(worker.run(stop.clone()));
    let workflow = Workflow::new("inputs", "Inputs")
        .task(Task::new("a", "double").config(json!({"n": 1})))
        .task(
            Task::new("b", "echo")
                .depends_on(["a"])
                .config(json!({"k": "v"})),
        )
        .task(Task::new("c", "grandparent").depends_on(["b"]));
    let direct = remote_engine(&server, &["double", "echo", "grandparent"]).await;
    let result = direct.execute_workflow(&workflow).await.expect("valid");
    assert_eq!(
        result.task("b").and_then(|t| t.result.clone()),
        Some(json!({"inputs": [["a", 2]], "config": {"k": "v"}}))
    );
    let error = result
        .task("c")
        .and_then(|t| t.error.clone())
        .unwrap_or_default();
    assert!(error.contains("`a`, which was not sent with it"), "{error}");

    let remote = RemoteHandler::builder()
        .inputs(Inputs::Ancestors)
        .connect(&server.config())
        .await
        .expect("connects");
    let all = WorkflowEngine::new();
    for task_type in ["double", "echo", "grandparent"] {
        all.register_handler(task_type, remote.clone());
    }
    let result = all.execute_workflow(&workflow).await.expect("valid");
    assert_eq!(
        result.task("c").and_then(|t| t.result.clone()),
        Some(json!(2))
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_and_timing_out_an_attempt_reach_the_handler_on_the_worker() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    let calls = Arc::new(Calls::default());
    start_worker(&server, Arc::clone(&calls), &stop).await;
    let engine = remote_engine(&server, &["wait"]).await;

    let workflow = Workflow::new("timeouts", "Timeouts")
        .task(Task::new("slow", "wait").timeout(Duration::from_millis(300)));
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    assert_eq!(
        result.task("slow").map(|t| t.status),
        Some(TaskStatus::Failed)
    );
    // The worker drops the handler (at the deadline or when told the attempt is over).
    common::wait_for(|| calls.get("slow:ended") == 1).await;

    let workflow = Workflow::new("cancels", "Cancels").task(Task::new("held", "wait"));
    let run = engine.run(&workflow);
    let cancel = run.cancellation_token();
    let running = tokio::spawn(run);
    // Cancel once the worker runs the handler (cancelled before, the task is not run).
    common::wait_for(|| calls.get("held:started") == 1).await;
    cancel.cancel();
    let result = running.await.expect("the run ends").expect("valid");
    assert_eq!(result.status, WorkflowStatus::Cancelled);
    assert_eq!(
        calls.get("held:cancelled"),
        1,
        "the worker's handler saw the cancellation"
    );
    stop.cancel();
}

/// A worker allowed any number of handlers at once serves as one allowed a few: its
/// pull requests ask for a bounded number of tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_no_practical_limit_serves_tasks() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let worker = Worker::builder()
        .concurrency(usize::MAX)
        .handler("double", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(ctx.config()["n"].as_i64().unwrap_or(0) * 2)
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let engine = remote_engine(&server, &["double"]).await;
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "double").config(json!({"n": 2})))
        .task(Task::new("b", "double").config(json!({"n": 5})));
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    assert_eq!(
        result.task("a").and_then(|r| r.result.clone()),
        Some(json!(4))
    );
    assert_eq!(
        result.task("b").and_then(|r| r.result.clone()),
        Some(json!(10))
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_type_that_no_worker_serves_fails_with_an_error_naming_it() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = remote_engine(&server, &["gpu_infer"]).await;
    let workflow = Workflow::new("w", "W").task(Task::new("infer", "gpu_infer").retries(2));
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    let infer = result.task("infer").expect("a task");
    assert_eq!((infer.status, infer.attempts), (TaskStatus::Failed, 1));
    let error = infer.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("no worker serves task type `gpu_infer`"),
        "{error}"
    );
}

/// A subscriber to `subject` that answers nothing, in place on the server.
async fn not_answering(server: &NatsServer, subject: &str) -> async_nats::Subscriber {
    let listener = async_nats::connect(server.url()).await.expect("connects");
    let heard = listener
        .subscribe(subject.to_owned())
        .await
        .expect("subscribed");
    listener
        .flush()
        .await
        .expect("the subscription reached the server");
    heard
}

/// Something else subscribed to the workers' subjects (`nats sub '>'`) hears the
/// presence requests and never answers: they time out instead of being told nobody
/// listens. That once counted as a worker, so the task waited for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_is_not_a_worker_does_not_count_as_one() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let _heard = not_answering(&server, "orch.worker.>").await;
    let engine = remote_engine(&server, &["gpu_infer"]).await;
    let workflow = Workflow::new("w", "W").task(Task::new("infer", "gpu_infer"));
    let run = engine.execute_workflow(&workflow);
    let result = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the missing worker is noticed")
        .expect("valid");
    let error = result
        .task("infer")
        .and_then(|t| t.error.clone())
        .unwrap_or_default();
    assert!(
        error.starts_with("no worker serves task type `gpu_infer`"),
        "{error}"
    );
}

/// Attempts waiting on a type that no worker answers for share one presence request at a
/// time, however many they are: at most about one a check period (a second here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_attempts_share_their_requests_for_workers() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let mut heard = not_answering(&server, "orch.worker.slow").await;
    let requests = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = Arc::clone(&requests);
    let counting = tokio::spawn(async move {
        while futures_util::StreamExt::next(&mut heard).await.is_some() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let remote = RemoteHandler::builder()
        .missing_worker_timeout(Duration::from_secs(4))
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::builder()
        .max_concurrent(20)
        .build()
        .expect("valid settings");
    engine.register_handler("slow", remote);
    let workflow = Workflow::from_tasks(
        "w",
        "W",
        (0..20).map(|i| Task::new(format!("t{i}"), "slow")),
    );
    let started = std::time::Instant::now();
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    let seconds = started.elapsed().as_secs_f64().ceil() as u32;
    assert_eq!(result.status, WorkflowStatus::Failed);
    counting.abort();
    let requests = requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=seconds + 2).contains(&requests),
        "{requests} requests in {seconds} s"
    );
}

/// An engine whose `types` go to workers through a coordinator that sends task
/// messages of at most 4 KiB.
async fn small_message_engine(server: &NatsServer, types: &[&str]) -> WorkflowEngine {
    engine_through(
        RemoteHandler::builder().max_message_bytes(4096),
        server,
        types,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_size_limit_fail_with_their_sizes() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let engine = small_message_engine(&server, &["huge", "echo"]).await;
    engine.register_handler("local", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>("y".repeat(10_000))
    });
    engine.register_handler("list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(json!(["z".repeat(6_000)]))
    });
    let workflow = Workflow::new("sizes", "Sizes")
        .task(Task::new("local_big", "local"))
        .task(Task::new("big_input", "echo").depends_on(["local_big"]))
        .task(Task::new("list", "list"))
        .task(Task::new("big_item", "echo").map_over("list"))
        .task(Task::new("big_config", "echo").config(json!({"text": "c".repeat(5_000)})))
        .task(Task::new("n".repeat(5_000), "echo"));
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    let error = |id: &str| {
        result
            .task(id)
            .and_then(|t| t.error.clone())
            .unwrap_or_default()
    };
    let input = error("big_input");
    assert!(input.contains("over the limit of 4096 bytes"), "{input}");
    assert!(
        input.contains("its largest input is the output of `local_big`, 10002 bytes"),
        "{input}"
    );
    // A map instance is named as itself; its item, or the config, when it is the large
    // part.
    let item = error("big_item");
    assert!(item.contains("task `big_item[0]`"), "{item}");
    assert!(item.ends_with("its item is 6002 bytes"), "{item}");
    let config = error("big_config");
    assert!(
        config.ends_with("its task's config is 5011 bytes"),
        "{config}"
    );
    // Large for its id, no part of it is named.
    let named = error(&"n".repeat(5_000));
    assert!(named.ends_with("kept for its headers)"), "{named}");
    stop.cancel();
}

/// The tasks stream's own limit on a message's size (an administrator may set one below
/// the server's) refuses a message for good: the attempt fails at once, permanently,
/// saying so, rather than sending it again for half the duplicate window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_tasks_streams_own_limit_fails_at_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let engine = remote_engine(&server, &["echo"]).await;
    let admin = async_nats::connect(server.url()).await.expect("connects");
    let js = async_nats::jetstream::new(admin);
    let mut tasks = js.get_stream("ORCH_TASKS").await.expect("the stream");
    let mut config = tasks.info().await.expect("its settings").config.clone();
    config.max_message_size = 2048;
    js.update_stream(config).await.expect("updated");
    let workflow = Workflow::new("w", "W").task(
        Task::new("big", "echo")
            .config(json!({"text": "c".repeat(4_000)}))
            .retries(3),
    );
    let run = engine.execute_workflow(&workflow);
    let result = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("fails without waiting half the duplicate window")
        .expect("valid");
    let big = result.task("big").expect("a task");
    let error = big.error.as_deref().unwrap_or_default();
    assert_eq!(
        (big.status, big.attempts),
        (TaskStatus::Failed, 1),
        "{error}"
    );
    assert!(
        error.starts_with("the server refused the message of task `big` as too large"),
        "{error}"
    );
}

/// A message just under the server's `max_payload` once went out and was refused for its
/// header (the message id), failing without naming its largest input; the check keeps
/// room for the header. Inputs around that size all fail the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_only_its_header_takes_over_the_limit_fails_naming_its_largest_input() {
    let Some(server) = NatsServer::start_with_config(Some("max_payload: 65536")) else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let engine = remote_engine(&server, &["echo"]).await;
    engine.register_handler("local", |ctx: TaskContext| async move {
        let length = ctx.config()["length"].as_u64().unwrap_or(0) as usize;
        Ok::<_, TaskError>("y".repeat(length))
    });
    let lengths: Vec<usize> = (65536 - 700..65536 - 200).step_by(10).collect();
    let mut workflow = Workflow::new("edge", "Edge");
    for length in &lengths {
        let input = format!("input_{length}");
        workflow = workflow
            .task(Task::new(input.as_str(), "local").config(json!({ "length": length })))
            .task(Task::new(format!("send_{length}"), "echo").depends_on([input]));
    }
    let run = engine.execute_workflow(&workflow);
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends")
        .expect("valid");
    for length in &lengths {
        let send = result.task(&format!("send_{length}")).expect("a task");
        let error = send.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("over the limit of 65536 bytes")
                && error.contains(&format!("the output of `input_{length}`")),
            "{length}: {send:?}"
        );
    }
    stop.cancel();
}

/// An error too long for a result message once made the worker retry publishing it for
/// ever; it arrives cut to fit, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_longer_than_the_servers_max_payload_arrives_cut_to_fit() {
    let Some(server) = NatsServer::start_with_config(Some("max_payload: 65536")) else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let engine = remote_engine(&server, &["huge_error"]).await;
    let workflow = Workflow::new("long", "Long").task(Task::new("fails", "huge_error"));
    let run = engine.execute_workflow(&workflow);
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends")
        .expect("valid");
    let fails = result.task("fails").expect("a task");
    assert_eq!(fails.status, TaskStatus::Failed);
    let error = fails.error.as_deref().unwrap_or_default();
    let start: String = error.chars().take(40).collect();
    assert!(error.starts_with("bad row: ééé"), "{start}");
    let end = error
        .char_indices()
        .nth_back(119)
        .map_or(error, |(at, _)| &error[at..]);
    assert!(
        error.ends_with("more bytes cut: the text was longer than a result message may be]"),
        "{end}"
    );
    // What fits is kept: the message's other fields and headers take under 2 kB.
    assert!(
        (60_000..65_536).contains(&error.len()),
        "{} bytes",
        error.len()
    );
    stop.cancel();
}

/// A stored output over the coordinator's limit is refused unread: one read whole could
/// take all of the coordinator's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_output_over_the_coordinators_limit_fails_its_attempt() {
    let Some(server) = NatsServer::start_with_config(Some("max_payload: 65536")) else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let remote = RemoteHandler::builder()
        .max_output_bytes(1 << 20)
        .connect(&server.config())
        .await
        .expect("connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("huge", remote);
    let huge = Task::new("big_output", "huge").retries(2);
    let workflow = Workflow::new("big", "Big").task(huge);
    let run = engine.execute_workflow(&workflow);
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends")
        .expect("valid");
    let big = result.task("big_output").expect("a task");
    // For good: the handler would only store as much again.
    assert_eq!((big.status, big.attempts), (TaskStatus::Failed, 1));
    let error = big.error.as_deref().unwrap_or_default();
    // 2 MiB of JSON and its two quotes.
    assert!(
        error.contains(
            "is 2097154 bytes, over this coordinator's limit of 1048576 bytes \
             (RemoteBuilder::max_output_bytes)"
        ),
        "{error}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_larger_than_the_servers_max_payload_travels_through_the_object_store() {
    let Some(server) = NatsServer::start_with_config(Some("max_payload: 65536")) else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let engine = remote_engine(&server, &["huge", "echo"]).await;
    let workflow = Workflow::new("big", "Big")
        .task(Task::new("big_output", "huge"))
        .task(Task::new("small", "echo"));
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    assert_eq!(result.status, WorkflowStatus::Completed, "{result:?}");
    let output = result
        .task("big_output")
        .and_then(|t| t.result.clone())
        .expect("an output");
    // 2 MiB of JSON, 32 times the server's limit for one message.
    assert_eq!(output, json!("x".repeat(2 << 20)));
    // A small output still travels in its result message: nothing is stored for it.
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let bucket = js
        .get_object_store("ORCH_RESULTS")
        .await
        .expect("the bucket");
    let stored: Vec<String> =
        futures_util::StreamExt::collect::<Vec<_>>(bucket.list().await.expect("lists"))
            .await
            .into_iter()
            .map(|info| info.expect("an object").name)
            .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(".big_output.1"), "{stored:?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_a_workers_handler_keeps_out_of_the_journal_stays_out_of_it() {
    let Some(server) = NatsServer::start_with_config(Some("max_payload: 65536")) else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let remote = RemoteHandler::builder()
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let journal = orch_nats::NatsJournal::connect(&server.config(), &Layout::default())
        .await
        .expect("connects");
    let engine = WorkflowEngine::builder()
        .journal(journal.clone(), Durability::Process)
        .build()
        .expect("valid settings");
    engine.register_handler("unjournaled", remote);
    // One output travels in its result message, the other through the object store.
    let workflow = Workflow::new("secrets", "Secrets")
        .task(Task::new("small", "unjournaled"))
        .task(Task::new("large", "unjournaled").config(json!({"length": 100_000})));
    let run = orch_core::RunId::parse("secrets-1").expect("a run id");
    let result = engine
        .run_durable(&workflow, run.clone())
        .await
        .expect("runs");
    assert_eq!(result.status, WorkflowStatus::Completed, "{result:?}");
    assert_eq!(
        result.task("small").and_then(|t| t.result.clone()),
        Some(json!("pppppppp"))
    );
    let loaded = orch_journal::Journal::load(&journal, &run)
        .await
        .expect("reads")
        .expect("the run");
    for task in ["small", "large"] {
        assert_eq!(
            loaded.task(task).and_then(|t| t.result.clone()),
            Some(json!({"not_journaled": "holds a password"})),
            "{task}"
        );
    }
    stop.cancel();
}

/// An attempt a resumed run takes up (its task left pending by the earlier run) is
/// resumed for the worker's handler too; a new run's is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_handler_knows_whether_its_attempt_was_resumed() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let engine = remote_engine(&server, &["seen"]).await;
    let workflow = Workflow::new("w", "W").task(Task::new("later", "seen"));
    let first = engine.execute_workflow(&workflow).await.expect("valid");
    let later =
        |result: &orch_core::WorkflowResult| result.task("later").and_then(|t| t.result.clone());
    assert_eq!(later(&first), Some(json!(false)));
    // A run that stopped before its attempt sent anything (a stored result of it would
    // be taken instead of running it).
    let mut cut_short = first.clone();
    cut_short.run_id = orch_core::RunId::parse("cut-short").expect("a run id");
    cut_short.tasks =
        orch_core::TaskRecords::for_workflow(&workflow, vec![orch_core::TaskRecord::default()])
            .expect("one record per task");
    let resumed = engine.resume(&workflow, &cut_short).await.expect("resumes");
    assert_eq!(later(&resumed), Some(json!(true)));
    stop.cancel();
}

#[tokio::test]
async fn nats_unreachable_at_start_is_a_typed_error() {
    let url = format!("nats://127.0.0.1:{}", common::free_port());
    let error = RemoteHandler::connect(&NatsConfig::new(url.clone()))
        .await
        .expect_err("nobody listens there");
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&url), "{error}");
    let error = Worker::builder()
        .handler(
            "t",
            |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
        )
        .connect(&NatsConfig::new(url))
        .await
        .expect_err("nobody listens there");
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "{error:?}"
    );
}

/// A coordinator's start given up part way (after a time limit) leaves nothing running:
/// the listeners it had begun stop with it, and its connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_given_up_part_way_leaves_nothing_running() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    drop(
        RemoteHandler::connect(&server.config())
            .await
            .expect("streams made"),
    );
    // Two tasks that ran out of deliveries before the start, the last one deleted: the
    // start reads the first, then waits two seconds for the last.
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let advisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORCH_TASKS.x";
    let mut last = 0;
    for _ in 0..2 {
        let stored = js.publish(advisory, "{}".into()).await.expect("sent");
        last = stored.await.expect("stored").sequence;
    }
    let lost = js
        .get_stream("ORCH_LOST")
        .await
        .expect("the lost-tasks stream");
    lost.delete_message(last).await.expect("deleted");
    drop((lost, js));
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = alive();
    let config = server.config();
    tokio::time::timeout(Duration::from_millis(1500), RemoteHandler::connect(&config))
        .await
        .expect_err("still reading the tasks that ran out of deliveries");
    // A guard, not a measure: what the start began ends at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while alive() > before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(alive() <= before, "{} tasks, {before} before", alive());
}

#[tokio::test]
async fn an_invalid_prefix_is_refused_before_connecting() {
    let error = RemoteHandler::builder()
        .layout(Layout::with_prefix("orch.*"))
        .connect(&NatsConfig::default())
        .await
        .expect_err("a wildcard is no prefix");
    assert!(matches!(error, ConnectError::Config(_)), "{error:?}");
    assert!(error.to_string().contains("`orch.*`"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_of_a_map_reads_its_own_element_on_the_worker() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let engine = remote_engine(&server, &["element"]).await;
    engine.register_handler("list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(json!([5, 6, 7]))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(Task::new("m", "element").map_over("list"));
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    assert_eq!(result.status, WorkflowStatus::Completed);
    // Each instance ran apart (its own id on the wire) with its element, and its handler
    // saw the map task's id, as in the engine.
    let seen = |i: usize| json!({"x": 5 + i, "index": i, "task": "m"});
    assert_eq!(
        result.task("m").and_then(|t| t.result.clone()),
        Some(json!([seen(0), seen(1), seen(2)]))
    );
    assert_eq!(
        result.task("m[2]").and_then(|t| t.result.clone()),
        Some(seen(2))
    );
    stop.cancel();
}

/// An instance is sent its element, not the whole list: a map over a list larger than
/// a task message may be runs, each message small (sent the list, every instance
/// failed for its size, and a list of n elements took n times its size to send).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_over_a_list_larger_than_a_message_runs_on_workers() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let engine = small_message_engine(&server, &["element", "echo"]).await;
    engine.register_handler("list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>((0..1_000).collect::<Vec<i64>>())
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(Task::new("m", "element").map_over("list"))
        .task(Task::new("inputs", "echo").map_over("list"));
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    assert_eq!(
        result.status,
        WorkflowStatus::Completed,
        "{:?}",
        result.task("m")
    );
    let m = result
        .task("m")
        .and_then(|t| t.result.clone())
        .unwrap_or_default();
    assert_eq!(m.as_array().map(Vec::len), Some(1_000));
    assert_eq!(m[999]["x"], 999);
    // No input came with an instance: the list stayed on the coordinator.
    let inputs = result.task("inputs[3]").and_then(|t| t.result.clone());
    assert_eq!(
        inputs.map(|echoed| echoed["inputs"].clone()),
        Some(json!([]))
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_task_messages_are_terminated_once_and_fail_their_attempt_when_named() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    start_worker(&server, Arc::default(), &stop).await;
    let client = async_nats::connect(server.url()).await.expect("connects");
    let js = async_nats::jetstream::new(client);
    let newer = json!({"v": 3, "run_id": "r-newer", "task": {"task_id": "t"}, "attempt": 1});
    let malformed = json!({"v": 1, "run_id": "r-bad", "task": {"task_id": "t"}, "attempt": 3});
    for payload in [
        b"not json at all".to_vec(),
        newer.to_string().into_bytes(),
        malformed.to_string().into_bytes(),
    ] {
        js.publish("orch.task.double", payload.into())
            .await
            .expect("published")
            .await
            .expect("stored");
    }
    // The worker removes the messages it cannot read.
    common::wait_for_task_messages(&js, 0).await;
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream("double", "ORCH_TASKS")
        .await
        .expect("the consumer");
    let info = consumer.info().await.expect("info");
    assert_eq!(
        (info.num_redelivered, info.num_ack_pending),
        (0, 0),
        "never delivered again"
    );

    let results = js.get_stream("ORCH_RESULTS").await.expect("the stream");
    let outcome = |subject: &str| {
        let results = results.clone();
        let subject = subject.to_owned();
        async move {
            let message = results
                .get_last_raw_message_by_subject(&subject)
                .await
                .expect("a result for the attempt the message names");
            serde_json::from_slice::<Value>(&message.payload).expect("json")["outcome"].clone()
        }
    };
    let newer = outcome("orch.result.r-newer.t.1").await;
    assert_eq!(
        (newer["status"].as_str(), newer["permanent"].as_bool()),
        (Some("failed"), Some(true))
    );
    let error = newer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("protocol version 3 is newer than this build reads (2)"),
        "{error}"
    );
    let malformed = outcome("orch.result.r-bad.t.3").await;
    let error = malformed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("not a valid message: missing field `task_type`"),
        "{error}"
    );

    // The worker goes on serving.
    let engine = remote_engine(&server, &["double"]).await;
    let workflow = Workflow::new("w", "W").task(Task::new("a", "double").config(json!({"n": 4})));
    let result = engine.execute_workflow(&workflow).await.expect("valid");
    assert_eq!(
        result.task("a").and_then(|t| t.result.clone()),
        Some(json!(8))
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_goes_on_when_the_server_restarts_under_it() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let stop = CancellationToken::new();
    let calls = Arc::new(Calls::default());
    let worker = Worker::builder()
        .state(Arc::clone(&calls))
        .handler("nap", |ctx: TaskContext| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ctx.state::<Arc<Calls>>()?.count("naps");
            Ok::<_, TaskError>(ctx.task_id().to_string())
        })
        .connect(&server.config())
        .await
        .expect("connects");
    tokio::spawn(worker.run(stop.clone()));
    let engine = remote_engine(&server, &["nap"]).await;
    let workflow = common::chain(30, "nap");
    let run = engine.run(&workflow);
    let run =
        tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(120), run).await });
    common::wait_for(|| calls.get("naps") > 5).await;
    server.restart();
    let result = run
        .await
        .expect("the run ends")
        .expect("within two minutes")
        .expect("valid");
    assert_eq!(
        result.status,
        WorkflowStatus::Completed,
        "{:?}",
        result.tasks_with(TaskStatus::Failed)
    );
    assert_eq!(
        result.task("t29").and_then(|t| t.result.clone()),
        Some(json!("t29"))
    );
    stop.cancel();
}

/// A worker and an engine whose `task_type` runs on it, on a layout whose window for
/// duplicate message ids is `window`; the worker runs until the token is cancelled.
async fn with_window(
    server: &NatsServer,
    window: Duration,
    task_type: &str,
    handler: impl orch_engine::Handler,
    calls: &Arc<Calls>,
) -> (WorkflowEngine, CancellationToken) {
    let layout = Layout {
        duplicate_window: window,
        ..Layout::default()
    };
    let worker = Worker::builder()
        .layout(layout.clone())
        .state(Arc::clone(calls))
        .handler(task_type, handler)
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let remote = RemoteHandler::builder()
        .layout(layout)
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler(task_type, remote);
    (engine, stop)
}

/// A resumed run whose attempt finished on a worker (its result stored) after the
/// server's window for duplicate message ids: the stored result counts, and the task is
/// not sent to a worker again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_takes_a_stored_result_instead_of_running_the_task_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let calls = Arc::new(Calls::default());
    let count = |ctx: TaskContext| async move {
        let calls = ctx.state::<Arc<Calls>>()?;
        Ok::<_, TaskError>(calls.count(ctx.task_id()))
    };
    let (engine, stop) = with_window(&server, HALF_A_SECOND, "count", count, &calls).await;
    let workflow = Workflow::new("w", "W").task(Task::new("a", "count"));
    let first = engine.execute_workflow(&workflow).await.expect("runs");
    assert_eq!(
        first.task("a").and_then(|r| r.result.clone()),
        Some(json!(1))
    );
    // The coordinator stopped before it recorded `a`, and comes back after the window.
    common::past_duplicate_window(&server.url()).await;
    let not_recorded = orch_core::WorkflowResult {
        tasks: orch_core::TaskRecords::for_workflow(
            &workflow,
            vec![orch_core::TaskRecord::default()],
        )
        .expect("one record per task"),
        ..first.clone()
    };
    let resumed = engine
        .resume(&workflow, &not_recorded)
        .await
        .expect("resumes");
    assert_eq!(resumed.run_id, first.run_id);
    assert_eq!(
        resumed.task("a").map(|r| r.status),
        Some(TaskStatus::Completed)
    );
    assert_eq!(
        resumed.task("a").and_then(|r| r.result.clone()),
        Some(json!(1))
    );
    assert_eq!(calls.get("a"), 1, "the task ran again");
    stop.cancel();
}

/// A task the earlier run recorded as failed runs again when the run is resumed: the
/// failure stored on the results stream is that earlier attempt's, not this one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_runs_a_task_that_failed_again() {
    // Resumed after the server's window for duplicate messages.
    resume_a_failed_task(HALF_A_SECOND, true).await;
}

/// The same, resumed at once: within the server's window for duplicate message ids, the
/// task's new attempt has a number of its own (the earlier run's attempt 1 failed; this
/// one is attempt 2), so neither its message nor its result is taken for the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_at_once_runs_a_task_that_failed_again() {
    resume_a_failed_task(Duration::from_secs(120), false).await;
}

const HALF_A_SECOND: Duration = Duration::from_millis(500);

/// Runs a task that fails the first time, then resumes the run (once the window has
/// passed, if `after_window`), on a layout whose duplicate window is `window`: the task
/// runs again, as attempt 2.
async fn resume_a_failed_task(window: Duration, after_window: bool) {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let calls = Arc::new(Calls::default());
    let second_time = |ctx: TaskContext| async move {
        match ctx.state::<Arc<Calls>>()?.count(ctx.task_id()) {
            1 => Err(TaskError::permanent("not yet")),
            n => Ok((n, ctx.attempt())),
        }
    };
    let (engine, stop) = with_window(&server, window, "second_time", second_time, &calls).await;
    let workflow = Workflow::new("w", "W").task(Task::new("a", "second_time"));
    let first = engine.execute_workflow(&workflow).await.expect("runs");
    assert_eq!(first.task("a").map(|r| r.status), Some(TaskStatus::Failed));
    if after_window {
        common::past_duplicate_window(&server.url()).await;
    }
    let resumed = tokio::time::timeout(Duration::from_secs(30), engine.resume(&workflow, &first))
        .await
        .expect("the resumed run ends")
        .expect("resumes");
    let a = resumed.task("a").expect("a record");
    assert_eq!(
        (a.status, a.result.clone(), a.attempts),
        (TaskStatus::Completed, Some(json!([2, 2])), 2)
    );
    assert_eq!(calls.get("a"), 2, "the task ran again");
    stop.cancel();
}

/// A coordinator that comes back on a run, waiting for the attempt it took up, whose
/// message (sent by an earlier coordinator) is still queued; no worker is up.
struct WaitingOnQueued {
    /// The coordinator's run, and a way to cancel it.
    resumed: tokio::task::JoinHandle<Result<orch_core::WorkflowResult, orch_engine::RunError>>,
    cancel: CancellationToken,
    tasks: async_nats::jetstream::stream::Stream,
    /// The earlier coordinator's run, never polled again (as if it had died): dropped,
    /// it would cancel the run's attempts.
    stalled: std::pin::Pin<Box<orch_engine::RunHandle>>,
}

/// An engine whose `echo` tasks are remote, with the default patience for a missing
/// worker (none is up at first).
async fn patient_engine(server: &NatsServer) -> WorkflowEngine {
    let remote = RemoteHandler::builder()
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("echo", remote);
    engine
}

impl WaitingOnQueued {
    /// The coordinator's run's result, once it ends (within 20 s).
    async fn ended(self) -> orch_core::WorkflowResult {
        let result = tokio::time::timeout(Duration::from_secs(20), self.resumed)
            .await
            .expect("the resumed run ends")
            .expect("not panicked")
            .expect("a result");
        std::mem::forget(self.stalled);
        result
    }
}

async fn waiting_on_queued(server: &NatsServer) -> WaitingOnQueued {
    let workflow = Workflow::new("w", "W").task(Task::new("t", "echo"));
    let run_id: orch_core::RunId = "removed".parse().expect("a valid id");
    // The first coordinator sends the task while no worker is up (patient enough not to
    // give up on it while it is polled).
    let first = patient_engine(server).await;
    let watcher = async_nats::connect(server.url()).await.expect("connects");
    // A coordinator asks for workers of a type only once it waits for an attempt's
    // result, after sending its message.
    let mut sent = (watcher.subscribe("orch.worker.echo").await).expect("subscribes");
    common::subscriptions_in_place(&watcher).await;
    let mut stalled = Box::pin(first.run_with_id(&workflow, run_id.clone()));
    tokio::select! {
        ended = &mut stalled => panic!("no worker answered, yet the run ended: {ended:?}"),
        asked = futures_util::StreamExt::next(&mut sent) => drop(asked.expect("a request")),
    }
    // The second comes back on the run, which recorded nothing of its task: it takes up
    // attempt 1 again and finds its message queued.
    let now = std::time::SystemTime::now();
    let previous = orch_core::WorkflowResult {
        workflow_id: "w".into(),
        run_id,
        name: "W".into(),
        status: WorkflowStatus::Cancelled,
        start_time: now,
        end_time: now,
        max_concurrent: 4,
        tasks: orch_core::TaskRecords::for_workflow(&workflow, vec![Default::default()])
            .expect("one record per task"),
    };
    let second = patient_engine(server).await;
    // Here, after finding its message queued.
    let admin = async_nats::connect(server.url()).await.expect("connects");
    let mut asked = (admin.subscribe("orch.worker.echo").await).expect("subscribes");
    let run = second.resume(&workflow, &previous);
    let cancel = run.cancellation_token();
    let resumed = tokio::spawn(run);
    let next = futures_util::StreamExt::next(&mut asked);
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("the coordinator waits for the attempt")
        .expect("a request");
    let tasks = async_nats::jetstream::new(admin)
        .get_stream("ORCH_TASKS")
        .await
        .expect("the tasks stream");
    WaitingOnQueued {
        resumed,
        cancel,
        tasks,
        stalled,
    }
}

/// A coordinator that comes back on a run finds the message of the attempt it takes up
/// still queued, and waits for it; a worker then removes the message without a result
/// (as one does that heard the earlier coordinator cancel the attempt). The attempt is
/// sent again, instead of waiting for ever for a result that will not come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_for_message_removed_without_a_result_is_sent_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let waiting = waiting_on_queued(&server).await;
    let last = waiting.tasks.cached_info().state.last_sequence;
    waiting.tasks.delete_message(last).await.expect("deleted");
    let stop = CancellationToken::new();
    let worker = Worker::builder()
        .handler("echo", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(ctx.attempt())
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    tokio::spawn(worker.run(stop.clone()));
    let result = waiting.ended().await;
    let t = result.task("t").expect("a record");
    assert_eq!(
        (t.status, t.result.clone()),
        (TaskStatus::Completed, Some(json!(1)))
    );
    stop.cancel();
}

/// The same, but the coordinator's run was cancelled before the message was removed:
/// the attempt is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_does_not_send_a_removed_message_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let mut waiting = waiting_on_queued(&server).await;
    waiting.cancel.cancel();
    let last = waiting
        .tasks
        .info()
        .await
        .expect("info")
        .state
        .last_sequence;
    waiting.tasks.delete_message(last).await.expect("deleted");
    let mut tasks = waiting.tasks.clone();
    let result = waiting.ended().await;
    assert_eq!(result.status, WorkflowStatus::Cancelled);
    let state = tasks.info().await.expect("info").state.clone();
    assert_eq!(
        (state.messages, state.last_sequence),
        (0, last),
        "nothing was sent after the cancellation"
    );
}

/// Task ids and types far longer than a subject token should be: a subject over the
/// server's control line limit (4 KB) would close the connection on every publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_with_very_long_ids_and_types_run_remotely() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let long_type = format!("embed.{}", "é".repeat(400));
    let stop = CancellationToken::new();
    let worker = Worker::builder()
        .handler(long_type.clone(), |ctx: TaskContext| async move {
            Ok::<_, TaskError>(ctx.task_id().len())
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    tokio::spawn(worker.run(stop.clone()));
    let engine = remote_engine(&server, &[&long_type]).await;
    let long_id = |c: char| std::iter::repeat_n(c, 5000).collect::<String>();
    let workflow = Workflow::new("w", "W")
        .task(Task::new(long_id('a'), long_type.clone()))
        .task(Task::new(format!("{}.x", long_id('a')), long_type.clone()))
        .task(Task::new(long_id('b'), long_type.clone()).depends_on([long_id('a')]));
    let result = tokio::time::timeout(Duration::from_secs(60), engine.execute_workflow(&workflow))
        .await
        .expect("the run ends within a minute")
        .expect("valid");
    assert_eq!(
        result.status,
        WorkflowStatus::Completed,
        "{:?}",
        result.tasks.records()
    );
    assert_eq!(
        result
            .task(&format!("{}.x", long_id('a')))
            .and_then(|t| t.result.clone()),
        Some(json!(5002))
    );
    stop.cancel();
}

/// A tasks stream found with a shorter duplicate window than the coordinator's layout:
/// a task message the server does not store is sent again only within half of the
/// stream's window (past it, a message stored before its answer was lost would be
/// stored twice), and its attempt then fails saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_message_is_sent_again_only_within_the_streams_own_duplicate_window() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    RemoteHandler::connect(&server.config())
        .await
        .expect("the streams are set up");
    let admin = async_nats::connect(server.url()).await.expect("a client");
    let js = async_nats::jetstream::new(admin);
    let tasks = js.get_stream("ORCH_TASKS").await.expect("the tasks stream");
    let mut config = tasks.cached_info().config.clone();
    config.duplicate_window = Duration::from_secs(2);
    js.update_stream(config).await.expect("a shorter window");

    let outage = common::Outage::relay_to(server.port());
    let remote = RemoteHandler::builder()
        .missing_worker_timeout(Duration::from_millis(300))
        .connect(&NatsConfig::new(outage.url()))
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("t", remote);
    let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
    // A first run, with no worker, sets up the task type's consumer.
    let first = engine.execute_workflow(&workflow).await.expect("valid");
    assert_eq!(first.status, WorkflowStatus::Failed);
    outage.begin();
    // Once the coordinator's client tries to connect again, it has seen its connection
    // cut: no try is under way then (one would be sent once the connection is back, as
    // the client holds it).
    common::wait_for(|| outage.refused() > 0).await;
    // The layout's window (2 minutes) would have it try for a minute.
    let result = tokio::time::timeout(Duration::from_secs(40), engine.execute_workflow(&workflow))
        .await
        .expect("the attempt gives up within the stream's window")
        .expect("a valid workflow");
    outage.end();
    let a = result.task("a").expect("a record");
    assert_eq!(a.status, TaskStatus::Failed);
    let error = a.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("did not store the message") && error.contains("1s"),
        "{error}"
    );
    // The client sends what it holds as soon as it is back: once a later run's message
    // is stored, any try of the attempt that gave up would be too.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let later = engine.execute_workflow(&workflow).await.expect("valid");
            let error = later.task("a").and_then(|a| a.error.clone());
            if !error
                .unwrap_or_default()
                .contains("did not store the message")
            {
                break;
            }
        }
    })
    .await
    .expect("the coordinator is back");
    assert_eq!(
        messages_of_run(&tasks, result.run_id.as_str()).await,
        0,
        "a try of the attempt that gave up was stored once the connection was back"
    );
}

/// How many messages `stream` holds of the run `run_id` (by their message ids).
async fn messages_of_run(stream: &async_nats::jetstream::stream::Stream, run_id: &str) -> usize {
    let mut stream = stream.clone();
    let state = stream
        .info()
        .await
        .expect("the stream's state")
        .state
        .clone();
    let mut found = 0;
    for sequence in state.first_sequence..=state.last_sequence {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue; // removed
        };
        let id = message.headers.get("Nats-Msg-Id").map(|id| id.to_string());
        found += usize::from(id.is_some_and(|id| id.starts_with(&format!("{run_id}."))));
    }
    found
}
