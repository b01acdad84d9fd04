//! What the scheduler tells the world: lifecycle events for its announcer, and when; and
//! the `tracing` events for failures, skips and cancellations.

use std::task::{Context, Poll};

use orch_core::{EngineEventKind, TaskStatus, WorkflowStatus};

use super::Scheduler;
use crate::note::{Detail, Note};

impl Scheduler<'_> {
    /// Announces the run's start with its size, then each task restored from the result it
    /// resumes, so that a progress display starts from what is already done.
    pub(super) fn announce_start(&mut self, restored: usize) {
        let total = self.records.len();
        let Some(announcer) = &mut self.announcer else {
            return;
        };
        // A plan numbers its tasks with `u32`s, so the counts fit.
        let (total32, restored32) = (total as u32, restored as u32);
        let note = Note::new(EngineEventKind::WorkflowStarted, self.clock.last()).with_detail(
            Detail::Tasks {
                total: total32,
                restored: restored32,
            },
        );
        announcer.note(note);
        if restored == 0 {
            return;
        }
        for index in 0..total {
            if self.records[index].status == TaskStatus::Completed {
                self.announce_ended(EngineEventKind::TaskRestored, index);
            }
        }
    }

    /// Announces the end of a task, from its record (with its output, for a completed
    /// task, when the engine puts outputs in events).
    // Forced inline: on every task's path, where the optimiser kept a call.
    #[inline(always)]
    pub(super) fn announce_ended(&mut self, kind: EngineEventKind, index: usize) {
        // Checked here, inlined: most runs have no bus, and the call would cost more.
        if self.announcer.is_some() {
            self.announce_ended_to_bus(kind, index);
        }
    }

    fn announce_ended_to_bus(&mut self, kind: EngineEventKind, index: usize) {
        let Some(announcer) = &self.announcer else {
            return;
        };
        let record = &self.records[index];
        let (attempt, duration) = (attempt_of(record), record.duration());
        let detail = match &record.error {
            Some(error) => Some(Detail::Error(error.clone())),
            None if announcer.wants_outputs() => self.shared.results[index]
                .get()
                .map(|output| Detail::Output(output.json().clone())),
            None => None,
        };
        self.announce_task(kind, index, |note| {
            note.attempt = attempt;
            note.duration = duration;
            note.detail = detail.map(Box::new);
        });
    }

    /// Announces that task `index` started, its first attempt numbered `attempt` (the
    /// attempts of the earlier run it continues, when no attempt of its own runs).
    pub(super) fn announce_started(&mut self, index: usize, attempt: u32) {
        self.announce_task(EngineEventKind::TaskStarted, index, |note| {
            note.attempt = attempt
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

    /// The note of `WorkflowFinished`, for a run that ended as `status`.
    pub(super) fn finished_note(&self, status: WorkflowStatus) -> Note {
        let mut note = Note::new(EngineEventKind::WorkflowFinished, self.clock.last());
        note.status = Some(status);
        note.duration = Some(note.at.duration_since(self.clock.wall).unwrap_or_default());
        note
    }

    /// Hands queued events to the publisher; pending (with the waker registered) while it
    /// is too far behind.
    pub(super) fn flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.announcer {
            Some(announcer) => announcer.flush(cx),
            None => Poll::Ready(()),
        }
    }

    /// Whether the publisher is too far behind for the run to start tasks.
    pub(super) fn publisher_behind(&self) -> bool {
        self.announcer.as_ref().is_some_and(|a| a.is_stalled())
    }

    /// Logs how a task ended that did not complete: a failure as a warning, a skip at
    /// info, a cancellation at debug level, each with the task's id, type, attempts and
    /// error. (Not called for completed tasks, which are not logged: the common case
    /// costs nothing.)
    #[cold]
    pub(super) fn log_ended(&self, index: usize) {
        let task = self.task(index);
        let record = &self.records[index];
        let (task_id, task_type) = (task.task_id.as_str(), task.task_type.as_str());
        let (attempt, error) = (attempt_of(record), record.error.as_deref().unwrap_or(""));
        match record.status {
            TaskStatus::Failed => {
                tracing::warn!(task_id, task_type, attempt, error, "task failed");
            }
            TaskStatus::Skipped => {
                tracing::info!(task_id, task_type, attempt, error, "task skipped");
            }
            TaskStatus::Cancelled => {
                tracing::debug!(task_id, task_type, attempt, error, "task cancelled");
            }
            TaskStatus::Pending | TaskStatus::Running | TaskStatus::Completed => {}
        }
    }
}

/// The attempt a task's event names: its last, or 0 for a task that did not start in its
/// run (whose record may still count attempts of an earlier run it continues).
fn attempt_of(record: &orch_core::TaskRecord) -> u32 {
    match record.start_time {
        Some(_) => record.attempts,
        None => 0,
    }
}
