//! [`RemoteHandler`]: a handler that runs each attempt on a worker process, through
//! JetStream, while the engine that calls it keeps scheduling, retrying, timing out and
//! cancelling as it does for local handlers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use orch_engine::{Handler, Output, TaskContext, TaskError, async_trait};

mod cancel;
mod consumers;
mod dispatch;
mod message;
mod stream_watch;

pub use message::Inputs;

use cancel::Pending;
use consumers::Consumers;
use stream_watch::StreamWatch;

use crate::layout::Layout;
use crate::lost::LostMessages;
use crate::presence::Presence;
use crate::protocol::{self, Names, Outcome};
use crate::routes::{self, AttemptKey, Listeners, Routes, Settled};
use crate::{ConnectError, NatsConfig, setup, stored};

/// A [`Handler`] that runs each attempt of its tasks on a [`Worker`](crate::Worker)
/// that serves the task's type, wherever that worker runs.
///
/// Register it on an engine for each task type that workers serve; the engine schedules,
/// retries, times out, cancels and records those tasks as it does local ones. Each
/// attempt is published to the tasks stream under message id `run.task.attempt` and the
/// handler waits for its result on the results stream.
///
/// An attempt fails (and is retried if the task allows it) when every worker that took it
/// died or stopped acknowledging it for `max_deliver` deliveries ("worker lost"), and
/// fails permanently when no worker has served its task type for
/// [`RemoteBuilder::missing_worker_timeout`], or when its message is over the size the
/// server accepts.
///
/// A run id names its attempts' messages and results on the server: give each new run
/// an id of its own ([`RunId::new`](orch_core::RunId::new), as
/// [`WorkflowEngine::run`](orch_engine::WorkflowEngine::run) does). A run started again
/// under an id used before, other than to resume that run, takes the results stored for
/// the earlier run's attempts (kept for [`Layout::result_retention`](crate::Layout)) as
/// its own.
///
/// ```no_run
/// use orch_engine::WorkflowEngine;
/// use orch_nats::{NatsConfig, RemoteHandler};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let remote = RemoteHandler::connect(&NatsConfig::from_env()?).await?;
/// let engine = WorkflowEngine::new();
/// engine.register_handler("embed", remote.clone());
/// engine.register_handler("transcribe", remote);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteHandler {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    names: Names,
    layout: Layout,
    inputs: Inputs,
    missing_worker_timeout: Duration,
    /// How often a waiting attempt checks for workers and its message (a quarter of
    /// `missing_worker_timeout`, from 10 ms to 1 s).
    check_every: Duration,
    max_message_bytes: usize,
    max_output_bytes: u64,
    routes: Arc<Routes>,
    lost: Arc<LostMessages>,
    presence: Presence,
    consumers: Consumers,
    stream_watch: StreamWatch,
    /// Stopped with the last handle.
    _listeners: Listeners,
}

/// Settings of a [`RemoteHandler`]; start with [`RemoteHandler::builder`].
#[derive(Clone, Debug)]
pub struct RemoteBuilder {
    layout: Layout,
    inputs: Inputs,
    missing_worker_timeout: Duration,
    max_message_bytes: Option<usize>,
    max_output_bytes: u64,
}

impl RemoteBuilder {
    /// The streams, consumers and subjects to use (the default [`Layout`] unless set).
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Which ancestors' outputs travel with each task (default [`Inputs::Direct`]).
    pub fn inputs(mut self, inputs: Inputs) -> Self {
        self.inputs = inputs;
        self
    }

    /// How long an attempt waits while no worker serves its task type before it fails
    /// permanently with an error naming the type; zero fails it as soon as a check
    /// (several a second while it waits) finds none. An attempt whose message no stream
    /// takes (the tasks stream was deleted) fails after as long, and at least 5 s (what
    /// a restarted server may answer while it recovers its streams). Default 30 s.
    pub fn missing_worker_timeout(mut self, timeout: Duration) -> Self {
        self.missing_worker_timeout = timeout;
        self
    }

    /// The largest task message, in bytes, its headers included (default and at most: the
    /// server's `max_payload`; 1 KiB of it is kept for the headers). A larger attempt
    /// fails permanently, naming its largest part (an input, its item or its config).
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = Some(bytes);
        self
    }

    /// The largest output a worker may hand back through the object store (an output
    /// too large for a result message), in bytes of JSON; a larger one fails its attempt
    /// without being read. Default 1 GiB.
    pub fn max_output_bytes(mut self, bytes: u64) -> Self {
        self.max_output_bytes = bytes;
        self
    }

    /// Connects with `config` and sets up the streams.
    ///
    /// # Errors
    /// A [`ConnectError`] for settings that cannot be used, a failed connection, a server
    /// without JetStream, or a stream or bucket that could not be set up (`Setup`).
    pub async fn connect(self, config: &NatsConfig) -> Result<RemoteHandler, ConnectError> {
        self.layout.check()?;
        let client = config.connect().await?;
        self.start(client).await
    }

    /// Uses a connection made elsewhere, and sets up the streams.
    ///
    /// # Errors
    /// As [`RemoteBuilder::connect`], but for connecting.
    pub async fn start(
        mut self,
        client: async_nats::Client,
    ) -> Result<RemoteHandler, ConnectError> {
        self.layout.check()?;
        let js = jetstream::new(client.clone());
        let window = setup::ensure_streams(&js, &self.layout).await?.window;
        let lost_stream = setup::ensure_lost_stream(&js, &self.layout).await;
        setup::ensure_cancels_stream(&js, &self.layout).await;
        // A tasks stream's shorter duplicate window bounds when a message is sent again.
        if !window.is_zero() {
            self.layout.duplicate_window = self.layout.duplicate_window.min(window);
        }
        let lost = Arc::new(LostMessages::new(lost_stream.window));
        stored::open_bucket(&js, &self.layout.names(), self.layout.result_retention)
            .await
            .map_err(|reason| ConnectError::Setup {
                what: "the object store bucket of large outputs".to_owned(),
                reason,
            })?;
        stored::refuse_another_prefixs(&js, &self.layout.names()).await?;
        let names = self.layout.names();
        let routes = Arc::new(Routes::default());
        let listeners =
            routes::listen(&client, &js, &names, lost_stream.kept, &routes, &lost).await?;
        let server_limit = client.server_info().max_payload;
        let max_message_bytes = self
            .max_message_bytes
            .map_or(server_limit, |m| m.min(server_limit));
        let check_every = (self.missing_worker_timeout / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let stream_watch = StreamWatch::start(&js, names.tasks_stream(), check_every).await;
        Ok(RemoteHandler {
            inner: Arc::new(Inner {
                presence: Presence::new(client.clone(), js.clone(), names.clone(), check_every),
                client,
                js,
                names,
                layout: self.layout,
                inputs: self.inputs,
                missing_worker_timeout: self.missing_worker_timeout,
                check_every,
                max_message_bytes,
                max_output_bytes: self.max_output_bytes,
                routes,
                lost,
                consumers: Consumers::default(),
                stream_watch,
                _listeners: listeners,
            }),
        })
    }
}

impl RemoteHandler {
    /// A handler with the default settings, connected with `config`.
    pub async fn connect(config: &NatsConfig) -> Result<Self, ConnectError> {
        Self::builder().connect(config).await
    }

    /// Settings to change before connecting.
    pub fn builder() -> RemoteBuilder {
        RemoteBuilder {
            layout: Layout::default(),
            inputs: Inputs::Direct,
            missing_worker_timeout: Duration::from_secs(30),
            max_message_bytes: None,
            max_output_bytes: 1 << 30,
        }
    }
}

impl fmt::Debug for RemoteHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteHandler")
            .field("layout", &self.inner.layout)
            .field("inputs", &self.inner.inputs)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Handler for RemoteHandler {
    async fn call(&self, ctx: TaskContext) -> Result<Output, TaskError> {
        let inner = Arc::clone(&self.inner);
        inner.run_attempt(ctx).await
    }

    /// The attempt only waits on the network.
    fn runs_inline(&self) -> bool {
        true
    }
}

impl Inner {
    // Rare steps (set-up, look-ups, large outputs, cancels, presence checks) are boxed
    // with `Box::pin`: inline, they made every attempt's future about 5 KB to copy.
    async fn run_attempt(self: Arc<Self>, ctx: TaskContext) -> Result<Output, TaskError> {
        let task = ctx.task_definition();
        self.ensure_consumer(&task.task_type).await?;
        let key = AttemptKey {
            run: ctx.run_id().clone(),
            task: ctx.record_id(),
            attempt: ctx.attempt(),
        };
        let payload = message::task_message(&ctx, self.inputs, self.max_message_bytes)?;
        let mut settled = self.routes.wait(key.clone());
        let mut pending = Pending::new(Arc::clone(&self), key);
        // In a resumed run, the attempt may have finished before the coordinator stopped,
        // after the server's window for duplicate message ids: its stored result counts,
        // and the task is not sent again.
        // Unanswered, the message sent is looked up on each tick: a worker that finds the
        // result stored removes it and stores none that this run's reader would see.
        let (stored_before, mut unsure) = match ctx.resumed() {
            true => match Box::pin(self.settle_from_store(&pending.key)).await {
                Ok(stored) => (stored, false),
                Err(_) => (false, true),
            },
            false => (false, false),
        };
        let subject = self.names.task_subject(&task.task_type);
        let (mut resend, mut send) = (0, !stored_before);
        let mut message = None;
        let outcome = loop {
            let mut earlier = std::mem::take(&mut unsure);
            if send {
                let sent = self
                    .dispatch(
                        &subject,
                        &pending.key,
                        payload.clone(),
                        &ctx,
                        resend,
                        &mut pending.sequence,
                    )
                    .await?;
                earlier |= sent.queued_before;
                resend = sent.next_resend;
                message = Some(sent.message);
            }
            let watch = Watch {
                message: message.as_ref(),
                earlier,
            };
            let waited = self
                .await_settled(&ctx, &mut pending, &mut settled, watch)
                .await;
            match waited {
                Ok(Waited::Settled(settled)) => break Ok(settled),
                // Cancelled meanwhile: nothing is sent again; the wait ends with the run's.
                Ok(Waited::Removed) if ctx.cancellation().is_cancelled() => send = false,
                // The message an earlier coordinator sent went without a result. Until the
                // next one is stored, a cancellation covers the stream's last message.
                Ok(Waited::Removed) => pending.sequence = None,
                Err(error) => break Err(error),
            }
        };
        Box::pin(pending.end(matches!(outcome, Ok(Settled::Result(_))))).await;
        match outcome? {
            Settled::Result(result) => match result.outcome {
                Outcome::Completed {
                    output,
                    not_journaled,
                } => Ok(received(output, not_journaled)),
                Outcome::Stored {
                    object,
                    not_journaled,
                    ..
                } => {
                    let expected = protocol::message_id(
                        &pending.key.run,
                        &pending.key.task,
                        pending.key.attempt,
                    );
                    if object != expected {
                        return Err(TaskError::permanent(format!(
                            "the result names stored output `{object}`, not this attempt's \
                             `{expected}`"
                        )));
                    }
                    let limit = self.max_output_bytes;
                    Box::pin(stored::get(&self.js, &self.names, &object, limit))
                        .await
                        .map(|output| received(output, not_journaled))
                }
                Outcome::Failed {
                    error,
                    permanent: true,
                } => Err(TaskError::permanent(error)),
                Outcome::Failed {
                    error,
                    permanent: false,
                } => Err(TaskError::new(error)),
                Outcome::Skipped { reason } => Err(TaskError::skip(reason)),
            },
            Settled::RunCancelled => Err(TaskError::permanent(format!(
                "run `{}` was cancelled through RemoteHandler::cancel_run",
                pending.key.run
            ))),
            Settled::Lost { deliveries } => Err(TaskError::new(protocol::worker_lost(
                &pending.key.task,
                &task.task_type,
                deliveries,
                self.consumers
                    .ack_wait_or(&task.task_type, self.layout.ack_wait),
            ))),
        }
    }

    /// Waits for the attempt's result, forwarding a cancellation of the run to the
    /// workers and failing when no worker serves the task's type. The attempt's message
    /// (`watch`) is looked up when the tasks stream's state says it may have left it (the
    /// stream purged, its oldest messages removed by a limit, or the stream made anew),
    /// and at least once per `ack_wait`: one gone with no result stored will never be
    /// answered, and the wait ends as
    /// [`Waited::Removed`]. A message an earlier coordinator sent, or one a resumed attempt
    /// sent when the server did not say whether its result was stored, is looked up on
    /// each tick (a worker that heard that coordinator cancel it removes it).
    async fn await_settled(
        &self,
        ctx: &TaskContext,
        pending: &mut Pending,
        settled: &mut tokio::sync::oneshot::Receiver<Settled>,
        watch: Watch<'_>,
    ) -> Result<Waited, TaskError> {
        let task_type = &ctx.task_definition().task_type;
        let check_every = self.check_every;
        // The first check is one period away. (An interval's immediate first tick would
        // wait for the timer's next millisecond, on every attempt.)
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + check_every, check_every);
        let mut cancel_forwarded = false;
        // When the last look-up that found the message in the stream (with its time) began;
        // when the last look-up began, or the wait.
        let (mut found_at, mut looked) = (None, tokio::time::Instant::now());
        loop {
            tokio::select! {
                // A result that arrived is taken before a tick could fail the attempt.
                biased;
                result = &mut *settled => {
                    return result
                        .map(Waited::Settled)
                        .map_err(|_| TaskError::new("the coordinator stopped waiting for the result"));
                }
                () = ctx.cancellation().cancelled(), if !cancel_forwarded => {
                    cancel_forwarded = true;
                    // The wait goes on for the result all the same.
                    Box::pin(pending.forward_cancel()).await;
                }
                _ = ticks.tick() => {
                    // Once the cancellation went out, the message is looked at on each
                    // tick: a worker that ended the attempt without a result removed it,
                    // and no result will come (the wait ends then, not with the engine's
                    // grace period). Before, a message removed without a result is sent
                    // again.
                    let ack_wait = self.consumers.ack_wait_or(task_type, self.layout.ack_wait);
                    let look = match (cancel_forwarded, watch.message) {
                        (true, message) => message,
                        (false, _) if ctx.cancellation().is_cancelled() => None,
                        (false, Some(message)) if watch.earlier => Some(message),
                        // A message removed from the middle of the stream (by a subject's
                        // purge, another process's `cancel_run`) moves none of its bounds.
                        (false, Some(message)) if looked.elapsed() >= ack_wait => Some(message),
                        (false, Some(message)) => {
                            let stream = self.names.tasks_stream();
                            let there_at = found_at.unwrap_or(message.sent_at);
                            let lost = (self.stream_watch)
                                .may_have_lost(&self.js, stream, message.sequence, there_at);
                            Box::pin(lost).await.then_some(message)
                        }
                        (false, None) => None,
                    };
                    if let Some(message) = look {
                        let (sequence, looked_at) = (message.sequence, tokio::time::Instant::now());
                        looked = looked_at;
                        match Box::pin(self.fate(&pending.key, message)).await {
                            dispatch::Fate::Removed if cancel_forwarded => {
                                return Err(TaskError::new("cancelled: stopped by its worker or taken off the queue"));
                            }
                            dispatch::Fate::Removed => {
                                self.removed(&pending.key, sequence);
                                return Ok(Waited::Removed);
                            }
                            // Out of deliveries unheard (its look-up on sending may have failed):
                            // none will answer, but a result that came meanwhile stands.
                            dispatch::Fate::Queued { stored } => {
                                if let Some(deliveries) = self.lost.deliveries(sequence, stored) {
                                    let result = settled.try_recv();
                                    let result = result.unwrap_or(Settled::Lost { deliveries });
                                    return Ok(Waited::Settled(result));
                                }
                                found_at = stored.map(|_| looked_at).or(found_at);
                            }
                            dispatch::Fate::Answered | dispatch::Fate::Unknown => {}
                        }
                    }
                    let missing = Box::pin(self.presence.missing_for(task_type)).await;
                    if missing > Duration::ZERO && missing >= self.missing_worker_timeout {
                        // One may have come in meanwhile (or been found stored by `fate`).
                        if let Ok(result) = settled.try_recv() {
                            return Ok(Waited::Settled(result));
                        }
                        return Err(TaskError::permanent(format!(
                            "no worker serves task type `{task_type}`: none answered for {missing:.1?} \
                             (start a worker with a handler for `{task_type}`)"
                        )));
                    }
                }
            }
        }
    }

    /// Makes sure the durable consumer of `task_type` exists, once per handler.
    async fn ensure_consumer(&self, task_type: &str) -> Result<(), TaskError> {
        if self.consumers.known(task_type) {
            return Ok(());
        }
        Box::pin(self.consumers.ensure(&self.js, &self.layout, task_type)).await
    }
}

/// The attempt's task message, as the wait for its result looks at it.
#[derive(Clone, Copy)]
struct Watch<'a> {
    /// Where it went, once sent.
    message: Option<&'a dispatch::OnStream>,
    /// An earlier coordinator sent it, and it was still queued when sent again; or the
    /// server did not say whether a resumed attempt's result was stored before it was
    /// sent.
    earlier: bool,
}

/// How the wait for an attempt ended.
enum Waited {
    Settled(Settled),
    /// The message it waited on was removed without a result: send it again.
    Removed,
}

/// A worker's output as the engine takes it: kept out of the journal, with the reason,
/// when the worker's handler asked for that.
fn received(output: serde_json::Value, not_journaled: Option<String>) -> Output {
    match not_journaled {
        Some(reason) => Output::from(output).not_journaled(reason),
        None => Output::from(output),
    }
}
