//! Run records: [`TaskStatus`], [`TaskRecord`] and [`WorkflowResult`].
//!
//! Records live beside the workflow definition, never inside it: running a workflow
//! leaves the definition untouched and produces a [`WorkflowResult`].

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::{RunId, TaskId, TaskRecords};

/// Where a task is in its life. Serialised in lower case (`"completed"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Not started yet.
    #[default]
    Pending,
    /// A handler is running it.
    Running,
    /// Finished successfully.
    Completed,
    /// Its handler failed, panicked or timed out, after all retries.
    Failed,
    /// Not run to completion: its handler chose to skip it (a condition was not met), or
    /// a task it depends on, directly or not, failed or was skipped.
    Skipped,
    /// Not finished, because the run was cancelled.
    Cancelled,
}

impl TaskStatus {
    /// The lower-case name, as serialised.
    ///
    /// ```
    /// assert_eq!(orch_core::TaskStatus::Skipped.as_str(), "skipped");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the status is final: completed, failed, skipped or cancelled.
    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}

impl fmt::Display for TaskStatus {
    /// The lower-case name; a width, fill, alignment or precision given applies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a whole run ended. Serialised in lower case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowStatus {
    /// Every task completed or was skipped (by its handler, a branch, a trigger rule, or
    /// after a failure upstream), and every task that failed had its failure handled: a
    /// direct dependent with trigger rule `one_failed` or `all_failed` completed.
    Completed,
    /// At least one task failed and no direct dependent with trigger rule `one_failed`
    /// or `all_failed` completed to handle the failure.
    Failed,
    /// The run was cancelled before every task had ended.
    Cancelled,
}

impl WorkflowStatus {
    /// The lower-case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for WorkflowStatus {
    /// The lower-case name; a width, fill, alignment or precision given applies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What happened to one task in one run.
///
/// ```
/// use orch_core::{TaskRecord, TaskStatus};
/// use std::time::{Duration, SystemTime};
///
/// let start = SystemTime::UNIX_EPOCH;
/// let record = TaskRecord {
///     status: TaskStatus::Completed,
///     start_time: Some(start),
///     end_time: Some(start + Duration::from_millis(1500)),
///     attempts: 1,
///     ..TaskRecord::default()
/// };
/// assert_eq!(record.duration(), Some(Duration::from_millis(1500)));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskRecord {
    /// The task's final (or current) status.
    pub status: TaskStatus,
    /// The handler's output, when it completed (null, if the handler returned null).
    pub result: Option<Value>,
    /// Why it failed, was skipped or was cancelled.
    pub error: Option<String>,
    /// When the first attempt started.
    pub start_time: Option<SystemTime>,
    /// When the last attempt ended.
    pub end_time: Option<SystemTime>,
    /// How many attempts ran (0 for a task that never started, in its run or one it
    /// continues). A run that continues another counts that run's attempts too: a task
    /// that runs again goes on from them, and one that does not start again keeps them.
    /// A map task's record holds its instances' highest attempt number. The instances of
    /// a map task that runs again count only their attempts in that run: its list is
    /// made anew, so `task[1]` may stand for another item than before.
    pub attempts: u32,
    /// Whether the handler returned an in-process value (orch-engine's `Shared`), of
    /// which `result` keeps only a summary (or null). A run resumed from this record runs
    /// the task again if a task that runs depends on it. Written to JSON only when true.
    pub shared_output: bool,
    /// Whether the result was taken from the engine's cache instead of running the
    /// handler (the task asked for caching; see `Task::cache`). Such a record is
    /// `Completed` with no attempt of its own (0, or the attempts of an earlier run it
    /// continues). Written to JSON only when true, so results written
    /// before caching existed read back unchanged.
    pub cached: bool,
    /// The direct dependents the task chose to run when it completed as a branch
    /// (orch-engine's `TaskContext::choose_branches`); the others were skipped. `None`
    /// when it did not choose. A run resumed from this record keeps the choice. Written
    /// to JSON only when set.
    pub chosen_branches: Option<Vec<TaskId>>,
}

impl TaskRecord {
    /// The time from the first start to the last end; `None` unless both are known.
    /// (The original Python module's `get_duration()`.)
    pub fn duration(&self) -> Option<Duration> {
        let (start, end) = (self.start_time?, self.end_time?);
        Some(end.duration_since(start).unwrap_or_default())
    }
}

/// A [`TaskRecord`] as written, its `result` told present (null included) from missing.
#[derive(Default, Deserialize)]
#[serde(default)]
struct WrittenRecord {
    status: TaskStatus,
    #[serde(deserialize_with = "present")]
    result: Option<Value>,
    error: Option<String>,
    #[serde(with = "rfc3339_opt")]
    start_time: Option<SystemTime>,
    #[serde(with = "rfc3339_opt")]
    end_time: Option<SystemTime>,
    attempts: u32,
    shared_output: bool,
    cached: bool,
    chosen_branches: Option<Vec<TaskId>>,
}

/// A value that is there, null included (a missing one is `None` by default).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl<'de> Deserialize<'de> for TaskRecord {
    /// Reads what [`Serialize`] writes, a missing field taken as its default. A `result`
    /// of null is the output null for a completed task, and no output for any other
    /// (one is written for every task that did not complete).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let written = WrittenRecord::deserialize(d)?;
        let result = match written.result {
            Some(Value::Null) if written.status != TaskStatus::Completed => None,
            result => result,
        };
        Ok(Self {
            status: written.status,
            result,
            error: written.error,
            start_time: written.start_time,
            end_time: written.end_time,
            attempts: written.attempts,
            shared_output: written.shared_output,
            cached: written.cached,
            chosen_branches: written.chosen_branches,
        })
    }
}

impl Serialize for TaskRecord {
    /// Writes every field plus `duration` in seconds; times in RFC 3339. `result` is
    /// left out only for a completed task without one (the output null is written as
    /// null), so that each reads back as it was.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A completed task's output is written as it is, null included; one without
        // (built so by hand) is written without the field, which then reads back as
        // none. Every other task's is written, null when it has none.
        let no_output = self.status == TaskStatus::Completed && self.result.is_none();
        let mut s = serializer.serialize_struct(
            "TaskRecord",
            6 + usize::from(!no_output)
                + usize::from(self.shared_output)
                + usize::from(self.cached)
                + usize::from(self.chosen_branches.is_some()),
        )?;
        s.serialize_field("status", &self.status)?;
        if no_output {
            s.skip_field("result")?;
        } else {
            s.serialize_field("result", &self.result)?;
        }
        s.serialize_field("error", &self.error)?;
        s.serialize_field("start_time", &self.start_time.map(rfc3339))?;
        s.serialize_field("end_time", &self.end_time.map(rfc3339))?;
        s.serialize_field("duration", &self.duration().map(|d| d.as_secs_f64()))?;
        s.serialize_field("attempts", &self.attempts)?;
        if self.shared_output {
            s.serialize_field("shared_output", &true)?;
        } else {
            s.skip_field("shared_output")?;
        }
        if self.cached {
            s.serialize_field("cached", &true)?;
        } else {
            s.skip_field("cached")?;
        }
        match &self.chosen_branches {
            Some(chosen) => s.serialize_field("chosen_branches", chosen)?,
            None => s.skip_field("chosen_branches")?,
        }
        s.end()
    }
}

/// The outcome of one workflow run: its status, timing and every task's record.
///
/// Serialises (see [`WorkflowResult::to_json`]) with `workflow_id`, `run_id`, `name`, `status`,
/// `start_time` and `end_time` (RFC 3339), `total_duration` (seconds), `max_concurrent`,
/// `tasks` (each task's record, in insertion order) and `metrics` (worked out from the
/// records while writing; see [`WorkflowResult::metrics`]). Reading one back takes the
/// records and ignores `total_duration` and `metrics`, which follow from them: the metrics
/// of a result read back are worked out again from its records.
///
/// Times are written in UTC to the microsecond: `2023-11-14T22:13:20.000000Z` (orch's
/// engine stamps whole microseconds, so its results read back equal). Every time
/// can be written and read back, whatever its year: outside the years 0000 to 9999, which
/// RFC 3339 covers, the year has a sign and four or more digits, as in ISO 8601's
/// expanded years (`+10000-01-01T00:00:00.000000Z`; `-0001-12-31T23:59:59.000000Z` is the
/// last second of 2 BC, the calendar being the Gregorian one extended backwards with a
/// year 0). Reading also takes a space for the `T`, any number of fraction digits, a UTC
/// offset (`+01:00`) or none (UTC).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WorkflowResult {
    /// The workflow's id.
    pub workflow_id: String,
    /// The run's id, the same as in each of its events
    /// ([`EngineEvent::run_id`](crate::EngineEvent::run_id)). A result read from a file
    /// written without one (by an earlier version of orch) gets a fresh id
    /// ([`RunId::new`]) as it is read, so reading such a file twice gives two ids.
    #[serde(default = "RunId::new")]
    pub run_id: RunId,
    /// The workflow's name.
    pub name: String,
    /// How the run ended.
    pub status: WorkflowStatus,
    /// When the run started.
    #[serde(with = "rfc3339_req")]
    pub start_time: SystemTime,
    /// When the run ended.
    #[serde(with = "rfc3339_req")]
    pub end_time: SystemTime,
    /// The most tasks the run allowed at once.
    pub max_concurrent: usize,
    /// Every task's record, in the workflow's insertion order.
    pub tasks: TaskRecords,
}

impl WorkflowResult {
    /// Wall-clock time of the whole run.
    pub fn total_duration(&self) -> Duration {
        self.end_time
            .duration_since(self.start_time)
            .unwrap_or_default()
    }

    /// The record of one task.
    pub fn task(&self, id: &str) -> Option<&TaskRecord> {
        self.tasks.get(id)
    }

    /// The ids of the tasks with this status, in insertion order.
    pub fn tasks_with(&self, status: TaskStatus) -> Vec<&TaskId> {
        self.tasks
            .iter()
            .filter(|(_, r)| r.status == status)
            .map(|(id, _)| id)
            .collect()
    }

    /// The result as a JSON value (the original Python module's `to_dict()`). A JSON
    /// value's objects are kept sorted by key, so `tasks` lists the tasks by id there;
    /// [`Self::to_json`] keeps them in insertion order, and reading its text back does
    /// too.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|e| Value::String(e.to_string()))
    }

    /// The result as compact JSON text, fields in the order documented above.
    ///
    /// A task's output sits three levels down in it (the result, `tasks`, the task's
    /// record): an output nested more than 124 levels deep is written, but `serde_json`
    /// (which reads at most 127 levels unless told otherwise) cannot read the text back.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The result as indented JSON text, fields in the order documented above.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

impl Serialize for WorkflowResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("WorkflowResult", 10)?;
        s.serialize_field("workflow_id", &self.workflow_id)?;
        s.serialize_field("run_id", &self.run_id)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("status", &self.status)?;
        s.serialize_field("start_time", &rfc3339(self.start_time))?;
        s.serialize_field("end_time", &rfc3339(self.end_time))?;
        s.serialize_field("total_duration", &self.total_duration().as_secs_f64())?;
        s.serialize_field("max_concurrent", &self.max_concurrent)?;
        s.serialize_field("tasks", &self.tasks)?;
        s.serialize_field("metrics", &self.metrics())?;
        s.end()
    }
}

/// `time` in RFC 3339 with microseconds, as results and events write it (see
/// [`WorkflowResult`] for times outside the years 0000 to 9999).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    crate::time::format_time(time)
}

fn parse_time<E: serde::de::Error>(text: &str) -> Result<SystemTime, E> {
    crate::time::parse(text).map_err(|e| {
        // Shown escaped and cut short: the text comes from a file, whatever it holds.
        const SHOWN_CHARS: usize = 40;
        let cut = text.char_indices().nth(SHOWN_CHARS).map(|(at, _)| at);
        let (start, more) = cut.map_or((text, ""), |at| (&text[..at], "…"));
        let start = crate::error::shown(start);
        E::custom(format!("invalid time `{start}{more}`: {e}"))
    })
}

mod rfc3339_opt {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| super::parse_time(&text))
            .transpose()
    }
}

mod rfc3339_req {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        super::parse_time(&String::deserialize(d)?)
    }
}
