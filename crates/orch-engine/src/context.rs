//! [`TaskContext`]: everything a handler gets for one attempt of one task.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use orch_core::{Plan, RunId, Task, TaskId, Workflow};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

mod map_item;
mod outputs;

pub(crate) use map_item::MapItem;

use crate::TaskError;
use crate::branch::Branches;
use crate::output::Stored;
use crate::state::States;

/// State of one run that handlers can read: the definition, finished results, the
/// engine's application state and the run's cancellation token.
pub(crate) struct RunShared {
    pub(crate) run_id: RunId,
    pub(crate) workflow: Workflow,
    /// Whether `workflow` holds only the task and the ancestors whose outputs were sent
    /// to this process (a task run on a worker, see [`crate::RemoteTask`]).
    pub(crate) partial: bool,
    /// When the run continues an earlier one, each task's flag: whether the earlier run
    /// ended it, completed, failed, skipped or cancelled (see [`TaskContext::resumed`]).
    pub(crate) ended_before: Option<Box<[bool]>>,
    /// Each task's output, set once when it completes (before any dependent starts).
    pub(crate) results: Vec<OnceLock<Stored>>,
    pub(crate) states: Arc<States>,
    pub(crate) cancel: CancellationToken,
    /// The dependents that completing tasks chose to run (see
    /// [`TaskContext::choose_branches`]).
    pub(crate) branches: Branches,
    /// The engine's bus, if it has one (see [`TaskContext::event_bus`]).
    #[cfg(feature = "events")]
    pub(crate) bus: Option<orch_events::EventBus<orch_core::EngineEvent>>,
}

impl RunShared {
    /// The task at a plan index (indices come from this workflow's plan).
    pub(crate) fn task(&self, index: usize) -> &Task {
        match self.workflow.get_index(index) {
            Some(task) => task,
            None => unreachable!("plan indices come from the run's workflow"),
        }
    }

    /// The workflow's plan (compiled when the run validated it).
    fn plan(&self) -> &Plan {
        match self.workflow.validate() {
            Ok(valid) => valid.plan(),
            Err(_) => unreachable!("a running workflow is valid"),
        }
    }
}

/// What a handler gets for one attempt of one task: the task and its configuration, the
/// workflow, the outputs of the tasks it depends on (directly or not), the engine's
/// application state, the attempt number and the run's cancellation token.
///
/// A context is cheap to clone and owns what it refers to, so a handler can move it into a
/// spawned task.
///
/// ```
/// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
/// use orch_core::{Task, Workflow};
/// use serde::{Deserialize, Serialize};
/// use serde_json::json;
///
/// #[derive(Serialize, Deserialize)]
/// struct Fetched { rows: u64 }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let engine = WorkflowEngine::new();
/// engine.register_handler("fetch", |_ctx: TaskContext| async move {
///     Ok::<_, TaskError>(Fetched { rows: 3 })
/// });
/// engine.register_handler("process", |ctx: TaskContext| async move {
///     let fetched: Fetched = ctx.input("fetch")?;
///     Ok::<_, TaskError>(json!({"task": ctx.task_id(), "doubled": fetched.rows * 2, "attempt": ctx.attempt()}))
/// });
/// let workflow = Workflow::new("w", "W")
///     .task(Task::new("fetch", "fetch"))
///     .task(Task::new("process", "process").depends_on(["fetch"]));
/// let result = engine.execute_workflow(&workflow).await?;
/// assert_eq!(
///     result.task("process").unwrap().result,
///     Some(json!({"task": "process", "doubled": 6, "attempt": 1}))
/// );
/// # Ok::<(), orch_engine::RunError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TaskContext {
    pub(crate) run: Arc<RunShared>,
    pub(crate) index: u32,
    pub(crate) attempt: u32,
    /// For an instance of a map task: which element, and the element itself.
    pub(crate) item: Option<Arc<MapItem>>,
    /// The attempt's own token, when it has a timeout (cancelled at the timeout, and by
    /// the engine when the run is cancelled).
    pub(crate) attempt_cancel: Option<CancellationToken>,
}

impl TaskContext {
    fn task(&self) -> &Task {
        self.run.task(self.index as usize)
    }

    /// The task's id; for an instance of a map task, the map task's (the instance's own
    /// is [`TaskContext::record_id`]).
    pub fn task_id(&self) -> &TaskId {
        &self.task().task_id
    }

    /// The task's name (its id when it has none).
    pub fn name(&self) -> &str {
        self.task().display_name()
    }

    /// The whole task definition.
    pub fn task_definition(&self) -> &Task {
        self.task()
    }

    /// The task's configuration (a JSON object).
    pub fn config(&self) -> &Value {
        &self.task().config
    }

    /// The configuration, deserialised into `T`; a mismatch is a permanent error.
    pub fn config_as<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        T::deserialize(self.config()).map_err(|e| {
            TaskError::permanent(format!("invalid config of task `{}`: {e}", self.task_id()))
        })
    }

    /// The workflow this task belongs to.
    pub fn workflow(&self) -> &Workflow {
        &self.run.workflow
    }

    /// Makes this task a branch: once it completes, only the direct dependents named in
    /// `dependents` may run. Every other direct dependent is skipped, with a reason
    /// naming this task, and that skip travels on through the trigger rules of their own
    /// dependents (a join task with the rule `none_failed_min_one_success` still runs
    /// after the chosen branch).
    ///
    /// The choice of the attempt that completes counts (a later call replaces an earlier
    /// one); an attempt that fails leaves no choice behind. The task's record lists the
    /// chosen dependents once each, in the workflow's order. Naming a task that is not a
    /// direct dependent is a permanent error, and so is choosing on a remote worker or in
    /// an instance of a map task. A dependent whose trigger rule had decided to run it
    /// before this task completed (`always`; `one_success` or `one_failed` after another
    /// dependency completed or failed) is not skipped by the choice, also when it still
    /// waits for a slot. A cached task's result is not stored when it chose branches, so such a
    /// task always runs.
    ///
    /// ```
    /// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
    /// use orch_core::{Task, TaskStatus, Workflow};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = WorkflowEngine::new();
    /// engine.register_handler("route", |ctx: TaskContext| async move {
    ///     ctx.choose_branches(["small"])?;
    ///     Ok::<_, TaskError>("small input")
    /// });
    /// engine.register_handler("work", |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) });
    /// let workflow = Workflow::new("w", "W")
    ///     .task(Task::new("route", "route"))
    ///     .task(Task::new("small", "work").depends_on(["route"]))
    ///     .task(Task::new("large", "work").depends_on(["route"]));
    /// let result = engine.execute_workflow(&workflow).await?;
    /// assert_eq!(result.task("small").unwrap().status, TaskStatus::Completed);
    /// let large = result.task("large").unwrap();
    /// assert_eq!(large.status, TaskStatus::Skipped);
    /// assert_eq!(large.error.as_deref(), Some("not chosen by branch task `route`"));
    /// # Ok::<(), orch_engine::RunError>(())
    /// # }).unwrap();
    /// ```
    pub fn choose_branches<I>(&self, dependents: I) -> Result<(), TaskError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        if self.run.partial {
            return Err(TaskError::permanent(format!(
                "task `{}` chose branches on a remote worker; branches are chosen by tasks \
                 run in the engine's own process",
                self.task_id()
            )));
        }
        if let Some(item) = &self.item {
            return Err(TaskError::permanent(format!(
                "instance {} of map task `{}` chose branches; only a whole task can choose \
                 which of its dependents run",
                item.index,
                self.task_id()
            )));
        }
        let me = self.index as usize;
        // In the workflow's order, as the choice is kept: each is found by halving.
        let direct = self.run.plan().dependents(me);
        let mut chosen = Vec::new();
        for id in dependents {
            let id = id.as_ref();
            match self.run.workflow.index_of(id) {
                Some(index) if direct.binary_search(&(index as u32)).is_ok() => {
                    chosen.push(index as u32);
                }
                found => return Err(self.not_a_branch(id, found.is_some(), direct)),
            }
        }
        chosen.sort_unstable();
        chosen.dedup();
        self.run.branches.choose(self.index, self.attempt, chosen);
        Ok(())
    }

    /// The output of `id`, deserialised into `T`. `id` must be an ancestor of this task:
    /// a task it depends on, directly or not. Reading another task, or an output of
    /// another shape, is a permanent error.
    ///
    /// Ancestors finish before a task starts, unless a task between them ended first: one
    /// with a trigger rule that starts it before all of its dependencies ended
    /// (`one_success`, `one_failed`, `always`), or one skipped as soon as another of its
    /// dependencies failed (or a branch left it out), below which a rule that runs after
    /// a skipped dependency (`all_done`, `none_failed`, ...) let this task start. An
    /// ancestor above such a task may still be running, and reading it then is an error
    /// that says so. Depend on such an ancestor directly to wait for it.
    ///
    /// A map task that failed because one of its instances failed still has an output for
    /// the tasks its failure lets run (say, an `all_done` report): the list of its
    /// instances' results in order, `null` for each instance that failed, was skipped or
    /// never started. Any other task that did not complete has none.
    ///
    /// The output of a task that returned a [`Shared`](crate::Shared) value is read
    /// with [`TaskContext::shared`]; here it reads as its summary.
    pub fn input<T: DeserializeOwned>(&self, id: &str) -> Result<T, TaskError> {
        let output = self.output_of(id)?;
        T::deserialize(output.json()).map_err(|e| {
            let shared = match output {
                Stored::Shared(_) => " (its summary; it returned a shared value)",
                Stored::Json(_) | Stored::Unjournaled(_) => "",
            };
            TaskError::permanent(format!(
                "the output of `{id}`{shared} is not a `{}`: {e}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// The output of the ancestor `id` as JSON (a [`Shared`](crate::Shared) value's
    /// summary); see [`TaskContext::input`].
    pub fn input_json(&self, id: &str) -> Result<&Value, TaskError> {
        self.output_of(id).map(Stored::json)
    }

    /// The [`Shared`](crate::Shared) value the ancestor `id` returned. An output that is
    /// JSON, or a shared value of another type, is a permanent error.
    pub fn shared<T: Any + Send + Sync>(&self, id: &str) -> Result<Arc<T>, TaskError> {
        let wanted = std::any::type_name::<T>();
        match self.output_of(id)? {
            Stored::Shared(shared) => Arc::clone(&shared.value).downcast::<T>().map_err(|_| {
                TaskError::permanent(format!(
                    "`{id}` shared a `{}`, not a `{wanted}`",
                    shared.type_name
                ))
            }),
            Stored::Json(_) | Stored::Unjournaled(_) => Err(TaskError::permanent(format!(
                "`{id}` returned JSON, not a shared `{wanted}`; read it with `input`"
            ))),
        }
    }

    /// The outputs of the direct dependencies that completed, as JSON (a
    /// [`Shared`](crate::Shared) value's summary), in the order they are listed. With the
    /// default trigger rule that is every dependency; with another rule, those that have
    /// completed by the time of the call (one may complete while the task runs), and any
    /// map task that failed because an instance failed (its list of instance results,
    /// `null` where an instance did not complete).
    pub fn dependency_results(&self) -> impl Iterator<Item = (&TaskId, &Value)> + '_ {
        self.task().dependencies.iter().filter_map(move |id| {
            let index = self.run.workflow.index_of(id)?;
            Some((id, self.run.results.get(index)?.get()?.json()))
        })
    }

    /// The engine's value of type `S`, given with
    /// [`EngineBuilder::state`](crate::EngineBuilder::state). An engine with no such value
    /// is a permanent error naming the type.
    pub fn state<S: Any + Send + Sync>(&self) -> Result<&S, TaskError> {
        self.run.states.get::<S>().ok_or_else(|| {
            TaskError::permanent(format!(
                "the engine has no state of type `{}` (give it with `EngineBuilder::state`)",
                std::any::type_name::<S>()
            ))
        })
    }

    /// The attempt number: 1 for the first try, 2 for the first retry, ... In a resumed
    /// run, a task that runs again goes on from the attempts the run it continues
    /// recorded ([`WorkflowEngine::resume`](crate::WorkflowEngine::resume)), so no number
    /// of an attempt that ended is given again; attempts a run made but did not record
    /// (its process stopped during them) are taken up under their numbers, and are
    /// [resumed](TaskContext::resumed), unless an input they read is made again or the
    /// task's definition changed since (then the numbers go on past every attempt that
    /// run may have made, its retries included, as many as the task has now). An instance of a map task that runs again goes on
    /// from the highest attempt of the map's instances.
    ///
    /// A run records a task's attempts when the task ends, not at each retry: if its
    /// process stopped while the task was retrying, a resumed run goes on from what the
    /// run before that recorded, and so gives again, resumed, the number of an attempt
    /// that failed (a system that keeps the first outcome per attempt gives that failure
    /// again, and the retries follow as before).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether this attempt may have run before, under the same run id, task id and
    /// attempt number: this run continues an earlier one ([`WorkflowEngine::resume`], or
    /// [`WorkflowEngine::run_durable`] on a run its journal already held) that did not
    /// record an end for the task (it was under way when that run's process stopped, or
    /// was recorded as pending or running). This run then takes up the same attempt.
    /// A handler that hands work to another system can ask that system whether the
    /// attempt already finished there before starting it again. A task the earlier run
    /// ended (completed, failed, skipped or cancelled) and that runs again is not resumed:
    /// its attempt numbers go on after the earlier ones (see [`TaskContext::attempt`]);
    /// but one it cancelled before any attempt of it was recorded is (a run before it may
    /// have stopped during its first attempt). Nor is a task whose rule could have
    /// started it on how its dependencies (for a map, the list) ended in the earlier run,
    /// one of which runs again in this one (its output was not journaled, or its outcome
    /// does not stand): the attempt under way read an output that may now differ, so this
    /// one takes a number past it (the resume notes that count in the journal before any
    /// task runs, so a resume after it, if it is stopped too, goes on from there). The
    /// same goes for a task whose definition changed since (the attempt under way was
    /// the old definition's); and a task the workflow gained since is not resumed (its
    /// id may be that of a task removed before, whose attempts are forgotten), nor one
    /// whose rule the recorded ends of its dependencies could not have started (a
    /// durable run starts a task only once those are recorded; a record that a power cut
    /// took, under `Durability::Process`, is not known of).
    ///
    /// [`WorkflowEngine::resume`]: crate::WorkflowEngine::resume
    /// [`WorkflowEngine::run_durable`]: crate::WorkflowEngine::run_durable
    pub fn resumed(&self) -> bool {
        let ended = |flags: &[bool]| flags.get(self.index as usize) == Some(&true);
        (self.run.ended_before.as_deref()).is_some_and(|flags| !ended(flags))
    }

    /// The attempt's cancellation token: cancelled when the run is cancelled (or dropped
    /// before its end), and when the attempt passes its task's timeout, so long handlers
    /// can stop early
    /// (`token.cancelled().await` or `token.is_cancelled()`). A [`blocking`] handler, which
    /// the engine cannot interrupt, should watch it.
    ///
    /// A handler that stops early should return an error (such as
    /// [`TaskError::new`]`("stopped")`): what it returns as `Ok` is its task's output, a
    /// completion like any other, which a journal records and a resume keeps. (Only the
    /// result cache, which serves other runs, leaves out results returned once the run
    /// was cancelled.)
    ///
    /// It is for watching. For a task without a timeout it is the run's own token, so
    /// cancelling it cancels the whole run; to stop helper tasks of the handler's own,
    /// give them a child token (`ctx.cancellation().child_token()`) and cancel that. For
    /// a task with a timeout it is the attempt's own: the run's cancellation reaches it
    /// only while the attempt runs, so a helper left running after its handler returned
    /// does not hear of a later one.
    ///
    /// [`blocking`]: crate::blocking
    pub fn cancellation(&self) -> &CancellationToken {
        self.attempt_cancel.as_ref().unwrap_or(&self.run.cancel)
    }

    /// The engine's event bus, when it has one ([`EngineBuilder::event_bus`]): a handler
    /// can publish on it, under a subject of its own, or watch the run's lifecycle
    /// events. `None` without a bus, and on a remote worker. For events of a type of
    /// your own, put an `EventBus<YourEvent>` in the engine's state
    /// ([`EngineBuilder::state`]) and read it with [`TaskContext::state`].
    ///
    /// What a handler publishes goes out at once, while the engine's own events go out
    /// in order behind it: a subscriber of both may see a handler's event before its
    /// task's `started`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::SystemTime;
    ///
    /// use orch_core::{EngineEvent, EngineEventKind, Task, Workflow};
    /// use orch_engine::{TaskContext, TaskError, WorkflowEngine};
    /// use orch_events::EventBus;
    /// use serde_json::json;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let bus = EventBus::new();
    /// let mut progress = bus.subscribe("app.progress")?;
    /// let engine = WorkflowEngine::builder().event_bus(bus).build()?;
    /// engine.register_handler("load", |ctx: TaskContext| async move {
    ///     if let Some(bus) = ctx.event_bus() {
    ///         let workflow_id = Arc::from(ctx.workflow().workflow_id());
    ///         let mut note = EngineEvent::new(
    ///             EngineEventKind::TaskStarted,
    ///             workflow_id,
    ///             ctx.run_id().clone(),
    ///             SystemTime::now(),
    ///         );
    ///         note.task_id = Some(ctx.task_id().clone());
    ///         note.output = Some(Arc::new(json!({"rows_loaded": 3})));
    ///         // Under a subject of its own, which no `workflow.>` subscriber (watching
    ///         // the engine's events) sees.
    ///         bus.publish("app.progress", note).await?;
    ///     }
    ///     Ok::<_, TaskError>(())
    /// });
    /// let run = engine.run(&Workflow::new("w", "W").task(Task::new("load", "load")));
    /// let run_id = run.run_id().clone();
    /// run.await?;
    /// let note = progress.recv_event().await.expect("the handler's event");
    /// assert_eq!(note.payload().run_id, run_id);
    /// assert_eq!(note.payload().output.as_deref(), Some(&json!({"rows_loaded": 3})));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// [`EngineBuilder::event_bus`]: crate::EngineBuilder::event_bus
    /// [`EngineBuilder::state`]: crate::EngineBuilder::state
    #[cfg(feature = "events")]
    pub fn event_bus(&self) -> Option<&orch_events::EventBus<orch_core::EngineEvent>> {
        self.run.bus.as_ref()
    }
}

impl TaskContext {
    /// The error for choosing `id` as a branch: a task of the workflow (`exists`) that is
    /// not among this task's `direct` dependents, or no task at all; the dependents it
    /// may choose are named (the first ten).
    fn not_a_branch(&self, id: &str, exists: bool, direct: &[u32]) -> TaskError {
        const NAMED: usize = 10;
        let what = match exists {
            true => "not one of its direct dependents",
            false => "no task of the workflow",
        };
        let mut names: Vec<String> = (direct.iter().take(NAMED))
            .map(|&d| format!("`{}`", self.run.task(d as usize).task_id))
            .collect();
        if direct.len() > NAMED {
            names.push(format!("and {} more", direct.len() - NAMED));
        }
        let choices = match names.is_empty() {
            true => "it has no dependents to choose".to_owned(),
            false => format!("it may choose {}", names.join(", ")),
        };
        TaskError::permanent(format!(
            "task `{}` chose `{id}` as a branch, which is {what}; {choices}",
            self.task_id()
        ))
    }
}
