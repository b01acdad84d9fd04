//! Attempt numbers across resumes: which attempts a run that continues another takes
//! up (resumed, under the same number) and where the others' numbers go on from.

use orch_core::{Decision, DependencyOutcomes, Plan, TaskRecord, TaskStatus, Workflow};
use orch_core::{TriggerRule, WorkflowResult};

use crate::redefined::{Redefined, marked};

/// How a run that continues `previous` numbers its attempts, per task:
///
/// - whether `previous` ended the task (completed, failed, skipped or cancelled it), or
///   this run makes again an input it may have read there: its next attempt's number is
///   then a new one. A task `previous` did not record, or recorded as pending or
///   running, may have had an attempt under way when it stopped, which this run takes up
///   ([`TaskContext::resumed`](crate::TaskContext::resumed)); so may one it cancelled
///   before any attempt of it was recorded (a run before it may have stopped during its
///   first attempt). But one whose rule could have started it on how its dependencies
///   (for a map, the list too) ended there, one of which this run makes again (`kept`
///   does not keep it: not journaled, or its outcome does not stand), may have been under
///   way on an output that now differs: its attempt is not taken up; nor is one whose
///   definition changed since (`redefined`: it was under way on the old one), nor one
///   added since (its id may be a removed task's), nor one whose rule the recorded
///   ends of its dependencies could not have started (none was under way);
/// - how many attempts the earlier runs recorded, which this run's attempt numbers go on
///   from, so that a system the attempts were handed to never takes a new attempt for an
///   old one; past every one that may have been under way (its retries too, which are
///   not recorded, as many as it has now), for a task whose input is made again or
///   whose definition changed (`None` when every count is 0).
pub(in crate::run) fn numbering(
    workflow: &Workflow,
    plan: &Plan,
    previous: &WorkflowResult,
    kept: &[bool],
    redefined: &Redefined,
) -> (Box<[bool]>, Option<Box<[u32]>>) {
    let (changed, added) = (
        marked(workflow, &redefined.changed),
        marked(workflow, &redefined.added),
    );
    let records: Vec<Option<&TaskRecord>> = workflow
        .tasks()
        .map(|task| previous.task(&task.task_id))
        .collect();
    let status = |d: u32| records[d as usize].map(|r| r.status);
    let remade = |d: u32| {
        let ended = matches!(
            status(d),
            Some(TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Skipped)
        );
        ended && !kept[d as usize]
    };
    let could_start = |index: usize, rule: TriggerRule| {
        let dependencies = plan.dependencies(index);
        let mut outcomes = DependencyOutcomes {
            total: u32::try_from(dependencies.len()).unwrap_or(u32::MAX),
            ..DependencyOutcomes::default()
        };
        for &d in dependencies {
            match status(d) {
                Some(TaskStatus::Completed) => outcomes.completed += 1,
                Some(TaskStatus::Failed) => outcomes.failed += 1,
                Some(TaskStatus::Skipped) => outcomes.skipped += 1,
                _ => {}
            }
        }
        rule.decide(outcomes) == Decision::Run
    };
    let mut ended_before = Vec::with_capacity(records.len());
    let mut bases = Vec::with_capacity(records.len());
    for (index, task) in workflow.tasks().enumerate() {
        let ended = records[index].is_some_and(|r| {
            let none_recorded = r.status == TaskStatus::Cancelled && r.attempts == 0;
            r.status.is_finished() && !none_recorded
        });
        // Its dependencies' recorded ends could have started it: otherwise no attempt was
        // under way (a durable run starts a dependent only once its dependencies' ends
        // are recorded).
        let may_have_started = could_start(index, task.trigger_rule);
        let inputs_remade = plan.dependencies(index).iter().any(|&d| remade(d));
        // What may have been under way is not this task's attempt any more.
        let new_work = may_have_started && (inputs_remade || changed[index]);
        ended_before.push(ended || new_work || added[index] || !may_have_started);
        let recorded = records[index].map_or(0, |r| r.attempts);
        // Past every attempt the run may have made: its retries are not recorded.
        let may_have_made = match new_work && !ended {
            true => task.retries.min(MOST_EARLIER_ATTEMPTS) + 1,
            false => 0,
        };
        bases.push(recorded.min(MOST_EARLIER_ATTEMPTS) + may_have_made);
    }
    let bases = bases
        .iter()
        .any(|&b| b > 0)
        .then(|| bases.into_boxed_slice());
    (ended_before.into_boxed_slice(), bases)
}

/// The most attempts of a task that earlier runs can hand on: a recorded count no run
/// reaches is cut to it, so that numbering on from it (and the retries after that)
/// cannot overflow.
const MOST_EARLIER_ATTEMPTS: u32 = u32::MAX / 2;
