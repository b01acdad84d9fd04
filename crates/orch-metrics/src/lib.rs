//! Metrics of orch workflow runs.
//!
//! The figures of one run ([`RunMetrics`]: counts, duration statistics, percentiles, the
//! critical path and parallel efficiency) come from the run's result itself:
//! [`WorkflowResult::metrics`](orch_core::WorkflowResult::metrics). [`compute`] and
//! [`compute_with`] do the same, as functions.
//!
//! Across runs, a [`Recorder`] keeps per task type counts and duration histograms, fed
//! from the engine's lifecycle events or from results; with the `metrics-facade` feature
//! it reports them through the [`metrics`](https://docs.rs/metrics) crate, so any of its
//! exporters can publish them.
//!
//! ```
//! use orch_core::{Task, TaskRecord, TaskRecords, TaskStatus, Workflow, WorkflowResult,
//!     WorkflowStatus};
//! use orch_metrics::Recorder;
//! use std::time::{Duration, SystemTime};
//!
//! let workflow = Workflow::new("w", "W")
//!     .task(Task::new("load", "io"))
//!     .task(Task::new("clean", "cpu").depends_on(["load"]));
//! let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
//! let ran = |start, end| TaskRecord {
//!     status: TaskStatus::Completed,
//!     start_time: Some(at(start)),
//!     end_time: Some(at(end)),
//!     attempts: 1,
//!     ..TaskRecord::default()
//! };
//! let result = WorkflowResult {
//!     workflow_id: "w".into(),
//!     run_id: orch_core::RunId::new(),
//!     name: "W".into(),
//!     status: WorkflowStatus::Completed,
//!     start_time: at(0),
//!     end_time: at(6),
//!     max_concurrent: 2,
//!     tasks: TaskRecords::for_workflow(&workflow, vec![ran(0, 2), ran(2, 6)]).unwrap(),
//! };
//! assert_eq!(orch_metrics::compute(&result), result.metrics());
//! assert_eq!(result.metrics().critical_path, ["load", "clean"]);
//!
//! let recorder = Recorder::new();
//! recorder.record_result(&result);
//! recorder.record_result(&result);
//! assert_eq!(recorder.task_type("cpu").unwrap().completed, 2);
//! ```

mod recorder;

pub use orch_core::RunMetrics;
pub use recorder::{DURATION_BUCKETS, DurationHistogram, Recorder, TaskTypeStats};

use orch_core::{Workflow, WorkflowResult};

/// The metrics of one run: the same as [`WorkflowResult::metrics`].
pub fn compute(result: &WorkflowResult) -> RunMetrics {
    result.metrics()
}

/// The metrics of one run of `workflow`, for results that do not carry their workflow (such
/// as results read back from JSON): the same as [`WorkflowResult::metrics_with`].
pub fn compute_with(result: &WorkflowResult, workflow: &Workflow) -> RunMetrics {
    result.metrics_with(workflow)
}
