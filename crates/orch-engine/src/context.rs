//! [`TaskContext`]: everything a handler gets for one attempt of one task.

use std::sync::{Arc, OnceLock};

use orch_core::{Task, TaskId, Workflow};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::TaskError;

/// State of one run that handlers can read: the definition, finished results and the
/// run's cancellation token.
pub(crate) struct RunShared {
    pub(crate) workflow: Workflow,
    /// Each task's result, set once when it completes (before any dependent starts).
    pub(crate) results: Vec<OnceLock<Value>>,
    pub(crate) cancel: CancellationToken,
}

impl RunShared {
    /// The task at a plan index (indices come from this workflow's plan).
    pub(crate) fn task(&self, index: usize) -> &Task {
        match self.workflow.get_index(index) {
            Some(task) => task,
            None => unreachable!("plan indices come from the run's workflow"),
        }
    }
}

/// What a handler gets for one attempt of one task: the task and its configuration, the
/// workflow, the results of its direct dependencies, the attempt number and the run's
/// cancellation token.
///
/// A context is cheap to clone and owns what it refers to, so a handler can move it into a
/// spawned task.
///
/// ```
/// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
/// use orch_core::{Task, Workflow};
/// use serde_json::{Value, json};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let engine = WorkflowEngine::new();
/// engine.register_handler("fetch", |_ctx: TaskContext| async move { Ok(json!({"rows": 3})) });
/// engine.register_handler("process", |ctx: TaskContext| async move {
///     let rows = ctx.dependency_result("fetch")
///         .and_then(|r| r["rows"].as_u64())
///         .ok_or_else(|| TaskError::new("fetch gave no rows"))?;
///     Ok(json!({"task": ctx.task_id().as_str(), "doubled": rows * 2, "attempt": ctx.attempt()}))
/// });
/// let workflow = Workflow::new("w", "W")
///     .task(Task::new("fetch", "fetch"))
///     .task(Task::new("process", "process").depends_on(["fetch"]));
/// let result = engine.execute_workflow(&workflow).await?;
/// assert_eq!(
///     result.task("process").unwrap().result,
///     Some(json!({"task": "process", "doubled": 6, "attempt": 1}))
/// );
/// # Ok::<(), orch_engine::RunError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TaskContext {
    pub(crate) run: Arc<RunShared>,
    pub(crate) index: u32,
    pub(crate) attempt: u32,
}

impl TaskContext {
    fn task(&self) -> &Task {
        self.run.task(self.index as usize)
    }

    /// The task's id.
    pub fn task_id(&self) -> &TaskId {
        &self.task().task_id
    }

    /// The task's name (its id when it has none).
    pub fn name(&self) -> &str {
        self.task().display_name()
    }

    /// The whole task definition.
    pub fn task_definition(&self) -> &Task {
        self.task()
    }

    /// The task's configuration (a JSON object).
    pub fn config(&self) -> &Value {
        &self.task().config
    }

    /// The configuration, deserialised into `T`.
    pub fn config_as<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        T::deserialize(self.config())
            .map_err(|e| TaskError::permanent(format!("invalid config: {e}")))
    }

    /// The workflow this task belongs to.
    pub fn workflow(&self) -> &Workflow {
        &self.run.workflow
    }

    /// The result of a direct dependency, by id. `None` when `id` is not a dependency of
    /// this task.
    pub fn dependency_result(&self, id: &str) -> Option<&Value> {
        let task = self.task();
        if !task.dependencies.iter().any(|d| d.as_str() == id) {
            return None;
        }
        let index = self.run.workflow.index_of(id)?;
        self.run.results.get(index)?.get()
    }

    /// The result of a direct dependency, deserialised into `T`.
    pub fn dependency_as<T: DeserializeOwned>(&self, id: &str) -> Result<T, TaskError> {
        let value = self
            .dependency_result(id)
            .ok_or_else(|| TaskError::permanent(format!("`{id}` is not a dependency")))?;
        T::deserialize(value)
            .map_err(|e| TaskError::permanent(format!("result of `{id}` has the wrong shape: {e}")))
    }

    /// The results of all direct dependencies, in the order they are listed.
    pub fn dependency_results(&self) -> impl Iterator<Item = (&TaskId, &Value)> + '_ {
        self.task().dependencies.iter().filter_map(move |id| {
            let index = self.run.workflow.index_of(id)?;
            Some((id, self.run.results.get(index)?.get()?))
        })
    }

    /// The attempt number: 1 for the first try, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The run's cancellation token: cancelled when the run is, so long handlers can stop
    /// early (`token.cancelled().await` or `token.is_cancelled()`).
    pub fn cancellation(&self) -> &CancellationToken {
        &self.run.cancel
    }
}
