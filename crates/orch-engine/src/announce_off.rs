//! Without the `events` feature there is no bus: an announcer that cannot exist.

use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use orch_core::{EngineEvent, EngineEventKind, Plan, Task, WorkflowStatus};

use crate::engine::EngineInner;

/// Never constructed: every run's `Option<Announcer>` is `None`.
pub(crate) enum Announcer {}

impl Announcer {
    pub(crate) fn for_engine(_: &EngineInner, _: &str, _: &Plan) -> Option<Self> {
        None
    }

    pub(crate) fn is_stalled(&self) -> bool {
        match *self {}
    }

    pub(crate) fn workflow(
        &mut self,
        _: EngineEventKind,
        _: SystemTime,
        _: Option<WorkflowStatus>,
        _: Option<Duration>,
    ) {
        match *self {}
    }

    pub(crate) fn task(
        &mut self,
        _: EngineEventKind,
        _: &Task,
        _: usize,
        _: SystemTime,
        _: impl FnOnce(&mut EngineEvent),
    ) {
        match *self {}
    }

    pub(crate) fn flush(&mut self, _: &mut Context<'_>) -> Poll<()> {
        match *self {}
    }
}
