//! orch: DAG workflows for Rust services.
//!
//! This facade re-exports orch's layers. Today it carries the model ([`core`]): tasks,
//! workflows, validation and DAG queries. The engine, event bus and metrics join it as
//! they land.
//!
//! ```
//! use orch::prelude::*;
//! use serde_json::json;
//!
//! let workflow = Workflow::new("data_pipeline", "Data Processing Pipeline")
//!     .task(Task::new("fetch_task", "fetch").name("Fetch Data").config(json!({"source": "api"})))
//!     .task(
//!         Task::new("process_task", "process")
//!             .name("Process Data")
//!             .config(json!({"method": "aggregation"}))
//!             .depends_on(["fetch_task"]),
//!     );
//! assert_eq!(workflow.execution_order()?, ["fetch_task", "process_task"]);
//! # Ok::<(), orch::core::ValidationErrors>(())
//! ```

pub use orch_core as core;

/// The names most programs need: `use orch::prelude::*;`.
pub mod prelude {
    pub use orch_core::{
        Backoff, Task, TaskId, TaskRecord, TaskStatus, ValidWorkflow, ValidationError,
        ValidationErrors, Workflow, WorkflowResult, WorkflowStatus,
    };
}
