//! [`Tally`]: where a run's tasks are, counted from its lifecycle events, for the progress
//! display and the Prometheus gauges.

use indexmap::IndexSet;
use orch::core::{EngineEvent, EngineEventKind, TaskId};

/// A run's tasks by state, as its events tell.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    pub(crate) total: usize,
    /// Running tasks, in the order they started.
    pub(crate) running: IndexSet<TaskId>,
    pub(crate) completed: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    pub(crate) cancelled: usize,
    /// Failed attempts that are retried.
    pub(crate) retries: usize,
}

impl Tally {
    pub(crate) fn new(total: usize) -> Self {
        Self {
            total,
            ..Self::default()
        }
    }

    /// Takes one event into account.
    pub(crate) fn apply(&mut self, event: &EngineEvent) {
        let Some(id) = &event.task_id else {
            return;
        };
        match event.kind {
            EngineEventKind::TaskStarted => {
                self.running.insert(id.clone());
            }
            EngineEventKind::TaskRetrying => self.retries += 1,
            // A task restored from the run being resumed completed there.
            EngineEventKind::TaskCompleted | EngineEventKind::TaskRestored => {
                self.ended(id, |t| &mut t.completed)
            }
            EngineEventKind::TaskFailed => self.ended(id, |t| &mut t.failed),
            EngineEventKind::TaskSkipped => self.ended(id, |t| &mut t.skipped),
            EngineEventKind::TaskCancelled => self.ended(id, |t| &mut t.cancelled),
            _ => {}
        }
    }

    fn ended(&mut self, id: &TaskId, count: impl FnOnce(&mut Self) -> &mut usize) {
        self.running.shift_remove(id);
        *count(self) += 1;
    }

    /// Tasks that ended, whatever their status.
    pub(crate) fn finished(&self) -> usize {
        self.completed + self.failed + self.skipped + self.cancelled
    }

    /// Tasks not started yet.
    pub(crate) fn pending(&self) -> usize {
        self.total
            .saturating_sub(self.finished() + self.running.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn event(kind: EngineEventKind, id: &str) -> EngineEvent {
        let mut event = EngineEvent::new(
            kind,
            "w".into(),
            orch::core::RunId::new(),
            SystemTime::UNIX_EPOCH,
        );
        event.task_id = Some(id.into());
        event
    }

    #[test]
    fn counts_follow_the_events() {
        let mut tally = Tally::new(4);
        tally.apply(&event(EngineEventKind::TaskStarted, "a"));
        tally.apply(&event(EngineEventKind::TaskStarted, "b"));
        assert_eq!((tally.running.len(), tally.pending()), (2, 2));
        tally.apply(&event(EngineEventKind::TaskRetrying, "a"));
        tally.apply(&event(EngineEventKind::TaskFailed, "a"));
        tally.apply(&event(EngineEventKind::TaskSkipped, "c"));
        tally.apply(&event(EngineEventKind::TaskCompleted, "b"));
        assert_eq!(tally.running.len(), 0);
        assert_eq!(
            (tally.failed, tally.skipped, tally.completed, tally.retries),
            (1, 1, 1, 1)
        );
        assert_eq!((tally.finished(), tally.pending()), (3, 1));
        tally.apply(&event(EngineEventKind::TaskRestored, "d"));
        assert_eq!((tally.completed, tally.pending()), (2, 0));
    }
}
