//! Handler futures that panic when they are dropped: after a timeout, at cancellation,
//! after they finished, or with a dropped run; and a handler that panics before its future
//! exists. The engine contains every such panic.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use orch_core::RunId;
use orch_core::{Task, TaskStatus, Workflow, WorkflowResult, WorkflowStatus};
use orch_engine::{
    Handler, Output, RemoteTask, TaskContext, TaskError, WorkflowEngine, blocking, run_attempt,
};
use serde_json::Value;

mod common;
use common::{error_of, paused_runtime, record};

/// What a hand-written handler's `call` returns.
type HandlerFuture<'b> = Pin<Box<dyn Future<Output = Result<Output, TaskError>> + Send + 'b>>;

/// Panics when dropped (unless the thread is already unwinding), after counting the drop.
struct Bomb {
    message: &'static str,
    drops: Arc<AtomicUsize>,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if !std::thread::panicking() {
            panic!("{}", self.message);
        }
    }
}

/// A handler that never finishes by itself (it ignores its cancellation token) and panics
/// when its future is dropped; returns the count of such drops, and of its calls.
fn bomb_handler(message: &'static str) -> (impl Handler, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (counter, called) = (Arc::clone(&drops), Arc::clone(&calls));
    let handler = move |_ctx: TaskContext| {
        called.fetch_add(1, Ordering::SeqCst);
        let bomb = Bomb {
            message,
            drops: Arc::clone(&counter),
        };
        async move {
            let _bomb = bomb;
            std::future::pending::<()>().await;
            Ok::<_, TaskError>(Value::Null)
        }
    };
    (handler, drops, calls)
}

/// An engine running `max_concurrent` tasks at once, with a 1 s grace period.
fn engine(max_concurrent: usize) -> WorkflowEngine {
    WorkflowEngine::builder()
        .max_concurrent(max_concurrent)
        .cancel_grace_period(Duration::from_secs(1))
        .build()
        .expect("valid")
}

/// Runs `workflow` on a task of its own, cancels it once `calls` counts `started` handler
/// calls, and returns its result.
async fn cancel_once_started(
    engine: &WorkflowEngine,
    workflow: &Workflow,
    (calls, started): (&AtomicUsize, usize),
) -> WorkflowResult {
    let run = engine.run(workflow);
    let token = run.cancellation_token();
    let runner = tokio::spawn(run);
    while calls.load(Ordering::SeqCst) < started {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    token.cancel();
    runner.await.expect("no panic").expect("valid")
}

fn ok_handler(engine: &WorkflowEngine) {
    engine.register_handler("ok", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
}

#[test]
fn a_handler_that_panics_when_dropped_after_its_timeout_fails_with_both_messages() {
    paused_runtime().block_on(async {
        let engine = engine(2);
        let (bomb, drops, _) = bomb_handler("boom");
        engine.register_handler("bomb", bomb);
        ok_handler(&engine);
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "bomb").timeout(Duration::from_secs(2)))
            .task(Task::new("b", "ok"))
            .task(Task::new("c", "ok").depends_on(["a"]));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(result.status, WorkflowStatus::Failed);
        assert_eq!(
            error_of(&result, "a"),
            (
                TaskStatus::Failed,
                Some("timed out after 2s; handler panicked when dropped: boom")
            )
        );
        assert_eq!(record(&result, "b").status, TaskStatus::Completed);
        assert_eq!(record(&result, "c").status, TaskStatus::Skipped);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_handler_that_panics_when_dropped_at_cancellation_is_cancelled_with_the_message() {
    paused_runtime().block_on(async {
        let engine = engine(3);
        let (bomb, drops, calls) = bomb_handler("boom");
        engine.register_handler("bomb", bomb);
        ok_handler(&engine);
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "bomb"))
            .task(Task::new("b", "bomb"))
            .task(Task::new("c", "ok").depends_on(["a"]));
        let result = cancel_once_started(&engine, &workflow, (&calls, 2)).await;
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        for id in ["a", "b"] {
            assert_eq!(
                error_of(&result, id),
                (
                    TaskStatus::Cancelled,
                    Some("the run was cancelled; handler panicked when dropped: boom")
                )
            );
        }
        assert_eq!(
            error_of(&result, "c"),
            (TaskStatus::Cancelled, Some("the run was cancelled"))
        );
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn a_map_instance_that_panics_when_dropped_at_cancellation_keeps_the_message() {
    paused_runtime().block_on(async {
        let engine = engine(4);
        let (bomb, drops, calls) = bomb_handler("boom");
        engine.register_handler("bomb", bomb);
        engine.register_handler("list", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(serde_json::json!([1, 2]))
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "bomb"))
            .task(Task::new("list", "list"))
            .task(Task::new("m", "bomb").map_over("list"));
        let result = cancel_once_started(&engine, &workflow, (&calls, 3)).await;
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        for id in ["a", "m[0]", "m[1]"] {
            assert_eq!(
                error_of(&result, id),
                (
                    TaskStatus::Cancelled,
                    Some("the run was cancelled; handler panicked when dropped: boom")
                ),
                "{id}"
            );
        }
        assert_eq!(drops.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn dropping_a_run_contains_the_panic_of_a_handler_dropped_with_it() {
    paused_runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let (bomb, drops, _) = bomb_handler("boom");
        engine.register_handler("bomb", bomb);
        let workflow = Workflow::new("w", "W").task(Task::new("a", "bomb"));
        let mut run = engine.run(&workflow);
        let waited = tokio::time::timeout(Duration::from_secs(1), &mut run).await;
        assert!(waited.is_err(), "the handler never finishes");
        let dropped = catch_unwind(AssertUnwindSafe(move || drop(run)));
        assert!(dropped.is_ok(), "the handler's panic left the engine");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// Finishes at once with a value (or, when `skips`, by asking to be skipped), and panics
/// when dropped afterwards.
struct DoneThenBomb {
    skips: bool,
    _bomb: Bomb,
}

impl Future for DoneThenBomb {
    type Output = Result<Output, TaskError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match self.skips {
            true => Err(TaskError::skip("not needed")),
            false => Ok(Value::from("done").into()),
        })
    }
}

/// A handler written by hand (not with `async fn`), whose future panics when dropped
/// after it finished (having asked to be skipped when `skips`).
struct Late {
    drops: Arc<AtomicUsize>,
    skips: bool,
}

impl Handler for Late {
    fn call<'a, 'b>(&'a self, _ctx: TaskContext) -> HandlerFuture<'b>
    where
        'a: 'b,
    {
        Box::pin(DoneThenBomb {
            skips: self.skips,
            _bomb: Bomb {
                message: "late",
                drops: Arc::clone(&self.drops),
            },
        })
    }
}

/// On the run's own task (one thread) and spawned (two) alike.
#[test]
fn a_finished_future_that_panics_when_dropped_fails_its_task() {
    for runtime in [paused_runtime(), common::two_workers()] {
        a_finished_future_that_panics_when_dropped_fails_its_task_on(runtime);
    }
}

fn a_finished_future_that_panics_when_dropped_fails_its_task_on(runtime: tokio::runtime::Runtime) {
    runtime.block_on(async {
        let engine = WorkflowEngine::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let late = |skips| Late {
            drops: Arc::clone(&drops),
            skips,
        };
        engine.register_handler("late", late(false));
        engine.register_handler("late_skip", late(true));
        ok_handler(&engine);
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "late"))
            .task(Task::new("b", "ok").depends_on(["a"]))
            .task(Task::new("c", "ok"))
            .task(Task::new("s", "late_skip"));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(result.status, WorkflowStatus::Failed);
        assert_eq!(
            error_of(&result, "a"),
            (
                TaskStatus::Failed,
                Some("handler panicked when dropped: late")
            )
        );
        assert_eq!(record(&result, "a").result, None);
        assert_eq!(record(&result, "b").status, TaskStatus::Skipped);
        assert_eq!(record(&result, "c").status, TaskStatus::Completed);
        // A skip asked for by a future that then panics when dropped is a failure too.
        assert_eq!(
            error_of(&result, "s"),
            (
                TaskStatus::Failed,
                Some("not needed; handler panicked when dropped: late")
            )
        );
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn a_spawned_handler_that_panics_when_dropped_is_contained_on_timeout_and_cancel() {
    // On a multi-threaded runtime handlers are spawned; its clock cannot be paused, and
    // nothing here depends on how long anything takes.
    let runtime = common::two_workers();
    runtime.block_on(async {
        let engine = engine(2);
        let (bomb, drops, calls) = bomb_handler("boom");
        engine.register_handler("bomb", bomb);
        ok_handler(&engine);
        let timed = Workflow::new("w", "W")
            .task(Task::new("a", "bomb").timeout(Duration::from_millis(20)))
            .task(Task::new("b", "ok").depends_on(["a"]));
        let result = engine.execute_workflow(&timed).await.expect("valid");
        // The spawned future is dropped on the runtime after the engine moved on: its
        // panic is contained there, and the record says what the engine saw.
        assert_eq!(
            error_of(&result, "a"),
            (TaskStatus::Failed, Some("timed out after 0.02s"))
        );
        assert_eq!(record(&result, "b").status, TaskStatus::Skipped);

        let cancelled = Workflow::new("w", "W")
            .task(Task::new("a", "bomb"))
            .task(Task::new("b", "ok").depends_on(["a"]));
        // Its second call, the first being the timed run's.
        let result = cancel_once_started(&engine, &cancelled, (&calls, 2)).await;
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        assert_eq!(record(&result, "a").status, TaskStatus::Cancelled);
        assert_eq!(record(&result, "b").status, TaskStatus::Cancelled);
        // Let the runtime drop the aborted tasks.
        let dropped = tokio::time::timeout(Duration::from_secs(10), async {
            while drops.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(dropped.await.is_ok(), "both aborted futures are dropped");
    });
}

#[test]
fn a_blocking_handler_that_panics_after_the_engine_stopped_waiting_is_contained() {
    // Blocking calls hold tokio's paused clock, so this runtime keeps real time; nothing
    // here depends on how long anything takes.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let engine = WorkflowEngine::builder()
            .cancel_grace_period(Duration::from_millis(1))
            .build()
            .expect("valid");
        let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let (g, s, f) = (
            Arc::clone(&gate),
            Arc::clone(&started),
            Arc::clone(&finished),
        );
        engine.register_handler(
            "stuck",
            blocking(move |_ctx: TaskContext| -> Result<Value, TaskError> {
                s.fetch_add(1, Ordering::SeqCst);
                let (open, opened) = &*g;
                let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                while !*open {
                    open = opened.wait(open).unwrap_or_else(|e| e.into_inner());
                }
                f.fetch_add(1, Ordering::SeqCst);
                panic!("too late");
            }),
        );
        let timed =
            Workflow::new("w", "W").task(Task::new("a", "stuck").timeout(Duration::from_millis(1)));
        let result = engine.execute_workflow(&timed).await.expect("valid");
        assert_eq!(
            error_of(&result, "a"),
            (TaskStatus::Failed, Some("timed out after 0.001s"))
        );

        // A call whose thread had not picked it up when its timeout aborted it never
        // runs (likely on a loaded machine), so count from what has started so far.
        let before = started.load(Ordering::SeqCst);
        let cancelled = Workflow::new("w", "W").task(Task::new("a", "stuck"));
        let run = engine.run(&cancelled);
        let token = run.cancellation_token();
        let runner = tokio::spawn(run);
        while started.load(Ordering::SeqCst) <= before {
            tokio::task::yield_now().await;
        }
        token.cancel();
        let result = runner.await.expect("no panic").expect("valid");
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        assert_eq!(record(&result, "a").status, TaskStatus::Cancelled);

        // Let the calls panic on their threads, and wait until they did.
        *gate.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        gate.1.notify_all();
        while finished.load(Ordering::SeqCst) < started.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    });
    drop(runtime);
}

/// An error whose `Display` panics.
#[derive(Debug)]
struct Unprintable;

impl std::fmt::Display for Unprintable {
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("cannot print this error")
    }
}

impl std::error::Error for Unprintable {}

/// Runs task `bad` (with `retries`), whose handler fails with `error()`, beside an
/// independent task, the run in a task of its own: a panic out of the run would end it.
fn run_failing_beside_another(
    error: impl Fn() -> TaskError + Send + Sync + Copy + 'static,
    retries: u32,
) -> WorkflowResult {
    paused_runtime().block_on(async {
        let engine = engine(1);
        ok_handler(&engine);
        engine.register_handler("bad", move |_ctx: TaskContext| async move {
            Err::<Value, _>(error())
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("bad", "bad").retries(retries))
            .task(Task::new("independent", "ok"));
        let result = tokio::spawn(engine.run(&workflow))
            .await
            .expect("the panic stays out of the run")
            .expect("valid");
        assert_eq!(record(&result, "independent").status, TaskStatus::Completed);
        result
    })
}

#[test]
fn an_error_whose_display_panics_fails_its_task_and_the_run_goes_on() {
    let result = run_failing_beside_another(|| TaskError::new(Unprintable), 0);
    assert_eq!(
        error_of(&result, "bad"),
        (
            TaskStatus::Failed,
            Some("the handler's error could not be written as text (its Display panicked)")
        )
    );
}

/// An error that panics when dropped (as one owning a tokio runtime does, dropped in
/// async code).
#[derive(Debug)]
struct PanicsWhenDropped;

impl std::fmt::Display for PanicsWhenDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("it will not go quietly")
    }
}

impl std::error::Error for PanicsWhenDropped {}

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("an error dropped");
        }
    }
}

#[test]
fn an_error_that_panics_when_dropped_fails_its_task_and_the_run_goes_on() {
    let result = run_failing_beside_another(|| TaskError::new(PanicsWhenDropped), 1);
    let bad = record(&result, "bad");
    assert_eq!((bad.status, bad.attempts), (TaskStatus::Failed, 2));
    assert_eq!(bad.error.as_deref(), Some("it will not go quietly"));
}

/// An error that is its own source.
#[derive(Debug)]
struct OwnSource;

impl std::fmt::Display for OwnSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("its own source")
    }
}

impl std::error::Error for OwnSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self)
    }
}

/// One of two errors that are each other's source.
#[derive(Debug)]
struct Ring(u8);

static RING_0: Ring = Ring(0);
static RING_1: Ring = Ring(1);

impl std::fmt::Display for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ring {}", self.0)
    }
}

impl std::error::Error for Ring {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(if self.0 == 0 { &RING_1 } else { &RING_0 })
    }
}

/// Errors whose chain of sources goes round a loop: each fails its task with the chain's
/// text up to where it comes back, and the run ends (before, the engine followed the
/// loop for ever). Returned as they are, and wrapped in a `TaskError`.
#[test]
fn an_error_whose_sources_loop_fails_its_task_and_the_run_ends() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = paused_runtime().block_on(async {
            let engine = engine(4);
            engine.register_handler("own", |_ctx: TaskContext| async move {
                Err::<Value, _>(OwnSource)
            });
            engine.register_handler("ring", |_ctx: TaskContext| async move {
                Err::<Value, _>(Ring(0))
            });
            engine.register_handler("wrapped", |_ctx: TaskContext| async move {
                Err::<Value, _>(TaskError::permanent(Ring(1)))
            });
            let workflow = Workflow::new("w", "W")
                .task(Task::new("own", "own").retries(0))
                .task(Task::new("ring", "ring").retries(0))
                .task(Task::new("wrapped", "wrapped"));
            engine.run(&workflow).await.expect("valid")
        });
        let _ = done.send(result);
    });
    let result = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the run ends");
    assert_eq!(
        error_of(&result, "own"),
        (TaskStatus::Failed, Some("its own source"))
    );
    assert_eq!(
        error_of(&result, "ring"),
        (TaskStatus::Failed, Some("ring 0: ring 1: ring 0"))
    );
    assert_eq!(
        error_of(&result, "wrapped"),
        (TaskStatus::Failed, Some("ring 1: ring 0: ring 1"))
    );
    assert_eq!(record(&result, "wrapped").attempts, 1, "it stays permanent");
}

/// A handler written by hand that runs inline and panics in `call` itself, before it
/// returns a future.
struct PanicsAtCall;

impl Handler for PanicsAtCall {
    fn call<'a, 'b>(&'a self, _ctx: TaskContext) -> HandlerFuture<'b>
    where
        'a: 'b,
    {
        panic!("at call")
    }

    fn runs_inline(&self) -> bool {
        true
    }
}

#[test]
fn a_handler_that_panics_before_its_future_exists_fails_its_attempt_locally_and_remotely() {
    paused_runtime().block_on(async {
        let task = RemoteTask::new(RunId::new(), "w", Task::new("a", "t"), 1);
        let ctx = task.context().expect("a valid task");
        let outcome = run_attempt(Arc::new(PanicsAtCall), ctx).await;
        let error = outcome.expect_err("the panic fails the attempt");
        assert_eq!(error.to_string(), "handler panicked: at call");

        let engine = WorkflowEngine::new();
        engine.register_handler("t", PanicsAtCall);
        let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(
            error_of(&result, "a"),
            (TaskStatus::Failed, Some("handler panicked: at call"))
        );
    });
}

/// A handler written by hand whose `runs_inline` panics: its attempts are spawned.
struct PanicsWhenAsked;

impl Handler for PanicsWhenAsked {
    fn call<'a, 'b>(&'a self, _ctx: TaskContext) -> HandlerFuture<'b>
    where
        'a: 'b,
    {
        Box::pin(async { Ok(Output::from(Value::from("ran"))) })
    }

    fn runs_inline(&self) -> bool {
        panic!("asked")
    }
}

#[test]
fn a_handler_whose_runs_inline_panics_runs_spawned_in_a_run_and_alone() {
    common::two_workers().block_on(async {
        let task = RemoteTask::new(RunId::new(), "w", Task::new("a", "t"), 1);
        let ctx = task.context().expect("a valid task");
        let outcome = run_attempt(Arc::new(PanicsWhenAsked), ctx).await;
        assert!(outcome.is_ok(), "{:?}", outcome.err());

        let engine = WorkflowEngine::new();
        engine.register_handler("t", PanicsWhenAsked);
        let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(record(&result, "a").result, Some(Value::from("ran")));
    });
}

/// `run_attempt` contains a panic in dropping a handler's future as a run does: one that
/// finished fails its attempt, inline or spawned, and one dropped unfinished is logged.
#[test]
fn run_attempt_contains_a_panic_when_the_handlers_future_is_dropped() {
    common::two_workers().block_on(async {
        let context = || {
            let task = RemoteTask::new(RunId::new(), "w", Task::new("a", "t"), 1);
            task.context().expect("a valid task")
        };
        let drops = Arc::new(AtomicUsize::new(0));
        let late = || Late {
            drops: Arc::clone(&drops),
            skips: false,
        };
        let handlers: [Arc<dyn Handler>; 2] =
            [Arc::new(late()), Arc::new(orch_engine::inline(late()))];
        for handler in handlers {
            let inline = handler.runs_inline();
            let outcome = tokio::spawn(run_attempt(handler, context())).await;
            let error = outcome.expect("no panic").expect_err("the panic fails it");
            assert_eq!(
                error.to_string(),
                "handler panicked when dropped: late",
                "inline: {inline}"
            );
        }
        assert_eq!(drops.load(Ordering::SeqCst), 2);

        let (bomb, drops, _) = bomb_handler("boom");
        let mut running = Box::pin(run_attempt(Arc::new(orch_engine::inline(bomb)), context()));
        let waited = tokio::time::timeout(Duration::from_millis(10), &mut running).await;
        assert!(waited.is_err(), "the handler never finishes");
        let dropped = catch_unwind(AssertUnwindSafe(move || drop(running)));
        assert!(dropped.is_ok(), "the handler's panic left run_attempt");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// Panics when polled, and again when dropped, even while a panic unwinds.
struct PanicTwice;

impl Drop for PanicTwice {
    fn drop(&mut self) {
        panic!("again when dropped");
    }
}

struct PollsPanicking(PanicTwice);

impl Future for PollsPanicking {
    type Output = Result<Output, TaskError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        panic!("when polled")
    }
}

struct TwicePanicking;

impl Handler for TwicePanicking {
    fn call<'a, 'b>(&'a self, _ctx: TaskContext) -> HandlerFuture<'b>
    where
        'a: 'b,
    {
        Box::pin(PollsPanicking(PanicTwice))
    }
}

/// A future that panics when polled and again when dropped fails its attempt with both
/// messages, spawned or inline, through `run_attempt` or a run: the second panic never
/// happens during the first's unwinding, which would abort the process.
#[test]
fn a_future_panicking_when_polled_and_when_dropped_fails_its_attempt() {
    let expected =
        "handler panicked: when polled; handler panicked when dropped: again when dropped";
    common::two_workers().block_on(async {
        let handlers: [Arc<dyn Handler>; 2] = [
            Arc::new(TwicePanicking),
            Arc::new(orch_engine::inline(TwicePanicking)),
        ];
        for handler in handlers {
            let task = RemoteTask::new(RunId::new(), "w", Task::new("a", "t"), 1);
            let ctx = task.context().expect("a valid task");
            let inline = handler.runs_inline();
            let error = run_attempt(handler, ctx).await.expect_err("it fails");
            assert_eq!(error.to_string(), expected, "inline: {inline}");
        }
        let engine = WorkflowEngine::new();
        engine.register_handler("t", TwicePanicking);
        let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(error_of(&result, "a"), (TaskStatus::Failed, Some(expected)));
    });
}

/// A shared output whose value panics when the run lets it go (a map instance's once
/// its record is written, a task's at the run's end) leaves the run and its result whole.
#[test]
fn a_shared_output_that_panics_when_dropped_does_not_take_the_run_down() {
    let engine = engine(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&drops);
    engine.register_handler("share", move |_ctx: TaskContext| {
        let bomb = Bomb {
            message: "a shared value dropped",
            drops: Arc::clone(&counter),
        };
        async move { Ok::<_, TaskError>(orch_engine::Shared::new(bomb)) }
    });
    engine.register_handler("list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(serde_json::json!([1, 2]))
    });
    ok_handler(&engine);
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(Task::new("each", "share").map_over("list"))
        .task(Task::new("one", "share"))
        .task(Task::new("after", "ok").depends_on(["one", "each"]));
    let result = paused_runtime()
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    assert_eq!(result.status, WorkflowStatus::Completed);
    for id in ["each[0]", "each[1]", "one", "after"] {
        assert_eq!(record(&result, id).status, TaskStatus::Completed, "{id}");
    }
    assert_eq!(drops.load(Ordering::SeqCst), 3, "every shared value let go");
}

/// A handler that panics with a payload that itself panics when dropped (given to
/// `std::panic::panic_any`) fails its task, and the run goes on: the payload was once
/// dropped in the run's own code, and that second panic ended the run.
#[test]
fn a_panic_whose_payload_panics_when_dropped_fails_its_task_and_the_run_goes_on() {
    let result = paused_runtime().block_on(async {
        let engine = engine(1);
        ok_handler(&engine);
        engine.register_handler("bad", |_ctx: TaskContext| async move {
            if true {
                std::panic::panic_any(PanicsWhenDropped);
            }
            Ok::<Value, TaskError>(Value::Null)
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("bad", "bad"))
            .task(Task::new("independent", "ok"));
        tokio::spawn(engine.run(&workflow))
            .await
            .expect("the panic stays out of the run")
            .expect("valid")
    });
    assert_eq!(record(&result, "independent").status, TaskStatus::Completed);
    assert_eq!(
        error_of(&result, "bad"),
        (
            TaskStatus::Failed,
            Some("handler panicked: (a panic payload that is not a string)")
        )
    );
}

/// An error whose `Display` panics with a payload that itself panics when dropped.
#[derive(Debug)]
struct UnprintableToTheEnd;

impl std::fmt::Display for UnprintableToTheEnd {
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::panic::panic_any(PanicsWhenDropped)
    }
}

impl std::error::Error for UnprintableToTheEnd {}

#[test]
fn an_error_whose_display_panics_with_a_payload_that_panics_when_dropped_is_contained() {
    let result = run_failing_beside_another(|| TaskError::new(UnprintableToTheEnd), 0);
    assert_eq!(
        error_of(&result, "bad"),
        (
            TaskStatus::Failed,
            Some("the handler's error could not be written as text (its Display panicked)")
        )
    );
}
