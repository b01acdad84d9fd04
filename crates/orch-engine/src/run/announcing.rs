//! The scheduler's lifecycle events: what it tells its announcer, and when.

use std::task::{Context, Poll};

use orch_core::{EngineEventKind, WorkflowStatus};

use super::Scheduler;
use crate::note::Note;

impl Scheduler<'_> {
    /// Announces the end of a task, from its record.
    pub(super) fn announce_ended(&mut self, kind: EngineEventKind, index: usize) {
        if self.announcer.is_none() {
            return;
        }
        let record = &self.records[index];
        let (attempt, duration) = (record.attempts, record.duration());
        let error = record.error.as_deref().map(Box::from);
        self.announce_task(kind, index, |note| {
            note.attempt = attempt;
            note.duration = duration;
            note.error = error;
        });
    }

    /// Announces a task event; `fill` sets the fields particular to it.
    pub(super) fn announce_task(
        &mut self,
        kind: EngineEventKind,
        index: usize,
        fill: impl FnOnce(&mut Note),
    ) {
        if let Some(announcer) = &mut self.announcer {
            let mut note = Note::new(kind, self.clock.last());
            note.task = index as u32;
            note.task_type = self.plan.type_of(index) as u32;
            fill(&mut note);
            announcer.note(note);
        }
    }

    pub(super) fn announce_workflow(
        &mut self,
        kind: EngineEventKind,
        status: Option<WorkflowStatus>,
    ) {
        if let Some(announcer) = &mut self.announcer {
            let mut note = Note::new(kind, self.clock.last());
            note.status = status;
            note.duration =
                status.map(|_| note.at.duration_since(self.clock.wall).unwrap_or_default());
            announcer.note(note);
        }
    }

    /// Hands queued events to the publisher; pending (with the waker registered) while it
    /// is too far behind.
    pub(super) fn flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.announcer {
            Some(announcer) => announcer.flush(cx),
            None => Poll::Ready(()),
        }
    }
}
