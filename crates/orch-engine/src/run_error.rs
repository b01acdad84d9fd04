//! [`RunError`]: why a run did not start.

use orch_core::{MissingHandler, TaskId, ValidationErrors};

/// Why a run did not start: nothing ran. (Once a run starts, what happens to its tasks is
/// in its [`WorkflowResult`](orch_core::WorkflowResult), whatever it is; the one
/// exception is a durable run whose journal fails while it goes on, see
/// [`RunError::Journal`].)
///
/// ```
/// use orch_engine::{RunError, TaskContext, TaskError, WorkflowEngine};
/// use orch_core::{Task, Workflow};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let engine = WorkflowEngine::new();
/// engine.register_handler("extract_order", |_ctx: TaskContext| async move {
///     Ok::<_, TaskError>(serde_json::Value::Null)
/// });
/// let workflow = Workflow::new("w", "W").task(Task::new("orders", "extract_ordr"));
/// let error = engine.execute_workflow(&workflow).await.unwrap_err();
/// assert!(matches!(error, RunError::MissingHandlers { .. }));
/// assert_eq!(
///     error.to_string(),
///     "no handler for task type `extract_ordr` (used by `orders`); did you mean `extract_order`?"
/// );
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The workflow itself has problems (every one of them is listed).
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// Task types with no registered handler: every one of them, each with the tasks
    /// that use it and the registered type it most likely meant. Reported once the
    /// workflow itself is valid.
    #[error("{}", lines(task_types))]
    MissingHandlers {
        /// The task types without a handler, in the order the workflow first uses them.
        task_types: Vec<MissingHandler>,
    },
    /// Tasks name pools the engine does not declare (every such task is listed, with
    /// the pool it names). Reported once the workflow itself is valid.
    #[error("{}", unknown_pools(tasks))]
    UnknownPools {
        /// Each task and the undeclared pool it names, in the workflow's order.
        tasks: Vec<(TaskId, String)>,
    },
    /// A run was asked to resume from the result of a different workflow.
    #[error("cannot resume workflow `{expected}` from a result of workflow `{found}`")]
    ForeignResult {
        /// The workflow being run.
        expected: String,
        /// The workflow the result belongs to.
        found: String,
    },
    /// Tasks have a timeout or a pause before their retries, and the workflow runs where
    /// tokio has no timer (a runtime built without `enable_time`, or no runtime at all).
    /// Nothing ran.
    #[error("{}", no_timer(options, *in_runtime))]
    NoTimer {
        /// Each task and option (`timeout` or `backoff`) that needs the timer.
        options: Vec<(TaskId, &'static str)>,
        /// Whether the workflow ran inside a tokio runtime (one without a timer).
        in_runtime: bool,
    },
    /// A durable run's journal could not be opened, read or written, or refused the run:
    /// it holds another workflow's run under this id, or the workflow changed since the
    /// run was recorded in tasks that had completed (the error says what changed). A
    /// journal that fails while the run goes on stops it: no task starts after that, and
    /// running handlers are cancelled as when the run is (within its grace period).
    #[cfg(feature = "journal")]
    #[error("journal: {0}")]
    Journal(crate::durable::JournalFailure),
    /// [`WorkflowEngine::run_durable`](crate::WorkflowEngine::run_durable) on an engine
    /// built without a journal.
    #[error(
        "this engine has no journal to run durably with: give it one with `EngineBuilder::journal`"
    )]
    NoJournal,
}

fn no_timer(options: &[(TaskId, &'static str)], in_runtime: bool) -> String {
    let what: Vec<String> = options
        .iter()
        .map(|(task, option)| format!("`{option}` of task `{task}`"))
        .collect();
    let fix = if in_runtime {
        "the runtime running the workflow has none: build it with `enable_time` or `enable_all`"
    } else {
        "run the workflow inside a tokio runtime built with `enable_time` or `enable_all`"
    };
    let need = if what.len() == 1 { "needs" } else { "need" };
    format!("{} {need} tokio's timer; {fix}", what.join(", "))
}

fn unknown_pools(tasks: &[(TaskId, String)]) -> String {
    let what: Vec<String> = tasks
        .iter()
        .map(|(task, pool)| format!("task `{task}` names pool `{pool}`"))
        .collect();
    format!(
        "{}, which the engine does not declare (declare it with `EngineBuilder::pool`)",
        what.join(", ")
    )
}

/// One line per missing task type.
fn lines(missing: &[MissingHandler]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
