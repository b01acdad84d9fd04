//! A durable run's scheduler and its journal: tasks that ended in a pass (completed,
//! failed, or skipped by their handler or a trigger rule) are committed together, and
//! their dependents are told once the commit resolves, so a dependent that runs on a
//! failure or a skip is journaled after it.

use orch_core::{TaskRecord, TaskStatus, WorkflowResult};

use super::Scheduler;
use crate::attempt::InFlight;
use crate::journaling::Commit;

impl Scheduler<'_> {
    /// Task `index` ended as `status`: its dependents are told at once, or, in a durable
    /// run, once the journal holds its record.
    pub(super) fn ended_durably(&mut self, index: usize, status: TaskStatus) {
        match &mut self.journal {
            Some(journal) => journal.push(index),
            None => self.ended(index, status),
        }
    }

    /// Hands the tasks that completed since the last commit to the journal; whether
    /// there were any (their commit is then in flight).
    pub(super) fn commit(&mut self) -> bool {
        let Some(journal) = &mut self.journal else {
            return false;
        };
        let instances = match self.extras.as_deref_mut() {
            Some(extras) => extras.instances_to_journal(journal, &self.shared.workflow),
            None => Vec::new(),
        };
        match journal.commit(&self.records, &self.shared, instances) {
            Some(pending) => {
                self.in_flight.push(InFlight::Commit(pending));
                true
            }
            None => false,
        }
    }

    /// Releases the dependents of the tasks a commit recorded; a journal that failed
    /// stops the run (what is not recorded must not be built on): nothing more starts,
    /// and running handlers are cancelled, as when the run is.
    pub(super) fn committed(&mut self, commit: Commit) {
        let released = match &mut self.journal {
            Some(journal) => journal.committed(commit),
            None => None,
        };
        match released {
            Some(released) => {
                for index in released {
                    let status = self.records[index as usize].status;
                    self.ended(index as usize, status);
                }
            }
            None => {
                self.stop_starting();
                self.shared.cancel.cancel();
            }
        }
    }

    /// Takes over the tasks `kept` from `previous`, which the journal already holds
    /// when the run is durable; the outcomes it does not keep that could have stood (a
    /// completion, a skip without a run) are reset in the journal, so that they neither
    /// block the tasks' new outcomes nor come back on a later resume. Returns how many
    /// tasks it kept.
    pub(super) fn restore_kept(&mut self, previous: WorkflowResult, kept: &[bool]) -> usize {
        if let Some(journal) = &mut self.journal {
            // The reset keeps the count of attempts made, which a later resume's attempt
            // numbers go on from.
            let resets = (self.shared.workflow.tasks())
                .zip(kept)
                .enumerate()
                .filter(|&(_, (_, &kept))| !kept)
                .filter_map(|(index, (task, _))| {
                    let before = previous.task(&task.task_id)?;
                    let pending = TaskRecord {
                        attempts: before.attempts,
                        ..TaskRecord::default()
                    };
                    super::resume::may_stand(before).then_some((index as u32, pending))
                })
                .collect();
            journal.restored(kept, resets);
        }
        self.restore(previous, kept)
    }
}
