//! The orch workflow model: tasks, workflows, validation, DAG queries and run records.
//!
//! `orch-core` knows nothing of async runtimes: a build tool can use it alone to read,
//! check and order a workflow. The engine (`orch-engine`) runs what this crate describes.
//!
//! ```
//! use orch_core::{Task, Workflow};
//! use serde_json::json;
//!
//! let workflow = Workflow::new("ml_pipeline", "ML Pipeline")
//!     .task(Task::new("load", "load").config(json!({"path": "data.csv"})))
//!     .task(Task::new("validate", "validate").depends_on(["load"]))
//!     .task(Task::new("clean", "clean").depends_on(["validate"]))
//!     .task(Task::new("report", "report").depends_on(["load"]));
//!
//! let valid = workflow.validate()?;
//! assert_eq!(valid.execution_order(), ["load", "validate", "clean", "report"]);
//! assert_eq!(valid.level("clean"), Some(2));
//!
//! // Every problem is reported at once.
//! let broken = Workflow::new("w", "W")
//!     .task(Task::new("a", "t").depends_on(["b"]))
//!     .task(Task::new("b", "t").depends_on(["a", "ghost"]));
//! let errors = broken.validate().unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "task `b` depends on unknown task `ghost`\n\
//!      dependency cycle: a -> b -> a (each task depends on the next)"
//! );
//! # Ok::<(), orch_core::ValidationErrors>(())
//! ```
//!
//! Workflows can also be read from files: [`Workflow::from_path`] takes JSON, YAML or
//! TOML, in map form (as the seed writes them) or list form.

mod compile;
mod error;
mod event;
mod id;
mod load;
mod metrics;
mod plan;
mod record;
mod run_id;
mod task;
mod task_records;
mod workflow;

pub use error::{ValidationError, ValidationErrors};
pub use event::{EngineEvent, EngineEventKind};
pub use id::{IdMap, TaskId};
pub use load::{Format, LoadError};
pub use metrics::{LazyMetrics, RunMetrics};
pub use plan::Plan;
pub use record::{TaskRecord, TaskStatus, WorkflowResult, WorkflowStatus};
pub use run_id::{RunId, RunIdError};
pub use task::{Backoff, Task};
pub use task_records::TaskRecords;
pub use workflow::{ValidWorkflow, Workflow};
