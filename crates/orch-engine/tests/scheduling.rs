//! The engine's basic promises, each shown on its own: a task starts as soon as its
//! dependencies completed and a slot is free; a panic is retried as an error is; a
//! handler sees the workflow it runs in; nothing runs when the workflow is invalid; a
//! chain of a million tasks neither overflows the stack nor takes quadratic time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orch_core::{Task, TaskStatus, Workflow, WorkflowStatus};
use orch_engine::{RunError, TaskContext, TaskError, WorkflowEngine};
use serde_json::json;

mod common;
use common::{paused_runtime, record};

/// Without trigger rules, `b` starts once `a` completed, while the slow `c` still runs:
/// the run does not wait for a whole level to end.
#[test]
fn a_task_starts_as_soon_as_its_dependencies_completed_and_a_slot_is_free() {
    let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
    engine.register_handler("nap", |ctx: TaskContext| async move {
        let ms = ctx.config()["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, TaskError>(json!(null))
    });
    let nap = |id: &str, ms: u64| Task::new(id, "nap").config(json!({ "ms": ms }));
    let workflow = Workflow::new("w", "W")
        .task(nap("a", 10))
        .task(nap("c", 500))
        .task(nap("b", 10).depends_on(["a"]));
    let result = paused_runtime()
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    let (a, b, c) = (
        record(&result, "a"),
        record(&result, "b"),
        record(&result, "c"),
    );
    assert_eq!(b.start_time, a.end_time, "b starts when a ends");
    assert!(b.end_time < c.end_time, "b ran while c did");
}

/// A panic fails an attempt as an error does, and the task's retries run it again.
#[test]
fn a_panicking_handler_is_retried_like_a_failing_one() {
    let engine = WorkflowEngine::new();
    engine.register_handler("panics_once", |ctx: TaskContext| async move {
        if ctx.attempt() == 1 {
            panic!("first try");
        }
        Ok::<_, TaskError>(json!(ctx.attempt()))
    });
    engine.register_handler("always_panics", |_ctx: TaskContext| async move {
        if true {
            panic!("every try");
        }
        Ok::<_, TaskError>(json!(null))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("once", "panics_once").retries(1))
        .task(Task::new("always", "always_panics").retries(2));
    let result = paused_runtime()
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    let once = record(&result, "once");
    assert_eq!((once.status, once.attempts), (TaskStatus::Completed, 2));
    assert_eq!(once.result, Some(json!(2)));
    let always = record(&result, "always");
    assert_eq!((always.status, always.attempts), (TaskStatus::Failed, 3));
    assert_eq!(always.error.as_deref(), Some("handler panicked: every try"));
}

/// A handler sees the workflow its task belongs to (the original module passed it to
/// every handler).
#[test]
fn a_handler_sees_the_workflow_it_runs_in() {
    let engine = WorkflowEngine::new();
    engine.register_handler("describe", |ctx: TaskContext| async move {
        let workflow = ctx.workflow();
        let tasks = workflow.tasks().len();
        Ok::<_, TaskError>(json!([workflow.workflow_id(), workflow.name(), tasks]))
    });
    let workflow = Workflow::new("nightly", "Nightly ETL")
        .task(Task::new("a", "describe"))
        .task(Task::new("b", "describe").depends_on(["a"]));
    let result = paused_runtime()
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    for id in ["a", "b"] {
        assert_eq!(
            record(&result, id).result,
            Some(json!(["nightly", "Nightly ETL", 2]))
        );
    }
}

/// An invalid workflow (an unknown dependency, a map over a task that is not a
/// dependency) runs none of its tasks, not even the valid ones.
#[test]
fn nothing_runs_when_the_workflow_is_invalid() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = WorkflowEngine::new();
    engine.register_handler("counted", {
        let calls = Arc::clone(&calls);
        move |_ctx: TaskContext| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, TaskError>(json!([1, 2])) }
        }
    });
    let mut unmapped = Task::new("each", "counted");
    unmapped.map = Some(orch_core::MapSpec::over("list"));
    let invalid = [
        Workflow::new("w", "W")
            .task(Task::new("load", "counted"))
            .task(Task::new("clean", "counted").depends_on(["laod"])),
        Workflow::new("w", "W")
            .task(Task::new("list", "counted"))
            .task(unmapped),
    ];
    for workflow in invalid {
        let refused = paused_runtime().block_on(engine.execute_workflow(&workflow));
        assert!(matches!(refused, Err(RunError::Invalid(_))), "{refused:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no handler was called");
}

/// A chain of a million tasks whose first fails: every other task is skipped, on a
/// thread with a small stack (nothing is recursive), in one pass over the chain.
#[test]
fn a_million_task_chain_with_a_failing_first_task_skips_the_rest() {
    const TASKS: usize = 1_000_000;
    let run = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let engine = WorkflowEngine::new();
            engine.register_handler("fails", |_ctx: TaskContext| async move {
                Err::<(), _>(TaskError::new("broken"))
            });
            engine.register_handler("ok", |_ctx: TaskContext| async move {
                Ok::<_, TaskError>(json!(null))
            });
            let chain = (0..TASKS).map(|i| match i {
                0 => Task::new("t0", "fails"),
                _ => Task::new(format!("t{i}"), "ok").depends_on([format!("t{}", i - 1)]),
            });
            let workflow = Workflow::from_tasks("chain", "Chain", chain);
            paused_runtime()
                .block_on(engine.execute_workflow(&workflow))
                .expect("valid")
        })
        .expect("a thread");
    let result = run.join().expect("no stack overflow");
    assert_eq!(result.status, WorkflowStatus::Failed);
    assert_eq!(result.tasks_with(TaskStatus::Failed).len(), 1);
    assert_eq!(result.tasks_with(TaskStatus::Skipped).len(), TASKS - 1);
    let last = record(&result, &format!("t{}", TASKS - 1));
    assert_eq!(last.error.as_deref(), Some("dependency `t0` failed"));
}
