//! The order in which ready tasks start: by priority, then (as an engine policy) by the
//! longest chain of tasks behind each, then in the plan's order.

use std::cmp::Reverse;

use orch_core::{Plan, Workflow};

/// Task indices by start rank, and each task's rank; `None` when the plan's order is the
/// start order already (no priorities, no critical-path policy).
pub(super) fn ranks(
    plan: &Plan,
    workflow: &Workflow,
    critical_path_first: bool,
) -> Option<(Vec<u32>, Vec<u32>)> {
    let priorities: Vec<i32> = workflow.tasks().map(|task| task.priority).collect();
    if !critical_path_first && priorities.iter().all(|&p| p == 0) {
        return None;
    }
    // Per task, how many tasks the longest chain from it to the end holds (itself too).
    let mut chain = vec![0u32; plan.len()];
    if critical_path_first {
        for &index in plan.order().iter().rev() {
            let index = index as usize;
            chain[index] = 1 + plan
                .dependents(index)
                .iter()
                .map(|&d| chain[d as usize])
                .max()
                .unwrap_or(0);
        }
    }
    let mut by_rank: Vec<u32> = plan.order().to_vec();
    // A stable sort keeps the plan's order among equals.
    by_rank.sort_by_key(|&index| {
        let index = index as usize;
        (Reverse(priorities[index]), Reverse(chain[index]))
    });
    let mut rank_of = vec![0u32; plan.len()];
    for (rank, &index) in by_rank.iter().enumerate() {
        rank_of[index as usize] = rank as u32;
    }
    Some((by_rank, rank_of))
}
