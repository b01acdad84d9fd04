//! [`ValidationError`] and [`ValidationErrors`]: everything wrong with a workflow, at once.

use std::fmt;

use crate::TaskId;
use crate::suggest::did_you_mean;

/// One problem of a workflow that keeps it from running.
///
/// Each variant names the task (and, where it applies, the dependency or option) at fault.
/// Problems of a run rather than of the workflow (a task type with no handler, a result
/// of another workflow to resume from) are the engine's to report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The workflow has no tasks.
    #[error("workflow has no tasks")]
    EmptyWorkflow,
    /// A task depends on an id that no task has.
    #[error(
        "task `{}` depends on unknown task `{}`{}",
        shown_id(task),
        shown_id(dependency),
        did_you_mean(suggestion.as_deref())
    )]
    UnknownDependency {
        /// The task whose dependency list is wrong.
        task: TaskId,
        /// The id that names no task.
        dependency: TaskId,
        /// The task id closest to `dependency`, when one is close enough to be the one
        /// meant.
        suggestion: Option<TaskId>,
    },
    /// A task lists itself as a dependency.
    #[error("task `{}` depends on itself", shown_id(task))]
    SelfDependency {
        /// The task.
        task: TaskId,
    },
    /// A task lists the same dependency more than once.
    #[error(
        "task `{}` lists dependency `{}` more than once",
        shown_id(task),
        shown_id(dependency)
    )]
    DuplicateDependency {
        /// The task.
        task: TaskId,
        /// The repeated dependency.
        dependency: TaskId,
    },
    /// Two tasks share an id (list form, or tasks added twice).
    #[error("task id `{}` is used by more than one task", shown_id(task))]
    DuplicateTaskId {
        /// The repeated id.
        task: TaskId,
    },
    /// In map form, a task's key differs from the `task_id` inside it.
    #[error(
        "task stored under key `{}` has task_id `{}`",
        shown_id(key),
        shown_id(task_id)
    )]
    KeyMismatch {
        /// The map key.
        key: TaskId,
        /// The id inside the task.
        task_id: TaskId,
    },
    /// The dependencies form a cycle. Each task in `path` depends on the next one; the
    /// last element repeats the first. The message shows a cycle of more than 20 tasks
    /// by its first and last ten, with the count of those between.
    #[error("dependency cycle: {} (each task depends on the next)", path_text(.path))]
    Cycle {
        /// The cycle, first task repeated at the end: `[a, b, c, a]`.
        path: Vec<TaskId>,
    },
    /// An id, a task type or a pool name holds a control character (a line break, a
    /// terminal escape sequence), which would reach logs and terminals as it is, a line
    /// separator, a bidirectional control (U+202E and the like), which reorders how the
    /// rest of a line is shown, or an invisible character (see
    /// [`is_hidden_control`](crate::is_hidden_control)), which makes two ids look alike.
    /// The error names which.
    #[error("{what} \"{}\"{of} holds the {} '{}': ids, task types and pool names may not", shown_cut(text), crate::compile::hidden_kind(*.found).unwrap_or("character"), shown(&.found.to_string()), of = of_task(.task.as_ref(), what))]
    ControlCharacter {
        /// What holds it: `workflow id`, `task id`, `task type` or `pool`.
        what: &'static str,
        /// The task whose id, type or pool it is (none for the workflow id).
        task: Option<TaskId>,
        /// The text, with its control characters escaped (`a\nb`).
        text: String,
        /// The first control character in it.
        found: char,
    },
    /// A task option has a value that cannot work.
    #[error("task `{}`: invalid `{option}`: {}", shown_id(task), shown(reason))]
    InvalidOption {
        /// The task.
        task: TaskId,
        /// The option's field name (`timeout`, `backoff.multiplier`, `config`, ...).
        option: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}

/// The longest id, in bytes, that an error shows whole: a longer one is shown by its two
/// ends and its length, so that the many problems one long id may have stay short to
/// print. (Both ends: generated ids often differ only at their end.)
const SHOWN_ID_BYTES: usize = 200;

/// Id `id` as an error prints it: escaped as [`shown`] escapes text, and past
/// [`SHOWN_ID_BYTES`] cut to its two ends, with its length in bytes (the error's fields
/// hold it whole).
pub(crate) fn shown_id(id: &str) -> std::borrow::Cow<'_, str> {
    match ends_of(id) {
        None => shown(id),
        Some((start, end)) => std::borrow::Cow::Owned(cut_text(shown(start), shown(end), id.len())),
    }
}

/// A long id shown by its two ends, `start` and `end`, and its length `len`.
fn cut_text(start: impl fmt::Display, end: impl fmt::Display, len: usize) -> String {
    format!("{start}…{end} ({len} bytes)")
}

/// Text escaped already, cut as [`shown_id`] cuts an id; the length named is the
/// escaped text's.
fn shown_cut(text: &str) -> std::borrow::Cow<'_, str> {
    match ends_of(text) {
        None => std::borrow::Cow::Borrowed(text),
        Some((start, end)) => {
            std::borrow::Cow::Owned(format!("{start}…{end} ({} bytes escaped)", text.len()))
        }
    }
}

/// The first two thirds of [`SHOWN_ID_BYTES`] and the last third (or less, to cut
/// between characters) of a longer `text`.
fn ends_of(text: &str) -> Option<(&str, &str)> {
    if text.len() <= SHOWN_ID_BYTES {
        return None;
    }
    let mut start = SHOWN_ID_BYTES * 2 / 3;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = text.len() - SHOWN_ID_BYTES / 3;
    while !text.is_char_boundary(end) {
        end += 1;
    }
    Some((&text[..start], &text[end..]))
}

/// `text` as an error prints it: with its control characters (a line break, a terminal
/// escape sequence) and bidirectional controls (which reorder how the rest of a line is
/// shown) escaped, so that an error names a hostile id without acting on it.
pub(crate) fn shown(text: &(impl AsRef<str> + ?Sized)) -> std::borrow::Cow<'_, str> {
    let text = text.as_ref();
    if !text.chars().any(crate::is_hidden_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match crate::is_hidden_control(c) {
            true => push_escaped(&mut out, c),
            false => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` escaped as Rust's `escape_debug` does (quotes, backslashes, control
/// characters), and with the characters [`crate::is_hidden_control`] names that it
/// leaves as they are (a Hangul filler) escaped too: for text quoted in an error.
pub(crate) fn quoted(text: &str) -> String {
    shown(&text.escape_debug().to_string()).into_owned()
}

/// Writes `c` as an escape: `\n` or `\u{202e}` as `escape_debug` writes it, or
/// `\u{3164}` for one that `escape_debug` leaves as it is.
fn push_escaped(out: &mut String, c: char) {
    match c.escape_debug().next() {
        Some('\\') => out.extend(c.escape_debug()),
        _ => out.extend(c.escape_unicode()),
    }
}

/// The cycle's tasks joined by arrows; a long one shows its first and last few, with the
/// count of those left out between (the whole path is in the error's `path`).
fn path_text(path: &[TaskId]) -> String {
    const AT_EACH_END: usize = 10;
    let shown = |tasks: &[TaskId]| {
        tasks
            .iter()
            .map(|t| shown_id(t))
            .collect::<Vec<_>>()
            .join(" -> ")
    };
    if path.len() <= 2 * AT_EACH_END + 1 {
        return shown(path);
    }
    let left_out = path.len() - 2 * AT_EACH_END;
    format!(
        "{} -> ({left_out} more tasks) -> {}",
        shown(&path[..AT_EACH_END]),
        shown(&path[path.len() - AT_EACH_END..])
    )
}

fn path_list(tasks: &[TaskId]) -> String {
    const SHOWN: usize = 10;
    let mut text = tasks
        .iter()
        .take(SHOWN)
        .map(|t| format!("`{}`", shown_id(t)))
        .collect::<Vec<_>>()
        .join(", ");
    if tasks.len() > SHOWN {
        text.push_str(&format!(" and {} more", tasks.len() - SHOWN));
    }
    text
}

/// A task type that no handler runs, found by
/// [`ValidWorkflow::missing_handlers`](crate::ValidWorkflow::missing_handlers).
///
/// ```
/// use orch_core::{Task, Workflow};
///
/// let workflow = Workflow::new("w", "W")
///     .task(Task::new("orders", "extract_ordr"))
///     .task(Task::new("report", "report").depends_on(["orders"]));
/// let missing = workflow.validate()?.missing_handlers(["extract_order", "report"]);
/// assert_eq!(
///     missing[0].to_string(),
///     "no handler for task type `extract_ordr` (used by `orders`); did you mean `extract_order`?"
/// );
/// # Ok::<(), orch_core::ValidationErrors>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no handler for task type `{}` (used by {}){}",
    shown_id(task_type),
    path_list(.tasks),
    did_you_mean(suggestion.as_deref())
)]
#[non_exhaustive]
pub struct MissingHandler {
    /// The task type.
    pub task_type: String,
    /// Every task of that type, in insertion order.
    pub tasks: Vec<TaskId>,
    /// The handler type closest to `task_type`, when one is close enough to be the one
    /// meant.
    pub suggestion: Option<String>,
}

/// Every problem found in a workflow; never empty.
///
/// `Display` prints one problem per line, the first 100 of them, then a line that counts
/// the others (a generated workflow may have millions); iterate for every one.
///
/// ```
/// use orch_core::{Task, Workflow};
///
/// let workflow = Workflow::new("w", "W")
///     .task(Task::new("a", "t").depends_on(["a", "ghost"]));
/// let errors = workflow.validate().unwrap_err();
/// assert_eq!(errors.len(), 2);
/// assert_eq!(
///     errors.to_string(),
///     "task `a` depends on itself\ntask `a` depends on unknown task `ghost`"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors(Vec<ValidationError>);

impl ValidationErrors {
    /// Wraps a list of problems; `None` when the list is empty.
    pub fn from_vec(errors: Vec<ValidationError>) -> Option<Self> {
        (!errors.is_empty()).then_some(Self(errors))
    }

    /// The problems, in the order they were found.
    pub fn as_slice(&self) -> &[ValidationError] {
        &self.0
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ValidationError> {
        self.0.iter()
    }

    /// How many problems there are (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a `ValidationErrors` holds at least one problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes the problems out.
    pub fn into_vec(self) -> Vec<ValidationError> {
        self.0
    }
}

impl Extend<ValidationError> for ValidationErrors {
    fn extend<I: IntoIterator<Item = ValidationError>>(&mut self, errors: I) {
        self.0.extend(errors);
    }
}

/// The most problems the text of [`ValidationErrors`] lists.
const LISTED: usize = 100;

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().take(LISTED).enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        match self.0.len().checked_sub(LISTED) {
            Some(unlisted) if unlisted > 0 => write!(f, "\nand {unlisted} more problem(s)"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ValidationErrors {}

impl From<ValidationError> for ValidationErrors {
    fn from(error: ValidationError) -> Self {
        Self(vec![error])
    }
}

impl IntoIterator for ValidationErrors {
    type Item = ValidationError;
    type IntoIter = std::vec::IntoIter<ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a ValidationError;
    type IntoIter = std::slice::Iter<'a, ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// ` of task "id"` for a task type's control character, with the id escaped too.
fn of_task(task: Option<&TaskId>, what: &str) -> String {
    match task {
        Some(task) if what != "task id" => {
            let id = task.as_str();
            let text = match ends_of(id) {
                None => quoted(id),
                Some((start, end)) => cut_text(quoted(start), quoted(end), id.len()),
            };
            format!(" of task \"{text}\"")
        }
        _ => String::new(),
    }
}
