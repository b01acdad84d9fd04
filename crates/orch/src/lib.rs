//! orch: DAG workflows for Rust services.
//!
//! Tasks with dependencies, run asynchronously by handlers registered per task type, with
//! a pub/sub event bus for lifecycle events and metrics of every run. This facade
//! re-exports the layers; `use orch::prelude::*;` is all a program needs.
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
//!
//! # Layers and features
//!
//! | module | crate | what it holds | feature |
//! |---|---|---|---|
//! | [`core`] | `orch-core` | tasks, workflows, validation, DAG queries, run records | always |
//! | [`engine`] | `orch-engine` | the tokio executor | always |
//! | `events` | `orch-events` | the pub/sub bus; the engine's lifecycle events on it | `events` (default) |
//! | `metrics` | `orch-metrics` | metrics of each run; the cross-run `Recorder` | `metrics` (default) |
//! | | | the `Recorder` reporting through the `metrics` crate | `metrics-facade` |
//!
//! `default-features = false` leaves the bus and the metrics out of the build.

pub use orch_core as core;
pub use orch_engine as engine;
#[cfg(feature = "events")]
pub use orch_events as events;
#[cfg(feature = "metrics")]
pub use orch_metrics as metrics;

/// Feeds every lifecycle event published on `bus` to `recorder`, from a callback
/// subscription on `workflow.>` (lossless: runs wait rather than drop an event). Drop or
/// unsubscribe the returned handle to stop.
///
/// ```
/// use orch::prelude::*;
/// use std::sync::Arc;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let bus: EventBus<EngineEvent> = EventBus::new();
/// let recorder = Arc::new(Recorder::new());
/// let subscription = orch::record_events(&bus, Arc::clone(&recorder)).unwrap();
/// let engine = WorkflowEngine::builder().event_bus(bus.clone()).build().unwrap();
/// engine.register_handler("t", |_ctx: TaskContext| async move { Ok(serde_json::Value::Null) });
/// engine.execute_workflow(&Workflow::new("w", "W").task(Task::new("a", "t"))).await.unwrap();
/// bus.close().await;
/// let mut subscription = subscription;
/// subscription.finished().await;
/// assert_eq!(recorder.task_type("t").unwrap().completed, 1);
/// # });
/// ```
#[cfg(all(feature = "events", feature = "metrics"))]
pub fn record_events(
    bus: &orch_events::EventBus<orch_core::EngineEvent>,
    recorder: std::sync::Arc<orch_metrics::Recorder>,
) -> Result<orch_events::CallbackSubscription<orch_core::EngineEvent>, orch_events::SubscribeError>
{
    bus.subscribe_fn(
        "workflow.>",
        orch_events::SubscribeOptions::new(),
        move |delivery| {
            if let Some(event) = delivery.event() {
                recorder.observe(event.payload());
            }
            std::future::ready(())
        },
    )
}

/// The names most programs need: `use orch::prelude::*;`.
pub mod prelude {
    pub use orch_core::{
        Backoff, EngineEvent, EngineEventKind, LazyMetrics, RunMetrics, Task, TaskId, TaskRecord,
        TaskStatus, ValidWorkflow, ValidationError, ValidationErrors, Workflow, WorkflowResult,
        WorkflowStatus,
    };
    pub use orch_core::{RunId, RunIdError};
    pub use orch_engine::{
        Handler, RunHandle, TaskContext, TaskError, WorkflowEngine, blocking, spawned,
    };
    #[cfg(feature = "events")]
    pub use orch_events::{Delivery, EventBus, Overflow, SubscribeOptions};
    #[cfg(feature = "metrics")]
    pub use orch_metrics::Recorder;
}
