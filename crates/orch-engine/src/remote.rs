//! [`RemoteTask`]: a [`TaskContext`] for an attempt that an engine in another process
//! scheduled, so that a worker runs it with the same [`Handler`](crate::Handler)s an
//! engine registers; [`HandlerState`] holds the application values such handlers read;
//! [`Output::into_json`](crate::Output::into_json) gives what such a handler returned as
//! JSON, to send back; [`TaskContext::run_id`] names the run.

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use orch_core::{RunId, Task, TaskId, ValidationErrors, Workflow};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::context::RunShared;
use crate::output::Stored;
use crate::state::States;
use crate::{Handler, Output, TaskContext, TaskError};

/// The application values that handlers run outside an engine read with
/// [`TaskContext::state`], one per type: what [`EngineBuilder::state`] gives an engine's
/// handlers. Cloning is cheap; the values are shared.
///
/// [`EngineBuilder::state`]: crate::EngineBuilder::state
#[derive(Clone, Default)]
pub struct HandlerState(Arc<States>);

impl HandlerState {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`, replacing an earlier value of the same type.
    pub fn with<S: Any + Send + Sync>(mut self, value: S) -> Self {
        Arc::make_mut(&mut self.0).insert(value);
        self
    }
}

impl fmt::Debug for HandlerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HandlerState").field(&self.0).finish()
    }
}

/// One attempt of a task that an engine in another process scheduled: the task's
/// definition, its attempt number, the outputs of the ancestors it may read, and a
/// cancellation token. [`RemoteTask::context`] makes the [`TaskContext`] its handler is
/// called with.
///
/// Such a context sees only what was sent: [`TaskContext::workflow`] holds the task and
/// the ancestors whose outputs came with it, and reading the output of an ancestor that
/// was not sent is a permanent error saying so. Outputs arrive as JSON, so
/// [`TaskContext::shared`] finds no [`Shared`](crate::Shared) value there.
///
/// ```
/// use orch_core::{RunId, Task};
/// use orch_engine::{HandlerState, RemoteTask};
/// use serde_json::json;
///
/// let task = Task::new("total", "sum").depends_on(["load"]);
/// let ctx = RemoteTask::new(RunId::parse("run-1")?, "etl", task, 2)
///     .input("load", json!([1, 2, 3]))
///     .state(HandlerState::new().with(10_u64))
///     .context()?;
/// assert_eq!(ctx.input::<Vec<u64>>("load")?, [1, 2, 3]);
/// assert_eq!(*ctx.state::<u64>()?, 10);
/// assert_eq!((ctx.attempt(), ctx.run_id().as_str()), (2, "run-1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RemoteTask {
    run_id: RunId,
    workflow_id: String,
    workflow_name: String,
    task: Task,
    attempt: u32,
    inputs: Vec<(TaskId, Value)>,
    cancel: CancellationToken,
    states: HandlerState,
    item: Option<(usize, Value)>,
    resumed: bool,
}

impl RemoteTask {
    /// Attempt `attempt` (1 for the first) of `task`, of run `run_id` of workflow
    /// `workflow_id`.
    pub fn new(run_id: RunId, workflow_id: impl Into<String>, task: Task, attempt: u32) -> Self {
        Self {
            run_id,
            workflow_id: workflow_id.into(),
            workflow_name: String::new(),
            task,
            attempt,
            inputs: Vec::new(),
            cancel: CancellationToken::new(),
            states: HandlerState::default(),
            item: None,
            resumed: false,
        }
    }

    /// Whether the attempt is taken up again from an earlier run that stopped before
    /// recording it: [`TaskContext::resumed`] on the engine that sent it, which handlers
    /// read the same on this side. Default false.
    pub fn resumed(mut self, resumed: bool) -> Self {
        self.resumed = resumed;
        self
    }

    /// The workflow's name (empty unless set).
    pub fn workflow_name(mut self, name: impl Into<String>) -> Self {
        self.workflow_name = name.into();
        self
    }

    /// The output of ancestor `id`. Direct dependencies not given have no output: the
    /// handler gets an error if it reads one. An id given twice keeps its first output.
    ///
    /// ```
    /// # use orch_core::{RunId, Task};
    /// # use orch_engine::RemoteTask;
    /// # use serde_json::json;
    /// let task = Task::new("total", "sum").depends_on(["load"]);
    /// let ctx = RemoteTask::new(RunId::parse("run-1")?, "etl", task, 1)
    ///     .input("load", json!(1))
    ///     .input("load", json!(2))
    ///     .context()?;
    /// assert_eq!(ctx.input::<u32>("load")?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn input(mut self, id: impl Into<TaskId>, output: Value) -> Self {
        self.inputs.push((id.into(), output));
        self
    }

    /// The outputs of several ancestors; see [`RemoteTask::input`].
    pub fn inputs(mut self, outputs: impl IntoIterator<Item = (TaskId, Value)>) -> Self {
        self.inputs.extend(outputs);
        self
    }

    /// The token the handler sees as [`TaskContext::cancellation`] (a fresh one unless
    /// given).
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// For an instance of a map task (see `Task::map_over`): the position of its element
    /// in the list and the element, which the handler reads with
    /// [`TaskContext::map_item`] (or [`TaskContext::item`] and
    /// [`TaskContext::item_index`]) as it would in the engine. `task` stays the map task.
    ///
    /// ```
    /// use orch_core::{RunId, Task};
    /// use orch_engine::RemoteTask;
    /// use serde_json::json;
    ///
    /// let task = Task::new("square", "square").map_over("list");
    /// let ctx = RemoteTask::new(RunId::parse("run-1")?, "etl", task, 1)
    ///     .item(2, json!(7))
    ///     .context()?;
    /// assert_eq!((ctx.map_item::<i64>()?, ctx.item_index()), (7, Some(2)));
    /// assert_eq!(ctx.task_id().as_str(), "square");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn item(mut self, index: usize, value: Value) -> Self {
        self.item = Some((index, value));
        self
    }

    /// The values [`TaskContext::state`] reads.
    pub fn state(mut self, states: HandlerState) -> Self {
        self.states = states;
        self
    }

    /// The context for the handler. Fails when the task itself is not valid (the same
    /// checks as [`Workflow::validate`], such as a dependency on itself or too many
    /// retries), or when an input names the task itself.
    pub fn context(self) -> Result<TaskContext, ValidationErrors> {
        let Self {
            run_id,
            workflow_id,
            workflow_name,
            task,
            attempt,
            inputs,
            cancel,
            states,
            item,
            resumed,
        } = self;
        let mut workflow = Workflow::new(workflow_id, workflow_name);
        // An id given twice keeps its first output. (Sets, not scans: a message may
        // carry many thousands of inputs, read before its progress acks start.)
        let mut seen: HashSet<TaskId> = HashSet::with_capacity(inputs.len());
        let outputs: Vec<(TaskId, Value)> = (inputs.into_iter())
            .filter(|(id, _)| seen.insert(id.clone()))
            .collect();
        // Ancestors that are not direct dependencies hang under the first direct one, so
        // that they count as ancestors; direct dependencies that were not sent get a
        // placeholder with no output.
        let direct: HashSet<&TaskId> = task.dependencies.iter().collect();
        let further: Vec<TaskId> = (outputs.iter())
            .map(|(id, _)| id)
            .filter(|id| !direct.contains(id))
            .cloned()
            .collect();
        for (n, id) in task.dependencies.iter().enumerate() {
            if *id == task.task_id {
                continue;
            }
            let mut stub = Task::new(id.clone(), "");
            if n == 0 {
                stub = stub.depends_on(further.iter().cloned());
            }
            workflow.add_task(stub);
        }
        for id in further {
            workflow.add_task(Task::new(id, ""));
        }
        let index = workflow.len();
        workflow.add_task(task);
        workflow.validate()?;
        let results: Vec<OnceLock<Stored>> = (0..workflow.len()).map(|_| OnceLock::new()).collect();
        for (id, output) in outputs {
            if let Some(position) = workflow.index_of(&id)
                && position != index
            {
                let _ = results[position].set(Stored::Json(output));
            }
        }
        let run = RunShared {
            run_id,
            workflow,
            partial: true,
            // As the sending engine saw it: no earlier run ended this attempt's task.
            ended_before: resumed.then(|| vec![false; results.len()].into_boxed_slice()),
            results,
            branches: Default::default(),
            states: states.0,
            cancel,
            #[cfg(feature = "events")]
            bus: None,
        };
        Ok(TaskContext {
            run: Arc::new(run),
            index: index as u32,
            attempt,
            item: item.map(|(index, value)| Arc::new(crate::context::MapItem { index, value })),
            attempt_cancel: None,
        })
    }
}

impl Output {
    /// The output as JSON, to send to another process: the value, or a
    /// [`Shared`](crate::Shared) value's summary (the value itself stays here); and
    /// whether it was a shared value.
    pub fn into_json(self) -> (Value, bool) {
        self.0.into_record()
    }

    /// The reason given to [`Output::not_journaled`], if the output was marked so: sent
    /// with the output, so that the receiving engine keeps it out of its journal too.
    pub fn not_journaled_reason(&self) -> Option<&str> {
        match &self.0 {
            Stored::Unjournaled(kept) => Some(&kept.1),
            _ => None,
        }
    }
}

impl TaskContext {
    /// The id of the run this attempt belongs to.
    pub fn run_id(&self) -> &RunId {
        &self.run.run_id
    }
}

/// Runs `handler` on `ctx` the way an engine on a multi-threaded runtime runs an
/// attempt: as a tokio task of its own, or, for a handler that
/// [runs inline](Handler::runs_inline), in the returned future. Either way a panic in the
/// handler fails the attempt with the panic's message (`handler panicked: ...`), and so
/// does one when its finished future is dropped (`handler panicked when dropped: ...`);
/// dropping the returned future stops the handler (its task is aborted), and a panic
/// then is logged, not passed on. Call it inside a tokio runtime.
pub fn run_attempt(
    handler: Arc<dyn Handler>,
    ctx: TaskContext,
) -> impl Future<Output = Result<Output, TaskError>> + Send + 'static {
    crate::attempt::run_alone(handler, ctx)
}

/// The error for reading an output that was not sent with a task run elsewhere.
pub(crate) fn not_sent(task: &TaskId, id: &str) -> TaskError {
    TaskError::permanent(format!(
        "task `{task}` read the output of `{id}`, which was not sent with it to this worker: \
         only its ancestors' outputs are sent, and only those its coordinator was asked to send"
    ))
}
