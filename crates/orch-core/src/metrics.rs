//! [`RunMetrics`]: the summary figures of one run.
//!
//! This is the data only; `orch-metrics` computes it from a run's records, and the engine
//! (with its `metrics` feature, the default) gives every [`WorkflowResult`] it returns a
//! [`LazyMetrics`] that computes it when first asked.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{TaskId, WorkflowResult};

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
    /// divided by (wall time x `max_concurrent`). `None` for a run that took no time or
    /// in which no task ran.
    pub parallel_efficiency: Option<f64>,
}

/// A run's [`RunMetrics`], worked out the first time they are asked for
/// ([`WorkflowResult::metrics`](crate::WorkflowResult::metrics)), so that a run pays
/// nothing for figures nobody reads.
///
/// The engine, with its `metrics` feature (the default), gives every result it returns
/// a way to compute them (`orch-metrics`); a result read back from JSON holds the metrics it was written with. The figures are
/// taken from the result as it is at the first read and kept: change the result after
/// that and call [`LazyMetrics::clear`] to have them computed again.
///
/// ```
/// use orch_core::{LazyMetrics, RunMetrics};
///
/// assert!(LazyMetrics::default().get().is_none());
/// let known = LazyMetrics::known(RunMetrics { total_tasks: 3, ..RunMetrics::default() });
/// assert_eq!(known.get().map(|m| m.total_tasks), Some(3));
/// ```
#[derive(Clone, Default)]
pub struct LazyMetrics {
    value: OnceLock<RunMetrics>,
    compute: Option<fn(&WorkflowResult) -> RunMetrics>,
}

impl LazyMetrics {
    /// Metrics already known, such as ones read back from a file.
    pub fn known(metrics: RunMetrics) -> Self {
        Self {
            value: OnceLock::from(metrics),
            compute: None,
        }
    }

    /// Metrics that `compute` works out from the result that holds them, once, when they
    /// are first asked for. A plain function, so that results stay `Send + Sync` and
    /// cheap to clone.
    ///
    /// `compute` must not ask that result for its metrics (`metrics()`, `to_json`,
    /// serialising it): the first read would deadlock (or, in a later Rust, panic).
    pub fn computed_by(compute: fn(&WorkflowResult) -> RunMetrics) -> Self {
        Self {
            value: OnceLock::new(),
            compute: Some(compute),
        }
    }

    /// The metrics if they are known or were computed already; computes nothing.
    pub fn get(&self) -> Option<&RunMetrics> {
        self.value.get()
    }

    /// Forgets the figures computed (or read) so far: the next read computes them again
    /// from the result as it is then, if there is a way to; otherwise there are none.
    pub fn clear(&mut self) {
        self.value.take();
    }

    /// The metrics of `result`, computing them if this is the first time.
    pub(crate) fn get_for(&self, result: &WorkflowResult) -> Option<&RunMetrics> {
        if let Some(metrics) = self.value.get() {
            return Some(metrics);
        }
        let compute = self.compute?;
        Some(self.value.get_or_init(|| compute(result)))
    }
}

impl fmt::Debug for LazyMetrics {
    /// The figures if known, else whether they can be computed (never a function address,
    /// so the output is the same from run to run).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.value.get(), self.compute) {
            (Some(metrics), _) => f.debug_tuple("LazyMetrics").field(metrics).finish(),
            (None, Some(_)) => f.write_str("LazyMetrics(not computed yet)"),
            (None, None) => f.write_str("LazyMetrics(none)"),
        }
    }
}

impl Serialize for LazyMetrics {
    /// Writes the figures known so far, or `null`; computes nothing (a
    /// [`WorkflowResult`] computes them when it is serialised).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.get().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LazyMetrics {
    /// Reads `null` (no metrics) or the metrics themselves.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<RunMetrics>::deserialize(d)?
            .map(Self::known)
            .unwrap_or_default())
    }
}
