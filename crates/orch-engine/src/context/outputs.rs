//! Reading the outputs of a task's ancestors: which tasks a task may read, and why one
//! has no output to read.

use std::collections::HashSet;

use orch_core::Plan;

use super::{RunShared, TaskContext};
use crate::TaskError;
use crate::output::Stored;

impl TaskContext {
    /// The stored output of the dependency `id`, if it completed; no error is made for
    /// one that did not (an error names why, which takes a search of the plan).
    pub(crate) fn dependency_output(&self, id: &str) -> Option<&Stored> {
        let index = self.run.workflow.index_of(id)?;
        self.run.results.get(index)?.get()
    }

    /// The stored output of `id`, if it is an ancestor that completed.
    pub(super) fn output_of(&self, id: &str) -> Result<&Stored, TaskError> {
        let me = self.index as usize;
        let Some(target) = self.run.workflow.index_of(id) else {
            if self.run.partial {
                return Err(crate::remote::not_sent(self.task_id(), id));
            }
            return Err(TaskError::permanent(format!(
                "task `{}` read the output of `{id}`, which is not a task of workflow `{}`{}",
                self.task_id(),
                self.run.workflow.workflow_id(),
                instance_hint(&self.run, me, id)
            )));
        };
        let plan = self.run.plan();
        let direct = depends_directly(plan, me, target);
        if !direct && !is_ancestor(plan, target, me) {
            return Err(TaskError::permanent(format!(
                "task `{}` read the output of `{id}`, which it does not depend on, directly or \
                 not; a task reads only the outputs of its ancestors",
                self.task_id()
            )));
        }
        let output = self.run.results[target].get();
        output.ok_or_else(|| no_output(&self.run, me, target, direct))
    }
}

/// For an id written as an instance of a map task (`embed[3]`), how to read it: through
/// the map task, if task `me` depends on it.
fn instance_hint(run: &RunShared, me: usize, id: &str) -> String {
    let instance = id.strip_suffix(']').and_then(|id| id.rsplit_once('['));
    let Some((map, index)) = instance else {
        return String::new();
    };
    let found = run
        .workflow
        .index_of(map)
        .filter(|&i| run.task(i).map.is_some());
    let Some(map_index) = found.filter(|_| index.bytes().all(|b| b.is_ascii_digit())) else {
        return String::new();
    };
    let plan = run.plan();
    match depends_directly(plan, me, map_index) || is_ancestor(plan, map_index, me) {
        true => format!(
            " but an instance of map task `{map}`: read `{map}`, whose output lists its \
             instances' outputs in order"
        ),
        false => format!(" but an instance of map task `{map}`, which it does not depend on"),
    }
}

/// Why `target`, an ancestor of `me` (a `direct` dependency or not), has no output: it
/// did not complete, or, when a task between the two may have ended before `target` did
/// (see [`TaskContext::input`]), it may still be running.
fn no_output(run: &RunShared, me: usize, target: usize, direct: bool) -> TaskError {
    let plan = run.plan();
    let id = &run.task(target).task_id;
    let early = |t: usize| !run.task(t).trigger_rule.waits_for_all();
    let still_running = if early(me) {
        format!(
            ", or it has not finished yet (this task's trigger rule `{}` starts it before all \
             of its dependencies end)",
            run.task(me).trigger_rule
        )
    } else if direct {
        // `me` started once `target` ended.
        String::new()
    } else {
        // A task between the two (an ancestor of `me` that `target` is an ancestor of)
        // whose rule started it early; or one skipped as soon as another of its
        // dependencies failed (or a branch left it out), past which a rule that runs
        // after a skipped dependency let `me` start. Only tasks with such rules are
        // walked from: a long chain of default ones costs no walk each.
        let skip_passed = |t: usize| {
            use orch_core::TriggerRule::{AllDone, NoneFailed, NoneFailedMinOneSuccess};
            matches!(
                run.task(t).trigger_rule,
                AllDone | NoneFailed | NoneFailedMinOneSuccess
            )
        };
        let ancestors = plan.ancestors(me);
        let between = |rule: &dyn Fn(usize) -> bool| {
            (ancestors.iter().copied()).find(|&t| rule(t) && is_ancestor(plan, target, t))
        };
        match between(&early) {
            Some(t) => format!(
                ", or it has not finished yet (`{}`, between the two, has trigger rule `{}`, \
                 which starts it before all of its dependencies end; depend on `{id}` \
                 directly to wait for it)",
                run.task(t).task_id,
                run.task(t).trigger_rule
            ),
            None if skip_passed(me) || between(&skip_passed).is_some() => format!(
                ", or it has not finished yet (a task between the two may have been skipped \
                 before it ended, when another of its dependencies failed or a branch left \
                 it out; depend on `{id}` directly to wait for it)"
            ),
            None => String::new(),
        }
    };
    TaskError::permanent(format!(
        "`{id}` has no output: it did not complete in this run or the one resumed{still_running}"
    ))
}

/// Whether `task` depends on `dependency` directly, looked up in the shorter of the two
/// lists: a task reading each of many dependencies, or many tasks reading one, stays
/// linear in all.
fn depends_directly(plan: &Plan, task: usize, dependency: usize) -> bool {
    let (dependencies, dependents) = (plan.dependencies(task), plan.dependents(dependency));
    if dependencies.len() <= dependents.len() {
        dependencies.contains(&(dependency as u32))
    } else {
        dependents.contains(&(task as u32))
    }
}

/// Whether `ancestor` is reached from `task` through dependencies. Ancestors come earlier
/// in the plan's order, so the walk leaves out every task that comes before `ancestor`.
fn is_ancestor(plan: &Plan, ancestor: usize, task: usize) -> bool {
    let floor = plan.position(ancestor);
    let mut seen: HashSet<u32> = HashSet::new();
    let mut stack = vec![task as u32];
    while let Some(current) = stack.pop() {
        for &d in plan.dependencies(current as usize) {
            if d as usize == ancestor {
                return true;
            }
            if plan.position(d as usize) > floor && seen.insert(d) {
                stack.push(d);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use orch_core::{Task, Workflow};
    use proptest::prelude::*;

    use super::is_ancestor;

    proptest! {
        /// Against the plan's own (unpruned) ancestor query, on random DAGs.
        #[test]
        fn finds_exactly_the_ancestors(
            edges in proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..4), 1..40)
        ) {
            let workflow = Workflow::from_tasks("w", "W", edges.iter().enumerate().map(|(i, deps)| {
                let deps: std::collections::BTreeSet<String> = if i == 0 { Default::default() } else {
                    deps.iter().map(|d| format!("t{}", d.index(i))).collect()
                };
                Task::new(format!("t{i}"), "t").depends_on(deps)
            }));
            let plan = workflow.validate().expect("edges point backwards").plan();
            for task in 0..plan.len() {
                let ancestors = plan.ancestors(task);
                for other in 0..plan.len() {
                    prop_assert_eq!(is_ancestor(plan, other, task), ancestors.contains(&other));
                }
            }
        }
    }
}
