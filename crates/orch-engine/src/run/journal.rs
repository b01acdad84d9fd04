//! A durable run's scheduler and its journal: tasks that ended in a pass (completed,
//! failed, or skipped by their handler or a trigger rule) are committed together, and
//! their dependents are told once the commit resolves, so a dependent that runs on a
//! failure or a skip is journaled after it.

use orch_core::{Plan, RunId, TaskRecord, TaskStatus, Workflow, WorkflowResult};
use tokio_util::sync::CancellationToken;

use super::{RunSettings, Scheduler, resume};
use crate::RunError;
use crate::in_flight::InFlight;
use crate::journaling::{self, Commit, InstanceRecords, RunJournal};
use crate::redefined::Redefined;

/// Opens run `run_id` of `workflow` in the engine's journal, if it has one: what to
/// continue from (the journal's record, else `previous`), the tasks whose definition
/// changed or that were added since, and the run's journal. A cancelled run waits for its journal as long
/// as for its handlers, from the start: one that does not answer must not hold the
/// cancellation up for ever.
pub(super) async fn open_for(
    engine: &RunSettings,
    workflow: &Workflow,
    plan: &Plan,
    previous: Option<WorkflowResult>,
    run_id: &RunId,
    cancel: &CancellationToken,
) -> Result<(Option<WorkflowResult>, Redefined, Option<RunJournal>), RunError> {
    let (grace, in_run) = (engine.grace_period, false);
    let features = plan.features();
    if features.timeouts || features.retries {
        let journal = engine.journal.as_ref();
        let refused =
            resume::refuse_without_a_timer(journal, workflow, plan, previous.as_ref(), run_id);
        let action = "read the run";
        journaling::unless_silent_once_cancelled(refused, cancel, grace, action, in_run).await?;
    }
    let Some(settings) = &engine.journal else {
        return Ok((previous, Redefined::default(), None));
    };
    let opening = journaling::open(settings, workflow, run_id);
    let action = "open the run";
    let opened =
        journaling::unless_silent_once_cancelled(opening, cancel, grace, action, in_run).await?;
    let previous = opened.previous.or(previous);
    Ok((previous, opened.redefined, Some(opened.journal)))
}

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
            None => InstanceRecords::default(),
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
    /// when the run is durable; the outcomes it does not keep are reset in the journal
    /// (to pending, with the count this run's attempt numbers go on from), so that an
    /// outcome that could have stood (a completion, a skip without a run) neither blocks
    /// the task's new outcome nor comes back on a later resume, and a later resume
    /// numbers the task's attempts on from this run's, not from an earlier one's (it
    /// takes up an attempt of this run that may have been under way, or numbers past it
    /// when it makes its input again). Returns how many tasks it kept.
    ///
    /// A map task that runs again is reset too when the journal holds records of its
    /// instances that this run does not keep (`stale`); one that keeps its completed
    /// instances has their records written again after its reset.
    pub(super) fn restore_kept(
        &mut self,
        previous: WorkflowResult,
        kept: &[bool],
        stale: &[bool],
    ) -> usize {
        // Taken out while the resets are worked out from the run's attempt numbers.
        if let Some(mut journal) = self.journal.take() {
            // The reset keeps the count this run's attempt numbers go on from. Dependents
            // go first: resets cut short (by a crash while writing them) then never leave
            // a reset task's dependent standing, which a later resume would keep, decided
            // on the outcome that was reset.
            let resets = (self.plan.order().iter().rev())
                .filter(|&&index| !kept[index as usize])
                .filter_map(|&index| {
                    let task = self.shared.task(index as usize);
                    let before = previous.task(&task.task_id);
                    let recorded = before.map_or(0, |before| before.attempts);
                    let base = self.attempt_base(index as usize);
                    let pending = TaskRecord {
                        attempts: recorded.max(base),
                        ..TaskRecord::default()
                    };
                    // Already pending with that count: nothing to reset.
                    let has_outcome = before.is_some_and(|b| b.status != TaskStatus::Pending);
                    let reset = has_outcome || base > recorded || stale[index as usize];
                    reset.then_some((index, pending))
                })
                .collect::<Vec<_>>();
            let reused = (resets.iter())
                .flat_map(|&(index, _)| self.reused_records(index as usize))
                .collect();
            journal.restored(kept, resets, reused);
            self.journal = Some(journal);
        }
        self.restore(previous, kept)
    }
}
