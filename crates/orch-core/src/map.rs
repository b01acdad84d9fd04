//! [`MapSpec`]: a task that runs once per element of a list that one of its dependencies
//! returned (dynamic fan-out).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TaskId;
use crate::compile::json_kind;

/// Makes a task a map: it runs once per element of the JSON list that the dependency
/// `over` returned, each run an *instance* with an id of its own (`task[0]`, `task[1]`,
/// ...), its own record, retries and events. The task's own result is the list of its
/// instances' results, in the order of the elements.
///
/// When an instance fails after its retries, no further instance starts, those not
/// started are skipped, those waiting to retry fail without trying again, and the map
/// task fails with that instance's error. Its dependents
/// follow their [`TriggerRule`](crate::TriggerRule)s on that failure: with the default
/// rule they are skipped; those whose rule runs past a failure (`all_done`, `one_failed`,
/// ...) read the list all the same, with `null` for each instance that failed, was
/// skipped or never started.
///
/// In files, under the task's `map` key:
///
/// ```
/// use orch_core::Workflow;
///
/// let workflow = Workflow::from_json(r#"{
///     "workflow_id": "w", "name": "W",
///     "tasks": {
///         "list": {"task_type": "list"},
///         "square": {
///             "task_type": "square", "dependencies": ["list"],
///             "map": {"over": "list", "max_instances": 100}
///         }
///     }
/// }"#)?;
/// let map = workflow.get("square").and_then(|t| t.map.as_ref()).expect("a map");
/// assert_eq!(map.over, "list");
/// assert_eq!(map.max_instances, Some(100));
/// # Ok::<(), orch_core::LoadError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map: `over` and optionally `max_instances`"
)]
pub struct MapSpec {
    /// The dependency whose output, a JSON list, gives one instance per element. It must
    /// be one of the task's direct dependencies (validation checks).
    pub over: TaskId,
    /// The most instances this task may run; `None` for the engine's limit. A longer list
    /// fails the task (it runs no instance). At least 1 (validation checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
}

impl MapSpec {
    /// A map over the output of `over`, with the engine's limit on instances.
    pub fn over(over: impl Into<TaskId>) -> Self {
        Self {
            over: over.into(),
            max_instances: None,
        }
    }

    /// The id of instance `item` of map task `task`: `task[item]`.
    ///
    /// ```
    /// assert_eq!(orch_core::MapSpec::instance_id("square", 2), "square[2]");
    /// ```
    pub fn instance_id(task: &str, item: usize) -> TaskId {
        TaskId::from(format!("{task}[{item}]"))
    }

    /// The map task and element position an instance id names, read back exactly as
    /// [`MapSpec::instance_id`] writes it (`None` for any other id).
    ///
    /// ```
    /// use orch_core::MapSpec;
    ///
    /// assert_eq!(MapSpec::parse_instance_id("square[12]"), Some(("square", 12)));
    /// assert_eq!(MapSpec::parse_instance_id("square"), None);
    /// assert_eq!(MapSpec::parse_instance_id("square[012]"), None);
    /// assert_eq!(MapSpec::parse_instance_id("square[+1]"), None);
    /// ```
    pub fn parse_instance_id(id: &str) -> Option<(&str, usize)> {
        let (task, item) = id.strip_suffix(']')?.rsplit_once('[')?;
        let canonical = item.bytes().all(|b| b.is_ascii_digit())
            && (item == "0" || !item.is_empty() && !item.starts_with('0'));
        Some((task, item.parse().ok().filter(|_| canonical)?))
    }

    /// The elements map task `task` runs over, given the output of its `over` dependency
    /// and the engine's limit (used when the map sets none).
    ///
    /// ```
    /// use orch_core::{MapSpec, TaskId};
    /// use serde_json::json;
    ///
    /// let map = MapSpec::over("list");
    /// let task = TaskId::from("square");
    /// assert_eq!(map.items(&task, &json!([1, 2]), 10).unwrap().len(), 2);
    /// assert_eq!(
    ///     map.items(&task, &json!({"a": 1}), 10).unwrap_err().to_string(),
    ///     "task `square` maps over the output of `list`, which is an object, not a list"
    /// );
    /// ```
    pub fn items<'v>(
        &self,
        task: &TaskId,
        output: &'v Value,
        engine_limit: u32,
    ) -> Result<&'v [Value], MapItemsError> {
        let Value::Array(items) = output else {
            return Err(MapItemsError::NotAList {
                task: task.clone(),
                over: self.over.clone(),
                found: json_kind(output),
            });
        };
        let limit = self.max_instances.unwrap_or(engine_limit);
        if items.len() > limit as usize {
            return Err(MapItemsError::TooMany {
                task: task.clone(),
                over: self.over.clone(),
                len: items.len(),
                limit,
            });
        }
        Ok(items)
    }

    /// What is wrong with this map on task `task`, as (option, reason) pairs.
    pub(crate) fn problems(&self, dependencies: &[TaskId]) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !dependencies.contains(&self.over) {
            problems.push((
                "map.over",
                format!(
                    "must name one of the task's dependencies, not `{}`",
                    crate::error::shown_id(&self.over)
                ),
            ));
        }
        if self.max_instances == Some(0) {
            problems.push(("map.max_instances", "must be at least 1, not 0".to_owned()));
        }
        problems
    }
}

/// Why a map task has no elements to run over.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapItemsError {
    /// The dependency's output is not a JSON list.
    #[error("task `{task}` maps over the output of `{over}`, which is {found}, not a list")]
    NotAList {
        /// The map task.
        task: TaskId,
        /// The dependency it maps over.
        over: TaskId,
        /// What the output is instead ("an object", "a string", ...).
        found: &'static str,
    },
    /// The list is longer than the task (or the engine) allows.
    #[error(
        "task `{task}` maps over a list of {len} elements from `{over}`, more than its limit of \
         {limit} instances"
    )]
    TooMany {
        /// The map task.
        task: TaskId,
        /// The dependency it maps over.
        over: TaskId,
        /// The list's length.
        len: usize,
        /// The limit it exceeds.
        limit: u32,
    },
}
