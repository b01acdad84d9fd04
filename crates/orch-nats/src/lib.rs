//! Run orch task handlers on worker processes, on this machine or others, through NATS
//! JetStream: at-least-once work queues with acknowledgements, redelivery and
//! de-duplication, served by one small server binary (`nats-server -js`).
//!
//! A coordinator is an ordinary [`WorkflowEngine`](orch_engine::WorkflowEngine) on which
//! some task types are registered with a [`RemoteHandler`]; the engine schedules, retries,
//! times out and cancels those tasks as it does local ones, and each attempt runs on a
//! [`Worker`] that serves its type with an ordinary [`Handler`](orch_engine::Handler).
//!
//! ```no_run
//! use orch_core::{Task, Workflow};
//! use orch_engine::{TaskContext, TaskError, WorkflowEngine};
//! use orch_nats::{NatsConfig, RemoteHandler, Worker};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = NatsConfig::from_env()?;
//!
//! // On each worker machine:
//! let worker = Worker::builder()
//!     .handler("square", |ctx: TaskContext| async move {
//!         let n: u64 = ctx.config()["n"].as_u64().unwrap_or(0);
//!         Ok::<_, TaskError>(n * n)
//!     })
//!     .connect(&config)
//!     .await?;
//! tokio::spawn(worker.run(CancellationToken::new()));
//!
//! // On the coordinator:
//! let engine = WorkflowEngine::new();
//! engine.register_handler("square", RemoteHandler::connect(&config).await?);
//! let workflow = Workflow::new("w", "W")
//!     .task(Task::new("a", "square").config(serde_json::json!({"n": 7})));
//! let result = engine.execute_workflow(&workflow).await?;
//! assert_eq!(result.task("a").unwrap().result, Some(serde_json::json!(49)));
//! # Ok(()) }
//! ```
//!
//! With feature `journal` (on by default), [`NatsJournal`] keeps durable runs on a
//! JetStream stream (`ORCH_JOURNAL`, subject `orch.journal.<run>`), so that a coordinator
//! restarted on another machine continues a run with
//! `WorkflowEngine::run_durable` and no local disk.
//!
//! A [`Bridge`] carries events between orch event buses and NATS subjects: an engine's
//! lifecycle events out to any NATS subscriber (a dashboard, another service), and NATS
//! messages into a bus.
//!
//! # What a handler sees on a worker
//!
//! Its task's definition (id, type, configuration, dependencies, retries, timeout), its
//! attempt number, the run's id, the outputs of its direct dependencies (of every
//! ancestor with [`Inputs::Ancestors`]) as JSON, the worker's state
//! ([`WorkerBuilder::state`]) and a cancellation token. A [`Shared`](orch_engine::Shared)
//! output does not travel: its dependents on workers read its summary. Its output comes
//! back as JSON.
//!
//! For the engine, an attempt starts when it is sent: its duration and its task's
//! timeout count the time it waits in the queue for a free worker, so give a task's
//! timeout room for that, or enough workers.
//!
//! # Faults
//!
//! - **A worker dies** (or hangs without acknowledging): while a handler runs, its worker
//!   acknowledges progress every quarter of the consumer's `ack_wait`; once a task has
//!   gone `ack_wait` without one, the server delivers it to another worker. After
//!   [`Layout::max_deliver`] deliveries the attempt fails as "worker lost" (and is
//!   retried if its task allows retries): the worker that gets the delivery after those
//!   stores that verdict as the attempt's result instead of running it, so a coordinator
//!   that was away when it happened finds it.
//! - **A worker cannot store results** (the server refuses them, or the worker's user
//!   may not publish on the results subjects): after
//!   [`WorkerBuilder::result_patience`] the worker gives the task back, and the task's
//!   deliveries run out as above instead of the run waiting for ever.
//! - **A worker dies after storing a result**, before acknowledging the task: the worker
//!   that gets the task next finds the stored result and does not run the task again.
//! - **No worker serves a task type**: the attempt fails permanently after
//!   [`RemoteBuilder::missing_worker_timeout`], with an error naming the type, and its
//!   message is taken off the queue before the attempt ends: a worker started later
//!   does not run it.
//! - **A message cannot be read** (malformed, or written by a newer version): the worker
//!   logs an error, stores its attempt's failure when the message names the attempt,
//!   then terminates it; a failure it cannot store gives the message back (to run out of
//!   deliveries as above). An attempt cancelled or past its deadline gets no failure
//!   stored: its message is terminated. A result the coordinator cannot read fails the attempt it
//!   names, with the reason.
//! - **The connection drops**: clients reconnect by themselves; task and result
//!   publishes are retried under the same message id, so the server keeps one copy (a
//!   task message for at most half of [`Layout::duplicate_window`]: then its attempt
//!   fails, and is retried if the task has retries left; no try is made while the
//!   connection is down, as the client would send it once back, however late). So are
//!   journal appends, for up
//!   to a minute; past that the append fails, and with it
//!   the run, which can be opened again from what was stored.
//! - **Task messages leave the stream with no result** (the tasks stream is purged, a
//!   limit set on it removes its oldest messages, or it is deleted and made anew): the
//!   coordinator, reading the stream's state, sends each waiting attempt's lost message
//!   again, and workers set their consumers up again. A message removed on its own (a
//!   purge of its subject, a worker that heard another process cancel its run) leaves
//!   the stream's state as it was: the coordinator finds it gone when it looks each
//!   waiting attempt's message up, once per `ack_wait`. A message purged while a worker
//!   ran it may run twice. A tasks stream deleted and not made again leaves its
//!   attempts waiting (they end at their tasks' timeouts, if set).
//! - **NATS is unreachable at start**: connecting fails with
//!   [`ConnectError::Unreachable`].
//! - **Sizes**: a task message over the server's `max_payload` (or
//!   [`RemoteBuilder::max_message_bytes`], or the tasks stream's own largest message)
//!   fails its attempt permanently, naming its largest part (an input, its item or its
//!   config). An output too large for a result message (over the server's `max_payload`,
//!   or the results stream's own largest message, read when the worker starts) is
//!   stored in the object store
//!   bucket `ORCH_RESULTS` (stream `OBJ_ORCH_RESULTS`, kept as long as results)
//!   under the attempt's message id, and the result message names it; the coordinator
//!   reads it from there, refusing (failing the attempt) an object that is not the
//!   attempt's own (a link to another object included) or is over [`RemoteBuilder::max_output_bytes`] (default 1 GiB), and
//!   reads none whole before it knows its size. One whose description or next part
//!   does not come within 10 s (its parts gone from the bucket while its description
//!   stays) fails the attempt, retried if the task has retries left. An upload that
//!   fails part way (the worker tries it again whole, or is told to stop) leaves the
//!   parts it sent in the bucket until they expire with the results; the bucket has no
//!   byte limit of its own, so large outputs that fail often use the account's
//!   JetStream storage up to then. A task message's
//!   limit keeps 1 KiB for
//!   its headers. A dependent's task message still carries its inputs, so a
//!   large output read by a remote dependent fails that dependent's attempt as above.
//!   An error or skip reason too long for a result message keeps its start and ends
//!   with how many bytes were cut.
//! - **Nesting**: a message may nest arrays and objects at most 127 levels deep (the most
//!   serde_json reads), so an output, an input or a map element may nest at most 125
//!   levels, and a value in a task's config 124; deeper, the attempt fails, saying how
//!   deep the value is.
//!
//! # Protocol (version 2)
//!
//! Every subject of orch-nats' own starts with the layout's prefix (`orch` below;
//! [`Layout::prefix`]); the server's advisories and the object store keep their own.
//! Every message is a JSON object with `"v": 1`, but the task message of a map instance,
//! which is `"v": 2`; a reader refuses a higher version than it knows for that kind of
//! message (results and cancellations have only version 1). (Version 2 only
//! adds `item`, so a worker of a build that reads version 1 still runs every other
//! task, and fails a map instance's attempt saying to upgrade.)
//!
//! | what | where | how |
//! | --- | --- | --- |
//! | tasks | stream `ORCH_TASKS`, subjects `orch.task.<type>`, work-queue retention | one durable pull consumer per task type, named `<type>`, explicit acks, `ack_wait`, `max_deliver` |
//! | results | stream `ORCH_RESULTS`, subjects `orch.result.<run>.<task>.<attempt>`, kept for [`Layout::result_retention`] | read by each coordinator from the time it starts (an ordered consumer) |
//! | cancellations | subjects `orch.cancel.<run>`, kept on stream `ORCH_CANCELS` for [`Layout::result_retention`] (at most 64 MiB) | heard by every worker live, and read from the stream (an ordered consumer, so none sent while its connection is down is missed; a worker that may not read the stream hears them live only, with a warning): from its first message, before the worker takes a task, those kept from before it started applying only if they name `up_to_sequence` |
//! | presence | core request on `orch.worker.<type>` | workers serving the type answer (queue group `workers`) |
//! | lost tasks | the server's `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORCH_TASKS.*`, kept on stream `ORCH_LOST` for [`Layout::duplicate_window`] | read by each coordinator from the time it starts (an ordered consumer, so none given while its connection is down is missed, if it is down for less than `duplicate_window`: older ones are gone by then, and an attempt whose task was lost meanwhile, and whose last delivery could not store its verdict either, waits for its timeout, or until the run is cancelled), and the ones kept before when it comes back on a run |
//! | large outputs | object store bucket `ORCH_RESULTS` (stream `OBJ_ORCH_RESULTS`), objects named `<run>.<task>.<attempt>` | written by workers, read by coordinators |
//! | journal (feature `journal`) | stream `ORCH_JOURNAL`, subjects `orch.journal.<run>`; a batch over `max_payload` goes as several messages (headers `Orch-Batch-Rest`, the count of parts after this one, and `Orch-Batch-Start`, the first part's stream sequence), each stored only after the writer's previous one (`Nats-Expected-Last-Subject-Sequence`) | appended and replayed by coordinators (an ordered consumer per read, named `orch_read_<token>` and deleted when the read ends) |
//!
//! Names inside subjects and consumer names (`<type>`, `<task>`) keep ASCII letters,
//! digits, `-` and `_`, and write every other byte as `~XX` (hex): type `ml.embed` is
//! `ml~2Eembed`. A name whose form would be longer than 64 bytes keeps up to its first
//! 30 bytes and ends with `~~` and 32 hex digits of a 128-bit hash of the whole form, so
//! that a long task id or type never makes a subject or consumer name the server
//! refuses. Run ids are already subject-safe.
//!
//! A **task message** (`Nats-Msg-Id: <run>.<task>.<attempt>`, so the server drops a
//! second publish of the same attempt within [`Layout::duplicate_window`]):
//!
//! ```json
//! {"v": 1, "run_id": "nightly-1", "workflow_id": "etl", "workflow_name": "ETL",
//!  "task": {"task_id": "load", "task_type": "load", "config": {}, "dependencies": ["extract"],
//!           "retries": 2, "backoff": {...}, "timeout": 30},
//!  "attempt": 1, "inputs": {"extract": {"rows": 3}},
//!  "deadline_ms": 1718000000000, "traceparent": "00-<trace>-<span>-01"}
//! ```
//!
//! For an instance of a map task, `"v": 2`, `task.task_id` is the instance's id
//! (`"count[2]"`, so the message id, the result and cancellations name the instance) and
//! `"item": {"index": 2, "value": ...}` holds its element; the worker gives its handler
//! the map task's own id (`count`) and the element, which it reads with
//! `ctx.map_item()`, as in the engine.
//!
//! `task` leaves out the fields only the coordinator acts on (`trigger_rule`, `pool`,
//! `priority`, `cache`: when and whether an attempt is sent), so a worker's handler sees
//! them at their defaults in `ctx.task_definition()`, and a worker of any build that
//! reads version 1 runs the task.
//!
//! `deadline_ms` (present when the task has a timeout) is when the coordinator stops
//! waiting, in milliseconds since the Unix epoch; a worker does not start a task past
//! it, and when it passes cancels the handler's token and drops the handler after
//! [`WorkerBuilder::cancel_grace`]. A worker reads it by its own clock: keep the
//! clocks of coordinators and workers in step (NTP), or a worker whose clock runs
//! ahead by more than a task's timeout ends the task unrun. `traceparent` is a W3C
//! trace context that names the attempt alike in every process's logs. `"resumed": true` (absent when
//! false) marks an attempt a resumed run takes up: `ctx.resumed()` on the worker, as on
//! the coordinator.
//!
//! A **result message** (`Nats-Msg-Id: <run>.<task>.<attempt>`, so the server keeps only
//! the first result of an attempt within [`Layout::duplicate_window`]; past it, the
//! first one stored is the one read):
//!
//! ```json
//! {"v": 1, "run_id": "nightly-1", "task_id": "load", "attempt": 1, "worker": "host-42",
//!  "outcome": {"status": "completed", "output": {...}}}
//! ```
//!
//! with `"outcome"` one of `{"status": "completed", "output": ...}`,
//! `{"status": "stored", "object": "<run>.<task>.<attempt>", "bytes": 2097154}` (the
//! output is that object of the `ORCH_RESULTS` object store bucket; either may add
//! `"not_journaled": "<reason>"` for an output the handler marked
//! `Output::not_journaled`, which the coordinator's journal leaves out too),
//! `{"status": "failed", "error": "outer: inner", "permanent": false}` or
//! `{"status": "skipped", "reason": "..."}`.
//!
//! A **cancel message**: `{"v": 1, "run_id": "...", "task_id": "...", "attempt": 1,
//! "up_to_sequence": 812, "up_to_stored_ns": 1796591283476957972}` cancels one attempt;
//! without `task_id` and `attempt` it cancels every attempt of the run. It covers the
//! task messages up to stream sequence `up_to_sequence` of the tasks stream (every one
//! when absent) stored by `up_to_stored_ns` (when the stream stored its last message, or
//! was made if later, read as the cancellation was sent, in nanoseconds since the Unix
//! epoch; for a cancellation kept on the stream without it, when it was kept; a worker
//! allows a second for the clocks of a cluster's servers to differ), so the same attempt
//! sent again later, by a coordinator that came back on the run, still runs, also on a
//! tasks stream made anew (which numbers its messages from 1 again). A handler that
//! fails after its attempt was cancelled reports nothing (its message is removed): a
//! coordinator that comes back on the run sends the attempt again instead of taking
//! that failure.
//!
//! A worker takes a task message, runs it, publishes its result, waits for the server to
//! store it, then acknowledges the task message. A worker that dies in between leaves the
//! message to be delivered again: the next worker finds the stored result and
//! acknowledges the message without running the task. A worker asks for tasks only when
//! it has room to run them.
//!
//! # Connections and permissions
//!
//! [`NatsConfig`] carries the server URLs, credentials (user and password, token, NKey
//! seed or credentials file) and TLS settings (a CA, a client certificate), from code or
//! from `ORCH_NATS_*` environment variables ([`env`](mod@env)). Secrets are
//! never logged and `Debug` shows them as `<redacted>`.
//!
//! A server configuration in which a worker may take only the tasks of its types and
//! publish only results (user `embedder` serves type `embed`; the test `tests/auth.rs`
//! runs against these permissions, with more worker users). The passwords are read from
//! nats-server's environment: a `$NAME` is replaced only when it is not in quotes (in
//! quotes, it is the password as written). A bcrypt hash (`nats server passwd`) keeps
//! them out of the file and its environment alike:
//!
//! ```text
//! jetstream { store_dir: "/var/lib/nats" }
//! authorization {
//!   users: [
//!     { user: coordinator, password: $COORDINATOR_PASSWORD,
//!       permissions: {
//!         publish: ["orch.>", "$JS.API.>", "$JS.FC.>"],
//!         subscribe: ["orch.>", "_INBOX.>", "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORCH_TASKS.*"] } },
//!     { user: embedder, password: $EMBEDDER_PASSWORD,
//!       permissions: {
//!         publish: ["orch.result.>", "$JS.ACK.ORCH_TASKS.embed.>",
//!                   "$JS.API.CONSUMER.MSG.NEXT.ORCH_TASKS.embed", "$JS.API.CONSUMER.INFO.ORCH_TASKS.embed",
//!                   "$JS.API.CONSUMER.CREATE.ORCH_TASKS.embed.orch.task.embed",
//!                   "$JS.API.STREAM.INFO.ORCH_TASKS", "$JS.API.STREAM.INFO.ORCH_RESULTS",
//!                   "$JS.API.STREAM.MSG.GET.ORCH_RESULTS",
//!                   "$JS.API.STREAM.INFO.ORCH_CANCELS", "$JS.API.CONSUMER.CREATE.ORCH_CANCELS",
//!                   "$JS.API.CONSUMER.CREATE.ORCH_CANCELS.>", "$JS.API.CONSUMER.DELETE.ORCH_CANCELS.>",
//!                   "$JS.FC.ORCH_CANCELS.>"],
//!         subscribe: ["_INBOX.>", "orch.cancel.*", "orch.worker.embed"],
//!         allow_responses: true } }
//!   ]
//! }
//! ```
//!
//! (`$JS.API.STREAM.MSG.GET.ORCH_RESULTS` lets a worker that is given a task a second time,
//! or a resumed run's task, find the result stored the first time, instead of running
//! the task again; without
//! it, such a task is handed back after a minute unrun, and ends as "worker lost". The
//! `ORCH_CANCELS` subjects let it follow the stream of cancellations, and hear those
//! sent while its connection was down.)
//!
//! A worker whose outputs may be over the server's `max_payload` (or the results
//! stream's own largest message, if one is set) also stores them in
//! the object store bucket (which the coordinator creates): add
//! `"$O.ORCH_RESULTS.>"`, `"$JS.API.STREAM.INFO.OBJ_ORCH_RESULTS"` and
//! `"$JS.API.DIRECT.GET.OBJ_ORCH_RESULTS.>"` to its `publish` list.
//!
//! With it, a worker may create only its own types' consumers and readers of
//! `ORCH_CANCELS` (which it may also delete: a reader deleted by another worker is set
//! up again within seconds, and its worker hears cancellations live meanwhile), and no
//! stream: start a
//! coordinator first (it creates the streams, `ORCH_LOST` and `ORCH_CANCELS` among them), or create them as
//! an administrator, with the retention the table above gives (work queue for
//! `ORCH_TASKS`, limits for the others): `ORCH_TASKS` or `ORCH_RESULTS` found with
//! another is refused with [`ConnectError::Setup`], and so is a bucket of large outputs
//! whose stream is another prefix's results stream (prefix `obj.orch`'s results stream
//! has the name of prefix `orch`'s bucket, `OBJ_ORCH_RESULTS`); `ORCH_LOST`,
//! `ORCH_CANCELS`, the journal's stream and the bucket are otherwise taken as they are
//! found (a process that cannot set up `ORCH_LOST` or `ORCH_CANCELS` goes on without
//! it, with a warning).
//! A request the server refuses for want of permission goes unanswered; it fails as
//! [`ConnectError::Setup`] naming what could not be set up, and the server's refusal is
//! logged (with `tracing`, as every connection event is).

mod bridge;
mod config;
mod error;
mod follow;
#[cfg(feature = "journal")]
mod journal;
mod layout;
mod lost;
mod nesting;
mod presence;
mod protocol;
mod remote;
mod routes;
mod setup;
mod stored;
mod worker;

/// How long a send waits for room on the connection before it is given up: only a
/// connection cut off from its server for long, full of what it could not send, makes
/// a send wait at all.
const ROOM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a look-up on a stream waits for its answer: [`ROOM_WAIT`] for room to send
/// the question and as long for the answer.
const LOOK_UP_WAIT: std::time::Duration = ROOM_WAIT.saturating_mul(2);

pub use bridge::{Bridge, BridgeTask};
pub use config::{Auth, NatsConfig, Secret, env};
pub use error::{CancelRunError, ConnectError};
#[cfg(feature = "journal")]
pub use journal::NatsJournal;
pub use layout::Layout;
pub use remote::{Inputs, RemoteBuilder, RemoteHandler};
pub use worker::{Worker, WorkerBuilder};
