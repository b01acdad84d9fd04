//! [`Task`], one unit of work, and its retry policy [`Backoff`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{MapSpec, TaskId, TriggerRule};

/// One unit of work in a [`Workflow`](crate::Workflow).
///
/// A task names the handler that runs it (`task_type`), the configuration handed to that
/// handler, and the tasks that must complete before it may start. Every field is public:
/// any value can be stored, and [`Workflow::validate`](crate::Workflow::validate) reports
/// the combinations that cannot run.
///
/// ```
/// use orch_core::{Backoff, Task};
/// use serde_json::json;
/// use std::time::Duration;
///
/// let task = Task::new("process", "process")
///     .name("Process Data")
///     .config(json!({"method": "aggregation"}))
///     .depends_on(["fetch"])
///     .retries(2)
///     .timeout(Duration::from_secs(30));
/// assert_eq!(task.dependencies, ["fetch"]);
/// assert_eq!(task.display_name(), "Process Data");
///
/// // Every field is a plain value that can be changed in place.
/// let mut task = task;
/// task.backoff.jitter = false;
/// assert_eq!(task.backoff, Backoff { jitter: false, ..Backoff::default() });
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "TaskSpec<TaskId>")]
pub struct Task {
    /// Unique identifier of the task inside its workflow.
    pub task_id: TaskId,
    /// Human-readable name; empty means "use the id" (see [`Task::display_name`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The handler type that runs this task.
    pub task_type: String,
    /// Configuration handed to the handler; a JSON object. Read from a file, an object
    /// in it that repeats a key is an error (rather than keeping one of the values), and
    /// so is an integer past 64 bits in YAML (up to 128 bits: the YAML reader reads longer
    /// ones as floats) or in TOML. A JSON file's long
    /// integer is read as the number it denotes, a float, as JSON has one kind of number.
    pub config: Value,
    /// Ids of the tasks this one depends on: by default they must all complete before it
    /// starts (see [`Task::trigger_rule`] for other rules).
    pub dependencies: Vec<TaskId>,
    /// When the task runs, given how its dependencies ended (default: all completed).
    #[serde(default, skip_serializing_if = "TriggerRule::is_default")]
    pub trigger_rule: TriggerRule,
    /// The engine pool whose limit this task counts against, besides the engine's
    /// global limit; `None` for the global limit only. A run whose tasks name a pool
    /// the engine does not declare does not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Among tasks ready at the same time, higher priorities start first (default 0;
    /// ties go in the workflow's execution order). Negative values are allowed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// How many times a failed attempt is retried (0: run once); at most
    /// [`Task::MAX_RETRIES`], which validation checks.
    pub retries: u32,
    /// The delay between attempts.
    pub backoff: Backoff,
    /// The longest one attempt may run before it counts as failed; `None` for no limit.
    ///
    /// In files: a number of seconds (`1.5`), text (`30s`, `1m 30s`, `250ms`), or `null`
    /// or nothing for no limit. Written back as a number of seconds when that number
    /// states the duration exactly, otherwise as exact text (`123456789.123456789s`).
    #[serde(
        with = "crate::duration::secs_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Runs the task once per element of a list a dependency returned (see [`MapSpec`]);
    /// `None` (the default) runs it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<MapSpec>,
    /// Whether the engine may reuse a result stored for the same task type, configuration
    /// and inputs instead of running the handler (see the engine's `CacheStore`). Off by
    /// default; in files `cache: true`, written only when on.
    ///
    /// The task's id and name are not part of what identifies a result: two cached tasks
    /// of one type with the same configuration and inputs share it, in one run or
    /// across runs. A handler whose work depends on its task's id should find what
    /// differs in its configuration instead (or its type should have a key function).
    #[serde(default, skip_serializing_if = "is_false")]
    pub cache: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Task {
    /// The most retries a task may ask for: a million. [`Workflow::validate`] reports
    /// more as an invalid `retries` option, so that counting attempts cannot overflow.
    ///
    /// [`Workflow::validate`]: crate::Workflow::validate
    pub const MAX_RETRIES: u32 = 1_000_000;

    /// Creates a task with the given id and handler type, no dependencies, an empty
    /// configuration object, no retries and no timeout.
    pub fn new(task_id: impl Into<TaskId>, task_type: impl Into<String>) -> Self {
        Self {
            task_id: task_id.into(),
            name: String::new(),
            task_type: task_type.into(),
            config: Value::Object(serde_json::Map::new()),
            dependencies: Vec::new(),
            trigger_rule: TriggerRule::AllSuccess,
            pool: None,
            priority: 0,
            retries: 0,
            backoff: Backoff::default(),
            timeout: None,
            map: None,
            cache: false,
        }
    }

    /// Sets the human-readable name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the configuration handed to the handler.
    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Adds dependencies: tasks that must complete before this one starts. (The list a
    /// map task goes over, which [`Task::map_over`] added already, is not added again.)
    pub fn depends_on<I>(mut self, dependencies: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<TaskId>,
    {
        let dependencies = dependencies.into_iter().map(Into::into);
        // Collected when the list is empty: extending an empty list rounds its room up to
        // four ids, and a workflow keeps one list per task.
        if self.dependencies.is_empty() {
            self.dependencies = dependencies.collect();
        } else {
            let over = self.map.as_ref().map(|map| map.over.clone());
            self.dependencies
                .extend(dependencies.filter(|id| over.as_ref() != Some(id)));
        }
        self
    }

    /// Sets when the task runs, given how its dependencies ended.
    pub fn trigger_rule(mut self, rule: TriggerRule) -> Self {
        self.trigger_rule = rule;
        self
    }

    /// Makes the task count against the engine pool `pool` (declared with
    /// `EngineBuilder::pool` in orch-engine), besides the global limit.
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// Sets the priority: among ready tasks, higher ones start first.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets how many times a failed attempt is retried.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the delay policy between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the longest time one attempt may run.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Makes the task a map over the output list of its dependency `over`, which it
    /// also comes to depend on if it did not already: one instance runs per element.
    /// Its trigger rule must wait for every dependency, and may not be `all_failed`
    /// (validation refuses `one_success`, `one_failed`, `always` and `all_failed`); if the
    /// rule runs it although `over` did not complete, the map task is skipped.
    pub fn map_over(mut self, over: impl Into<TaskId>) -> Self {
        let over = over.into();
        if !self.dependencies.contains(&over) {
            self.dependencies.push(over.clone());
        }
        self.map = Some(MapSpec::over(over));
        self
    }

    /// Sets the most instances this map task may run (see [`MapSpec::max_instances`]);
    /// has no effect on a task that is not a map (yet): call it after
    /// [`Task::map_over`].
    pub fn max_instances(mut self, max: u32) -> Self {
        if let Some(map) = &mut self.map {
            map.max_instances = Some(max);
        }
        self
    }

    /// Sets whether the engine may reuse a cached result instead of running the handler.
    pub fn cache(mut self, cache: bool) -> Self {
        self.cache = cache;
        self
    }

    /// The name, or the id when no name was given.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.task_id
        } else {
            &self.name
        }
    }
}

/// Exponential backoff between the attempts of a retried task.
///
/// The delay before retry `n` (1 for the first retry) is
/// `min(max, initial * multiplier^(n-1))`; with `jitter` it is drawn uniformly from the
/// upper half of that, so that many tasks failing together do not retry in lockstep.
///
/// ```
/// use orch_core::Backoff;
/// use std::time::Duration;
///
/// let backoff = Backoff { jitter: false, ..Backoff::default() };
/// assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(100));
/// assert_eq!(backoff.delay(3, 0.0), Duration::from_millis(400));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backoff {
    /// The delay before the first retry (in files: a number of seconds, or text such as
    /// `250ms`).
    #[serde(with = "crate::duration::secs")]
    pub initial: Duration,
    /// The factor applied to the delay after each retry; at least 1.
    pub multiplier: f64,
    /// The longest delay (in files: a number of seconds, or text such as `1m 30s`).
    #[serde(with = "crate::duration::secs")]
    pub max: Duration,
    /// Whether to randomise each delay within its upper half.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (1-based). `unit` is a random number in
    /// `[0, 1)` used for jitter; it is ignored when `jitter` is off.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        if self.initial.is_zero() {
            // (Zero times an overflowed growth would be NaN, which the cap turns into it.)
            return Duration::ZERO;
        }
        // The whole exponent: a growth that overflows to infinity is capped just below.
        let exponent = retry.saturating_sub(1).min(i32::MAX as u32) as i32;
        let raw = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = raw.min(self.max.as_secs_f64());
        let secs = if self.jitter {
            capped * (0.5 + 0.5 * unit.clamp(0.0, 1.0))
        } else {
            capped
        };
        Duration::try_from_secs_f64(secs).unwrap_or(self.max)
    }
}

/// What a task looks like in a file, its id an `Id`: an `Option<TaskId>` in map form,
/// where the id may be left out, a `TaskId` in a list (missing, it is an error raised
/// while the task's own map is read, so that it names the task's place).
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a task: a map with at least `task_type`"
)]
pub(crate) struct TaskSpec<Id> {
    pub(crate) task_id: Id,
    #[serde(default)]
    name: String,
    task_type: String,
    #[serde(
        default = "empty_object",
        deserialize_with = "crate::config_value::deserialize"
    )]
    config: Value,
    #[serde(default)]
    dependencies: Vec<TaskId>,
    #[serde(default)]
    trigger_rule: TriggerRule,
    #[serde(default)]
    pool: Option<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    retries: u32,
    #[serde(default)]
    backoff: Backoff,
    #[serde(default, with = "crate::duration::secs_opt")]
    timeout: Option<Duration>,
    #[serde(default)]
    map: Option<MapSpec>,
    #[serde(default)]
    cache: bool,
}

fn is_zero(priority: &i32) -> bool {
    *priority == 0
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl TaskSpec<Option<TaskId>> {
    /// Turns the spec into a task, taking `fallback_id` when the spec names none.
    pub(crate) fn into_task(self, fallback_id: TaskId) -> Task {
        self.into_task_with(|id| id.unwrap_or(fallback_id))
    }
}

impl<Id> TaskSpec<Id> {
    /// Turns the spec into a task whose id `id_of` makes of the spec's.
    fn into_task_with(self, id_of: impl FnOnce(Id) -> TaskId) -> Task {
        Task {
            task_id: id_of(self.task_id),
            name: self.name,
            task_type: self.task_type,
            config: self.config,
            dependencies: self.dependencies,
            trigger_rule: self.trigger_rule,
            pool: self.pool,
            priority: self.priority,
            retries: self.retries,
            backoff: self.backoff,
            timeout: self.timeout,
            map: self.map,
            cache: self.cache,
        }
    }
}

impl From<TaskSpec<TaskId>> for Task {
    fn from(spec: TaskSpec<TaskId>) -> Self {
        spec.into_task_with(|id| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_on_keeps_room_for_exactly_the_ids_it_was_given() {
        let task = Task::new("a", "t").depends_on(["x"]);
        assert_eq!(task.dependencies.capacity(), 1);
        let task = task.depends_on(["y", "z"]);
        assert_eq!(task.dependencies, ["x", "y", "z"].map(TaskId::from));
    }
}
