//! [`Tally`]: where a run's tasks are, counted from its lifecycle events, for the progress
//! display and the Prometheus gauges.

use std::collections::{BTreeMap, HashMap};

use orch::core::{EngineEvent, EngineEventKind, TaskId};

/// A run's tasks by state, as its events tell.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    pub(crate) total: usize,
    /// Running tasks, in the order they started.
    pub(crate) running: Running,
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
        self.running.remove(id);
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

/// The running tasks in the order they started. A task that ends is taken out in
/// logarithmic time wherever it is, so that thousands running at once stay cheap.
#[derive(Clone, Debug, Default)]
pub(crate) struct Running {
    by_start: BTreeMap<u64, TaskId>,
    started: HashMap<TaskId, u64>,
    next: u64,
}

impl Running {
    fn insert(&mut self, id: TaskId) {
        if self.started.contains_key(&id) {
            return;
        }
        self.by_start.insert(self.next, id.clone());
        self.started.insert(id, self.next);
        self.next += 1;
    }

    fn remove(&mut self, id: &TaskId) {
        if let Some(at) = self.started.remove(id) {
            self.by_start.remove(&at);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.started.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.started.is_empty()
    }

    /// The running tasks, the earliest started first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &TaskId> {
        self.by_start.values()
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

    #[test]
    fn running_tasks_stay_in_the_order_they_started() {
        let mut tally = Tally::new(5);
        for id in ["a", "b", "c", "d"] {
            tally.apply(&event(EngineEventKind::TaskStarted, id));
        }
        // A retry's new start is not a second task.
        tally.apply(&event(EngineEventKind::TaskStarted, "b"));
        tally.apply(&event(EngineEventKind::TaskCompleted, "b"));
        tally.apply(&event(EngineEventKind::TaskStarted, "e"));
        let running: Vec<&str> = tally.running.iter().map(|id| id.as_str()).collect();
        assert_eq!(running, ["a", "c", "d", "e"]);
        assert_eq!(tally.running.len(), 4);
    }
}
