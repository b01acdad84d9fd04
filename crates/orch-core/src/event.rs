//! [`EngineEvent`]: what the engine announces while a workflow runs.
//!
//! The data only: `orch-engine` publishes these on an `orch-events` bus, and
//! `orch-metrics` can aggregate them; both depend on this crate, not on each other.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::{TaskId, WorkflowStatus};

/// Which moment of a run an [`EngineEvent`] announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EngineEventKind {
    /// A run began.
    WorkflowStarted,
    /// A run ended (see [`EngineEvent::status`]).
    WorkflowFinished,
    /// A task's first attempt began.
    TaskStarted,
    /// A task completed.
    TaskCompleted,
    /// A task failed, after its retries.
    TaskFailed,
    /// An attempt failed and the task will be tried again.
    TaskRetrying,
    /// A task was skipped because a dependency failed.
    TaskSkipped,
    /// A task was cancelled with its run.
    TaskCancelled,
}

impl EngineEventKind {
    /// The last token of the event's subject: `started`, `completed`, `failed`,
    /// `retrying`, `skipped`, `cancelled` (for workflows: `started`, `finished`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkflowStarted | Self::TaskStarted => "started",
            Self::WorkflowFinished => "finished",
            Self::TaskCompleted => "completed",
            Self::TaskFailed => "failed",
            Self::TaskRetrying => "retrying",
            Self::TaskSkipped => "skipped",
            Self::TaskCancelled => "cancelled",
        }
    }

    /// Whether the event is about one task (rather than the whole run).
    pub fn is_task_event(self) -> bool {
        !matches!(self, Self::WorkflowStarted | Self::WorkflowFinished)
    }

    /// Whether the event ends a task's life in its run: completed, failed, skipped or
    /// cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::TaskCompleted | Self::TaskFailed | Self::TaskSkipped | Self::TaskCancelled
        )
    }
}

impl fmt::Display for EngineEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One lifecycle event of a run. Task events carry the task's id and type; workflow
/// events do not.
///
/// ```
/// use orch_core::{EngineEvent, EngineEventKind};
/// use std::time::{Duration, SystemTime};
///
/// let event = EngineEvent::new(EngineEventKind::TaskCompleted, "etl".into(), 7, SystemTime::UNIX_EPOCH);
/// assert_eq!(event.kind.as_str(), "completed");
/// let json = serde_json::to_value(&event).unwrap();
/// assert_eq!(json["kind"], "task_completed");
/// assert_eq!(json["timestamp"], "1970-01-01T00:00:00.000000Z");
/// assert_eq!(json["duration"], serde_json::Value::Null);
///
/// let finished = EngineEvent { duration: Some(Duration::from_millis(1500)), ..event };
/// assert_eq!(serde_json::to_value(&finished).unwrap()["duration"], 1.5);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EngineEvent {
    /// What happened.
    pub kind: EngineEventKind,
    /// The workflow's id.
    pub workflow_id: Arc<str>,
    /// Which run of the engine (unique within the process), to tell concurrent runs of one
    /// workflow apart.
    pub run_id: u64,
    /// The task, for task events.
    pub task_id: Option<TaskId>,
    /// The task's type, for task events.
    pub task_type: Option<Arc<str>>,
    /// The attempt number (0 where no attempt applies).
    pub attempt: u32,
    /// When it happened.
    pub timestamp: SystemTime,
    /// How long the task (from its first start) or the run took, for events that end one.
    pub duration: Option<Duration>,
    /// The error, for failed, retrying, skipped and cancelled tasks.
    pub error: Option<String>,
    /// How the run ended, for `WorkflowFinished`.
    pub status: Option<WorkflowStatus>,
}

impl EngineEvent {
    /// An event with no task, attempt, duration, error or status yet.
    pub fn new(
        kind: EngineEventKind,
        workflow_id: Arc<str>,
        run_id: u64,
        timestamp: SystemTime,
    ) -> Self {
        Self {
            kind,
            workflow_id,
            run_id,
            task_id: None,
            task_type: None,
            attempt: 0,
            timestamp,
            duration: None,
            error: None,
            status: None,
        }
    }
}

impl Serialize for EngineEvent {
    /// Writes every field; the timestamp in RFC 3339 (a signed, expanded year outside the
    /// years 0000 to 9999, as for a [`WorkflowResult`](crate::WorkflowResult)), the
    /// duration in seconds.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("EngineEvent", 10)?;
        s.serialize_field("kind", &self.kind)?;
        s.serialize_field("workflow_id", &*self.workflow_id)?;
        s.serialize_field("run_id", &self.run_id)?;
        s.serialize_field("task_id", &self.task_id)?;
        s.serialize_field("task_type", &self.task_type.as_deref())?;
        s.serialize_field("attempt", &self.attempt)?;
        s.serialize_field("timestamp", &crate::record::rfc3339(self.timestamp))?;
        s.serialize_field("duration", &self.duration.map(|d| d.as_secs_f64()))?;
        s.serialize_field("error", &self.error)?;
        s.serialize_field("status", &self.status)?;
        s.end()
    }
}
