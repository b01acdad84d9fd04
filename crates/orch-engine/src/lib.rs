//! The orch executor: runs a workflow's tasks on tokio, each through the handler
//! registered for its task type.
//!
//! ```
//! use orch_core::{Task, TaskStatus, Workflow, WorkflowStatus};
//! use orch_engine::{TaskContext, TaskError, WorkflowEngine};
//! use serde_json::json;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let engine = WorkflowEngine::new();
//! engine.register_handler("fetch", |_ctx: TaskContext| async move { Ok(json!({"data": "fetched"})) });
//! engine.register_handler("process", |ctx: TaskContext| async move {
//!     let fetched = ctx.dependency_result("fetch_task").cloned().unwrap_or_default();
//!     Ok(json!({"status": "processed", "input": fetched}))
//! });
//! engine.register_handler("flaky", |_ctx: TaskContext| async move {
//!     Err::<serde_json::Value, _>(TaskError::new("upstream unavailable"))
//! });
//!
//! let workflow = Workflow::new("data_pipeline", "Data Processing Pipeline")
//!     .task(Task::new("fetch_task", "fetch"))
//!     .task(Task::new("process_task", "process").depends_on(["fetch_task"]))
//!     .task(Task::new("side", "flaky"))
//!     .task(Task::new("after_side", "process").depends_on(["side"]));
//!
//! let result = engine.execute_workflow(&workflow).await?;
//! assert_eq!(result.status, WorkflowStatus::Failed);
//! assert_eq!(result.task("process_task").unwrap().status, TaskStatus::Completed);
//! assert_eq!(result.task("side").unwrap().error.as_deref(), Some("upstream unavailable"));
//! assert_eq!(result.task("after_side").unwrap().status, TaskStatus::Skipped);
//! # Ok::<(), orch_engine::RunError>(())
//! # }).unwrap();
//! ```
//!
//! # How tasks run
//!
//! A run keeps its ready tasks in a bitmap over plan positions and starts the first in the
//! plan's execution order while fewer than `max_concurrent` are active. Handler futures are polled on the run's own
//! tokio task, not spawned: a handler that finishes on its first poll costs one call and
//! one allocation. Handlers that do heavy work use [`spawned`] or [`blocking`] to run on
//! other threads.
//!
//! # Events
//!
//! With the `events` feature (on by default) and [`EngineBuilder::event_bus`], every run publishes [`orch_core::EngineEvent`]s on an
//! [`orch_events::EventBus`]: `workflow.<workflow_id>.started` / `.finished`, and
//! `workflow.<workflow_id>.task.<task_id>.<event>` for `started`, `completed`, `failed`,
//! `retrying`, `skipped` and `cancelled`. Ids are written into subjects with
//! percent-escapes for what a subject token cannot hold (`.`, `*`, `>`, `%`, white space,
//! control characters): task `load.v2` publishes on `workflow.etl.task.load%2Ev2.started`.
//! Events of one run arrive in the order they happened, so a task's `started` always
//! follows its dependencies' `completed`.
//!
//! ```
//! # #[cfg(feature = "events")] {
//! use orch_core::{EngineEvent, EngineEventKind, Task, Workflow};
//! use orch_engine::{TaskContext, WorkflowEngine};
//! use orch_events::EventBus;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let bus: EventBus<EngineEvent> = EventBus::new();
//! let mut progress = bus.subscribe("workflow.etl.task.*.completed").unwrap();
//! let engine = WorkflowEngine::builder().event_bus(bus.clone()).build().unwrap();
//! engine.register_handler("t", |_ctx: TaskContext| async move { Ok(serde_json::Value::Null) });
//! let workflow = Workflow::new("etl", "ETL")
//!     .task(Task::new("load", "t"))
//!     .task(Task::new("clean", "t").depends_on(["load"]));
//! engine.execute_workflow(&workflow).await.unwrap();
//! bus.close().await;
//! let mut done = Vec::new();
//! while let Some(event) = progress.recv_event().await {
//!     assert_eq!(event.payload().kind, EngineEventKind::TaskCompleted);
//!     done.push(event.subject().to_string());
//! }
//! assert_eq!(done, ["workflow.etl.task.load.completed", "workflow.etl.task.clean.completed"]);
//! # });
//! # }
//! ```
//!
//! Timeouts and retry pauses use tokio's timer, so a runtime that runs workflows with
//! either needs its time driver enabled (`enable_time` or `enable_all`).

#[cfg(feature = "events")]
mod announce;
#[cfg(not(feature = "events"))]
#[path = "announce_off.rs"]
mod announce;
mod attempt;
mod clock;
mod context;
mod engine;
mod handler;
mod note;
mod ready;
mod run;
mod run_error;

pub use context::TaskContext;
pub use engine::{ConfigError, EngineBuilder, RunHandle, WorkflowEngine};
pub use handler::{Handler, TaskError, blocking, spawned};
pub use run_error::RunError;
