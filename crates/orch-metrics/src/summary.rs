//! Computing [`RunMetrics`] from a [`WorkflowResult`].

use orch_core::{RunMetrics, TaskStatus, Workflow, WorkflowResult};

/// The metrics of one run. The critical path uses the workflow the records came from, when
/// the result knows it (results returned by the engine do); otherwise it is left empty
/// (see [`compute_with`]).
pub fn compute(result: &WorkflowResult) -> RunMetrics {
    match result.tasks.workflow() {
        Some(workflow) => compute_with(result, workflow),
        None => summarise(result, None),
    }
}

/// The metrics of one run of `workflow`, for results that do not carry their workflow
/// (such as results read back from JSON). Records are matched to tasks by id; the critical
/// path is empty if the workflow is invalid.
pub fn compute_with(result: &WorkflowResult, workflow: &Workflow) -> RunMetrics {
    summarise(result, Some(workflow))
}

fn summarise(result: &WorkflowResult, workflow: Option<&Workflow>) -> RunMetrics {
    let mut metrics = RunMetrics {
        total_duration: result.total_duration().as_secs_f64(),
        total_tasks: result.tasks.len(),
        ..RunMetrics::default()
    };
    // Each task's duration in seconds; `None` for a task that did not run.
    let mut seconds = Vec::with_capacity(result.tasks.len());
    let mut durations = Vec::with_capacity(result.tasks.len());
    for record in result.tasks.records() {
        match record.status {
            TaskStatus::Completed => metrics.completed_tasks += 1,
            TaskStatus::Failed => metrics.failed_tasks += 1,
            TaskStatus::Skipped => metrics.skipped_tasks += 1,
            TaskStatus::Cancelled => metrics.cancelled_tasks += 1,
            TaskStatus::Pending | TaskStatus::Running => {}
        }
        let duration = record.duration().map(|d| d.as_secs_f64());
        seconds.push(duration);
        durations.extend(duration);
    }
    if !durations.is_empty() {
        let busy: f64 = durations.iter().sum();
        metrics.avg_task_duration = Some(busy / durations.len() as f64);
        metrics.max_task_duration = durations.iter().copied().reduce(f64::max);
        metrics.min_task_duration = durations.iter().copied().reduce(f64::min);
        let [p50, p95, p99] = percentiles(&mut durations, [50.0, 95.0, 99.0]);
        metrics.p50_task_duration = p50;
        metrics.p95_task_duration = p95;
        metrics.p99_task_duration = p99;
        let capacity = metrics.total_duration * result.max_concurrent.max(1) as f64;
        metrics.parallel_efficiency = (capacity > 0.0).then(|| busy / capacity);
    }
    drop(durations);
    if let Some(workflow) = workflow {
        critical_path(result, workflow, &seconds, &mut metrics);
    }
    metrics
}

/// Nearest-rank percentiles, `ps` in increasing order: for each, the smallest value with
/// at least that percent of the values at or below it. Reorders `values`; each selection
/// searches only above the previous one, so the three cost about one and a half passes.
fn percentiles<const N: usize>(values: &mut [f64], ps: [f64; N]) -> [Option<f64>; N] {
    let mut found = [None; N];
    let mut from = 0;
    for (slot, p) in found.iter_mut().zip(ps) {
        if values.is_empty() {
            break;
        }
        let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
        let index = rank.clamp(1, values.len()) - 1;
        // Everything before `from` is known to be at or below the previous percentile.
        let index = index.max(from);
        let (_, value, _) = values[from..].select_nth_unstable_by(index - from, f64::total_cmp);
        *slot = Some(*value);
        from = index;
    }
    found
}

/// The chain of dependencies with the greatest summed duration, ending at a task that ran
/// (tasks that did not run weigh nothing and end no path). Among dependencies that tie,
/// the one listed first is on the path.
fn critical_path(
    result: &WorkflowResult,
    workflow: &Workflow,
    seconds: &[Option<f64>],
    metrics: &mut RunMetrics,
) {
    let Ok(valid) = workflow.validate() else {
        return;
    };
    let plan = valid.plan();
    let tasks = workflow.tasks();
    let id = |i: usize| tasks.get_index(i).map(|(id, _)| id);
    let same_order = result.tasks.workflow().is_some_and(|own| own == workflow);
    let weight = |i: usize| -> Option<f64> {
        if same_order {
            return seconds[i];
        }
        seconds[result.tasks.index_of(id(i)?)?]
    };
    let n = plan.len();
    let mut finish = vec![0.0f64; n];
    let mut via = vec![u32::MAX; n];
    for &i in plan.order() {
        let i = i as usize;
        // Selects rather than branches on the loaded values, so that on a large random
        // graph the cache misses of one task's dependencies overlap.
        let (mut best, mut through) = (0.0, u32::MAX);
        for &d in plan.dependencies(i) {
            let f = finish[d as usize];
            let better = through == u32::MAX || f > best;
            best = if better { f } else { best };
            through = if better { d } else { through };
        }
        finish[i] = best + weight(i).unwrap_or(0.0);
        via[i] = through;
    }
    // The path ends at the task that ran and finished last; of equals, the later one in
    // execution order, so a task that took no measurable time still ends its chain.
    let mut end = None;
    for &i in plan.order() {
        let i = i as usize;
        if weight(i).is_some() && end.is_none_or(|e: usize| finish[i] >= finish[e]) {
            end = Some(i);
        }
    }
    let Some(mut last) = end else {
        return;
    };
    metrics.critical_path_duration = finish[last];
    let mut path: Vec<_> = id(last).cloned().into_iter().collect();
    while via[last] != u32::MAX {
        last = via[last] as usize;
        path.extend(id(last).cloned());
    }
    path.reverse();
    metrics.critical_path = path;
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::percentiles;

    proptest! {
        /// Against sorting: the value at rank ceil(p% of n), for each percentile.
        #[test]
        fn percentiles_match_a_sorted_copy(values in proptest::collection::vec(0.0f64..1e3, 1..300)) {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let mut scratch = values.clone();
            let found = percentiles(&mut scratch, [50.0, 95.0, 99.0]);
            for (p, got) in [50.0, 95.0, 99.0].into_iter().zip(found) {
                let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
                prop_assert_eq!(got, Some(sorted[rank.clamp(1, sorted.len()) - 1]));
            }
        }
    }
}
