//! Resuming: which tasks of an earlier run are kept, and taking over their records.

use std::collections::HashSet;

use orch_core::{
    Decision, DependencyOutcomes, Plan, RunId, TaskId, TaskStatus, Workflow, WorkflowResult,
};

use super::Scheduler;
use crate::output::Stored;
use crate::redefined::{Redefined, marked};
use crate::{RunError, journaling, timer};

mod instances;
mod numbering;

/// What a run takes from the earlier run it continues, if any.
#[derive(Default)]
pub(super) struct Continued {
    /// Per task, whether the earlier outcome is kept (see [`kept`]).
    pub(super) kept: Option<Vec<bool>>,
    /// Per task, whether the earlier run ended it or this one makes an input of it
    /// again: its attempt is not taken up (see [`numbering::numbering`]).
    pub(super) ended_before: Option<Box<[bool]>>,
    /// Per task, the attempt count this run's numbers go on from.
    pub(super) attempt_bases: Option<Box<[u32]>>,
    /// Per task, whether it is a map task that runs again on the same list and inputs,
    /// and so keeps its instances that completed (see [`instances::reusing`]).
    pub(super) reusing: Option<Box<[bool]>>,
}

/// What a run of `workflow` takes from `previous`, the run it continues (`redefined`:
/// its tasks whose definitions changed, or that were added, since).
pub(super) fn continued(
    workflow: &Workflow,
    plan: &Plan,
    previous: Option<&WorkflowResult>,
    redefined: &Redefined,
) -> Continued {
    let Some(previous) = previous else {
        return Continued::default();
    };
    let kept = kept(workflow, plan, previous, &redefined.changed);
    let (ended_before, attempt_bases) =
        numbering::numbering(workflow, plan, previous, &kept, redefined);
    let reusing = instances::reusing(workflow, plan, &kept, &redefined.changed);
    Continued {
        kept: Some(kept),
        ended_before: Some(ended_before),
        attempt_bases,
        reusing: Some(reusing),
    }
}

/// Per task (by plan index), whether `previous` keeps it from running again: it completed
/// there and its output survives in the record, or it was skipped without running, and
/// its outcome still stands.
///
/// A task that did not complete there (failed, cancelled, skipped by its handler, or not
/// recorded) runs again, and so does every task that ran on its outcome (say, an
/// `all_done` cleanup after a failure): what ran after it is redone after it. A task
/// that started before it ended (its rule, such as `one_success`, let it start early)
/// did not run on its outcome, and is kept: a dependency skipped without running ended
/// no earlier than the first of its own dependencies, and one cancelled before it
/// started had not ended. A task
/// skipped without running (by a trigger rule, a branch, or a failure upstream) keeps its
/// skip while its dependencies' outcomes stand and its definition is not among `changed`;
/// otherwise its rule decides it again. A
/// kept branch task keeps its choice (its record's `chosen_branches`): a dependent it did
/// not choose is skipped again, whatever its other dependencies do, unless its rule had
/// decided to run it before the branch task ended.
///
/// A task whose output was a shared in-process value kept only its summary, so it runs
/// again when a task that runs depends on it, directly or not (its dependents read the
/// value); otherwise it is kept too. (A task that a kept skip skips at once does not
/// run.) The tasks between the two run again as well, so that
/// the one that runs starts after the value is there.
pub(super) fn kept(
    workflow: &Workflow,
    plan: &Plan,
    previous: &WorkflowResult,
    changed: &[TaskId],
) -> Vec<bool> {
    let records = records_of(workflow, previous);
    // A task whose definition changed since its outcome was recorded (the journal refuses
    // a changed task that completed) is decided again: its skip was its old rule's.
    let is_changed = marked(workflow, changed);
    // Whether the task's recorded outcome stands: it completed or was skipped without
    // running, and so did each of its dependencies that ended in the earlier run (one
    // with no outcome there, which the workflow may have gained since, does not unsettle
    // it: see `WorkflowEngine::resume`).
    let ended = |d: u32| records[d as usize].is_some_and(|r| r.status != TaskStatus::Pending);
    let ended_at = earliest_ends(plan, &records);
    // Whether the task ran on dependency `d`'s outcome: `d` ended, and not after the task
    // started (a rule such as `one_success` may start a task before all of them end). A
    // dependency still running, or cancelled before it started, had not ended when the
    // task started; one whose end is unknown counts as ended first.
    let ran_after = |index: usize, d: u32| {
        let Some(dependency) = records[d as usize].filter(|_| ended(d)) else {
            return false;
        };
        let started = records[index].and_then(|r| r.start_time);
        let started_first = match (started, ended_at[d as usize]) {
            (Some(started), Some(d_ended)) => started < d_ended,
            (Some(_), None) => {
                dependency.status == TaskStatus::Running
                    || (dependency.status == TaskStatus::Cancelled
                        && dependency.start_time.is_none())
            }
            (None, _) => false,
        };
        !started_first
    };
    let mut stands = vec![false; plan.len()];
    // Whether the task's outcome stands and is kept whatever runs again: none of what it
    // was decided on is a shared value, which a task that needs it makes run again (and
    // the tasks between them with it, below).
    let mut firm = vec![false; plan.len()];
    for &index in plan.order() {
        let index = index as usize;
        let (mut on_standing, mut on_firm) = (true, true);
        for &d in plan.dependencies(index) {
            if ran_after(index, d) {
                on_standing &= stands[d as usize];
                on_firm &= firm[d as usize];
            }
        }
        stands[index] = on_standing && !is_changed[index] && records[index].is_some_and(may_stand);
        firm[index] = on_firm && stands[index] && records[index].is_some_and(|r| !r.shared_output);
    }
    let skipped_at_once = skipped_at_once(workflow, plan, &records, &stands, &firm);
    let mut kept = vec![false; plan.len()];
    // Whether some task that runs depends on the task, directly or not.
    let mut needed = vec![false; plan.len()];
    for &index in plan.order().iter().rev() {
        let index = index as usize;
        let runs = |d: usize| !kept[d] && !skipped_at_once[d];
        needed[index] = plan
            .dependents(index)
            .iter()
            .any(|&d| runs(d as usize) || needed[d as usize]);
        kept[index] = stands[index]
            && records[index].is_some_and(|record| {
                record.status == TaskStatus::Skipped || !(record.shared_output && needed[index])
            });
    }
    // A kept task between a task that runs again and one that runs (which may read the
    // first's output) runs again too: restored, it would let that task start before
    // its ancestor's output is there. (Its ancestors are all needed already. A
    // dependency the workflow gained since is left to the rule above.)
    for &index in plan.order() {
        let index = index as usize;
        if kept[index]
            && needed[index]
            && (plan.dependencies(index).iter()).any(|&d| !kept[d as usize] && ran_after(index, d))
        {
            kept[index] = false;
        }
    }
    kept
}

/// Per task (by plan index), whether the resume skips it without running it, whatever
/// else happens: its outcome is not kept whatever runs again (`firm`), nor a completion
/// that may be kept, and its rule skips it on one skipped dependency (`all_success`,
/// `all_failed`), which it has: a skip kept whatever runs again, or skipped so itself.
fn skipped_at_once(
    workflow: &Workflow,
    plan: &Plan,
    records: &[Option<&orch_core::TaskRecord>],
    stands: &[bool],
    firm: &[bool],
) -> Vec<bool> {
    // Whether the task's rule skips it once one dependency is skipped, whatever the others do.
    let skips_on_a_skip = |index: usize| {
        let one_skipped = DependencyOutcomes {
            total: plan.dependencies(index).len() as u32,
            skipped: 1,
            ..DependencyOutcomes::default()
        };
        (workflow.get_index(index))
            .is_some_and(|task| task.trigger_rule.decide(one_skipped) == Decision::Skip)
    };
    let kept_skip =
        |d: usize| firm[d] && records[d].is_some_and(|r| r.status == TaskStatus::Skipped);
    let mut skipped = vec![false; plan.len()];
    for &index in plan.order() {
        let index = index as usize;
        // A completion that stands may be kept (a dependency the workflow gained since
        // does not unsettle it), and then its dependents read it.
        let kept_completion =
            stands[index] && records[index].is_some_and(|r| r.status == TaskStatus::Completed);
        skipped[index] = !firm[index]
            && !kept_completion
            && skips_on_a_skip(index)
            && (plan.dependencies(index).iter())
                .any(|&d| kept_skip(d as usize) || skipped[d as usize]);
    }
    skipped
}

/// Per task (by plan index), its record in `previous`, if it has one.
fn records_of<'a>(
    workflow: &Workflow,
    previous: &'a WorkflowResult,
) -> Vec<Option<&'a orch_core::TaskRecord>> {
    (workflow.tasks())
        .map(|task| previous.task(&task.task_id))
        .collect()
}

/// Per task (by plan index), when its recorded outcome came, or the earliest it can have
/// come: a task skipped without running has no end time, and was skipped once one of its
/// dependencies ended (or was skipped), so not before the first of them; unknown when one
/// of them has no such time.
fn earliest_ends(
    plan: &Plan,
    records: &[Option<&orch_core::TaskRecord>],
) -> Vec<Option<std::time::SystemTime>> {
    let mut ends = vec![None; plan.len()];
    for &index in plan.order() {
        let index = index as usize;
        ends[index] = match records[index] {
            Some(record) if record.end_time.is_some() => record.end_time,
            Some(record) if record.status == TaskStatus::Skipped && record.start_time.is_none() => {
                let dependencies = plan.dependencies(index).iter();
                (dependencies.map(|&d| ends[d as usize]))
                    .collect::<Option<Vec<_>>>()
                    .and_then(|ends| ends.into_iter().min())
            }
            _ => None,
        };
    }
    ends
}

/// Refuses to resume from `previous` if it is a result of another workflow.
pub(super) fn refuse_foreign(
    previous: Option<&WorkflowResult>,
    workflow: &Workflow,
) -> Result<(), RunError> {
    match previous {
        Some(previous) if previous.workflow_id != workflow.workflow_id() => {
            Err(RunError::ForeignResult {
                expected: workflow.workflow_id().to_owned(),
                found: previous.workflow_id.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// Without a timer, refuses a run whose tasks need one before the journal records it:
/// only the tasks the journal (or `previous`) keeps from an earlier run need none.
pub(super) async fn refuse_without_a_timer(
    journal: Option<&journaling::JournalSettings>,
    workflow: &Workflow,
    plan: &Plan,
    previous: Option<&WorkflowResult>,
    run_id: &RunId,
) -> Result<(), RunError> {
    if timer::missing(workflow.tasks()).is_none() {
        return Ok(());
    }
    let (recorded, redefined) = match journal {
        Some(settings) => journaling::recorded(settings, workflow, run_id).await?,
        None => (None, Redefined::default()),
    };
    let changed = &redefined.changed;
    let kept =
        (recorded.as_ref().or(previous)).map(|previous| kept(workflow, plan, previous, changed));
    match needs_timer(workflow, kept.as_deref()) {
        Some(errors) => Err(errors),
        None => Ok(()),
    }
}

/// The error for the tasks of `workflow` that need a timer and run (those `kept` does
/// not keep), when there is none.
fn needs_timer(workflow: &Workflow, kept: Option<&[bool]>) -> Option<RunError> {
    let runs = |index: usize| kept.is_none_or(|kept| !kept[index]);
    let to_run = workflow.tasks().enumerate().filter(|(i, _)| runs(*i));
    timer::missing(to_run.map(|(_, task)| task))
}

/// Whether a recorded outcome can be kept by a resume (when what it was decided on
/// stands too): a completion, or a skip without a run.
fn may_stand(record: &orch_core::TaskRecord) -> bool {
    // A task that ran has a start time; its attempt count may be an earlier run's.
    record.status == TaskStatus::Completed
        || (record.status == TaskStatus::Skipped && record.start_time.is_none())
}

impl Scheduler<'_> {
    /// How many attempts of task `index` earlier runs made that this run's attempt
    /// numbers go on from (see [`numbering::numbering`]).
    #[inline]
    pub(super) fn attempt_base(&self, index: usize) -> u32 {
        match &self.attempt_bases {
            Some(bases) => bases[index],
            None => 0,
        }
    }

    /// Gives each task's record the attempts earlier runs made, so that the count goes on
    /// (and a record written before the task starts again keeps it).
    pub(super) fn carry_attempts(&mut self) {
        if let Some(bases) = &self.attempt_bases {
            for (record, &base) in self.records.iter_mut().zip(bases.iter()) {
                record.attempts = base;
            }
        }
    }

    /// Takes over the records (and outputs) of the tasks `kept` from `previous`.
    /// Returns how many tasks it kept.
    pub(super) fn restore(&mut self, previous: WorkflowResult, kept: &[bool]) -> usize {
        let mut restored = 0;
        let shared = std::sync::Arc::clone(&self.shared);
        // (dependent, branch task) for each dependent a kept branch task did not choose.
        let mut unchosen = Vec::new();
        for (id, record) in previous.tasks.iter() {
            let Some(index) = shared.workflow.index_of(id) else {
                continue;
            };
            if !kept[index] {
                continue;
            }
            self.records[index] = record.clone();
            // Kept even if the workflow gave it a dependency that has yet to run: that
            // dependency's completion must not release it again (counts from here stay
            // far above zero).
            self.waiting[index].dependencies = u32::MAX;
            if let Some(rules) = &mut self.rules {
                rules.kept(index, self.plan.dependents(index), record.status);
            }
            // A kept skip releases nothing: see `skip_after_kept_skips`.
            if record.status != TaskStatus::Completed {
                continue;
            }
            let value = record.result.clone().unwrap_or_default();
            let _ = self.shared.results[index].set(Stored::Json(value));
            restored += 1;
            for &d in self.plan.dependents(index) {
                self.waiting[d as usize].dependencies -= 1;
            }
            if let Some(chosen) = &record.chosen_branches {
                let chosen: HashSet<&str> = chosen.iter().map(TaskId::as_str).collect();
                let is_chosen = |d: u32| chosen.contains(shared.task(d as usize).task_id.as_str());
                unchosen.extend(
                    (self.plan.dependents(index).iter())
                        .filter(|&&d| !is_chosen(d))
                        .map(|&d| (d as usize, index)),
                );
            }
        }
        // Only read when a kept branch task left dependents unchosen.
        let (records, ends) = match unchosen.is_empty() {
            true => (Vec::new(), Vec::new()),
            false => {
                let records = records_of(&shared.workflow, &previous);
                let ends = earliest_ends(self.plan, &records);
                (records, ends)
            }
        };
        for (d, branch) in unchosen {
            // A dependent whose rule let it run before the branch task ended (`always`;
            // `one_success` or `one_failed` after another dependency completed or
            // failed) was not skipped by
            // the choice: its rule decides again. Its record may not show that it
            // started: it may have been running, or waiting for a slot, when the run
            // stopped.
            let started_before = records[d].is_some_and(|record| record.start_time.is_some());
            let decided_before = started_before || self.ran_before(d, branch, &records, &ends);
            if kept[d] || decided_before || self.records[d].status != TaskStatus::Pending {
                continue;
            }
            // Skipped as the branch chose in the earlier run, like a kept skip.
            let reason = format!("not chosen by branch task `{}`", self.task(branch).task_id);
            let record = &mut self.records[d];
            record.status = TaskStatus::Skipped;
            record.error = Some(reason);
            self.waiting[d].dependencies = u32::MAX;
            // Unlike a kept skip, its dependents hear of it once the journal holds it.
            match (&mut self.rules, &mut self.journal) {
                (Some(rules), Some(journal)) => {
                    rules.decided_before_told(d);
                    journal.push(d);
                }
                (Some(rules), None) => rules.kept(d, self.plan.dependents(d), TaskStatus::Skipped),
                (None, _) => {}
            }
        }
        // With rules, `begin` decides what runs; otherwise the counts say.
        self.ready.clear();
        if self.rules.is_none() {
            for waiting in &self.waiting {
                if waiting.dependencies == 0 {
                    self.ready.insert(waiting.position);
                }
            }
        }
        restored
    }

    /// Whether task `d`'s trigger rule had decided to run it, in `previous`, before its
    /// dependency `branch` ended: on the outcomes of its other dependencies that ended
    /// before then (by `records` and `ends`, see [`earliest_ends`]).
    fn ran_before(
        &self,
        d: usize,
        branch: usize,
        records: &[Option<&orch_core::TaskRecord>],
        ends: &[Option<std::time::SystemTime>],
    ) -> bool {
        let Some(branch_ended) = ends[branch] else {
            return false;
        };
        // Ended by the time the branch task started: first, also when the clock did not
        // move meanwhile.
        let branch_started = records[branch].and_then(|r| r.start_time);
        let dependencies = self.plan.dependencies(d);
        let mut outcomes = orch_core::DependencyOutcomes {
            total: dependencies.len() as u32,
            ..Default::default()
        };
        for &dependency in dependencies
            .iter()
            .filter(|&&other| other as usize != branch)
        {
            let ended_first = ends[dependency as usize].is_some_and(|end| {
                end < branch_ended || branch_started.is_some_and(|started| end <= started)
            });
            match records[dependency as usize]
                .map(|r| r.status)
                .filter(|_| ended_first)
            {
                Some(TaskStatus::Completed) => outcomes.completed += 1,
                Some(TaskStatus::Failed) => outcomes.failed += 1,
                Some(TaskStatus::Skipped) => outcomes.skipped += 1,
                _ => {}
            }
        }
        self.task(d).trigger_rule.decide(outcomes) == orch_core::Decision::Run
    }

    /// Announces (and logs) the skips kept from the earlier run, once the run's start is
    /// announced; without trigger rules, also skips their descendants that were not kept
    /// (with rules, the kept skips count in their dependents' outcomes instead), all in
    /// plan order.
    pub(super) fn skip_after_kept_skips(&mut self) {
        let skips: Vec<usize> = (0..self.records.len())
            .filter(|&index| self.records[index].status == TaskStatus::Skipped)
            .collect();
        // Announced with the skips they cause, in plan order.
        self.skips.extend(skips.iter().map(|&index| index as u32));
        for index in skips {
            if self.rules.is_none() {
                self.skip_descendants(index, "was skipped");
            }
        }
        self.announce_skips();
    }
}
