//! [`WorkflowEngine`], its [`EngineBuilder`], and [`RunHandle`], one run in progress.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
#[cfg(feature = "events")]
use orch_core::EngineEvent;
use orch_core::{RunId, RunMetrics, Workflow, WorkflowResult};
#[cfg(feature = "events")]
use orch_events::EventBus;
use tokio_util::sync::CancellationToken;

#[cfg(feature = "events")]
use crate::announce::EventTarget;
use crate::cache::CacheSettings;
#[cfg(feature = "journal")]
use crate::journaling::JournalSettings;
use crate::run::RunSettings;

/// The most instances a map task may run when neither it nor the engine says otherwise
/// (see [`EngineBuilder::max_map_instances`]).
pub const DEFAULT_MAX_INSTANCES: u32 = 10_000;
use crate::state::States;
use crate::{Handler, RunError};

mod builder;

pub use builder::{ConfigError, EngineBuilder};

/// Runs workflows: each task through the handler registered for its type, as soon as its
/// dependencies completed and a slot is free.
///
/// An engine is cheap to clone (clones share handlers and settings), `Send + Sync`, and
/// can run many workflows, also at the same time. `WorkflowEngine::new()` runs one task at
/// a time, as the original Python module does; [`WorkflowEngine::builder`] sets more.
///
/// ```
/// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
/// use orch_core::{Task, TaskStatus, Workflow, WorkflowStatus};
/// use serde_json::json;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let engine = WorkflowEngine::builder().max_concurrent(4).build()?;
/// engine.register_handler("fetch", |_ctx: TaskContext| async move {
///     Ok::<_, TaskError>(json!({"data": "fetched"}))
/// });
/// engine.register_handler("process", |_ctx: TaskContext| async move {
///     Ok::<_, TaskError>(json!({"status": "processed"}))
/// });
///
/// let workflow = Workflow::new("data_pipeline", "Data Processing Pipeline")
///     .task(Task::new("fetch_task", "fetch"))
///     .task(Task::new("process_task", "process").depends_on(["fetch_task"]));
/// let result = engine.execute_workflow(&workflow).await?;
/// assert_eq!(result.status, WorkflowStatus::Completed);
/// assert_eq!(result.task("process_task").unwrap().status, TaskStatus::Completed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct WorkflowEngine {
    pub(crate) inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    handlers: RwLock<HashMap<String, Arc<dyn Handler>>>,
    pub(crate) states: Arc<States>,
    pub(crate) max_concurrent: usize,
    pub(crate) grace_period: Duration,
    pub(crate) pools: Arc<HashMap<String, usize>>,
    pub(crate) critical_path_first: bool,
    cache: CacheSettings,
    max_instances: u32,
    #[cfg(feature = "events")]
    pub(crate) bus: Option<EventBus<EngineEvent>>,
    #[cfg(feature = "events")]
    pub(crate) event_outputs: bool,
    /// Where durable runs are recorded.
    #[cfg(feature = "journal")]
    pub(crate) journal: Option<JournalSettings>,
}

impl EngineInner {
    pub(crate) fn handlers_snapshot(&self) -> HashMap<String, Arc<dyn Handler>> {
        self.handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What a run started now needs: handlers registered later do not join it. A
    /// durable run adds the journal.
    pub(crate) fn run_settings(&self) -> RunSettings {
        #[cfg(feature = "events")]
        let events = self.bus.clone().map(|bus| EventTarget {
            bus,
            outputs: self.event_outputs,
        });
        #[cfg(not(feature = "events"))]
        let events = None;
        RunSettings {
            handlers: self.handlers_snapshot(),
            states: Arc::clone(&self.states),
            max_concurrent: self.max_concurrent,
            grace_period: self.grace_period,
            pools: Arc::clone(&self.pools),
            critical_path_first: self.critical_path_first,
            events,
            journal: None,
            cache: self.cache.clone(),
            max_instances: self.max_instances,
        }
    }
}

impl Default for WorkflowEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for WorkflowEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let handlers = self.inner.handlers_snapshot();
        let mut types: Vec<&String> = handlers.keys().collect();
        types.sort();
        f.debug_struct("WorkflowEngine")
            .field("max_concurrent", &self.inner.max_concurrent)
            .field("grace_period", &self.inner.grace_period)
            .field("handlers", &types)
            .finish()
    }
}

impl WorkflowEngine {
    /// An engine that runs one task at a time (the original Python module's default).
    pub fn new() -> Self {
        EngineBuilder::default().build_unchecked()
    }

    /// Settings beyond the defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// An engine that runs up to `max_concurrent` tasks at once; 0 is an error.
    pub fn with_max_concurrent(max_concurrent: usize) -> Result<Self, ConfigError> {
        Self::builder().max_concurrent(max_concurrent).build()
    }

    /// The bus this engine publishes lifecycle events on, if any.
    #[cfg(feature = "events")]
    pub fn event_bus(&self) -> Option<&EventBus<EngineEvent>> {
        self.inner.bus.as_ref()
    }

    /// The most tasks this engine runs at once.
    pub fn max_concurrent(&self) -> usize {
        self.inner.max_concurrent
    }

    /// The limit of the pool `name`, if the engine declares it (see
    /// [`EngineBuilder::pool`]).
    pub fn pool_limit(&self, name: &str) -> Option<usize> {
        self.inner.pools.get(name).copied()
    }

    /// Registers the handler for a task type. Registering a type again replaces its
    /// handler for runs that start afterwards (runs in progress keep the one they began
    /// with); the replaced handler is returned. Results cached for the type stay: a
    /// cached task is served the old handler's result for the same inputs (see
    /// [`CacheStore`](crate::CacheStore) for how to tell them apart).
    pub fn register_handler(
        &self,
        task_type: impl Into<String>,
        handler: impl Handler,
    ) -> Option<Arc<dyn Handler>> {
        self.inner
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(task_type.into(), Arc::new(handler))
    }

    /// Whether a handler is registered for `task_type`.
    pub fn has_handler(&self, task_type: &str) -> bool {
        self.inner
            .handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(task_type)
    }

    /// Validates and runs `workflow` to its end.
    ///
    /// Validation comes first: a workflow with problems ([`RunError::Invalid`]) or with
    /// task types that have no handler ([`RunError::MissingHandlers`]) does not run at
    /// all. A task's `Err`, panic or timeout (after its retries) marks it failed; with the
    /// default trigger rule (`all_success`) every task that depends on it, directly or
    /// not, is skipped, while tasks whose rule runs past a failure (`all_done`,
    /// `one_failed`, ...) run (see the crate docs). Independent branches run on.
    ///
    /// A task with a timeout or a pause before its retries needs tokio's timer: on a
    /// runtime without one the run returns [`RunError::NoTimer`], naming each such task
    /// and option, and nothing runs (see [the crate docs](crate#timers)).
    pub async fn execute_workflow(&self, workflow: &Workflow) -> Result<WorkflowResult, RunError> {
        self.run(workflow).await
    }

    /// Starts running `workflow` under a fresh run id ([`RunId::new`]) and returns a
    /// handle that can be awaited, cancelled, or spawned onto a runtime. The run makes
    /// progress only while the handle is polled. The id is known at once
    /// ([`RunHandle::run_id`]), is in every event of the run and in its result.
    pub fn run(&self, workflow: &Workflow) -> RunHandle {
        self.start(workflow, None, RunId::new())
    }

    /// Starts running `workflow` as run `run_id`, an id the caller chose (say, to find
    /// the run's events and result under a name of its own). The engine does not check
    /// that the id is unused: two runs given the same id share it in their events.
    ///
    /// ```
    /// use orch_core::{RunId, Task, Workflow};
    /// use orch_engine::{TaskContext, WorkflowEngine};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = WorkflowEngine::new();
    /// engine.register_handler("t", |_ctx: TaskContext| async move { Ok::<_, orch_engine::TaskError>(serde_json::Value::Null) });
    /// let workflow = Workflow::new("etl", "ETL").task(Task::new("load", "t"));
    /// let run_id: RunId = "etl-2024-06-01".parse()?;
    /// let run = engine.run_with_id(&workflow, run_id.clone());
    /// assert_eq!(run.run_id(), &run_id);
    /// let result = run.await?;
    /// assert_eq!(result.run_id, run_id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn run_with_id(&self, workflow: &Workflow, run_id: RunId) -> RunHandle {
        self.start(workflow, None, run_id)
    }

    /// Continues the run that produced `previous`: runs again only what did not complete
    /// there, and what ran on the outcome of such a task (an `all_done` task that ran
    /// after a failure runs again after the failed task's new attempt; a `one_success`
    /// task that completed before the failure did not run on it, and is kept, as is one
    /// that completed before a dependency of it was skipped on the failure, or cancelled
    /// before it started). A task skipped without running keeps its skip while its
    /// dependencies' outcomes stand (a branch task's choice holds); otherwise its rule
    /// decides it again. Completed tasks keep their records, and their stored results are
    /// fed to their dependents. A map task that runs again keeps its instances that
    /// completed there (their outputs go into its list, and only the others run), when
    /// its definition is unchanged and every task it depends on is kept; otherwise every
    /// instance runs again. A completed task is kept even if the workflow has since
    /// given it a dependency that did not complete: that dependency runs, and the task
    /// does not run again. A task whose output was a [`Shared`](crate::Shared) value
    /// kept only its summary, so it runs again when a task that runs depends on it,
    /// directly or not (and so do the tasks between the two, so that the one that runs
    /// starts after the value is there).
    /// A result does not say which of its records were a map task's instances (`sq[0]`
    /// of map `sq`): a task that the workflow has since gained under such an id takes
    /// that record as its own (the journal knows the difference, and keeps them apart).
    /// Nor does it hold the tasks' definitions: a task changed since keeps its
    /// completion, and a map changed since its completed instances (a durable run,
    /// `run_durable`, knows, and refuses or runs them again).
    ///
    /// The resumed run keeps the id of `previous` ([`WorkflowResult::run_id`]): it is the
    /// same run, continued. To resume as a new run, give a copy of `previous` a fresh
    /// `run_id` first.
    ///
    /// A task that runs again goes on counting its attempts: if it made two there, its
    /// next attempt is number 3 (its retries are granted anew), so that an attempt that
    /// ended is never named again (a system the attempts are handed to can use the
    /// number to tell them apart). Only attempts that may have been under way when the
    /// earlier run stopped unexpectedly, unrecorded, are taken up under their numbers
    /// (see [`TaskContext::resumed`](crate::TaskContext::resumed)); attempts of a task
    /// still retrying then are not recorded, so its failed ones are among them (see
    /// [`TaskContext::attempt`](crate::TaskContext::attempt)).
    ///
    /// On the bus, the resumed run's start event gives the number of kept tasks that
    /// completed ([`EngineEvent::restored_tasks`](orch_core::EngineEvent::restored_tasks)),
    /// each of those gets a `TaskRestored` event right after it, kept skips are announced
    /// as `TaskSkipped` events, and the tasks that run get their usual events.
    pub fn resume(&self, workflow: &Workflow, previous: &WorkflowResult) -> RunHandle {
        self.start(workflow, Some(previous.clone()), previous.run_id.clone())
    }

    /// The metrics of a run (the original Python module's `get_task_metrics`): the same
    /// as [`WorkflowResult::metrics`], worked out from the result's records.
    ///
    /// ```
    /// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
    /// use orch_core::{Task, Workflow};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = WorkflowEngine::new();
    /// engine.register_handler("t", |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) });
    /// let workflow = Workflow::new("w", "W")
    ///     .task(Task::new("a", "t"))
    ///     .task(Task::new("b", "t").depends_on(["a"]));
    /// let result = engine.execute_workflow(&workflow).await?;
    /// let metrics = engine.get_task_metrics(&result);
    /// assert_eq!((metrics.total_tasks, metrics.completed_tasks), (2, 2));
    /// assert_eq!(metrics.critical_path, ["a", "b"]);
    /// # Ok::<(), orch_engine::RunError>(())
    /// # }).unwrap();
    /// ```
    pub fn get_task_metrics(&self, result: &WorkflowResult) -> RunMetrics {
        result.metrics()
    }

    fn start(
        &self,
        workflow: &Workflow,
        previous: Option<WorkflowResult>,
        run_id: RunId,
    ) -> RunHandle {
        self.start_with(self.inner.run_settings(), workflow, previous, run_id)
    }

    pub(crate) fn start_with(
        &self,
        settings: RunSettings,
        workflow: &Workflow,
        previous: Option<WorkflowResult>,
        run_id: RunId,
    ) -> RunHandle {
        let cancel = CancellationToken::new();
        let future = crate::run::execute(
            settings,
            workflow.clone(),
            previous,
            run_id.clone(),
            cancel.clone(),
        );
        RunHandle {
            run_id,
            cancel,
            future: Box::pin(future),
        }
    }
}

/// One run in progress: await it for the result, or cancel it.
///
/// Cancelling stops new tasks from starting, cancels the token every running handler
/// sees, waits up to the engine's grace period for them, then drops them; every task that
/// did not finish ends `Cancelled` and the run's status is `cancelled`. Every handler
/// future the run polls has been dropped by the time its result is ready; work a handler
/// moved elsewhere is stopped as far as it can be (attempts running as tokio tasks of their
/// own are aborted, [`blocking`](crate::blocking) calls run to their end unobserved). A cancelled
/// run returns within its grace period whatever its event subscribers do (see [the crate
/// docs](crate#cancellation)).
///
/// Dropping the handle (or the future of [`WorkflowEngine::execute_workflow`]) before the
/// run ends, say under a `timeout`, drops the handlers' futures at once and cancels the
/// tokens they watch ([`TaskContext::cancellation`](crate::TaskContext::cancellation)),
/// so that a `blocking` function or a helper task that watches its token stops too.
/// Unlike [`RunHandle::cancel`], it produces no result, and no events or journal records
/// of the run's end.
///
/// ```
/// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
/// use orch_core::{Task, Workflow, WorkflowStatus};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let engine = WorkflowEngine::new();
/// engine.register_handler("wait", |ctx: TaskContext| async move {
///     ctx.cancellation().cancelled().await;
///     Ok::<_, TaskError>("stopped early")
/// });
/// let workflow = Workflow::new("w", "W")
///     .task(Task::new("a", "wait"))
///     .task(Task::new("b", "wait").depends_on(["a"]));
/// let run = engine.run(&workflow);
/// run.cancel();
/// let result = run.await?;
/// assert_eq!(result.status, WorkflowStatus::Cancelled);
/// # Ok::<(), orch_engine::RunError>(())
/// # }).unwrap();
/// ```
pub struct RunHandle {
    run_id: RunId,
    cancel: CancellationToken,
    future: BoxFuture<'static, Result<WorkflowResult, RunError>>,
}

impl RunHandle {
    /// A run that does not start, for `error`.
    #[cfg(feature = "journal")]
    pub(crate) fn refused(run_id: RunId, error: RunError) -> Self {
        RunHandle {
            run_id,
            cancel: CancellationToken::new(),
            future: Box::pin(std::future::ready(Err(error))),
        }
    }

    /// The run's id: the same in each of its events and in its result
    /// ([`WorkflowResult::run_id`]).
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// Cancels the run.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels the run when cancelled; clone it to cancel from elsewhere.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

impl Future for RunHandle {
    type Output = Result<WorkflowResult, RunError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("run_id", &self.run_id)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}
