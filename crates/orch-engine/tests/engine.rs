//! The engine's semantics, one behaviour per test.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use orch_core::{
    Backoff, Task, TaskStatus, ValidationError, Workflow, WorkflowResult, WorkflowStatus,
};
use orch_engine::{ConfigError, RunError, TaskContext, TaskError, WorkflowEngine, blocking};
use serde_json::{Value, json};

mod common;
use common::{paused_runtime as runtime, record};

/// Runs `workflow` on a task of its own and cancels it after `delay`.
async fn cancelled_after(
    engine: &WorkflowEngine,
    workflow: &Workflow,
    delay: Duration,
) -> WorkflowResult {
    let run = engine.run(workflow);
    let token = run.cancellation_token();
    let runner = tokio::spawn(run);
    tokio::time::sleep(delay).await;
    token.cancel();
    runner.await.expect("no panic").expect("valid")
}

fn echo(engine: &WorkflowEngine, task_type: &str) {
    engine.register_handler(task_type, |ctx: TaskContext| async move {
        Ok::<_, TaskError>(json!({"task": ctx.task_id().as_str()}))
    });
}

#[test]
fn the_original_modules_pipeline_completes_and_records_everything() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("fetch", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(json!({"data": "fetched"}))
        });
        engine.register_handler("process", |ctx: TaskContext| async move {
            let data: Value = ctx.input("fetch_task")?;
            Ok::<_, TaskError>(json!({"status": "processed", "from": data["data"]}))
        });
        let workflow = Workflow::new("data_pipeline", "Data Processing Pipeline")
            .task(Task::new("fetch_task", "fetch").config(json!({"source": "api"})))
            .task(Task::new("process_task", "process").depends_on(["fetch_task"]));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(result.status, WorkflowStatus::Completed);
        assert_eq!(result.workflow_id, "data_pipeline");
        assert_eq!(result.name, "Data Processing Pipeline");
        let process = record(&result, "process_task");
        assert_eq!(
            process.result,
            Some(json!({"status": "processed", "from": "fetched"}))
        );
        assert_eq!(process.attempts, 1);
        assert!(process.start_time.is_some() && process.duration().is_some());
        let fetch = record(&result, "fetch_task");
        assert!(fetch.end_time <= process.start_time);
        let json = result.to_value();
        assert_eq!(json["status"], "completed");
        // The original module's to_dict includes the metrics; so does every result.
        assert_eq!(json["metrics"]["total_tasks"], 2);
        assert_eq!(json["metrics"]["completed_tasks"], 2);
        assert_eq!(
            json["metrics"]["critical_path"],
            json!(["fetch_task", "process_task"])
        );
        assert_eq!(engine.get_task_metrics(&result), result.metrics());
        assert_eq!(json["tasks"]["process_task"]["status"], "completed");
    });
}

#[test]
fn a_failure_skips_every_descendant_and_spares_independent_branches() {
    runtime().block_on(async {
        let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
        echo(&engine, "ok");
        engine.register_handler("fail", |_ctx: TaskContext| async move {
            Err::<Value, _>(TaskError::new("disk full"))
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("root", "ok"))
            .task(Task::new("bad", "fail").depends_on(["root"]))
            .task(Task::new("child", "ok").depends_on(["bad"]))
            .task(Task::new("grandchild", "ok").depends_on(["child", "root"]))
            .task(Task::new("side", "ok").depends_on(["root"]))
            .task(Task::new("side_after", "ok").depends_on(["side"]));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(result.status, WorkflowStatus::Failed);
        assert_eq!(result.tasks_with(TaskStatus::Failed), ["bad"]);
        assert_eq!(
            result.tasks_with(TaskStatus::Skipped),
            ["child", "grandchild"]
        );
        assert_eq!(
            result.tasks_with(TaskStatus::Completed),
            ["root", "side", "side_after"]
        );
        assert_eq!(record(&result, "bad").error.as_deref(), Some("disk full"));
        let skipped = record(&result, "grandchild");
        assert_eq!(skipped.error.as_deref(), Some("dependency `bad` failed"));
        assert_eq!(skipped.attempts, 0);
        assert_eq!(skipped.start_time, None);
    });
}

#[test]
fn a_panicking_handler_fails_its_task_and_the_engine_lives_on() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        echo(&engine, "ok");
        engine.register_handler("boom", |ctx: TaskContext| async move {
            if ctx.attempt() > 0 {
                panic!("bad data in {}", ctx.task_id());
            }
            Ok::<_, TaskError>(Value::Null)
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "boom"))
            .task(Task::new("b", "ok"));
        for _ in 0..2 {
            let result = engine.execute_workflow(&workflow).await.expect("valid");
            let a = record(&result, "a");
            assert_eq!(a.status, TaskStatus::Failed);
            assert_eq!(a.error.as_deref(), Some("handler panicked: bad data in a"));
            assert_eq!(record(&result, "b").status, TaskStatus::Completed);
        }
    });
}

#[test]
fn a_timeout_fails_the_task() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("slow", |_ctx: TaskContext| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, TaskError>(Value::Null)
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "slow").timeout(Duration::from_millis(1500)));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        let a = record(&result, "a");
        assert_eq!(a.status, TaskStatus::Failed);
        assert_eq!(a.error.as_deref(), Some("timed out after 1.5s"));
        assert_eq!(a.duration(), Some(Duration::from_millis(1500)));
    });
}

#[test]
fn retries_run_until_success_with_backoff_between_attempts() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        engine.register_handler("flaky", move |ctx: TaskContext| {
            let calls = Arc::clone(&counted);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if ctx.attempt() < 3 {
                    Err(TaskError::new(format!("attempt {} failed", ctx.attempt())))
                } else {
                    Ok(json!(ctx.attempt()))
                }
            }
        });
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            jitter: false,
            ..Backoff::default()
        };
        let workflow =
            Workflow::new("w", "W").task(Task::new("a", "flaky").retries(5).backoff(backoff));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        let a = record(&result, "a");
        assert_eq!(a.status, TaskStatus::Completed);
        assert_eq!(a.attempts, 3);
        assert_eq!(a.result, Some(json!(3)));
        assert_eq!(a.error, None);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Pauses of 1 s and 2 s between the three attempts.
        assert_eq!(a.duration(), Some(Duration::from_secs(3)));
    });
}

#[test]
fn retries_stop_when_spent_or_when_the_error_is_permanent() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("always", |ctx: TaskContext| async move {
            Err::<Value, _>(TaskError::new(format!(
                "no luck on attempt {}",
                ctx.attempt()
            )))
        });
        engine.register_handler("permanent", |_ctx: TaskContext| async move {
            Err::<Value, _>(TaskError::permanent("malformed input"))
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "always").retries(2))
            .task(Task::new("b", "permanent").retries(5));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        let a = record(&result, "a");
        assert_eq!((a.status, a.attempts), (TaskStatus::Failed, 3));
        assert_eq!(a.error.as_deref(), Some("no luck on attempt 3"));
        let b = record(&result, "b");
        assert_eq!((b.status, b.attempts), (TaskStatus::Failed, 1));
    });
}

#[test]
fn missing_handlers_are_all_listed_and_nothing_runs() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        engine.register_handler("known", move |_ctx: TaskContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, TaskError>(Value::Null) }
        });
        engine.register_handler("store", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(Value::Null)
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "known"))
            .task(Task::new("b", "fetch"))
            .task(Task::new("c", "stor"))
            .task(Task::new("d", "stor"));
        let error = engine
            .execute_workflow(&workflow)
            .await
            .expect_err("handlers missing");
        let RunError::MissingHandlers { task_types } = &error else {
            panic!("unexpected {error:?}");
        };
        let found: Vec<(&str, usize, Option<&str>)> = task_types
            .iter()
            .map(|m| (m.task_type.as_str(), m.tasks.len(), m.suggestion.as_deref()))
            .collect();
        assert_eq!(found, [("fetch", 1, None), ("stor", 2, Some("store"))]);
        assert_eq!(
            error.to_string(),
            "no handler for task type `fetch` (used by `b`)\n\
             no handler for task type `stor` (used by `c`, `d`); did you mean `store`?"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn an_invalid_workflow_is_reported_before_its_handlers_and_nothing_runs() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        echo(&engine, "ok");
        let workflow = Workflow::new("w", "W")
            .task(Task::new("load", "ok"))
            .task(Task::new("clean", "missing").depends_on(["laod"]));
        let error = engine
            .execute_workflow(&workflow)
            .await
            .expect_err("invalid");
        let RunError::Invalid(errors) = &error else {
            panic!("unexpected {error:?}");
        };
        assert!(matches!(
            errors.as_slice(),
            [ValidationError::UnknownDependency { suggestion: Some(id), .. }] if id == "load"
        ));
        assert_eq!(
            error.to_string(),
            "task `clean` depends on unknown task `laod`; did you mean `load`?"
        );
    });
}

#[test]
fn zero_concurrency_is_a_configuration_error() {
    assert_eq!(
        WorkflowEngine::with_max_concurrent(0).expect_err("zero"),
        ConfigError::ZeroConcurrency
    );
    assert_eq!(
        ConfigError::ZeroConcurrency.to_string(),
        "max_concurrent must be at least 1 (0 would let no task start)"
    );
}

/// Counts how many handler futures were dropped.
struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn cancelling_drops_every_running_handler_and_cancels_the_rest() {
    runtime().block_on(async {
        let engine = WorkflowEngine::builder()
            .max_concurrent(3)
            .cancel_grace_period(Duration::from_millis(100))
            .build()
            .expect("valid");
        let started = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (s, d) = (Arc::clone(&started), Arc::clone(&dropped));
        engine.register_handler("stubborn", move |_ctx: TaskContext| {
            let guard = DropGuard(Arc::clone(&d));
            s.fetch_add(1, Ordering::SeqCst);
            async move {
                let _guard = guard;
                // Ignores its cancellation token.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, TaskError>(Value::Null)
            }
        });
        let workflow = Workflow::from_tasks(
            "w",
            "W",
            (0..5).map(|i| Task::new(format!("t{i}"), "stubborn")),
        );
        let result = cancelled_after(&engine, &workflow, Duration::from_secs(1)).await;
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        assert_eq!(started.load(Ordering::SeqCst), 3);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            3,
            "every started future was dropped"
        );
        assert_eq!(result.tasks_with(TaskStatus::Cancelled).len(), 5);
        let running = record(&result, "t0");
        assert!(running.start_time.is_some() && running.end_time.is_some());
        assert_eq!(record(&result, "t4").start_time, None);
        // The reason only: the status beside it says "cancelled".
        for id in ["t0", "t4"] {
            assert_eq!(
                record(&result, id).error.as_deref(),
                Some("the run was cancelled"),
                "{id}"
            );
        }
    });
}

#[test]
fn a_handler_that_fails_when_cancelled_is_recorded_as_cancelled_with_its_error() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("quits", |ctx: TaskContext| async move {
            ctx.cancellation().cancelled().await;
            Err::<Value, _>(TaskError::new("stopped mid-batch"))
        });
        let workflow = Workflow::new("w", "W").task(Task::new("a", "quits"));
        let result = cancelled_after(&engine, &workflow, Duration::from_millis(10)).await;
        let a = record(&result, "a");
        assert_eq!(a.status, TaskStatus::Cancelled);
        assert_eq!(
            a.error.as_deref(),
            Some("the run was cancelled; the handler ended with: stopped mid-batch")
        );
    });
}

#[test]
fn handlers_that_honour_cancellation_finish_within_the_grace_period() {
    runtime().block_on(async {
        let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
        engine.register_handler("polite", |ctx: TaskContext| async move {
            ctx.cancellation().cancelled().await;
            Ok::<_, TaskError>(json!("wrapped up"))
        });
        echo(&engine, "ok");
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "polite"))
            .task(Task::new("b", "ok").depends_on(["a"]));
        let result = cancelled_after(&engine, &workflow, Duration::from_millis(10)).await;
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        let a = record(&result, "a");
        assert_eq!(
            (a.status, a.result.clone()),
            (TaskStatus::Completed, Some(json!("wrapped up")))
        );
        assert_eq!(record(&result, "b").status, TaskStatus::Cancelled);
    });
}

/// A handler that fails on hearing of a cancellation another handler made, both on the
/// run's task and so in one pass of the run, ends cancelled, and its dependents with it:
/// the run did not see the cancellation before the failure came in.
#[test]
fn a_handler_failing_on_a_cancellation_another_made_in_the_same_pass_ends_cancelled() {
    runtime().block_on(async {
        let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
        engine.register_handler("cancels", |ctx: TaskContext| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            ctx.cancellation().cancel();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, TaskError>(Value::Null)
        });
        engine.register_handler("quits", |ctx: TaskContext| async move {
            ctx.cancellation().cancelled().await;
            Err::<Value, _>(TaskError::new("interrupted"))
        });
        echo(&engine, "ok");
        let workflow = Workflow::new("w", "W")
            .task(Task::new("x", "cancels"))
            .task(Task::new("y", "quits"))
            .task(Task::new("z", "ok").depends_on(["y"]));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        let y = record(&result, "y");
        assert_eq!(
            (y.status, y.error.as_deref()),
            (
                TaskStatus::Cancelled,
                Some("the run was cancelled; the handler ended with: interrupted")
            )
        );
        assert_eq!(record(&result, "z").status, TaskStatus::Cancelled);
    });
}

#[test]
fn tasks_decided_after_a_cancellation_end_cancelled_not_skipped() {
    runtime().block_on(async {
        let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
        engine.register_handler("polite", |ctx: TaskContext| async move {
            ctx.cancellation().cancelled().await;
            Ok::<_, TaskError>(json!("wrapped up"))
        });
        engine.register_handler("gives_up", |ctx: TaskContext| async move {
            ctx.cancellation().cancelled().await;
            Err::<Value, _>(TaskError::skip("nothing left to do"))
        });
        echo(&engine, "ok");
        // A rule that would skip its task once `extract` completed, and a handler that
        // answers the cancellation by skipping: the tasks after them never ran.
        let workflow = Workflow::new("w", "W")
            .task(Task::new("extract", "polite"))
            .task(
                Task::new("alert", "ok")
                    .depends_on(["extract"])
                    .trigger_rule(orch_core::TriggerRule::OneFailed),
            )
            .task(
                Task::new("cleanup", "ok")
                    .depends_on(["extract"])
                    .trigger_rule(orch_core::TriggerRule::AllDone),
            )
            .task(Task::new("poll", "gives_up"))
            .task(Task::new("after_poll", "ok").depends_on(["poll"]));
        let result = cancelled_after(&engine, &workflow, Duration::from_millis(10)).await;
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        let status = |id| record(&result, id).status;
        assert_eq!(status("extract"), TaskStatus::Completed);
        assert_eq!(
            status("poll"),
            TaskStatus::Skipped,
            "the handler's own answer"
        );
        for id in ["alert", "cleanup", "after_poll"] {
            assert_eq!(status(id), TaskStatus::Cancelled, "{id}");
        }
    });
}

/// A handler that keeps its thread past its limit (here 200 ms against 50 ms) times out
/// wherever it runs: spawned, the run stops waiting at the limit; on the run's own task
/// (every handler on a current-thread runtime, an `inline` one anywhere) the run sees
/// the limit only once the poll returns, and the outcome it brings is not taken.
#[test]
fn a_handler_that_overruns_its_limit_within_one_poll_times_out() {
    let current_thread = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };
    let two_workers = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    };
    for (runtime, name) in [(current_thread(), "one thread"), (two_workers(), "two")] {
        // Blocks on its first poll or after one wait, and then returns or waits once more
        // (the poll that held the thread past the limit ends waiting).
        for (waits_first, waits_after) in
            [(false, false), (true, false), (false, true), (true, true)]
        {
            let engine = WorkflowEngine::new();
            engine.register_handler("blocks", move |_ctx: TaskContext| async move {
                if waits_first {
                    tokio::task::yield_now().await;
                }
                std::thread::sleep(Duration::from_millis(200));
                if waits_after {
                    tokio::task::yield_now().await;
                }
                Ok::<_, TaskError>(json!("late"))
            });
            let workflow = Workflow::new("w", "W")
                .task(Task::new("a", "blocks").timeout(Duration::from_millis(50)));
            let result = runtime
                .block_on(engine.execute_workflow(&workflow))
                .expect("valid");
            let a = record(&result, "a");
            let case = format!("{name}, waits first: {waits_first}, after: {waits_after}");
            assert_eq!(a.status, TaskStatus::Failed, "{case}");
            assert_eq!(a.error.as_deref(), Some("timed out after 0.05s"), "{case}");
        }
    }
    // What a handler on the run's own task failed with, late, is kept as a note.
    let engine = WorkflowEngine::new();
    engine.register_handler("fails_late", |_ctx: TaskContext| async move {
        std::thread::sleep(Duration::from_millis(200));
        Err::<Value, _>(TaskError::new("disk full"))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "fails_late").timeout(Duration::from_millis(50)));
    let result = current_thread()
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    assert_eq!(
        record(&result, "a").error.as_deref(),
        Some("timed out after 0.05s; disk full")
    );
    // A permanent failure, late, stays permanent: the handler said a retry cannot help.
    let engine = WorkflowEngine::new();
    engine.register_handler("refuses_late", |_ctx: TaskContext| async move {
        std::thread::sleep(Duration::from_millis(200));
        Err::<Value, _>(TaskError::permanent("bad input"))
    });
    let workflow = Workflow::new("w", "W").task(
        Task::new("a", "refuses_late")
            .timeout(Duration::from_millis(50))
            .retries(3),
    );
    let result = current_thread()
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    let a = record(&result, "a");
    assert_eq!(
        (a.attempts, a.error.as_deref()),
        (1, Some("timed out after 0.05s; bad input"))
    );
}

/// A handler whose wait ended within its limit is not timed out because the run, kept
/// busy by another handler holding the thread, got to it only after the limit.
#[test]
fn a_handler_polled_late_by_a_busy_run_is_not_timed_out() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
    engine.register_handler("waits", |_ctx: TaskContext| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, TaskError>(json!("in time"))
    });
    engine.register_handler("hogs", |_ctx: TaskContext| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        std::thread::sleep(Duration::from_millis(200));
        Ok::<_, TaskError>(json!(null))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "waits").timeout(Duration::from_millis(100)))
        .task(Task::new("b", "hogs"));
    let result = runtime
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    let a = record(&result, "a");
    assert_eq!(a.status, TaskStatus::Completed, "{:?}", a.error);
    assert_eq!(a.result, Some(json!("in time")));
}

/// A spawned handler that finished past its limit times out, although the run, kept busy
/// by a handler holding its thread, got to it only then (and found it finished).
#[test]
fn a_spawned_handler_that_finished_past_its_limit_times_out_however_late_the_run_looks() {
    let runtime = common::two_workers();
    let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
    let (told, heard) = std::sync::mpsc::channel();
    engine.register_handler("waits", move |ctx: TaskContext| {
        let (token, told) = (ctx.cancellation().clone(), told.clone());
        async move {
            tokio::spawn(async move {
                token.cancelled().await;
                let _ = told.send(());
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, TaskError>(json!("late"))
        }
    });
    engine.register_handler(
        "hogs",
        orch_engine::inline(|_ctx: TaskContext| async move {
            std::thread::sleep(Duration::from_millis(400));
            Ok::<_, TaskError>(json!(null))
        }),
    );
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "waits").timeout(Duration::from_millis(30)))
        .task(Task::new("b", "hogs"));
    let result = runtime
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    let a = record(&result, "a");
    assert_eq!(a.status, TaskStatus::Failed, "{:?}", a.result);
    assert_eq!(a.error.as_deref(), Some("timed out after 0.03s"));
    let told = heard.recv_timeout(Duration::from_secs(10));
    assert_eq!(told, Ok(()), "the helper heard of the timeout");
}

/// A handler on the run's own thread that overran its limit within one poll (its first,
/// or a later one) has its token cancelled, as at a deadline: a helper watching it stops.
#[test]
fn a_handler_that_overran_its_limit_within_one_poll_has_its_token_cancelled() {
    for waits_first in [false, true] {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let engine = WorkflowEngine::with_max_concurrent(1).expect("valid");
        let (told, heard) = std::sync::mpsc::channel();
        engine.register_handler("hogs", move |ctx: TaskContext| {
            let (token, told) = (ctx.cancellation().clone(), told.clone());
            async move {
                tokio::spawn(async move {
                    token.cancelled().await;
                    let _ = told.send(());
                });
                if waits_first {
                    tokio::task::yield_now().await;
                }
                std::thread::sleep(Duration::from_millis(60));
                Ok::<_, TaskError>(json!(null))
            }
        });
        let workflow =
            Workflow::new("w", "W").task(Task::new("a", "hogs").timeout(Duration::from_millis(20)));
        let result = runtime.block_on(async {
            let result = engine.execute_workflow(&workflow).await.expect("valid");
            // Time for the helper to run, on this thread.
            tokio::time::sleep(Duration::from_millis(10)).await;
            result
        });
        assert_eq!(record(&result, "a").status, TaskStatus::Failed);
        assert_eq!(heard.try_recv(), Ok(()), "waits first: {waits_first}");
    }
}

/// Runs task `a` (with `first`, its handler on the run's own task, and `retries`) beside
/// a quick task `b` on a current-thread runtime, in real time (the handler keeps the
/// run's thread busy); returns the result and how long after `a` started `b` did.
fn start_after(first: impl orch_engine::Handler, retries: u32) -> (WorkflowResult, Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
    engine.register_handler("first", first);
    engine.register_handler(
        "quick",
        orch_engine::inline(|_ctx: TaskContext| async move { Ok::<_, TaskError>(json!(null)) }),
    );
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "first").retries(retries))
        .task(Task::new("b", "quick"));
    let result = runtime
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    let start = |id| record(&result, id).start_time.expect("started");
    let later = start("b").duration_since(start("a")).unwrap_or_default();
    (result, later)
}

#[test]
fn a_task_started_after_a_slow_first_poll_gets_its_own_start_time() {
    let (_, later) = start_after(
        orch_engine::inline(|_ctx: TaskContext| async move {
            std::thread::sleep(Duration::from_millis(200));
            tokio::task::yield_now().await;
            Ok::<_, TaskError>(json!(null))
        }),
        0,
    );
    assert!(
        later >= Duration::from_millis(150),
        "b started {later:?} after a, whose first poll took 200 ms"
    );
}

#[test]
fn a_task_started_after_a_slow_first_poll_that_fails_into_a_retry_gets_its_own_start_time() {
    // The first attempt fails (and is tried again) without ever waiting.
    let (result, later) = start_after(
        orch_engine::inline(|ctx: TaskContext| async move {
            if ctx.attempt() == 1 {
                std::thread::sleep(Duration::from_millis(200));
                return Err(TaskError::new("not yet"));
            }
            Ok::<_, TaskError>(json!(null))
        }),
        1,
    );
    assert_eq!(record(&result, "a").attempts, 2);
    assert!(
        later >= Duration::from_millis(150),
        "b started {later:?} after a, whose failed first poll took 200 ms"
    );
}

#[test]
fn resume_runs_only_what_did_not_complete_and_feeds_stored_results() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        engine.register_handler("count", move |ctx: TaskContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, TaskError>(json!(ctx.task_id().len())) }
        });
        let healthy = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&healthy);
        engine.register_handler("sometimes", move |ctx: TaskContext| {
            let ok = flag.load(Ordering::SeqCst) > 0;
            async move {
                if !ok {
                    return Err(TaskError::new("not yet"));
                }
                let upstream = ctx.input_json("first")?;
                Ok(json!({"upstream": upstream}))
            }
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("first", "count"))
            .task(Task::new("middle", "sometimes").depends_on(["first"]))
            .task(Task::new("last", "count").depends_on(["middle"]));
        let failed = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(failed.status, WorkflowStatus::Failed);
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        healthy.store(1, Ordering::SeqCst);
        let resumed = engine.resume(&workflow, &failed).await.expect("valid");
        assert_eq!(resumed.status, WorkflowStatus::Completed);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "only `last` ran again");
        assert_eq!(resumed.task("first"), failed.task("first"));
        assert_eq!(
            record(&resumed, "middle").result,
            Some(json!({"upstream": 5}))
        );
    });
}

#[test]
fn resume_keeps_a_completed_task_that_gained_a_dependency() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        echo(&engine, "ok");
        let before = Workflow::new("w", "W")
            .task(Task::new("a", "ok"))
            .task(Task::new("b", "ok").depends_on(["a"]))
            .task(Task::new("c", "ok").depends_on(["b"]));
        let first = engine.execute_workflow(&before).await.expect("valid");
        assert_eq!(first.status, WorkflowStatus::Completed);
        let after = Workflow::new("w", "W")
            .task(Task::new("a", "ok"))
            .task(Task::new("new", "ok"))
            .task(Task::new("b", "ok").depends_on(["a", "new"]))
            .task(Task::new("c", "ok").depends_on(["b"]));
        let resumed = engine.resume(&after, &first).await.expect("valid");
        assert_eq!(resumed.status, WorkflowStatus::Completed);
        let new = record(&resumed, "new");
        assert_eq!(new.attempts, 1);
        assert!(
            new.start_time >= Some(first.end_time),
            "`new` ran in the resumed run"
        );
        for id in ["a", "b", "c"] {
            let (kept, was) = (resumed.task(id), first.task(id));
            assert_eq!(
                kept.map(|r| r.start_time),
                was.map(|r| r.start_time),
                "{id} kept"
            );
        }
    });
}

#[test]
fn resume_refuses_a_result_of_another_workflow() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        echo(&engine, "ok");
        let one = Workflow::new("one", "One").task(Task::new("a", "ok"));
        let other = Workflow::new("other", "Other").task(Task::new("a", "ok"));
        let result = engine.execute_workflow(&one).await.expect("valid");
        let error = engine.resume(&other, &result).await.expect_err("foreign");
        assert_eq!(
            error,
            RunError::ForeignResult {
                expected: "other".into(),
                found: "one".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "cannot resume workflow `other` from a result of workflow `one`"
        );
    });
}

#[test]
fn ready_tasks_start_in_execution_order() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&order);
        engine.register_handler("log", move |ctx: TaskContext| {
            log.lock().expect("lock").push(ctx.task_id().to_string());
            async move { Ok::<_, TaskError>(Value::Null) }
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("merge", "log").depends_on(["c", "a", "b"]))
            .task(Task::new("c", "log").depends_on(["prep"]))
            .task(Task::new("solo", "log"))
            .task(Task::new("a", "log").depends_on(["prep"]))
            .task(Task::new("prep", "log"))
            .task(Task::new("b", "log").depends_on(["prep"]));
        engine.execute_workflow(&workflow).await.expect("valid");
        let expected: Vec<String> = workflow
            .execution_order()
            .expect("valid")
            .iter()
            .map(|id| id.to_string())
            .collect();
        assert_eq!(*order.lock().expect("lock"), expected);
    });
}

#[test]
fn spawned_and_blocking_handlers_run_on_other_threads() {
    let runtime = common::two_workers();
    runtime.block_on(async {
        let engine = WorkflowEngine::with_max_concurrent(4).expect("valid");
        engine.register_handler("spawned", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(ctx.config()["n"].as_u64().unwrap_or(0) * 2)
        });
        engine.register_handler(
            "blocking",
            blocking(|ctx: TaskContext| {
                let doubled: u64 = ctx.input("s")?;
                Ok::<_, TaskError>(doubled + 1)
            }),
        );
        engine.register_handler(
            "blocking_panic",
            blocking(|_ctx: TaskContext| -> Result<Value, TaskError> {
                panic!("worker thread exploded")
            }),
        );
        let workflow = Workflow::new("w", "W")
            .task(Task::new("s", "spawned").config(json!({"n": 20})))
            .task(Task::new("b", "blocking").depends_on(["s"]))
            .task(Task::new("p", "blocking_panic"));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(record(&result, "b").result, Some(json!(41)));
        assert_eq!(
            record(&result, "p").error.as_deref(),
            Some("handler panicked: worker thread exploded")
        );
    });
}

/// A blocking handler that runs until its token is cancelled, then counts itself in
/// `told` and fails; or, once `give_up` is set, ends at once (a way out at a test's end).
fn watching_its_token(
    told: &Arc<AtomicUsize>,
    give_up: &Arc<AtomicBool>,
) -> impl orch_engine::Handler {
    let (told, give_up) = (Arc::clone(told), Arc::clone(give_up));
    blocking(move |ctx: TaskContext| {
        while !ctx.cancellation().is_cancelled() {
            if give_up.load(Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        told.fetch_add(1, Ordering::SeqCst);
        Err(TaskError::new("stopped"))
    })
}

/// A timed-out attempt's token is cancelled: a blocking handler (which the engine cannot
/// interrupt) that watches it stops, rather than running on beside the retries.
#[test]
fn a_timed_out_attempt_is_told_through_its_cancellation_token() {
    let runtime = common::two_workers();
    // Attempts that saw their token cancelled, and a way out for the others at the end.
    let told = Arc::new(AtomicUsize::new(0));
    let give_up = Arc::new(AtomicBool::new(false));
    runtime.block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("poll", watching_its_token(&told, &give_up));
        let workflow = Workflow::new("w", "W").task(
            Task::new("a", "poll")
                .timeout(Duration::from_millis(50))
                .retries(2),
        );
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        let a = record(&result, "a");
        assert_eq!((a.status, a.attempts), (TaskStatus::Failed, 3));
        assert_eq!(a.error.as_deref(), Some("timed out after 0.05s"));
        // The run itself was not cancelled: each attempt's own token was.
        let every_attempt_told = async {
            while told.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let waited = tokio::time::timeout(Duration::from_secs(30), every_attempt_told).await;
        give_up.store(true, Ordering::SeqCst);
        assert!(
            waited.is_ok(),
            "{} of 3 attempts heard of their timeout",
            told.load(Ordering::SeqCst)
        );
    });
}

/// A run dropped before its end (a caller's `timeout` or `select!` gave up on it) tells
/// the handlers it leaves behind through their tokens, the run's and an attempt's own
/// (a task with a timeout): a blocking handler, which dropping cannot stop, hears of it.
#[test]
fn a_run_dropped_unfinished_cancels_the_tokens_its_handlers_watch() {
    let runtime = common::two_workers();
    let told = Arc::new(AtomicUsize::new(0));
    let give_up = Arc::new(AtomicBool::new(false));
    runtime.block_on(async {
        let engine = WorkflowEngine::builder()
            .max_concurrent(2)
            .build()
            .expect("valid");
        engine.register_handler("poll", watching_its_token(&told, &give_up));
        let workflow = Workflow::new("w", "W")
            .task(Task::new("plain", "poll"))
            .task(Task::new("timed", "poll").timeout(Duration::from_secs(3600)));
        let gave_up = tokio::time::timeout(
            Duration::from_millis(100),
            engine.execute_workflow(&workflow),
        )
        .await;
        assert!(gave_up.is_err(), "the run cannot end on its own");
        let both_told = async {
            while told.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let waited = tokio::time::timeout(Duration::from_secs(30), both_told).await;
        give_up.store(true, Ordering::SeqCst);
        assert!(
            waited.is_ok(),
            "{} of 2 handlers heard that their run was dropped",
            told.load(Ordering::SeqCst)
        );
    });
}

/// A run dropped while only a pause before a retry is under way still tells what the
/// handlers that ended left watching their token.
#[test]
fn a_run_dropped_during_a_pause_cancels_the_token_its_handlers_left_watched() {
    let runtime = common::two_workers();
    let told = Arc::new(tokio::sync::Notify::new());
    runtime.block_on(async {
        let engine = WorkflowEngine::new();
        let watcher = Arc::clone(&told);
        engine.register_handler("leaves_a_watcher", move |ctx: TaskContext| {
            let told = Arc::clone(&watcher);
            async move {
                let token = ctx.cancellation().clone();
                tokio::spawn(async move {
                    token.cancelled().await;
                    told.notify_one();
                });
                Ok::<_, TaskError>(Value::Null)
            }
        });
        engine.register_handler("fail", |_ctx: TaskContext| async move {
            Err::<Value, _>(TaskError::new("not yet"))
        });
        let pause = orch_core::Backoff {
            initial: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
            ..orch_core::Backoff::default()
        };
        let workflow = Workflow::new("w", "W")
            .task(Task::new("watch", "leaves_a_watcher"))
            .task(
                Task::new("pausing", "fail")
                    .depends_on(["watch"])
                    .retries(1)
                    .backoff(pause),
            );
        let gave_up = tokio::time::timeout(
            Duration::from_millis(200),
            engine.execute_workflow(&workflow),
        )
        .await;
        assert!(gave_up.is_err(), "the run cannot end on its own");
        let heard = tokio::time::timeout(Duration::from_secs(30), told.notified()).await;
        assert!(
            heard.is_ok(),
            "the watcher never heard that its run was dropped"
        );
    });
}

/// An attempt with a timeout has a token of its own: a cancellation of the run reaches it
/// there too, whether the attempt started before the cancellation or not.
#[test]
fn a_timed_attempt_hears_its_runs_cancellation() {
    let runtime = common::two_workers();
    runtime.block_on(async {
        let engine = WorkflowEngine::builder()
            .max_concurrent(2)
            .cancel_grace_period(Duration::from_secs(600))
            .build()
            .expect("valid");
        let started = Arc::new(tokio::sync::Semaphore::new(0));
        let s = Arc::clone(&started);
        engine.register_handler("wait", move |ctx: TaskContext| {
            s.add_permits(1);
            async move {
                ctx.cancellation().cancelled().await;
                Err::<(), _>(TaskError::new("told"))
            }
        });
        let waiting = |id: &str| Task::new(id, "wait").timeout(Duration::from_secs(600));
        let workflow = Workflow::new("w", "W")
            .task(waiting("a"))
            .task(waiting("b"));
        let run = engine.run(&workflow);
        let cancel = run.cancellation_token();
        let run = tokio::spawn(run);
        drop(started.acquire_many(2).await.expect("both started"));
        cancel.cancel();
        // A guard against waiting for ever, not a measure: the grace period is ten
        // minutes, so a run that ends sooner had its handlers stop by themselves.
        let result = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the handlers heard the cancellation")
            .expect("no panic")
            .expect("valid");
        for id in ["a", "b"] {
            assert_eq!(record(&result, id).status, TaskStatus::Cancelled);
        }
    });
}

/// A handler stops helpers of its own through a child of its token; cancelling the token
/// itself (a task without a timeout has the run's) cancels the run.
#[test]
fn a_handler_stops_its_helpers_with_a_child_token_and_the_run_with_its_own() {
    let runtime = common::two_workers();
    runtime.block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("helpers", |ctx: TaskContext| async move {
            let helpers = ctx.cancellation().child_token();
            let helper = tokio::spawn(helpers.clone().cancelled_owned());
            helpers.cancel();
            helper.await.map_err(|e| TaskError::new(e.to_string()))?;
            Ok::<_, TaskError>(ctx.cancellation().is_cancelled())
        });
        engine.register_handler("stop", |ctx: TaskContext| async move {
            ctx.cancellation().cancel();
            Ok::<_, TaskError>(())
        });
        let two = |first: &str| {
            Workflow::new("w", "W")
                .task(Task::new("a", first))
                .task(Task::new("b", "helpers").depends_on(["a"]))
        };
        let result = engine
            .execute_workflow(&two("helpers"))
            .await
            .expect("valid");
        assert_eq!(result.status, WorkflowStatus::Completed);
        assert_eq!(record(&result, "b").result, Some(json!(false)));

        let result = engine.execute_workflow(&two("stop")).await.expect("valid");
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        assert_eq!(record(&result, "b").status, TaskStatus::Cancelled);
    });
}

/// A cancellation that comes when every task has ended cuts nothing short: the run's
/// status is its tasks' (here the last task, polled on the run's own task, cancels the
/// run and completes in that poll). One that comes while the last task runs cancels the
/// run, however that task then ends.
#[test]
fn a_cancellation_after_every_task_ended_leaves_the_run_completed() {
    let runtime = common::two_workers();
    runtime.block_on(async {
        // A free slot: the run looks for a cancellation right after each start.
        let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
        engine.register_handler("work", |_ctx: TaskContext| async { Ok::<_, TaskError>(1) });
        engine.register_handler(
            "stop",
            orch_engine::inline(|ctx: TaskContext| async move {
                ctx.cancellation().cancel();
                Ok::<_, TaskError>(())
            }),
        );
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "work"))
            .task(Task::new("b", "stop").depends_on(["a"]));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(record(&result, "b").status, TaskStatus::Completed);
        assert_eq!(result.status, WorkflowStatus::Completed);

        engine.register_handler(
            "stop",
            orch_engine::inline(|ctx: TaskContext| async move {
                ctx.cancellation().cancel();
                // Still running when the run hears of it; then it wraps up.
                tokio::task::yield_now().await;
                Ok::<_, TaskError>(())
            }),
        );
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(record(&result, "b").status, TaskStatus::Completed);
        assert_eq!(result.status, WorkflowStatus::Cancelled);
    });
}

#[test]
fn one_engine_runs_workflows_concurrently() {
    let runtime = common::two_workers();
    runtime.block_on(async {
        let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
        // Each run's `t0` waits until all four runs' are running: runs taken one after
        // another would never get there.
        let all_running = Arc::new(tokio::sync::Barrier::new(4));
        engine.register_handler("nap", move |ctx: TaskContext| {
            let all_running = Arc::clone(&all_running);
            async move {
                if ctx.task_id().as_str() == "t0" {
                    tokio::time::timeout(Duration::from_secs(30), all_running.wait())
                        .await
                        .map_err(|_| TaskError::permanent("the four runs did not overlap"))?;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, TaskError>(json!(ctx.task_id().as_str()))
            }
        });
        let workflow =
            Workflow::from_tasks("w", "W", (0..20).map(|i| Task::new(format!("t{i}"), "nap")));
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let engine = engine.clone();
                let workflow = workflow.clone();
                tokio::spawn(async move { engine.execute_workflow(&workflow).await })
            })
            .collect();
        for run in runs {
            let result = run.await.expect("no panic").expect("valid");
            assert_eq!(result.tasks_with(TaskStatus::Completed).len(), 20);
        }
    });
}

#[test]
fn registering_a_type_again_replaces_its_handler() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        assert!(
            engine
                .register_handler("t", |_ctx: TaskContext| async move {
                    Ok::<_, TaskError>(json!(1))
                })
                .is_none()
        );
        assert!(
            engine
                .register_handler("t", |_ctx: TaskContext| async move {
                    Ok::<_, TaskError>(json!(2))
                })
                .is_some()
        );
        let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(record(&result, "a").result, Some(json!(2)));
    });
}

/// A timeout too long for the clock to reach is no limit: the run neither panics nor
/// times the task out (inline, spawned, or as a map's instances). On one thread every
/// handler runs on the run's task; on two, `wait` is spawned.
#[test]
fn a_timeout_beyond_the_clock_is_no_limit() {
    for runtime in [runtime(), common::two_workers()] {
        a_timeout_beyond_the_clock_is_no_limit_on(runtime);
    }
}

fn a_timeout_beyond_the_clock_is_no_limit_on(runtime: tokio::runtime::Runtime) {
    runtime.block_on(async {
        let engine = WorkflowEngine::new();
        let wait = |_ctx: TaskContext| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, TaskError>(1)
        };
        engine.register_handler("wait", wait);
        engine.register_handler("wait_inline", orch_engine::inline(wait));
        engine.register_handler("list", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(json!([1, 2]))
        });
        let forever = Duration::MAX;
        let workflow = Workflow::new("w", "W")
            .task(Task::new("spawned", "wait").timeout(forever))
            .task(Task::new("inline", "wait_inline").timeout(forever))
            .task(Task::new("list", "list"))
            .task(
                Task::new("each", "wait_inline")
                    .map_over("list")
                    .timeout(forever),
            );
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(result.status, WorkflowStatus::Completed, "{result:?}");
        assert_eq!(record(&result, "each").result, Some(json!([1, 1])));
    });
}

/// A run cancelled while a failed task pauses before its retry (no handler running)
/// ends at once, not when the pause or the grace period would have ended.
/// A retry still running when the run is cancelled, past the grace period, keeps what
/// the attempt before it failed with.
#[test]
fn a_retry_dropped_at_cancellation_keeps_the_failure_before_it() {
    runtime().block_on(async {
        let engine = WorkflowEngine::builder()
            .cancel_grace_period(Duration::from_millis(10))
            .build()
            .expect("valid");
        engine.register_handler("fails_then_hangs", |ctx: TaskContext| async move {
            if ctx.attempt() == 1 {
                return Err::<Value, _>(TaskError::new("first try failed"));
            }
            std::future::pending().await
        });
        // No pause before the retry, so that it runs when the cancellation comes.
        let at_once = orch_core::Backoff {
            initial: Duration::ZERO,
            ..orch_core::Backoff::default()
        };
        let workflow = Workflow::new("w", "W").task(
            Task::new("a", "fails_then_hangs")
                .retries(1)
                .backoff(at_once),
        );
        let result = cancelled_after(&engine, &workflow, Duration::from_millis(100)).await;
        let a = record(&result, "a");
        assert_eq!((a.status, a.attempts), (TaskStatus::Cancelled, 2));
        assert_eq!(
            a.error.as_deref(),
            Some("the run was cancelled; its last failed attempt ended with: first try failed")
        );
    });
}

#[test]
fn a_cancelled_run_does_not_wait_for_a_pause_before_a_retry() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("fail", |_ctx: TaskContext| async move {
            Err::<Value, _>(TaskError::new("not yet"))
        });
        engine.register_handler("list", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(json!([1, 2]))
        });
        let pause = orch_core::Backoff {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(60),
            ..orch_core::Backoff::default()
        };
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "fail").retries(3).backoff(pause))
            .task(Task::new("list", "list"))
            .task(
                Task::new("each", "fail")
                    .map_over("list")
                    .retries(3)
                    .backoff(pause),
            );
        let started = tokio::time::Instant::now();
        let result = cancelled_after(&engine, &workflow, Duration::from_millis(100)).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the run waited {:?} (the clock is paused: this is the pause, not the machine)",
            started.elapsed()
        );
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        assert_eq!(record(&result, "a").status, TaskStatus::Cancelled);
        assert_eq!(record(&result, "a").attempts, 1);
        // What the paused attempt failed with is kept.
        for task in ["a", "each[0]"] {
            assert_eq!(
                record(&result, task).error.as_deref(),
                Some("the run was cancelled; its last failed attempt ended with: not yet"),
                "{task}"
            );
        }
    });
}
