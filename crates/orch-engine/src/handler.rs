//! [`Handler`]: what runs a task, and [`TaskError`]: how it fails.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::TaskContext;

/// Runs the tasks of one task type.
///
/// Implement it for a type, or register an async closure
/// `|ctx: TaskContext| async move { ... }`: every such closure is a `Handler`. Handler
/// futures are polled on the engine's own task, so a handler that does CPU-heavy work
/// should hand it off: wrap it in [`spawned`] to run each call as its own tokio task (in
/// parallel on a multi-threaded runtime), or register a plain function with [`blocking`].
///
/// ```
/// use orch_engine::{Handler, TaskContext, TaskError};
/// use serde_json::{Value, json};
///
/// struct Fetch;
///
/// #[async_trait::async_trait]
/// impl Handler for Fetch {
///     async fn call(&self, ctx: TaskContext) -> Result<Value, TaskError> {
///         let source = ctx.config()["source"].as_str().unwrap_or("default");
///         Ok(json!({"data": format!("fetched from {source}")}))
///     }
/// }
/// ```
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt of one task.
    async fn call(&self, ctx: TaskContext) -> Result<Value, TaskError>;
}

#[async_trait]
impl<F, Fut> Handler for F
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
{
    async fn call(&self, ctx: TaskContext) -> Result<Value, TaskError> {
        self(ctx).await
    }
}

/// Wraps a handler so that each call runs as its own tokio task.
///
/// On a multi-threaded runtime, calls then run in parallel on the runtime's workers,
/// which suits CPU-heavy async handlers. When the run is cancelled or the attempt times
/// out, the spawned task is aborted. A panic inside it fails the task like any other; a
/// panic while tokio drops an aborted task's future is contained by tokio, after the
/// engine has recorded the timeout or cancellation, so the record does not mention it.
///
/// ```
/// use orch_engine::{TaskContext, WorkflowEngine, spawned};
/// use serde_json::json;
///
/// let engine = WorkflowEngine::new();
/// engine.register_handler("hash", spawned(|ctx: TaskContext| async move {
///     let n = ctx.config()["n"].as_u64().unwrap_or(0);
///     Ok(json!((0..n).fold(0u64, |h, i| h.wrapping_mul(31).wrapping_add(i))))
/// }));
/// ```
pub fn spawned(handler: impl Handler) -> impl Handler {
    Spawned(Arc::new(handler))
}

struct Spawned<H>(Arc<H>);

#[async_trait]
impl<H: Handler> Handler for Spawned<H> {
    async fn call(&self, ctx: TaskContext) -> Result<Value, TaskError> {
        let handler = Arc::clone(&self.0);
        let task = AbortOnDrop(tokio::spawn(async move { handler.call(ctx).await }));
        join(task).await
    }
}

/// Registers a plain (synchronous) function as a handler: each call runs on tokio's
/// blocking thread pool, so CPU-heavy or blocking work never stalls the engine.
///
/// A blocking call cannot be interrupted: on cancellation or timeout the engine stops
/// waiting for it, but the thread runs the function to its end.
///
/// ```
/// use orch_engine::{TaskContext, WorkflowEngine, blocking};
/// use serde_json::json;
///
/// let engine = WorkflowEngine::new();
/// engine.register_handler("sum", blocking(|ctx: TaskContext| {
///     let values = ctx.config()["values"].as_array().cloned().unwrap_or_default();
///     Ok(json!(values.iter().filter_map(|v| v.as_f64()).sum::<f64>()))
/// }));
/// ```
pub fn blocking<F>(function: F) -> impl Handler
where
    F: Fn(TaskContext) -> Result<Value, TaskError> + Send + Sync + 'static,
{
    Blocking(Arc::new(function))
}

struct Blocking<F>(Arc<F>);

#[async_trait]
impl<F> Handler for Blocking<F>
where
    F: Fn(TaskContext) -> Result<Value, TaskError> + Send + Sync + 'static,
{
    async fn call(&self, ctx: TaskContext) -> Result<Value, TaskError> {
        let function = Arc::clone(&self.0);
        let task = AbortOnDrop(tokio::task::spawn_blocking(move || function(ctx)));
        join(task).await
    }
}

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn join(mut task: AbortOnDrop<Result<Value, TaskError>>) -> Result<Value, TaskError> {
    match (&mut task.0).await {
        Ok(outcome) => outcome,
        Err(error) if error.is_panic() => {
            Err(TaskError::new(panic_message(error.into_panic().as_ref())))
        }
        Err(error) => Err(TaskError::new(format!(
            "spawned handler did not finish: {error}"
        ))),
    }
}

/// The text of a panic payload: the message of `panic!("...")`, or a placeholder.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic payload that is not a string)")
}

/// The error of a handler that panicked while it ran.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    format!("handler panicked: {}", panic_text(payload))
}

/// The note for a handler whose future panicked while it was dropped.
pub(crate) fn drop_panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    format!("handler panicked when dropped: {}", panic_text(payload))
}

/// Why one attempt of a task failed.
///
/// Any error type converts into it with `?`, keeping its message (and the messages of its
/// sources). A failure marked [`TaskError::permanent`] is not retried.
///
/// ```
/// use orch_engine::TaskError;
///
/// fn parse(text: &str) -> Result<i64, TaskError> {
///     Ok(text.trim().parse::<i64>()?)
/// }
/// assert_eq!(parse("42").ok(), Some(42));
/// assert_eq!(parse("x").unwrap_err().to_string(), "invalid digit found in string");
/// assert!(TaskError::permanent("bad input").is_permanent());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    message: String,
    permanent: bool,
}

impl TaskError {
    /// A failure that may be retried (if the task allows retries).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure that retrying cannot fix: the task fails at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }

    /// The message recorded for the task.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retries are skipped for this failure.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The same failure with `note` added to its message.
    pub(crate) fn with_note(mut self, note: &str) -> Self {
        self.message.push_str("; ");
        self.message.push_str(note);
        self
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::new(message)
    }
}
