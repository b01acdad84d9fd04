//! orch: DAG workflows for Rust services.
//!
//! Tasks with dependencies, run asynchronously by handlers registered per task type, with
//! a pub/sub event bus for lifecycle events and metrics of every run. This facade
//! re-exports the layers; `use orch::prelude::*;` is all a program needs (with JSON's
//! `json!` and `Value` from `serde_json`, in which configurations and outputs are written).
//!
//! ```
//! use orch::prelude::*;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let engine = WorkflowEngine::new();
//! engine.register_handler("fetch", |_ctx: TaskContext| async move {
//!     Ok::<_, TaskError>(json!({"data": "fetched"}))
//! });
//! engine.register_handler("process", |ctx: TaskContext| async move {
//!     let fetched = ctx.input_json("fetch_task")?;
//!     Ok::<_, TaskError>(json!({"status": "processed", "input": fetched}))
//! });
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
//! # Ok::<(), RunError>(())
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
//! | `metrics` | `orch-metrics` | the cross-run `Recorder` (each run's own metrics are `result.metrics()`, always there) | `metrics` (default) |
//! | | | the `Recorder` reporting through the `metrics` crate | `metrics-facade` |
//! | `journal` | `orch-journal` | durable runs: a journal of task completions, to continue a run after a crash (`WorkflowEngine::run_durable`) | `journal` (default) |
//! | | | the PostgreSQL journal (`journal::PgJournal`) | `postgres` |
//!
//! Two more default features read workflow files: `yaml` (`Workflow::from_yaml`, `.yaml`
//! and `.yml` files) and `toml` (`Workflow::from_toml`, `.toml` files); JSON is always
//! read. `default-features = false` leaves out all five (the bus, the `Recorder`,
//! durable runs and both file formats): name the ones you keep.

pub use orch_core as core;
pub use orch_engine as engine;
/// Durable runs: journals ([`journal::FileJournal`]), listing and loading recorded runs.
#[cfg(feature = "journal")]
pub use orch_engine::journal;
#[cfg(feature = "events")]
pub use orch_events as events;
#[cfg(feature = "metrics")]
pub use orch_metrics as metrics;

/// Feeds every lifecycle event published on `bus` to `recorder`, from a callback
/// subscription on `workflow.>` (lossless: runs wait rather than drop an event). It
/// records until the bus closes; call `unsubscribe` on the returned handle to stop sooner
/// (dropping the handle does not stop it).
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
/// engine.register_handler("t", |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) });
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

pub use orch_engine::{
    CancellationToken, Handler, IntoOutput, Output, Shared, TaskContext, TaskError, WorkflowEngine,
    async_trait,
};

/// The README's examples, compiled and run as doctests (with the default features, which
/// they use).
#[doc = include_str!("../../../README.md")]
#[cfg(all(
    doctest,
    feature = "events",
    feature = "metrics",
    feature = "journal",
    feature = "yaml",
    feature = "toml"
))]
pub struct ReadmeDoctests;

/// The names most programs need: `use orch::prelude::*;`. That includes everything a
/// handler's signature names: [`TaskContext`], [`TaskError`], [`Shared`], [`IntoOutput`],
/// [`Output`] and [`async_trait`] for a [`Handler`] type, and [`CancellationToken`].
///
/// ```
/// use orch::prelude::*;
///
/// struct Sleeper;
///
/// #[async_trait]
/// impl Handler for Sleeper {
///     async fn call(&self, ctx: TaskContext) -> Result<Output, TaskError> {
///         let token: &CancellationToken = ctx.cancellation();
///         token.cancelled().await;
///         Output::new(Shared::new(vec![0u8; 16]))
///     }
/// }
///
/// /// Any handler output, made generically.
/// fn output_of<T: IntoOutput>(value: T) -> Result<Output, TaskError> {
///     Output::new(value)
/// }
///
/// // The same names at the crate's root.
/// use orch::{CancellationToken as _, IntoOutput as _, Shared as _, TaskError as _, async_trait as _};
///
/// fn register(engine: &WorkflowEngine) {
///     engine.register_handler("sleep", Sleeper);
///     engine.register_handler("echo", inline(|ctx: TaskContext| async move {
///         Ok::<_, TaskError>(ctx.config().clone())
///     }));
/// }
/// # register(&WorkflowEngine::new());
/// ```
pub mod prelude {
    pub use orch_core::{
        Backoff, EngineEvent, EngineEventKind, MapSpec, MissingHandler, RunMetrics, Task, TaskId,
        TaskRecord, TaskStatus, TriggerRule, ValidWorkflow, ValidationError, ValidationErrors,
        Workflow, WorkflowResult, WorkflowStatus,
    };
    pub use orch_core::{RunId, RunIdError};
    pub use orch_engine::{
        CacheKey, CacheStore, CancellationToken, EngineBuilder, Handler, IntoOutput, MemoryCache,
        Output, RunError, RunHandle, Shared, TaskContext, TaskError, WorkflowEngine, async_trait,
        blocking, inline, subject_token,
    };
    #[cfg(feature = "journal")]
    pub use orch_engine::{Durability, FileJournal, Journal, ResultFile};
    #[cfg(feature = "events")]
    pub use orch_events::{Delivery, EventBus, Overflow, SubscribeOptions};
    #[cfg(feature = "metrics")]
    pub use orch_metrics::Recorder;
    pub use serde_json::{Value, json};
}
