//! Metrics of orch workflow runs, computed from run records.
//!
//! [`compute`] turns a [`WorkflowResult`](orch_core::WorkflowResult) into
//! [`RunMetrics`]: the seed's counts and duration statistics, percentiles, the critical
//! path and parallel efficiency. Every result the engine returns (with its `metrics`
//! feature, the default) computes these when first asked
//! ([`WorkflowResult::metrics`](orch_core::WorkflowResult::metrics)); this crate depends
//! on `orch-core` only, so stored results can be analysed without an engine.
//!
//! Across runs, a [`Recorder`] keeps per task type counts and duration histograms, fed
//! from the engine's lifecycle events or from results; with the `metrics-facade` feature
//! it reports them through the [`metrics`](https://docs.rs/metrics) crate, so any of its
//! exporters can publish them.
//!
//! ```
//! use orch_core::{LazyMetrics, RunMetrics, Task, TaskRecord, TaskRecords, TaskStatus, Workflow,
//!     WorkflowResult, WorkflowStatus};
//! use std::time::{Duration, SystemTime};
//!
//! let workflow = Workflow::new("w", "W")
//!     .task(Task::new("load", "t"))
//!     .task(Task::new("clean", "t").depends_on(["load"]))
//!     .task(Task::new("report", "t").depends_on(["load"]));
//! let t0 = SystemTime::UNIX_EPOCH;
//! let secs = |s: u64| t0 + Duration::from_secs(s);
//! let ran = |start, end| TaskRecord {
//!     status: TaskStatus::Completed,
//!     start_time: Some(secs(start)),
//!     end_time: Some(secs(end)),
//!     attempts: 1,
//!     ..TaskRecord::default()
//! };
//! let records = vec![ran(0, 2), ran(2, 6), ran(2, 3)];
//! let result = WorkflowResult {
//!     workflow_id: "w".into(),
//!     run_id: orch_core::RunId::new(),
//!     name: "W".into(),
//!     status: WorkflowStatus::Completed,
//!     start_time: secs(0),
//!     end_time: secs(6),
//!     max_concurrent: 2,
//!     tasks: TaskRecords::for_workflow(&workflow, records).unwrap(),
//!     metrics: LazyMetrics::computed_by(orch_metrics::compute),
//! };
//! let metrics = orch_metrics::compute(&result);
//! // The result computes the same figures when first asked for them.
//! assert_eq!(result.metrics(), Some(&metrics));
//! assert_eq!(metrics.completed_tasks, 3);
//! assert_eq!(metrics.max_task_duration, Some(4.0));
//! assert_eq!(metrics.critical_path, ["load", "clean"]);
//! assert_eq!(metrics.critical_path_duration, 6.0);
//! assert_eq!(metrics.parallel_efficiency, Some(7.0 / 12.0));
//! ```

mod recorder;
mod summary;

pub use orch_core::RunMetrics;
pub use recorder::{DURATION_BUCKETS, DurationHistogram, Recorder, TaskTypeStats};
pub use summary::{compute, compute_with};
