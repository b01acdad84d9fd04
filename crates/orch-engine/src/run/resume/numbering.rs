//! Attempt numbers across resumes: which attempts a run that continues another takes
//! up (resumed, under the same number) and where the others' numbers go on from.

use orch_core::{Decision, DependencyOutcomes, Plan, TaskStatus, Workflow, WorkflowResult};

/// For a run that continues `previous`, per task, whether that run ended it (completed,
/// failed, skipped or cancelled it), or this run makes again an input that it read
/// there: the next attempt's number is a new one (see [`attempt_bases`]). A task it did
/// not record, or recorded as pending or running, may have had an attempt under way when
/// it stopped, which this run takes up; so may one it cancelled before any attempt of it
/// was recorded (a run before it may have stopped during its first attempt). But one
/// whose rule could have started it on how its dependencies ended there, one of which
/// this run makes again (not journaled, or its outcome does not stand), may have been
/// under way on an output that now differs: its attempt is not taken up.
pub(in crate::run) fn ended_before(
    workflow: &Workflow,
    plan: &Plan,
    previous: Option<&WorkflowResult>,
    kept: Option<&[bool]>,
) -> Option<Box<[bool]>> {
    let previous = previous?;
    let remade = inputs_remade(workflow, plan, previous, kept);
    let ended = |(index, task)| ended_in(previous, task) || remade[index];
    Some(workflow.tasks().enumerate().map(ended).collect())
}

/// Whether `previous` ended `task` (see [`ended_before`]).
fn ended_in(previous: &WorkflowResult, task: &orch_core::Task) -> bool {
    (previous.task(&task.task_id)).is_some_and(|r| {
        let none_recorded = r.status == TaskStatus::Cancelled && r.attempts == 0;
        r.status.is_finished() && !none_recorded
    })
}

/// Per task, whether it may have had an attempt under way in `previous` on an input
/// this run makes again: its rule could start it on how its dependencies (for a map,
/// the list too) ended there, and one of those that ended runs again in this run
/// (`kept` does not keep it).
fn inputs_remade(
    workflow: &Workflow,
    plan: &Plan,
    previous: &WorkflowResult,
    kept: Option<&[bool]>,
) -> Vec<bool> {
    let tasks: Vec<&orch_core::Task> = workflow.tasks().collect();
    let status = |d: u32| previous.task(&tasks[d as usize].task_id).map(|r| r.status);
    let remade = |d: u32| {
        let ended = matches!(
            status(d),
            Some(TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Skipped)
        );
        ended && kept.is_some_and(|kept| !kept[d as usize])
    };
    let could_start = |index: usize| {
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
        tasks[index].trigger_rule.decide(outcomes) == Decision::Run
    };
    (0..tasks.len())
        .map(|index| plan.dependencies(index).iter().any(|&d| remade(d)) && could_start(index))
        .collect()
}

/// For a run that continues `previous`, per task, how many attempts the earlier runs
/// recorded, which this one's attempt numbers go on from: a task that runs again is not
/// given the numbers of attempts that already ended (or were cancelled), so that a
/// system the attempts were handed to never takes a new attempt for an old one. Attempts
/// the earlier run made and did not record (its process stopped during them) are taken
/// up under the same numbers, and are resumed (see [`ended_before`]); one whose input
/// this run makes again is given the number after, as the attempt under way may have
/// had its number.
pub(in crate::run) fn attempt_bases(
    workflow: &Workflow,
    plan: &Plan,
    previous: Option<&WorkflowResult>,
    kept: Option<&[bool]>,
) -> Option<Box<[u32]>> {
    let previous = previous?;
    let remade = inputs_remade(workflow, plan, previous, kept);
    let base = |(index, task): (usize, &orch_core::Task)| {
        let recorded = previous.task(&task.task_id).map_or(0, |r| r.attempts);
        let under_way = remade[index] && !ended_in(previous, task);
        recorded.min(MOST_EARLIER_ATTEMPTS) + u32::from(under_way)
    };
    let bases: Box<[u32]> = workflow.tasks().enumerate().map(base).collect();
    bases.iter().any(|&b| b > 0).then_some(bases)
}

/// The most attempts of a task that earlier runs can hand on: a recorded count no run
/// reaches is cut to it, so that numbering on from it (and the retries after that)
/// cannot overflow.
const MOST_EARLIER_ATTEMPTS: u32 = u32::MAX / 2;
