//! [`TaskError`]: how one attempt of a task fails, or ends its task as skipped.

use std::error::Error;
use std::fmt;

/// An error as handlers return it: any error type, boxed.
type BoxError = Box<dyn Error + Send + Sync>;

/// Why one attempt of a task did not complete: a failure (retried if the task allows
/// it, unless [permanent](TaskError::permanent)), or a [skip](TaskError::skip).
///
/// A `TaskError` wraps the original error: its `Display` is that error's message, its
/// [`source`](Error::source) is the original error itself (whose own sources follow), and
/// [`TaskError::downcast_ref`] reaches it typed. The task's record keeps the whole chain
/// as text, `outer: inner: root`, each message once. (A generic chain printer, such as
/// anyhow's `{:#}`, shows the original's message twice: the wrapper's and its source's.)
///
/// `?` converts into it from [`anyhow::Error`], `Box<dyn Error + Send + Sync>`, `String`,
/// `&str`, [`std::io::Error`] and [`serde_json::Error`]; [`TaskError::new`] takes any other
/// error. A handler need not return `TaskError` at all: closures and `async fn`s may
/// return any error type that converts into `Box<dyn Error + Send + Sync>` (such as
/// `anyhow::Error`), and a `TaskError` inside such an error, even under added context,
/// keeps its permanence or skip.
///
/// ```
/// use orch_engine::TaskError;
///
/// fn parse(text: &str) -> Result<i64, TaskError> {
///     text.trim().parse::<i64>().map_err(TaskError::permanent)
/// }
/// assert_eq!(parse("42").ok(), Some(42));
/// let error = parse("x").unwrap_err();
/// assert_eq!(error.to_string(), "invalid digit found in string");
/// assert!(error.is_permanent());
/// assert!(error.downcast_ref::<std::num::ParseIntError>().is_some());
///
/// let io = std::io::Error::other("disk full");
/// let error = anyhow::Error::from(TaskError::permanent(io)).context("writing the report");
/// assert!(TaskError::from(error).is_permanent());
/// ```
pub struct TaskError {
    error: BoxError,
    kind: Kind,
}

/// What the engine does with a task whose attempt ended with this error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Fail the attempt; retry if the task allows it.
    Retry,
    /// Fail the task at once.
    Permanent,
    /// End the task as skipped.
    Skip,
}

impl TaskError {
    /// A failure caused by `error`, retried if the task allows retries. When `error` is,
    /// or wraps, a `TaskError`, its permanence or skip is kept; for an [`anyhow::Error`]
    /// use `TaskError::from` (or `?`), as boxing an `anyhow::Error` hides a `TaskError`
    /// at its top.
    pub fn new(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self::from_boxed(error.into())
    }

    /// A failure that retrying cannot fix: the task fails at once.
    pub fn permanent(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self::with_kind(error.into(), Kind::Permanent)
    }

    /// Ends the task as skipped rather than failed, with `reason` as its record's error:
    /// a condition for running it was not met. The tasks that depend on it, directly or
    /// not, are skipped too (unless their trigger rules run them after a skipped
    /// dependency: see `orch_core::TriggerRule`), and the workflow does not fail because
    /// of it. A skip is never retried.
    ///
    /// ```
    /// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
    /// use orch_core::{Task, TaskStatus, Workflow, WorkflowStatus};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = WorkflowEngine::new();
    /// engine.register_handler("notify", |ctx: TaskContext| async move {
    ///     if ctx.config()["enabled"] != true {
    ///         return Err(TaskError::skip("notifications are off"));
    ///     }
    ///     Ok("sent")
    /// });
    /// let workflow = Workflow::new("w", "W")
    ///     .task(Task::new("notify", "notify"))
    ///     .task(Task::new("log", "notify").depends_on(["notify"]));
    /// let result = engine.execute_workflow(&workflow).await?;
    /// assert_eq!(result.status, WorkflowStatus::Completed);
    /// let notify = result.task("notify").unwrap();
    /// assert_eq!(notify.status, TaskStatus::Skipped);
    /// assert_eq!(notify.error.as_deref(), Some("notifications are off"));
    /// let log = result.task("log").unwrap();
    /// assert_eq!(log.error.as_deref(), Some("dependency `notify` was skipped"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn skip(reason: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self::with_kind(reason.into(), Kind::Skip)
    }

    /// Whether retries are skipped for this failure.
    pub fn is_permanent(&self) -> bool {
        self.kind == Kind::Permanent
    }

    /// Whether this ends the task as skipped rather than failed.
    pub fn is_skip(&self) -> bool {
        self.kind == Kind::Skip
    }

    /// The original error.
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.error
    }

    /// The original error, if it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error.downcast_ref::<E>()
    }

    /// The original error, owned.
    pub fn into_inner(mut self) -> Box<dyn Error + Send + Sync> {
        std::mem::replace(&mut self.error, Box::new(Taken))
    }

    fn with_kind(error: BoxError, kind: Kind) -> Self {
        match error.downcast::<TaskError>() {
            Ok(task_error) => Self {
                error: task_error.into_inner(),
                kind,
            },
            Err(error) => Self { error, kind },
        }
    }

    /// Takes a boxed error as it is: a `TaskError` in it, at its top or anywhere in its
    /// chain of sources, gives its kind.
    pub(crate) fn from_boxed(error: BoxError) -> Self {
        let error = match error.downcast::<TaskError>() {
            Ok(task_error) => return *task_error,
            Err(error) => error,
        };
        let kind = causes(&*error)
            .find_map(|cause| cause.downcast_ref::<TaskError>())
            .map_or(Kind::Retry, |inner| inner.kind);
        Self { error, kind }
    }

    /// The error a handler returned, of any type that boxes; an `anyhow::Error` keeps the
    /// kind of a `TaskError` inside it.
    pub(crate) fn from_handler<E>(error: E) -> Self
    where
        E: Into<Box<dyn Error + Send + Sync>> + 'static,
    {
        let mut slot = Some(error);
        let any: &mut dyn std::any::Any = &mut slot;
        if let Some(anyhow) = any
            .downcast_mut::<Option<anyhow::Error>>()
            .and_then(Option::take)
        {
            return Self::from(anyhow);
        }
        match slot {
            Some(error) => Self::from_boxed(error.into()),
            None => unreachable!("only an anyhow error is taken out"),
        }
    }

    /// The same failure (of the same kind), its text now its record's text with `note`
    /// added.
    pub(crate) fn with_note(self, note: &str) -> Self {
        let text = format!("{}; {note}", self.record_text());
        Self {
            error: text.into(),
            kind: self.kind,
        }
    }

    /// The text a task's record keeps: the message and every source's, joined by `: `
    /// (a source whose message the text already ends with adds nothing; a chain is
    /// followed for 64 errors at most, and not round a loop). An error whose
    /// `Display` (or `source`) panics gets a text that says so: the panic does not reach
    /// the run.
    pub fn record_text(&self) -> String {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.chain_text())).unwrap_or_else(
            |panic| {
                crate::handler::drop_contained(panic);
                "the handler's error could not be written as text (its Display panicked)".to_owned()
            },
        )
    }

    fn chain_text(&self) -> String {
        let mut text = self.error.to_string();
        for cause in causes(&*self.error).skip(1) {
            let next = cause.to_string();
            // A wrapper that repeats its source's message adds nothing to the text.
            if !text.ends_with(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
        }
        text
    }
}

/// The most errors of a chain (the error and its sources) that are looked at.
const MOST_CAUSES: usize = 64;

/// `error` and its sources, in order: at most [`MOST_CAUSES`], and none twice. A chain
/// that leads back to an error in it (a `source` that returns `self`, say) ends there,
/// instead of going round for ever.
fn causes<'a>(error: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    // Told apart by address and type: a wrapper's first field is at its own address.
    let mut seen: Vec<&'a (dyn Error + 'static)> = Vec::new();
    std::iter::successors(Some(error), |&current| current.source())
        .take(MOST_CAUSES)
        .take_while(move |&cause| {
            let first_time = !seen.iter().any(|&earlier| std::ptr::eq(earlier, cause));
            seen.push(cause);
            first_time
        })
}

impl Drop for TaskError {
    /// The run drops a handler's error in its own code, where a panic would take the run
    /// down (an error owning a tokio runtime panics when dropped in async code): such a
    /// panic is caught here.
    fn drop(&mut self) {
        let error = std::mem::replace(&mut self.error, Box::new(Taken));
        crate::handler::drop_contained(error);
    }
}

/// What a `TaskError` holds once its error was taken out.
#[derive(Debug)]
struct Taken;

impl fmt::Display for Taken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(taken)")
    }
}

impl Error for Taken {}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskError")
            .field("error", &self.error)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Error for TaskError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.error)
    }
}

impl From<anyhow::Error> for TaskError {
    /// Keeps a `TaskError` inside the anyhow error (under any context), which boxing the
    /// anyhow error would hide.
    fn from(error: anyhow::Error) -> Self {
        // A `TaskError` under context is reached by `downcast`, which drops the context:
        // take it out only when it is the error itself.
        let error = if error
            .chain()
            .next()
            .is_some_and(|top| top.is::<TaskError>())
        {
            match error.downcast::<TaskError>() {
                Ok(task_error) => return task_error,
                Err(error) => error,
            }
        } else {
            error
        };
        let kind = error.downcast_ref::<TaskError>().map(|inner| inner.kind);
        // Moved out of anyhow's own wrapper, so that `downcast_ref` reaches the original.
        let boxed = error.reallocate_into_boxed_dyn_error_without_backtrace();
        let mut task_error = Self::from_boxed(boxed);
        if let Some(kind) = kind {
            task_error.kind = kind;
        }
        task_error
    }
}

impl From<Box<dyn Error + Send + Sync>> for TaskError {
    fn from(error: Box<dyn Error + Send + Sync>) -> Self {
        Self::from_boxed(error)
    }
}

impl From<String> for TaskError {
    fn from(message: String) -> Self {
        Self::from_boxed(message.into())
    }
}

impl From<&str> for TaskError {
    fn from(message: &str) -> Self {
        Self::from_boxed(message.into())
    }
}

impl From<std::io::Error> for TaskError {
    fn from(error: std::io::Error) -> Self {
        Self::from_boxed(Box::new(error))
    }
}

impl From<serde_json::Error> for TaskError {
    fn from(error: serde_json::Error) -> Self {
        Self::from_boxed(Box::new(error))
    }
}

/// So that a handler can use `?` on [`TaskContext::event_bus`](crate::TaskContext::event_bus)'s
/// publishes.
#[cfg(feature = "events")]
impl From<orch_events::PublishError> for TaskError {
    fn from(error: orch_events::PublishError) -> Self {
        Self::from_boxed(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loading the rows")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_record_keeps_the_whole_chain_and_the_original_stays_reachable() {
        let error = TaskError::new(Outer(std::io::Error::other("disk full")));
        assert_eq!(error.to_string(), "loading the rows");
        assert_eq!(error.record_text(), "loading the rows: disk full");
        // Its source is the original error, whose source comes next.
        let original = error.source().expect("the original error");
        assert!(original.downcast_ref::<Outer>().is_some());
        assert_eq!(
            original.source().map(ToString::to_string).as_deref(),
            Some("disk full")
        );
        assert!(error.downcast_ref::<Outer>().is_some());
        assert!(!error.is_permanent());
    }

    #[test]
    fn anyhow_context_is_kept_in_the_text_and_the_kind_survives() {
        let inner = TaskError::permanent("bad row 7");
        let error = anyhow::Error::from(inner)
            .context("parsing")
            .context("loading");
        let error = TaskError::from(error);
        assert!(error.is_permanent());
        assert_eq!(error.record_text(), "loading: parsing: bad row 7");

        let skipped = TaskError::from(anyhow::Error::from(TaskError::skip("no input")));
        assert!(skipped.is_skip());
        assert_eq!(skipped.record_text(), "no input");
    }

    #[test]
    fn the_original_error_of_an_anyhow_error_is_reachable() {
        let error = TaskError::from(anyhow::Error::from(std::io::Error::other("disk full")));
        let io = error.downcast_ref::<std::io::Error>();
        assert_eq!(io.map(ToString::to_string).as_deref(), Some("disk full"));
        assert_eq!(error.record_text(), "disk full");
        let error = TaskError::from(anyhow::Error::from(Outer(std::io::Error::other("x"))));
        assert!(error.downcast_ref::<Outer>().is_some());
        assert_eq!(error.record_text(), "loading the rows: x");
    }

    #[test]
    fn every_listed_type_converts_with_question_mark() {
        fn each(which: u8) -> Result<(), TaskError> {
            match which {
                0 => Err(anyhow::anyhow!("from anyhow"))?,
                1 => Err(Box::<dyn Error + Send + Sync>::from("from a box"))?,
                2 => Err(String::from("from a string"))?,
                3 => Err("from a str")?,
                4 => Err(std::io::Error::other("from io"))?,
                _ => Err(serde_json::from_str::<u8>("x").expect_err("not a number"))?,
            }
        }
        let texts: Vec<String> = (0..6)
            .map(|i| each(i).expect_err("each fails").to_string())
            .collect();
        assert_eq!(
            texts[..5],
            [
                "from anyhow",
                "from a box",
                "from a string",
                "from a str",
                "from io"
            ]
        );
        assert!(texts[5].starts_with("expected value"));
    }

    #[test]
    fn permanent_and_skip_override_the_kind_of_a_wrapped_task_error() {
        assert!(TaskError::permanent(TaskError::new("x")).is_permanent());
        assert!(TaskError::skip(TaskError::permanent("x")).is_skip());
        assert!(TaskError::new(TaskError::skip("x")).is_skip());
    }
}
