//! [`Note`]: a lifecycle event as the run records it, before it becomes an
//! [`EngineEvent`](orch_core::EngineEvent) on the bus.

use std::time::{Duration, SystemTime};

use orch_core::{EngineEventKind, WorkflowStatus};
use serde_json::Value;

/// One lifecycle event as the run records it: 64 bytes at most, no allocation unless it
/// carries a [`Detail`].
#[derive(Debug)]
#[cfg_attr(not(feature = "events"), allow(dead_code))]
pub(crate) struct Note {
    pub(crate) kind: EngineEventKind,
    pub(crate) status: Option<WorkflowStatus>,
    /// The task's plan index (task events only).
    pub(crate) task: u32,
    /// The index of the task's type in the plan (task events only).
    pub(crate) task_type: u32,
    pub(crate) attempt: u32,
    pub(crate) at: SystemTime,
    pub(crate) duration: Option<Duration>,
    /// What few events carry, boxed so that the others stay small.
    pub(crate) detail: Option<Box<Detail>>,
}

/// The part of a note that only some events have.
#[derive(Debug)]
#[cfg_attr(not(feature = "events"), allow(dead_code))]
pub(crate) enum Detail {
    /// Why a task failed, is retried, was skipped or cancelled.
    Error(String),
    /// A completed task's output (when the engine puts outputs in events).
    Output(Value),
    /// The run's size, for its start.
    Tasks { total: u32, restored: u32 },
    /// The event is about instance `item` of the (map) task, with its own detail.
    Instance {
        item: u32,
        detail: Option<Box<Detail>>,
    },
}

const _: () = assert!(
    std::mem::size_of::<Note>() <= 64,
    "a note fits a cache line"
);

impl Note {
    /// A note with only its kind and time set.
    pub(crate) fn new(kind: EngineEventKind, at: SystemTime) -> Self {
        Self {
            kind,
            status: None,
            task: 0,
            task_type: 0,
            attempt: 0,
            at,
            duration: None,
            detail: None,
        }
    }

    pub(crate) fn with_detail(mut self, detail: Detail) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }
}
