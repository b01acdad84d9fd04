//! What a handler learns of the element an instance of a map task runs for.

use orch_core::TaskId;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::TaskContext;
use crate::TaskError;

/// The element one instance of a map task runs for.
pub(crate) struct MapItem {
    pub(crate) index: usize,
    pub(crate) value: Value,
}

impl TaskContext {
    /// The id this attempt's record and events carry: the task's id, or for an instance
    /// of a map task, the instance's (`task[i]`).
    ///
    /// ```
    /// use orch_core::{Task, Workflow};
    /// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
    /// use serde_json::json;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = WorkflowEngine::new();
    /// engine.register_handler("list", |_ctx: TaskContext| async { Ok::<_, TaskError>([10, 20]) });
    /// engine.register_handler("show", |ctx: TaskContext| async move {
    ///     Ok::<_, TaskError>(format!("{} of {}", ctx.record_id(), ctx.task_id()))
    /// });
    /// let workflow = Workflow::new("w", "W")
    ///     .task(Task::new("list", "list"))
    ///     .task(Task::new("show", "show").map_over("list"));
    /// let result = engine.execute_workflow(&workflow).await?;
    /// assert_eq!(result.task("show[1]").unwrap().result, Some(json!("show[1] of show")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn record_id(&self) -> TaskId {
        match self.item_index() {
            Some(index) => orch_core::MapSpec::instance_id(self.task_id(), index),
            None => self.task_id().clone(),
        }
    }

    /// For an instance of a map task (see `Task::map_over`), the list element it runs
    /// for; `None` for any other task.
    pub fn item(&self) -> Option<&Value> {
        self.item.as_deref().map(|item| &item.value)
    }

    /// For an instance of a map task, the position of its element in the list (the `i`
    /// of its id `task[i]`); `None` for any other task.
    pub fn item_index(&self) -> Option<usize> {
        self.item.as_deref().map(|item| item.index)
    }

    /// The list element of a map task's instance, read as a `T`. A task that is not a
    /// map, or an element that is not a `T`, gives a permanent error naming the task.
    pub fn map_item<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        let Some(item) = self.item.as_deref() else {
            return Err(TaskError::permanent(format!(
                "task `{}` read a map element, but it is not a map task (see `Task::map_over`)",
                self.task_id()
            )));
        };
        T::deserialize(&item.value).map_err(|e| {
            TaskError::permanent(format!(
                "element {} of the list that task `{}` maps over is not a `{}`: {e}",
                item.index,
                self.task_id(),
                std::any::type_name::<T>()
            ))
        })
    }
}
