//! [`RunMetrics`]: the summary figures of one run, and how they are worked out from the
//! run's records ([`WorkflowResult::metrics`]).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::{MapSpec, TaskId, TaskRecord, TaskStatus, TriggerRule, Workflow, WorkflowResult};

/// Summary figures of one run. Durations are in seconds; the duration statistics cover
/// the tasks that ran (those with both a start and an end time) and are `None` when no
/// task ran. A map task's instances count as tasks of their own: the duration
/// statistics and the busy time count each instance that ran, and not the map task's
/// own record, which spans them all. On the critical path, the map task stands for its
/// instances.
///
/// For a resumed run, the counts and the duration statistics cover the tasks it kept
/// from the runs it continues too, with their durations there: the longest may then
/// pass the run's own `total_duration`. The critical path and the parallel efficiency
/// count only the time within this run.
///
/// ```
/// use orch_core::RunMetrics;
///
/// let metrics = RunMetrics::default();
/// assert_eq!(metrics.total_tasks, 0);
/// assert_eq!(metrics.avg_task_duration, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// Wall-clock time of the whole run.
    pub total_duration: f64,
    /// Number of task records: the workflow's tasks, and the instances of its map tasks.
    pub total_tasks: usize,
    /// Tasks that completed.
    pub completed_tasks: usize,
    /// Tasks that failed.
    pub failed_tasks: usize,
    /// Tasks skipped: after a failure upstream, by their handler's choice, by a branch
    /// not taken or by a trigger rule that could not be met.
    pub skipped_tasks: usize,
    /// Tasks cancelled with the run.
    pub cancelled_tasks: usize,
    /// Mean duration of the tasks that ran.
    pub avg_task_duration: Option<f64>,
    /// Longest task duration.
    pub max_task_duration: Option<f64>,
    /// Shortest task duration.
    pub min_task_duration: Option<f64>,
    /// Median task duration (nearest rank).
    pub p50_task_duration: Option<f64>,
    /// 95th percentile of task durations (nearest rank).
    pub p95_task_duration: Option<f64>,
    /// 99th percentile of task durations (nearest rank).
    pub p99_task_duration: Option<f64>,
    /// The chain of dependent tasks with the greatest total duration, first task first:
    /// each task's time within this run (a task restored from an earlier run adds
    /// nothing), through the dependencies each task waited for (a rule such as
    /// `one_success` starts a task before its others end). Empty when the dependencies
    /// were not known to the computation.
    pub critical_path: Vec<TaskId>,
    /// The summed durations along the critical path.
    pub critical_path_duration: f64,
    /// Busy time over the time the slots were available: the summed task durations,
    /// each cut to the run's own start and end (a task restored from an earlier run
    /// counts only for what it ran in this one), divided by (wall time x
    /// `max_concurrent`). A task's duration runs from its first start to its last end,
    /// its retry pauses included, though its slot is free during them: with retries the
    /// figure can pass 1. `None` for a run that took no time or in which no task ran
    /// (0 for a resumed run whose tasks all ran before it).
    pub parallel_efficiency: Option<f64>,
}

impl WorkflowResult {
    /// The run's summary figures, worked out from its records now (each call works them
    /// out again, so they always match the records as they are).
    ///
    /// The critical path needs the workflow's dependencies: a result returned by the
    /// engine knows its workflow; a result read back from JSON does not, and gets an empty
    /// critical path here (use [`WorkflowResult::metrics_with`]). Without the workflow, a
    /// record `x[2]` beside a record `x` is also taken for an instance of a map task `x`
    /// (its instances count in the duration figures, and its own record does not), which
    /// a plain task may be named too.
    ///
    /// ```
    /// use orch_core::{Task, TaskRecord, TaskRecords, TaskStatus, Workflow, WorkflowResult,
    ///     WorkflowStatus};
    /// use std::time::{Duration, SystemTime};
    ///
    /// let workflow = Workflow::new("w", "W")
    ///     .task(Task::new("load", "t"))
    ///     .task(Task::new("clean", "t").depends_on(["load"]))
    ///     .task(Task::new("report", "t").depends_on(["load"]));
    /// let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    /// let ran = |start, end| TaskRecord {
    ///     status: TaskStatus::Completed,
    ///     start_time: Some(at(start)),
    ///     end_time: Some(at(end)),
    ///     attempts: 1,
    ///     ..TaskRecord::default()
    /// };
    /// let mut result = WorkflowResult {
    ///     workflow_id: "w".into(),
    ///     run_id: orch_core::RunId::new(),
    ///     name: "W".into(),
    ///     status: WorkflowStatus::Completed,
    ///     start_time: at(0),
    ///     end_time: at(6),
    ///     max_concurrent: 2,
    ///     tasks: TaskRecords::for_workflow(&workflow, vec![ran(0, 2), ran(2, 6), ran(2, 3)]).unwrap(),
    /// };
    /// let metrics = result.metrics();
    /// assert_eq!(metrics.completed_tasks, 3);
    /// assert_eq!(metrics.max_task_duration, Some(4.0));
    /// assert_eq!(metrics.critical_path, ["load", "clean"]);
    /// assert_eq!(metrics.critical_path_duration, 6.0);
    /// assert_eq!(metrics.parallel_efficiency, Some(7.0 / 12.0));
    ///
    /// // The figures follow the result as it is.
    /// result.end_time = at(12);
    /// assert_eq!(result.metrics().total_duration, 12.0);
    /// assert_eq!(result.metrics().parallel_efficiency, Some(7.0 / 24.0));
    /// ```
    pub fn metrics(&self) -> RunMetrics {
        summarise(self, self.tasks.workflow())
    }

    /// The run's summary figures, taking the dependencies from `workflow`: for results
    /// that do not carry their workflow, such as results read back from JSON. Records are
    /// matched to tasks by id; the critical path is empty if `workflow` is invalid.
    pub fn metrics_with(&self, workflow: &Workflow) -> RunMetrics {
        summarise(self, Some(workflow))
    }
}

fn summarise(result: &WorkflowResult, workflow: Option<&Workflow>) -> RunMetrics {
    let mut metrics = RunMetrics {
        total_duration: result.total_duration().as_secs_f64(),
        total_tasks: result.tasks.len(),
        ..RunMetrics::default()
    };
    // Each task's time within this run in seconds; `None` for a task that did not run.
    let mut seconds = Vec::with_capacity(result.tasks.len());
    let mut durations = Vec::with_capacity(result.tasks.len());
    // The map tasks whose instances have records of their own, by position. With the
    // workflow known, `x[0]` is an instance only of a map task `x` (a plain task may be
    // named so beside a plain `x`).
    let is_map = |id: &str| workflow.is_none_or(|w| w.get(id).is_some_and(|t| t.map.is_some()));
    let mut mapped = vec![false; result.tasks.len()];
    for id in result.tasks.ids() {
        if let Some(map) = MapSpec::parse_instance_id(id)
            .filter(|(m, _)| is_map(m))
            .and_then(|(m, _)| result.tasks.index_of(m))
        {
            mapped[map] = true;
        }
    }
    // Busy time counts what each task ran within this run: a task restored from an
    // earlier run keeps that run's times.
    let mut busy = 0.0;
    for (record, mapped) in result.tasks.records().iter().zip(mapped) {
        match record.status {
            TaskStatus::Completed => metrics.completed_tasks += 1,
            TaskStatus::Failed => metrics.failed_tasks += 1,
            TaskStatus::Skipped => metrics.skipped_tasks += 1,
            TaskStatus::Cancelled => metrics.cancelled_tasks += 1,
            TaskStatus::Pending | TaskStatus::Running => {}
        }
        let duration = record.duration().map(|d| d.as_secs_f64());
        let in_run = duration.map(|_| within_run(result, record));
        seconds.push(in_run);
        if !mapped {
            durations.extend(duration);
            busy += in_run.unwrap_or(0.0);
        }
    }
    if !durations.is_empty() {
        let summed: f64 = durations.iter().sum();
        metrics.avg_task_duration = Some(summed / durations.len() as f64);
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

/// How long `record` ran within `result`'s run, in seconds: a task restored from an
/// earlier run keeps that run's times.
fn within_run(result: &WorkflowResult, record: &TaskRecord) -> f64 {
    match (record.start_time, record.end_time) {
        (Some(start), Some(end)) => end
            .min(result.end_time)
            .duration_since(start.max(result.start_time))
            .map_or(0.0, |d| d.as_secs_f64()),
        _ => 0.0,
    }
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

/// The chain of dependencies with the greatest summed duration within the run, ending at
/// a task that ran (tasks that did not run weigh nothing and end no path). A task's
/// chain goes only through the dependencies it waited for, those that ended before it
/// started: a rule such as `one_success` starts it before the others end. Among
/// dependencies that tie, the one listed first is on the path.
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
    let tasks = workflow.task_map();
    let id = |i: usize| tasks.get_index(i).map(|(id, _)| id);
    // Workflows equal but for their tasks' order (`==` ignores it) place records
    // differently: compared in order.
    let in_order = |own: &Workflow| {
        own.len() == workflow.len()
            && own
                .tasks()
                .map(|t| &t.task_id)
                .eq(workflow.tasks().map(|t| &t.task_id))
    };
    let same_order = result.tasks.workflow().is_some_and(in_order);
    // The record of the task at plan index `i`.
    let record_of = |i: usize| -> Option<usize> {
        match same_order {
            true => Some(i),
            false => result.tasks.index_of(id(i)?),
        }
    };
    let weight = |i: usize| seconds[record_of(i)?];
    let records = result.tasks.records();
    let time = |i: usize, of: fn(&TaskRecord) -> Option<SystemTime>| of(&records[record_of(i)?]);
    // A task whose rule waits for every dependency waited for each; one that may start
    // early (`one_success`, `one_failed`, `always`) waited for those that ended before
    // it started (unknown times count as waiting).
    let starts_early = |i: usize| {
        let rule = tasks.get_index(i).map(|(_, task)| task.trigger_rule);
        rule.is_some_and(TriggerRule::may_start_early)
    };
    let n = plan.len();
    let mut finish = vec![0.0f64; n];
    let mut via = vec![u32::MAX; n];
    for &i in plan.order() {
        let i = i as usize;
        // Selects rather than branches on the loaded values, so that on a large random
        // graph the cache misses of one task's dependencies overlap.
        let (mut best, mut through) = (0.0, u32::MAX);
        let started = starts_early(i).then(|| time(i, |r| r.start_time));
        let waited = |d: usize| {
            started.is_none_or(|started| {
                (started.zip(time(d, |r| r.end_time))).is_none_or(|(s, e)| e <= s)
            })
        };
        for &d in plan.dependencies(i) {
            let f = finish[d as usize];
            let better = (through == u32::MAX || f > best) && waited(d as usize);
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
