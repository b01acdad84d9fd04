//! Runtimes without a timer: what needs one is refused before anything runs, and what
//! does not runs as usual.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use orch_core::{Backoff, Task, TaskRecord, TaskStatus, Workflow, WorkflowResult, WorkflowStatus};
use orch_engine::{RunError, TaskContext, TaskError, WorkflowEngine};
use serde_json::Value;

/// A current-thread runtime built without `enable_time`.
fn timerless_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

fn record<'r>(result: &'r WorkflowResult, id: &str) -> &'r TaskRecord {
    result.task(id).expect("recorded")
}

/// `errors` is one `InvalidOption` for `task`'s `option` that says a timer is missing.
fn assert_needs_timer(error: &RunError, expected: &[(&str, &str)]) {
    let RunError::NoTimer { options, .. } = error else {
        panic!("unexpected error: {error}");
    };
    assert!(
        error.to_string().contains("enable_time"),
        "says what to do: {error}"
    );
    let need = if expected.len() == 1 {
        "` needs"
    } else {
        "` need"
    };
    assert!(error.to_string().contains(need), "{error}");
    let found: Vec<(&str, &str)> = options.iter().map(|(t, o)| (t.as_str(), *o)).collect();
    assert_eq!(found, expected);
}

fn counting_handler(
    engine: &WorkflowEngine,
    task_type: &str,
    fail_first: usize,
) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    engine.register_handler(task_type, move |_ctx: TaskContext| {
        let call = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if call < fail_first {
                Err(TaskError::new("not yet"))
            } else {
                Ok(Value::Null)
            }
        }
    });
    calls
}

#[test]
fn timeouts_and_retry_pauses_on_a_runtime_without_a_timer_are_refused_before_anything_runs() {
    timerless_runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let calls = counting_handler(&engine, "t", 0);
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "t"))
            .task(Task::new("b", "t").timeout(Duration::from_secs(1)))
            .task(Task::new("c", "t").retries(2))
            .task(Task::new("d", "t").depends_on(["a"]));
        let errors = engine
            .execute_workflow(&workflow)
            .await
            .expect_err("no timer for b and c");
        assert_needs_timer(&errors, &[("b", "timeout"), ("c", "backoff")]);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing ran");
    });
}

#[test]
fn outside_a_tokio_runtime_a_timeout_is_refused_too() {
    let engine = WorkflowEngine::new();
    let calls = counting_handler(&engine, "t", 0);
    let workflow =
        Workflow::new("w", "W").task(Task::new("a", "t").timeout(Duration::from_secs(1)));
    let errors = engine
        .execute_workflow(&workflow)
        .now_or_never()
        .expect("refused at once")
        .expect_err("no timer");
    assert_needs_timer(&errors, &[("a", "timeout")]);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn retries_without_a_pause_need_no_timer() {
    timerless_runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let calls = counting_handler(&engine, "t", 2);
        let no_pause = Backoff {
            initial: Duration::ZERO,
            ..Backoff::default()
        };
        let workflow =
            Workflow::new("w", "W").task(Task::new("a", "t").retries(3).backoff(no_pause));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        let a = record(&result, "a");
        assert_eq!((a.status, a.attempts), (TaskStatus::Completed, 3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn a_run_cancelled_on_a_runtime_without_a_timer_ends_without_a_grace_period() {
    timerless_runtime().block_on(async {
        let engine = WorkflowEngine::builder()
            .max_concurrent(2)
            .build()
            .expect("valid");
        engine.register_handler("polite", |ctx: TaskContext| async move {
            ctx.cancellation().cancelled().await;
            Ok::<_, TaskError>(Value::from("wrapped up"))
        });
        engine.register_handler("stubborn", |_ctx: TaskContext| async move {
            std::future::pending::<()>().await;
            Ok::<_, TaskError>(Value::Null)
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "polite"))
            .task(Task::new("b", "stubborn"));
        let run = engine.run(&workflow);
        let token = run.cancellation_token();
        let runner = tokio::spawn(run);
        tokio::task::yield_now().await;
        token.cancel();
        let result = runner.await.expect("no panic").expect("valid");
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        // A handler that finishes on the poll right after the cancellation is recorded;
        // the rest are dropped at once.
        assert_eq!(record(&result, "a").status, TaskStatus::Completed);
        let b = record(&result, "b");
        assert_eq!(
            (b.status, b.error.as_deref()),
            (TaskStatus::Cancelled, Some("the run was cancelled"))
        );
    });
}

#[test]
fn retries_without_a_pause_let_the_runtime_run_other_tasks() {
    timerless_runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let elsewhere = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&elsewhere);
        // Fails at once until another task of the runtime has run.
        engine.register_handler("t", move |_ctx: TaskContext| {
            let ran = seen.load(Ordering::SeqCst);
            async move {
                match ran {
                    0 => Err(TaskError::new("not yet")),
                    _ => Ok(Value::Null),
                }
            }
        });
        let other = tokio::spawn(async move {
            elsewhere.fetch_add(1, Ordering::SeqCst);
        });
        let no_pause = Backoff {
            initial: Duration::ZERO,
            ..Backoff::default()
        };
        let workflow =
            Workflow::new("w", "W").task(Task::new("a", "t").retries(100_000).backoff(no_pause));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        let a = record(&result, "a");
        assert_eq!(a.status, TaskStatus::Completed);
        assert!(a.attempts < 100_000, "{} attempts", a.attempts);
        other.await.expect("ran");
    });
}

/// A durable run refused for want of a timer leaves nothing in the journal (it once
/// recorded the run's start, and `orch runs list` showed a run that never ran); a resumed
/// one whose tasks needing a timer all completed before still runs.
#[cfg(feature = "journal")]
#[test]
fn a_durable_run_refused_for_want_of_a_timer_is_not_recorded() {
    use orch_core::RunId;
    use orch_journal::{Durability, FileJournal, Journal};

    let dir = tempfile::tempdir().expect("a directory");
    let durable = || {
        let journal = FileJournal::new(dir.path()).expect("a journal");
        WorkflowEngine::builder()
            .journal(journal, Durability::Process)
            .build()
            .expect("valid")
    };
    let run_id = RunId::parse("timerless").expect("an id");
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(Task::new("b", "t").timeout(Duration::from_secs(5)));
    let engine = durable();
    counting_handler(&engine, "t", 0);
    let errors = timerless_runtime()
        .block_on(engine.run_durable(&workflow, run_id.clone()))
        .expect_err("no timer for b");
    assert_needs_timer(&errors, &[("b", "timeout")]);
    let journal = FileJournal::new(dir.path()).expect("a journal");
    let recorded = timerless_runtime()
        .block_on(journal.load(&run_id))
        .expect("readable");
    assert!(recorded.is_none(), "the refused run is not in the journal");

    // Run once with a timer, then resumed without one: `b` completed and is kept.
    let timed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let first = timed
        .block_on(engine.run_durable(&workflow, run_id.clone()))
        .expect("runs");
    assert_eq!(first.status, WorkflowStatus::Completed);
    let grown = workflow.clone().task(Task::new("c", "t").depends_on(["b"]));
    let again = durable();
    let calls = counting_handler(&again, "t", 0);
    let resumed = timerless_runtime()
        .block_on(again.run_durable(&grown, run_id))
        .expect("b needs no timer: it is kept");
    assert_eq!(resumed.status, WorkflowStatus::Completed);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "only c ran");
}

/// A run whose journal file holds only the start of its first line (its process was
/// killed as it began the run) is begun afresh when opened: without a timer, it is
/// refused for want of one, as a new run is, not for the torn line.
#[cfg(feature = "journal")]
#[test]
fn a_run_whose_first_line_was_torn_is_refused_for_want_of_a_timer() {
    use orch_core::RunId;
    use orch_journal::{Durability, FileJournal};

    let dir = tempfile::tempdir().expect("a directory");
    let journal = FileJournal::new(dir.path()).expect("a journal");
    let run_id = RunId::parse("torn").expect("an id");
    std::fs::write(journal.path_of(&run_id), br#"{"v":1,"#).expect("written");
    let engine = WorkflowEngine::builder()
        .journal(journal, Durability::Process)
        .build()
        .expect("valid");
    counting_handler(&engine, "t", 0);
    let workflow =
        Workflow::new("w", "W").task(Task::new("a", "t").timeout(Duration::from_secs(5)));
    let errors = timerless_runtime()
        .block_on(engine.run_durable(&workflow, run_id))
        .expect_err("no timer for a");
    assert_needs_timer(&errors, &[("a", "timeout")]);
}
