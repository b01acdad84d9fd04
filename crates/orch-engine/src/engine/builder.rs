//! [`EngineBuilder`]: an engine's settings, checked when it is built.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[cfg(feature = "events")]
use orch_core::EngineEvent;
#[cfg(feature = "events")]
use orch_events::EventBus;

use super::{DEFAULT_MAX_INSTANCES, EngineInner, WorkflowEngine};
use crate::cache::CacheChoice;
#[cfg(feature = "journal")]
use crate::journaling::JournalSettings;
use crate::state::States;

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
    pub(crate) cache: CacheChoice,
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
            cache: CacheChoice::default(),
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
    /// than the one first in the plan's execution order (default `false`). Ties still go
    /// in that order.
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
    /// fails, running none. 0 is refused by [`EngineBuilder::build`].
    pub fn max_map_instances(mut self, max: u32) -> Self {
        self.max_instances = max;
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Result<WorkflowEngine, ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        if self.max_instances == 0 {
            return Err(ConfigError::ZeroMapInstances);
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

    pub(super) fn build_unchecked(self) -> WorkflowEngine {
        WorkflowEngine {
            inner: Arc::new(EngineInner {
                handlers: RwLock::new(HashMap::new()),
                states: Arc::new(self.states),
                max_concurrent: self.max_concurrent.max(1),
                grace_period: self.grace_period,
                pools: Arc::new(self.pools),
                critical_path_first: self.critical_path_first,
                cache: self.cache.settings(),
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
    /// `max_map_instances` was 0: every map over a list that is not empty would fail.
    /// (A map task's own `max_instances` of 0 is refused when its workflow is
    /// validated.)
    #[error(
        "max_map_instances must be at least 1 (0 would fail every map over a list that is not empty)"
    )]
    ZeroMapInstances,
    /// A pool was declared with a limit of 0: none of its tasks could ever start.
    #[error("pool `{pool}` must have a limit of at least 1 (0 would let none of its tasks start)")]
    ZeroPoolLimit {
        /// The pool's name.
        pool: String,
    },
}
