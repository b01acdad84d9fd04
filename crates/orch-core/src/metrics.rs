//! [`RunMetrics`]: the summary figures of one run.
//!
//! This is the data only; `orch-metrics` computes it from a run's records, and the engine
//! attaches it to every [`WorkflowResult`](crate::WorkflowResult) it returns.

use serde::{Deserialize, Serialize};

use crate::TaskId;

/// Summary figures of one run. Durations are in seconds; the duration statistics cover
/// the tasks that ran (those with both a start and an end time) and are `None` when no
/// task ran.
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
    /// Number of tasks in the workflow.
    pub total_tasks: usize,
    /// Tasks that completed.
    pub completed_tasks: usize,
    /// Tasks that failed.
    pub failed_tasks: usize,
    /// Tasks skipped because a dependency failed.
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
    /// The chain of dependent tasks with the greatest total duration, first task first.
    /// Empty when the dependencies were not known to the computation.
    pub critical_path: Vec<TaskId>,
    /// The summed durations along the critical path.
    pub critical_path_duration: f64,
    /// Busy time over the time the slots were available: the summed task durations
    /// divided by (wall time x `max_concurrent`). `None` for a run that took no time.
    pub parallel_efficiency: Option<f64>,
}
