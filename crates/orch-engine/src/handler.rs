//! [`Handler`]: what runs a task; [`inline`] and [`blocking`] choose where it runs.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::task::AbortOnDropHandle;

use crate::{IntoOutput, Output, TaskContext, TaskError};

/// Runs the tasks of one task type.
///
/// Register an `async fn` or an async closure, or implement the trait for a type.
///
/// **Functions and closures** take a [`TaskContext`] and return `Result<T, E>`, where
/// `T` is any [`IntoOutput`] (every `T: Serialize`, or a [`Shared`](crate::Shared)
/// value) and `E` any error that converts into `Box<dyn Error + Send + Sync>`:
/// [`TaskError`], `anyhow::Error`, a boxed error, any `std::error::Error`. An `async fn`
/// names both in its signature, so `async fn extract(ctx: TaskContext) ->
/// anyhow::Result<Rows>` registers as it is. A closure must name its error type once,
/// usually in its last expression: `|ctx: TaskContext| async move { ...;
/// Ok::<_, TaskError>(value) }`.
///
/// ```
/// use anyhow::Context;
/// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Rows { count: usize }
///
/// async fn extract(ctx: TaskContext) -> anyhow::Result<Rows> {
///     let path = ctx.config()["path"].as_str().unwrap_or("rows.csv");
///     let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
///     Ok(Rows { count: text.lines().count() })
/// }
///
/// let engine = WorkflowEngine::new();
/// engine.register_handler("extract", extract);
/// engine.register_handler("check", |ctx: TaskContext| async move {
///     let rows: Rows = ctx.input("extract")?;
///     Ok::<_, TaskError>(rows.count > 0)
/// });
/// ```
///
/// **Types** implement the trait with [`async_trait`](crate::async_trait) and return an
/// [`Output`]:
///
/// ```
/// use orch_engine::{Handler, Output, TaskContext, TaskError, async_trait};
/// use serde_json::json;
///
/// struct Fetch;
///
/// #[async_trait]
/// impl Handler for Fetch {
///     async fn call(&self, ctx: TaskContext) -> Result<Output, TaskError> {
///         let source = ctx.config()["source"].as_str().unwrap_or("default");
///         Ok(json!({"data": format!("fetched from {source}")}).into())
///     }
/// }
/// ```
///
/// **Where a handler runs.** On a multi-threaded tokio runtime, each attempt runs as a
/// tokio task of its own, so handlers that compute run in parallel on the runtime's
/// workers. Spawning costs a little per attempt; a handler that only awaits and finishes
/// quickly can run on the run's own task instead: wrap it in [`inline`] (or return `true`
/// from [`Handler::runs_inline`]). On a current-thread runtime, every handler runs on
/// the run's task. [`blocking`] runs a synchronous function on tokio's blocking threads.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt of one task.
    async fn call(&self, ctx: TaskContext) -> Result<Output, TaskError>;

    /// Whether attempts run on the run's own task rather than as tokio tasks of their own
    /// (`false` unless the handler says otherwise; see [`inline`]).
    fn runs_inline(&self) -> bool {
        false
    }
}

#[async_trait]
impl<F, Fut, T, E> Handler for F
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: IntoOutput,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
{
    async fn call(&self, ctx: TaskContext) -> Result<Output, TaskError> {
        match self(ctx).await {
            Ok(value) => value.into_output(),
            Err(error) => Err(TaskError::from_handler(error)),
        }
    }
}

/// The boxed future a [`Handler`] returns.
type CallFuture<'b> = Pin<Box<dyn Future<Output = Result<Output, TaskError>> + Send + 'b>>;

/// Runs `handler`'s attempts on the run's own task, not as tokio tasks of their own.
///
/// For handlers that only await (a request, a channel, a timer) and do little work
/// between awaits: each attempt then costs no task spawn. A handler that computes for
/// long holds up the whole run while it does, so leave such handlers un-wrapped. (Nor
/// can the run stop it at its task's timeout while it computes: it times out once it
/// returns or next waits, whatever it returned.)
///
/// ```
/// use orch_engine::{TaskContext, TaskError, WorkflowEngine, inline};
///
/// let engine = WorkflowEngine::new();
/// engine.register_handler("ping", inline(|ctx: TaskContext| async move {
///     Ok::<_, TaskError>(format!("pong from {}", ctx.task_id()))
/// }));
/// ```
pub fn inline(handler: impl Handler) -> impl Handler {
    Inline(handler)
}

struct Inline<H>(H);

impl<H: Handler> Handler for Inline<H> {
    fn call<'a, 'b>(&'a self, ctx: TaskContext) -> CallFuture<'b>
    where
        'a: 'b,
    {
        self.0.call(ctx)
    }

    fn runs_inline(&self) -> bool {
        true
    }
}

/// Registers a synchronous function as a handler: each call runs on tokio's blocking
/// thread pool, so blocking I/O never stalls the engine. It returns what an async
/// handler does: `Result<T, E>` with `T: IntoOutput` and an error type that converts
/// into `Box<dyn Error + Send + Sync>`.
///
/// A blocking call cannot be interrupted: on cancellation or timeout the engine stops
/// waiting for it, but the thread runs the function to its end. Meanwhile its slots
/// (global and pool) go to other tasks, and a retry may run beside it: a function that
/// holds a scarce resource should watch `ctx.cancellation()` and return early.
///
/// ```
/// use orch_engine::{TaskContext, TaskError, WorkflowEngine, blocking};
///
/// let engine = WorkflowEngine::new();
/// engine.register_handler("read", blocking(|ctx: TaskContext| {
///     let path = ctx.config()["path"].as_str().unwrap_or("/dev/null");
///     Ok::<_, TaskError>(std::fs::read_to_string(path)?.len())
/// }));
/// ```
pub fn blocking<F, T, E>(function: F) -> impl Handler
where
    F: Fn(TaskContext) -> Result<T, E> + Send + Sync + 'static,
    T: IntoOutput + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + Send + 'static,
{
    Blocking(Arc::new(function))
}

struct Blocking<F>(Arc<F>);

#[async_trait]
impl<F, T, E> Handler for Blocking<F>
where
    F: Fn(TaskContext) -> Result<T, E> + Send + Sync + 'static,
    T: IntoOutput + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + Send + 'static,
{
    async fn call(&self, ctx: TaskContext) -> Result<Output, TaskError> {
        let function = Arc::clone(&self.0);
        let task =
            AbortOnDropHandle::new(tokio::task::spawn_blocking(move || match function(ctx) {
                Ok(value) => value.into_output(),
                Err(error) => Err(TaskError::from_handler(error)),
            }));
        joined(task.await)
    }

    /// The call already leaves the run's task.
    fn runs_inline(&self) -> bool {
        true
    }
}

/// [`Handler::runs_inline`], with a panic there contained: logged, and taken as `false`
/// (the handler's attempts are spawned, where a panic in its call fails the attempt).
pub(crate) fn runs_inline(handler: &dyn Handler) -> bool {
    let asked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.runs_inline()));
    asked.unwrap_or_else(|panic| {
        let panic = panic_text(panic);
        tracing::warn!(%panic, "a handler's runs_inline panicked; its attempts are spawned");
        false
    })
}

/// The outcome of a spawned attempt, from what its join handle gave: a panic in it fails
/// the attempt with the panic's message.
pub(crate) fn joined(
    outcome: Result<Result<Output, TaskError>, tokio::task::JoinError>,
) -> Result<Output, TaskError> {
    match outcome {
        Ok(outcome) => outcome,
        Err(error) if error.is_panic() => Err(TaskError::new(panic_message(error.into_panic()))),
        Err(error) => Err(TaskError::new(format!(
            "the handler's task did not finish: {error}"
        ))),
    }
}

/// The text of a panic payload: the message of `panic!("...")`, or a placeholder. The
/// payload is dropped inside a panic guard: one given to `std::panic::panic_any` may
/// panic when dropped, which would otherwise unwind into the run (the payload of that
/// second panic is leaked, not dropped).
pub(crate) fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = (payload.downcast_ref::<&str>().copied())
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic payload that is not a string)")
        .to_owned();
    drop_contained(payload);
    text
}

/// Drops `value` inside a panic guard, where the run's own code drops what a handler
/// made (a panic there would take the run down); whether its drop panicked. The payload
/// of that panic is leaked: it may panic when dropped too.
pub(crate) fn drop_contained<T>(value: T) -> bool {
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)));
    dropped.map_err(std::mem::forget).is_err()
}

/// The error of a handler that panicked while it ran.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    format!("handler panicked: {}", panic_text(payload))
}

/// The note for a handler whose future panicked while it was dropped.
pub(crate) fn drop_panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    format!("handler panicked when dropped: {}", panic_text(payload))
}
