//! [`EngineEvent`]: what the engine announces while a workflow runs.
//!
//! The data only: `orch-engine` publishes these on an `orch-events` bus, and
//! `orch-metrics` can aggregate them; both depend on this crate, not on each other.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::{RunId, TaskId, WorkflowStatus};

/// Which moment of a run an [`EngineEvent`] announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EngineEventKind {
    /// A run began (see [`EngineEvent::total_tasks`] and [`EngineEvent::restored_tasks`]).
    WorkflowStarted,
    /// A run ended (see [`EngineEvent::status`]).
    WorkflowFinished,
    /// A task's first attempt began; for a task whose result came from the cache, that
    /// it started (with attempt 0, or in a resumed run the attempts of the run it
    /// continues; followed at once by its completion).
    TaskStarted,
    /// A task completed.
    TaskCompleted,
    /// A task failed, after its retries.
    TaskFailed,
    /// An attempt failed and the task will be tried again.
    TaskRetrying,
    /// A task was skipped: after a failure upstream, by its handler's choice, by a branch
    /// not taken or by a trigger rule that could not be met (its record's error says
    /// which).
    TaskSkipped,
    /// A task was cancelled with its run.
    TaskCancelled,
    /// A task completed in an earlier run that this one resumes: it keeps its record and
    /// output and does not run again. Announced right after the run's start.
    TaskRestored,
}

impl EngineEventKind {
    /// The last token of the event's subject: `started`, `completed`, `failed`,
    /// `retrying`, `skipped`, `cancelled`, `restored` (for workflows: `started`,
    /// `finished`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkflowStarted | Self::TaskStarted => "started",
            Self::WorkflowFinished => "finished",
            Self::TaskCompleted => "completed",
            Self::TaskFailed => "failed",
            Self::TaskRetrying => "retrying",
            Self::TaskSkipped => "skipped",
            Self::TaskCancelled => "cancelled",
            Self::TaskRestored => "restored",
        }
    }

    /// Whether the event is about one task (rather than the whole run).
    pub fn is_task_event(self) -> bool {
        !matches!(self, Self::WorkflowStarted | Self::WorkflowFinished)
    }

    /// Whether the event ends a task's life in its run: completed, failed, skipped,
    /// cancelled, or restored from the run it resumes. Each task of a run gets exactly one
    /// such event, so counting them against [`EngineEvent::total_tasks`] gives the run's
    /// progress. The instances of a map task get such events too, with
    /// [`EngineEvent::map_item`] set: leave those out of the count.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::TaskCompleted
                | Self::TaskFailed
                | Self::TaskSkipped
                | Self::TaskCancelled
                | Self::TaskRestored
        )
    }
}

impl fmt::Display for EngineEventKind {
    /// The subject token ([`EngineEventKind::as_str`]); a width, fill, alignment or
    /// precision given applies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One lifecycle event of a run. Task events carry the task's id and type; workflow
/// events do not. Every event carries the id of its run, so the events of concurrent runs
/// of one workflow can be told apart.
///
/// ```
/// use orch_core::{EngineEvent, EngineEventKind, RunId};
/// use std::time::{Duration, SystemTime};
///
/// let run_id: RunId = "nightly-1".parse()?;
/// let event = EngineEvent::new(EngineEventKind::TaskCompleted, "etl".into(), run_id, SystemTime::UNIX_EPOCH);
/// assert_eq!(event.kind.as_str(), "completed");
/// let json = serde_json::to_value(&event).unwrap();
/// assert_eq!(json["kind"], "task_completed");
/// assert_eq!(json["run_id"], "nightly-1");
/// assert_eq!(json["timestamp"], "1970-01-01T00:00:00.000000Z");
/// assert_eq!(json["duration"], serde_json::Value::Null);
///
/// let finished = EngineEvent { duration: Some(Duration::from_millis(1500)), ..event };
/// assert_eq!(serde_json::to_value(&finished).unwrap()["duration"], 1.5);
/// # Ok::<(), orch_core::RunIdError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EngineEvent {
    /// What happened.
    pub kind: EngineEventKind,
    /// The workflow's id.
    pub workflow_id: Arc<str>,
    /// The run's id: the same in every event of one run, and in its
    /// [`WorkflowResult::run_id`](crate::WorkflowResult::run_id).
    pub run_id: RunId,
    /// The task, for task events; for an instance of a map task, the instance's id
    /// (`task[i]`).
    pub task_id: Option<TaskId>,
    /// For the events of a map task's instance, the position of its element in the list
    /// (the `i` of `task[i]`); `None` for every other event. Written to JSON only when
    /// set.
    pub map_item: Option<u32>,
    /// The task's type, for task events.
    pub task_type: Option<Arc<str>>,
    /// The attempt number (0 where no attempt applies).
    pub attempt: u32,
    /// When it happened.
    pub timestamp: SystemTime,
    /// How long the task (from its first start) or the run took, for events that end one;
    /// for `retrying`, the pause before the next attempt.
    pub duration: Option<Duration>,
    /// The error, for failed, retrying, skipped and cancelled tasks; for
    /// `WorkflowFinished`, why the run's journal did not record its end (the run then
    /// returned that error, and stays unfinished in the journal, to be resumed).
    pub error: Option<String>,
    /// How the run ended, for `WorkflowFinished`.
    pub status: Option<WorkflowStatus>,
    /// How many tasks the workflow has, for `WorkflowStarted`.
    pub total_tasks: Option<u32>,
    /// For `WorkflowStarted`, how many of them completed in the earlier run this one
    /// resumes (0 for a fresh run); each of them also gets a `TaskRestored` event.
    pub restored_tasks: Option<u32>,
    /// The task's output, for `TaskCompleted` (and `TaskRestored`), when the engine was
    /// asked to include outputs in events; they are left out by default, since each one
    /// is a copy of the output. Shared, so that cloning the event does not copy it again.
    pub output: Option<Arc<Value>>,
}

impl EngineEvent {
    /// An event with no task, attempt, duration, error, status, counts or output yet.
    pub fn new(
        kind: EngineEventKind,
        workflow_id: Arc<str>,
        run_id: RunId,
        timestamp: SystemTime,
    ) -> Self {
        Self {
            kind,
            workflow_id,
            run_id,
            task_id: None,
            map_item: None,
            task_type: None,
            attempt: 0,
            timestamp,
            duration: None,
            error: None,
            status: None,
            total_tasks: None,
            restored_tasks: None,
            output: None,
        }
    }
}

impl Serialize for EngineEvent {
    /// Writes every field; the timestamp in RFC 3339 (a signed, expanded year outside the
    /// years 0000 to 9999, as for a [`WorkflowResult`](crate::WorkflowResult)), the
    /// duration in seconds.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = 13 + usize::from(self.map_item.is_some());
        let mut s = serializer.serialize_struct("EngineEvent", fields)?;
        s.serialize_field("kind", &self.kind)?;
        s.serialize_field("workflow_id", &*self.workflow_id)?;
        s.serialize_field("run_id", &self.run_id)?;
        s.serialize_field("task_id", &self.task_id)?;
        match self.map_item {
            Some(item) => s.serialize_field("map_item", &item)?,
            None => s.skip_field("map_item")?,
        }
        s.serialize_field("task_type", &self.task_type.as_deref())?;
        s.serialize_field("attempt", &self.attempt)?;
        s.serialize_field("timestamp", &crate::record::rfc3339(self.timestamp))?;
        s.serialize_field("duration", &self.duration.map(|d| d.as_secs_f64()))?;
        s.serialize_field("error", &self.error)?;
        s.serialize_field("status", &self.status)?;
        s.serialize_field("total_tasks", &self.total_tasks)?;
        s.serialize_field("restored_tasks", &self.restored_tasks)?;
        s.serialize_field("output", &self.output.as_deref())?;
        s.end()
    }
}
