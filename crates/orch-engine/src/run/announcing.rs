//! The scheduler's lifecycle events: what it tells its announcer, and when.

use std::task::{Context, Poll};

use orch_core::{EngineEvent, EngineEventKind, WorkflowStatus};

use super::Scheduler;

impl Scheduler<'_> {
    /// Announces the end of a task, from its record.
    pub(super) fn announce_ended(&mut self, kind: EngineEventKind, index: usize) {
        let record = &self.records[index];
        let (attempts, duration) = (record.attempts, record.duration());
        let error = record.error.clone();
        self.announce_task(kind, index, |event| {
            event.attempt = attempts;
            event.duration = duration;
            event.error = error;
        });
    }

    pub(super) fn announce_task(
        &mut self,
        kind: EngineEventKind,
        index: usize,
        fill: impl FnOnce(&mut EngineEvent),
    ) {
        if let Some(announcer) = &mut self.announcer {
            let task = self.shared.task(index);
            let at = self.clock.last();
            announcer.task(kind, task, self.plan.type_of(index), at, fill);
        }
    }

    pub(super) fn announce_workflow(
        &mut self,
        kind: EngineEventKind,
        status: Option<WorkflowStatus>,
    ) {
        if let Some(announcer) = &mut self.announcer {
            let at = self.clock.last();
            let duration = status.map(|_| at.duration_since(self.clock.wall).unwrap_or_default());
            announcer.workflow(kind, at, status, duration);
        }
    }

    /// Hands queued events to the bus; pending (with the waker registered) while a
    /// lossless subscription has no room.
    pub(super) fn flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.announcer {
            Some(announcer) => announcer.flush(cx),
            None => Poll::Ready(()),
        }
    }
}
