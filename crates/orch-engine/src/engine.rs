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
    /// with); the replaced handler is returned.
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
    /// all. A task's `Err`, panic or timeout (after its retries) marks it failed and every
    /// task that depends on it, directly or not, skipped; independent branches run on.
    ///
    /// A task with a timeout or a pause before its retries needs tokio's timer: on a
    /// runtime without one, each such option is an
    /// [`InvalidOption`](orch_core::ValidationError::InvalidOption) problem in
    /// [`RunError::Invalid`], and nothing runs (see [the crate docs](crate#timers)).
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
    /// there. Completed tasks keep their records, and their stored results are fed to
    /// their dependents. A completed task is kept even if the workflow has since given it
    /// a dependency that did not complete: that dependency runs, and the task does not run
    /// again. A task whose output was a [`Shared`](crate::Shared) value kept only its
    /// summary, so it runs again when a task that runs depends on it, directly or not.
    ///
    /// The resumed run keeps the id of `previous` ([`WorkflowResult::run_id`]): it is the
    /// same run, continued. To resume as a new run, give a copy of `previous` a fresh
    /// `run_id` first.
    ///
    /// On the bus, the resumed run's start event gives the number of tasks kept
    /// ([`EngineEvent::restored_tasks`](orch_core::EngineEvent::restored_tasks)), each
    /// kept task gets a `TaskRestored` event right after it, and the tasks that run get
    /// their usual events.
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

/// Settings for a [`WorkflowEngine`].
///
/// ```
/// use orch_engine::WorkflowEngine;
/// use std::time::Duration;
///
/// let engine = WorkflowEngine::builder()
///     .max_concurrent(8)
///     .cancel_grace_period(Duration::from_millis(200))
///     .build()?;
/// assert_eq!(engine.max_concurrent(), 8);
/// assert!(WorkflowEngine::builder().max_concurrent(0).build().is_err());
/// # Ok::<(), orch_engine::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct EngineBuilder {
    max_concurrent: usize,
    grace_period: Duration,
    pools: HashMap<String, usize>,
    critical_path_first: bool,
    states: States,
    pub(crate) cache: CacheSettings,
    max_instances: u32,
    #[cfg(feature = "events")]
    bus: Option<EventBus<EngineEvent>>,
    #[cfg(feature = "events")]
    event_outputs: bool,
    #[cfg(feature = "journal")]
    pub(crate) journal: Option<JournalSettings>,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        Self {
            max_concurrent: 1,
            grace_period: Duration::from_secs(5),
            pools: HashMap::new(),
            critical_path_first: false,
            states: States::default(),
            cache: CacheSettings::default(),
            max_instances: DEFAULT_MAX_INSTANCES,
            #[cfg(feature = "events")]
            bus: None,
            #[cfg(feature = "events")]
            event_outputs: false,
            #[cfg(feature = "journal")]
            journal: None,
        }
    }
}

impl EngineBuilder {
    /// The most tasks to run at once (default 1); must be at least 1.
    pub fn max_concurrent(mut self, max_concurrent: usize) -> Self {
        self.max_concurrent = max_concurrent;
        self
    }

    /// Declares the pool `name`: at most `limit` of the tasks that name it (with
    /// [`Task::pool`](orch_core::Task::pool)) run at once, on top of the global
    /// `max_concurrent`. A task waiting for room in its pool holds no global slot, and its
    /// timeout starts only when it starts. Declaring a name again replaces its limit; a
    /// limit of 0 is an error at [`build`](EngineBuilder::build). A run whose tasks name
    /// an undeclared pool does not start ([`RunError::UnknownPools`](crate::RunError)).
    ///
    /// ```
    /// use orch_engine::WorkflowEngine;
    ///
    /// let engine = WorkflowEngine::builder()
    ///     .max_concurrent(50)
    ///     .pool("gpu", 2)
    ///     .build()?;
    /// assert_eq!(engine.pool_limit("gpu"), Some(2));
    /// assert!(WorkflowEngine::builder().pool("gpu", 0).build().is_err());
    /// # Ok::<(), orch_engine::ConfigError>(())
    /// ```
    pub fn pool(mut self, name: impl Into<String>, limit: usize) -> Self {
        self.pools.insert(name.into(), limit);
        self
    }

    /// Among ready tasks of equal [priority](orch_core::Task::priority), starts first the
    /// one with the longest chain of tasks still behind it (its critical path), rather
    /// than the one first in the workflow's order (default `false`). Ties still go in
    /// the workflow's order.
    pub fn critical_path_first(mut self, on: bool) -> Self {
        self.critical_path_first = on;
        self
    }

    /// How long a cancelled run waits for running handlers to notice their cancellation
    /// token and finish before it drops them, and for its events to be published before
    /// it leaves the rest to a background delivery (default 5 s; see [the crate
    /// docs](crate#cancellation)).
    pub fn cancel_grace_period(mut self, grace_period: Duration) -> Self {
        self.grace_period = grace_period;
        self
    }

    #[cfg(feature = "events")]
    /// Publishes every run's lifecycle events on `bus` (see [the crate docs](crate#events)
    /// for the subjects). Publishing respects each subscription's overflow policy; with a
    /// lossless (`Block`) subscriber that falls behind, runs wait rather than drop events.
    ///
    /// Every event of a run is published, whether or not anyone subscribed yet: a
    /// subscription made while a run is under way receives every event published after it
    /// was made. On a tokio runtime each run spawns a task that builds and publishes its
    /// events, so the run's own thread does little for them; a run polled outside tokio
    /// publishes them itself. Either way a run returns only after its last event is
    /// published, unless it is cancelled: it then waits no longer than its grace period,
    /// and the rest of its events are delivered in the background (see [the crate
    /// docs](crate#cancellation)). A run dropped before it finishes stops its publisher: at
    /// most the batch of events being published still goes out; the rest are dropped.
    pub fn event_bus(mut self, bus: EventBus<EngineEvent>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Gives every handler `value`, which it reads with
    /// [`ctx.state::<S>()`](crate::TaskContext::state): a connection pool, a client, a
    /// configuration. Any number of types may be given, one value per type (a second
    /// value of a type replaces the first). Clones of the engine share the values.
    ///
    /// ```
    /// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
    /// use orch_core::{Task, Workflow};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// struct Pool { queries: AtomicU64 }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = WorkflowEngine::builder()
    ///     .state(Pool { queries: AtomicU64::new(0) })
    ///     .state(String::from("eu-west-1"))
    ///     .build()?;
    /// engine.register_handler("query", |ctx: TaskContext| async move {
    ///     let pool = ctx.state::<Pool>()?;
    ///     let region = ctx.state::<String>()?;
    ///     let n = pool.queries.fetch_add(1, Ordering::Relaxed) + 1;
    ///     Ok::<_, TaskError>(format!("query {n} in {region}"))
    /// });
    /// let workflow = Workflow::new("w", "W").task(Task::new("q", "query"));
    /// let result = engine.execute_workflow(&workflow).await?;
    /// assert_eq!(result.task("q").unwrap().result, Some("query 1 in eu-west-1".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn state<S: std::any::Any + Send + Sync>(mut self, value: S) -> Self {
        self.states.insert(value);
        self
    }

    #[cfg(feature = "events")]
    /// Whether the events of completed tasks (`TaskCompleted`, and `TaskRestored` in a
    /// resumed run) carry the task's output in
    /// [`EngineEvent::output`](orch_core::EngineEvent::output) (default `false`). Each
    /// such event then holds its own copy of the output, made as the task completes: worth
    /// it for a live view of results, costly for large outputs.
    pub fn event_outputs(mut self, include: bool) -> Self {
        self.event_outputs = include;
        self
    }

    /// Sets the most instances a map task may run unless it sets its own
    /// `max_instances` ([`DEFAULT_MAX_INSTANCES`] unless set). A map over a longer list
    /// fails, running none.
    pub fn max_map_instances(mut self, max: u32) -> Self {
        self.max_instances = max;
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Result<WorkflowEngine, ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        let mut empty: Vec<&String> = (self.pools.iter())
            .filter(|(_, limit)| **limit == 0)
            .map(|(name, _)| name)
            .collect();
        empty.sort_unstable();
        if let Some(pool) = empty.first() {
            return Err(ConfigError::ZeroPoolLimit {
                pool: pool.to_string(),
            });
        }
        Ok(self.build_unchecked())
    }

    fn build_unchecked(self) -> WorkflowEngine {
        WorkflowEngine {
            inner: Arc::new(EngineInner {
                handlers: RwLock::new(HashMap::new()),
                states: Arc::new(self.states),
                max_concurrent: self.max_concurrent.max(1),
                grace_period: self.grace_period,
                pools: Arc::new(self.pools),
                critical_path_first: self.critical_path_first,
                cache: self.cache,
                max_instances: self.max_instances,
                #[cfg(feature = "events")]
                bus: self.bus,
                #[cfg(feature = "events")]
                event_outputs: self.event_outputs,
                #[cfg(feature = "journal")]
                journal: self.journal,
            }),
        }
    }
}

/// A setting that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_concurrent` was 0: no task could ever start.
    #[error("max_concurrent must be at least 1 (0 would let no task start)")]
    ZeroConcurrency,
    /// A pool was declared with a limit of 0: none of its tasks could ever start.
    #[error("pool `{pool}` must have a limit of at least 1 (0 would let none of its tasks start)")]
    ZeroPoolLimit {
        /// The pool's name.
        pool: String,
    },
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
