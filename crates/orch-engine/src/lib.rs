//! The orch executor: runs a workflow's tasks on tokio, each through the handler
//! registered for its task type.
//!
//! ```
//! use orch_core::{Task, TaskStatus, Workflow, WorkflowStatus};
//! use orch_engine::{TaskContext, TaskError, WorkflowEngine};
//! use serde_json::{Value, json};
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
//! engine.register_handler("flaky", |_ctx: TaskContext| async move {
//!     Err::<Value, _>(TaskError::new("upstream unavailable"))
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
//! # Handlers
//!
//! A handler is an `async fn` or closure from [`TaskContext`] to `Result<T, E>`: `T` is
//! any serialisable value or a [`Shared`] in-process value, `E` any error (see
//! [`Handler`]). Through its context it reads the outputs of the tasks it depends on,
//! directly or not ([`TaskContext::input`]), and the application state given to the
//! engine ([`EngineBuilder::state`]). It fails with an error (retried if the task allows,
//! unless [`TaskError::permanent`]), or ends its task as skipped with
//! [`TaskError::skip`].
//!
//! # How tasks run
//!
//! A run keeps its ready tasks in a bitmap over plan positions and starts the first in the
//! plan's execution order (or by priority, see below) while fewer than `max_concurrent`
//! are active. On a
//! multi-threaded tokio runtime each attempt runs as a tokio task of its own, so
//! handlers that compute use all the runtime's workers; a handler wrapped in [`inline`]
//! runs on the run's own task instead, which saves the spawn for handlers that only
//! await. On a current-thread runtime every handler runs on the run's task. [`blocking`]
//! runs a synchronous function on tokio's blocking threads. A handler that holds its
//! thread without being wrapped in [`blocking`] (a `std::thread::sleep`, a long
//! computation with no `.await`) takes a runtime worker: once such handlers hold every
//! worker, nothing else runs, and every timeout, retry pause and cancellation grace
//! period waits until one lets go.
//!
//! A run's status is `completed` when every task completed or was skipped by a handler's
//! choice (with the tasks that depend on it), `failed` when a task failed and its failure
//! was not handled (see "The run's status past failures" below; with the default trigger
//! rule its dependents are skipped), and `cancelled` when the run was cancelled.
//!
//! # Rules, branches, pools and priorities
//!
//! - **Trigger rules.** A task's [`TriggerRule`](orch_core::TriggerRule) says when it runs
//!   given how its dependencies ended: `all_success` (the default, above), `all_done`,
//!   `all_failed`, `one_success`, `one_failed`, `none_failed`,
//!   `none_failed_min_one_success` or `always`. A task whose rule can no longer be met is
//!   skipped; its record's error names the rule and the dependencies that decided it
//!   (`dependency `a` failed (trigger rule `all_success`)`, `dependency `b` was skipped
//!   after `a` failed (trigger rule `all_success`)`, or `trigger rule `one_failed` not
//!   met: `x` completed, `b` was skipped after `a` failed`). A skip counts as a skip,
//!   not a failure, for the rules of the dependents. (In a workflow where no task sets
//!   a rule other than `all_success`, a failure's descendants are skipped naming only the failed task:
//!   `dependency `a` failed`.)
//! - **The run's status past failures.** A failed task fails the run, whatever ran after
//!   it (an `all_done` cleanup task does not hide it), unless the failure was *handled*:
//!   a direct dependent whose rule reacts to failures (`one_failed` or `all_failed`)
//!   completed. A run whose every failure was handled is `completed`.
//! - **Branches.** A handler calls [`TaskContext::choose_branches`] with the direct
//!   dependents that may run; when its task completes, the others are skipped with the
//!   reason `not chosen by branch task `x`` (unless their rule had already decided to
//!   run them, as `always` does), and that skip travels on through the rules of their
//!   dependents. A branch skip never fails the run.
//! - **Pools.** [`EngineBuilder::pool`] declares a named limit beside `max_concurrent`;
//!   a task joins one with [`Task::pool`](orch_core::Task::pool). A ready task whose pool
//!   is full waits without holding a global slot, so other tasks start meanwhile, and its
//!   timeout counts from its own start. A task in backoff between attempts gives its
//!   slots (global and pool) back for the pause and queues for them again when it ends,
//!   so a long backoff does not idle a small pool; an instance of a map task in backoff
//!   keeps its slots. A map keeps the slots it started on for its instances and
//!   queues for more at its start rank while instances are left, so it widens as slots
//!   free up and a task ranked before it gets a freed slot first. A run whose tasks name
//!   an undeclared pool does not start
//!   ([`RunError::UnknownPools`]).
//! - **Priorities.** Among ready tasks that may start, the highest
//!   [`Task::priority`](orch_core::Task::priority) starts first; ties go in the plan's
//!   execution order, as without priorities. With
//!   [`EngineBuilder::critical_path_first`], ties go first to the task with the longest
//!   chain of tasks behind it.
//!
//! A workflow whose tasks all keep the default rule, name no pool and set no priority
//! runs exactly as before these options existed, at the same cost.
//!
//! A panic in a handler never leaves the engine: not while its future is created or
//! polled, and not while it is dropped (when it finished, timed out, or was cancelled).
//! A panic while it runs fails the attempt with the panic's message; a panic while it is
//! dropped is added to the task's error (`timed out after 2s; handler panicked when
//! dropped: ...`), and fails an attempt that had succeeded. A spawned attempt that times
//! out or is cancelled is aborted, and tokio drops its future later, on its own thread:
//! a panic there is contained, and the record does not mention it. An error whose
//! `Display` panics is recorded as an error that could not be written as text.
//!
//! # Events
//!
//! With the `events` feature (on by default) and [`EngineBuilder::event_bus`], every run publishes [`orch_core::EngineEvent`]s on an
//! [`orch_events::EventBus`]: `workflow.<workflow_id>.started` / `.finished`, and
//! `workflow.<workflow_id>.task.<task_id>.<event>` for `started`, `completed`, `failed`,
//! `retrying`, `skipped`, `cancelled` and `restored`. Ids are written into subjects with
//! percent-escapes for what a subject token cannot hold (`.`, `*`, `>`, `%`, white space,
//! control characters): task `load.v2` publishes on `workflow.etl.task.load%2Ev2.started`.
//! [`subject_token`] writes an id the same way, to build a pattern from it.
//! Events of one run arrive in the order they happened, so a task's `started` follows
//! its dependencies' `completed` (for a rule that waits for all of them: `one_success`,
//! `one_failed` and `always` may start a task before every dependency ended, and
//! `always` even before they start). Tasks that one end skips (a failure's descendants,
//! a branch's unchosen dependents and what their rules skip in turn) are announced in
//! the workflow's execution order, so none comes before a dependency skipped with it; so
//! are the tasks a cancelled run cancels as it ends.
//! A durable run's `finished` comes once its end is recorded in the journal (or
//! recording it failed), so a subscriber that reads the journal on hearing it finds the
//! end there. A task's end, though, is announced as it ends, before the journal has
//! recorded it: when the journal then fails (the run returns [`RunError::Journal`], and
//! `finished` carries the error), an announced completion may be missing from it, and a
//! resume runs that task again, announcing it again.
//!
//! Every event carries its run's id ([`RunHandle::run_id`], also in the run's
//! `WorkflowResult`), which tells concurrent runs of one workflow apart. The run's
//! `started` event gives the number of tasks, and, for a resumed run, how many were
//! restored from the earlier result; each restored task then gets a `restored` event, so
//! that counting the events that end a task
//! ([`EngineEventKind::is_terminal`](orch_core::EngineEventKind::is_terminal)) gives a
//! run's progress from its first event on (not counting the events of map instances,
//! which carry [`EngineEvent::map_item`](orch_core::EngineEvent::map_item)). With [`EngineBuilder::event_outputs`],
//! `completed` events also carry the task's output. A run publishes every event, so a
//! subscriber that joins while a run is under way receives everything published from
//! then on.
//!
//! ```
//! # #[cfg(feature = "events")] {
//! use orch_core::{EngineEvent, EngineEventKind, Task, Workflow};
//! use orch_engine::{TaskContext, TaskError, WorkflowEngine};
//! use orch_events::EventBus;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let bus: EventBus<EngineEvent> = EventBus::new();
//! let mut progress = bus.subscribe("workflow.etl.task.*.completed").unwrap();
//! let engine = WorkflowEngine::builder().event_bus(bus.clone()).build().unwrap();
//! engine.register_handler("t", |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) });
//! let workflow = Workflow::new("etl", "ETL")
//!     .task(Task::new("load", "t"))
//!     .task(Task::new("clean", "t").depends_on(["load"]));
//! let run = engine.run(&workflow);
//! let run_id = run.run_id().clone();
//! run.await.unwrap();
//! bus.close().await;
//! let mut done = Vec::new();
//! while let Some(event) = progress.recv_event().await {
//!     assert_eq!(event.payload().kind, EngineEventKind::TaskCompleted);
//!     assert_eq!(event.payload().run_id, run_id);
//!     done.push(event.subject().to_string());
//! }
//! assert_eq!(done, ["workflow.etl.task.load.completed", "workflow.etl.task.clean.completed"]);
//! # });
//! # }
//! ```
//!
//! Here the events are read once the run ended, which suits a handful of them: a lossless
//! subscription (the default) holds a run up once its queue is full, so one that is read
//! only afterwards should be lossy (`Overflow::DropOldest`) or large enough, or be read
//! while the run goes on.
//!
//! # Logs
//!
//! The engine logs through [`tracing`](https://docs.rs/tracing): install any subscriber
//! to see them. Each run is a span `workflow_run` (fields `workflow_id`, `run_id`,
//! `tasks`), each attempt a span `task` inside it (`task_id`, `task_type`, and `item` for
//! an instance of a map task). A task's events have the fields `task_id`, `task_type`,
//! `attempt` and `error`:
//!
//! | level | message | when |
//! |---|---|---|
//! | `warn` | `task failed` | a task failed for good (its retries used up, or a permanent error) |
//! | `info` | `task skipped` | a task was skipped (by its handler, a branch, a rule, or a failure upstream) |
//! | `debug` | `task cancelled` | a task that had not ended (running, or not started: attempt 0) was cancelled with its run |
//! | `debug` | `retrying` | an attempt failed and the task will run again (with `delay`) |
//! | `info` | `workflow run finished` | the run ended: `workflow_id`, `run_id`, `status` and the count of tasks per status (`completed`, `failed`, `skipped`, `cancelled`) |
//!
//! A completed task is not logged, so a large run logs only what did not go to plan.
//! Besides these, the engine warns when a cached result cannot be stored, when a spawned
//! handler's future, aborted at a timeout or cancellation, panics as it is dropped (a
//! handler on the run's own task has that panic added to its task's error instead), and
//! when a workflow id makes no event
//! subject (its lifecycle events are then not published).
//!
//! # Durable runs
//!
//! With the `journal` feature (on by default), an engine given a journal
//! ([`EngineBuilder::journal`]) records the runs it starts with
//! [`WorkflowEngine::run_durable`] under the caller's run id, and the same call with the
//! same id continues a run whose process stopped: tasks that completed are restored
//! (with `TaskRestored` events) and only the rest runs. The journal is
//! [`FileJournal`] (one file per run in a directory), a PostgreSQL database (feature
//! `postgres`), or any [`Journal`]; the [`journal`] module reads and lists its runs.
//!
//! The rule the engine keeps: a task's end (its completion, failure, or a skip) is
//! committed to the journal before any task that depends on it starts, unless the
//! dependent's trigger rule starts it early (`one_success`, `one_failed`, `always`: it
//! may start, and be recorded, before some of its dependencies end). Tasks that complete
//! in one scheduling pass share one commit; independent tasks go on while it is under
//! way. So whatever the journal holds has the dependencies it ran on in it too, and a
//! process killed at any moment loses at
//! most the completions not committed yet; those tasks run again. What a commit
//! survives is the [`Durability`]: `Process` (a write, which survives the process
//! crashing) or `Power` (also synced to stable storage, in groups of up to 64 records
//! or 2 ms). Cancellations are recorded when the run ends, with its status; failed tasks
//! run again when the run is continued, and so do the tasks that ran on their failure.
//! A map task's instance records (`task[0]`, `task[1]`, ...) are committed as the
//! instances complete (the rest with the map's end), and restored with the map: a
//! continued run's result has them, and no instance of a completed map runs again. A
//! map that did not complete (a crash, a cancellation, a failed instance) runs again
//! only its instances that did not complete, when its definition is unchanged and every
//! task it depends on is kept (so its list and its dependencies' outputs are those the
//! instances completed on); otherwise all of them run again. An instance whose output
//! the journal does not hold (below) runs again whenever its map does. A restored
//! instance gets a `TaskRestored` event with its item. [`WorkflowEngine::resume`] from a
//! run's result keeps completed instances too, though it cannot tell a changed map.
//!
//! What the journal does not hold, and what that means on resume:
//! - a [`Shared`] output (an in-process value): the journal keeps its summary;
//! - an output the handler marked [`Output::not_journaled`] (too large to write after
//!   every task): the journal keeps the handler's reason. When a map task's handler marks
//!   an element's output so, the map's list is not journaled either;
//! - an output the journal cannot hold (nested deeper than 126 arrays and objects, or a
//!   record of 1 GiB or more): it is kept as if the handler had marked
//!   it so, with the journal's reason ("the journal cannot hold this output: ..."), and a
//!   warning is logged. The run goes on with the output. A failure's error text too
//!   long for a record is cut to its first 64 KiB in the journal, saying so.
//!
//! Such a task runs again when a task that runs on resume depends on it, directly or
//! not (its dependents need the value), and so do the completed tasks between the two;
//! otherwise it stays restored with the summary or reason as its result. A workflow
//! whose completed tasks changed since the run was recorded (type, configuration,
//! dependencies, trigger rule or map) is refused with an error saying what changed
//! ([`RunError::Journal`]).
//!
//! # Cancellation
//!
//! [`RunHandle::cancel`] (or its token) stops a run from starting tasks and cancels the
//! token every running handler sees. The run then waits up to the engine's grace period
//! ([`EngineBuilder::cancel_grace_period`]) for running handlers, drops those still
//! running, and records every unfinished task `Cancelled`. A handler that ends within
//! the grace period is recorded as it ended (`Completed`, or `Skipped` if it skipped;
//! one that fails is `Cancelled`, with its error in the record's text), but nothing is
//! decided from it any more: the tasks after it, whatever their trigger rules, end
//! `Cancelled` too, and the run is `cancelled`. That holds for a handler that ends after
//! another cancelled the run, before the run itself has seen it. A handler polled on the
//! run's own task that cancels the run itself as it fails is recorded `Failed`; one
//! running as a task of its own usually ends after the run saw the cancellation, and is
//! then recorded `Cancelled`. A cancellation the run sees
//! only once every task has ended and is recorded (a handler polled on the run's own task
//! that cancels the run as it completes, say) cuts nothing short: the run's status is
//! then its tasks'. A durable run then records its end in its journal, and
//! waits for that until its grace period ends, but at least 5 s: a journal that has not
//! answered by then (a PostgreSQL table another session holds locked) ends the run with
//! [`RunError::Journal`] ([`JournalError::NoAnswer`](journal::JournalError::NoAnswer)).
//! So does one that does not answer when the run, cancelled before any task started,
//! is still opening (or continuing) its record: nothing ran then. A run that is not
//! cancelled waits for its journal as long as the journal takes (its own time limits,
//! such as PostgreSQL's, apply): cancel it to stop waiting.
//!
//! An attempt that passes its task's timeout is dropped (a spawned one aborted) and its
//! token ([`TaskContext::cancellation`]) cancelled: a [`blocking`] handler, which cannot
//! be stopped from outside, ends early only if it watches that token. Its failure says
//! it timed out, with what the handler returned, if it returned an error past the
//! limit, as a note: a permanent error keeps the task from retrying, and a skip returned
//! past the limit is a timeout all the same. A handler on the run's own task that the
//! run, busy with another handler holding the thread, polls only after the limit is not
//! timed out if it completes in that first late poll, however long the poll takes: the
//! run cannot tell which of its work was done by the limit (a handler that holds the
//! thread, as [`inline`] ones must not, makes its own timeout unreliable).
//!
//! A run also waits for its events to be published, and a lossless subscriber that does
//! not read holds it up: once cancelled, a run waits for that only until the same grace
//! period ends. It then returns, and the events not yet published are **delivered later,
//! not dropped**: a background task (on the current tokio runtime; outside one, a thread
//! of its own) goes on publishing them, in order, and ends once the full subscribers have
//! read them, have been dropped, or the bus is closed (or when the runtime shuts down).
//! Closing the bus ([`EventBus::close`](orch_events::EventBus::close)) ends that delivery
//! after the event it is publishing (`close` waits for a publish under way, which waits
//! for room at its full subscribers: dropping a subscriber that will not read lets it
//! go): the events after it are never published, so a subscriber that needs every event
//! of a cancelled run reads until the run's `finished` event before the bus is closed. A
//! run that is not cancelled waits for slow lossless subscribers as long as they take:
//! that is what the `Block` policy asks for.
//!
//! # Timers
//!
//! Timeouts, pauses between retries and the grace period use tokio's timer. A workflow
//! with a timeout, or with retries after a non-zero backoff, run on a runtime without a
//! time driver (built without `enable_time` or `enable_all`) or outside tokio, is refused
//! before anything runs: [`WorkflowEngine::execute_workflow`] returns
//! [`RunError::NoTimer`] naming each such task and option (`timeout` or `backoff`). A run cancelled there has no grace period:
//! handlers that finish on the poll right after the cancellation are recorded, the
//! others are dropped at once.
//!
//! tokio offers no way to ask a runtime whether it has a timer, so the engine finds out
//! by creating one inside a panic guard when it needs to know: on a runtime without one,
//! the panic hook reports that panic once per runtime, and a build with `panic = "abort"`
//! aborts there as it would when creating the timer.

#[cfg(feature = "events")]
mod announce;
#[cfg(not(feature = "events"))]
#[path = "announce_off.rs"]
mod announce;
mod attempt;
mod branch;
mod cache;
mod clock;
mod context;
#[cfg(feature = "journal")]
mod durable;
mod engine;
mod error;
mod handler;
mod in_flight;
#[cfg(feature = "journal")]
mod journaling;
#[cfg(not(feature = "journal"))]
#[path = "journaling_off.rs"]
mod journaling;
mod note;
mod output;
mod pools;
mod ready;
mod redefined;
mod remote;
mod run;
mod run_error;
mod state;
mod subject;
mod timer;

pub use async_trait::async_trait;
pub use cache::{CacheKey, CacheStore, MemoryCache};
pub use context::TaskContext;
#[cfg(feature = "journal")]
pub use durable::JournalFailure;
pub use engine::{ConfigError, DEFAULT_MAX_INSTANCES, EngineBuilder, RunHandle, WorkflowEngine};
pub use error::TaskError;
pub use handler::{Handler, blocking, inline};
/// The journal crate: backends ([`orch_journal::FileJournal`], and
/// `PgJournal` with the `postgres` feature), listing and loading recorded runs.
#[cfg(feature = "journal")]
pub use orch_journal as journal;
#[cfg(feature = "journal")]
pub use orch_journal::{Durability, FileJournal, Journal, ResultFile};
pub use output::{IntoOutput, Output, Shared};
pub use remote::{HandlerState, RemoteTask, run_attempt};
pub use run_error::RunError;
pub use subject::subject_token;
pub use tokio_util::sync::CancellationToken;
