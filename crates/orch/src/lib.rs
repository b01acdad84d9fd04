//! orch: DAG workflows for Rust services.
//!
//! Tasks with dependencies, run asynchronously by handlers registered per task type. This
//! facade re-exports orch's layers: the model ([`core`]) and the executor ([`engine`]).
//!
//! ```
//! use orch::prelude::*;
//! use serde_json::json;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let engine = WorkflowEngine::new();
//! engine.register_handler("fetch", |_ctx: TaskContext| async move { Ok(json!({"data": "fetched"})) });
//! engine.register_handler("process", |_ctx: TaskContext| async move { Ok(json!({"status": "processed"})) });
//!
//! let workflow = Workflow::new("data_pipeline", "Data Processing Pipeline")
//!     .task(Task::new("fetch_task", "fetch").name("Fetch Data").config(json!({"source": "api"})))
//!     .task(
//!         Task::new("process_task", "process")
//!             .name("Process Data")
//!             .config(json!({"method": "aggregation"}))
//!             .depends_on(["fetch_task"]),
//!     );
//!
//! let result = engine.execute_workflow(&workflow).await?;
//! assert_eq!(result.status, WorkflowStatus::Completed);
//! println!("{}", result.to_json_pretty());
//! # Ok::<(), ValidationErrors>(())
//! # }).unwrap();
//! ```

pub use orch_core as core;
pub use orch_engine as engine;
#[cfg(feature = "metrics")]
pub use orch_metrics as metrics;

/// The names most programs need: `use orch::prelude::*;`.
pub mod prelude {
    pub use orch_core::{
        Backoff, RunMetrics, Task, TaskId, TaskRecord, TaskStatus, ValidWorkflow, ValidationError,
        ValidationErrors, Workflow, WorkflowResult, WorkflowStatus,
    };
    pub use orch_engine::{
        Handler, RunHandle, TaskContext, TaskError, WorkflowEngine, blocking, spawned,
    };
}
