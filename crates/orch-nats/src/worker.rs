//! [`Worker`]: a process that runs tasks for coordinators elsewhere, with the same
//! [`Handler`]s an engine registers.

mod acks;
mod attempt;
mod cancels;
mod grace;
mod publish;
mod pull;
mod queue;
mod refuse;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use orch_engine::{Handler, HandlerState};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::layout::Layout;
use crate::protocol::Names;
use crate::setup;
use crate::{ConnectError, NatsConfig};

use cancels::Cancels;
use queue::TypeQueue;

/// Runs tasks published by coordinators ([`RemoteHandler`](crate::RemoteHandler)s) with
/// ordinary orch [`Handler`]s, one registered per task type it serves.
///
/// A worker takes tasks only while it has room: at most [`WorkerBuilder::concurrency`]
/// handlers run at once, across its task types, and its slots go to the types that
/// have tasks (a type with none queued asks for a task only while a slot is free).
/// While a handler runs, and until its result is stored, the worker tells the server
/// it is still working every quarter of the consumer's `ack_wait`, so a live task is
/// never delivered to a second worker; if the worker dies, the server delivers the task
/// to another one after `ack_wait`. (It reads the consumer's settings again every 5 s:
/// an `ack_wait` edited on the server is taken up, by running tasks too.) A task delivered again whose result is already
/// stored is acknowledged without running (and runs only once the server said none is
/// stored). A result that cannot be stored within [`WorkerBuilder::result_patience`]
/// gives its task back to the queue. A handler sees its task's configuration, the
/// outputs of its dependencies that were sent with it, its attempt number and a
/// cancellation token that fires when the coordinator cancels the run or the attempt.
/// A handler's failure is logged by the worker (a warning in the `remote_task` span,
/// which names the run, task and attempt), since the coordinator's record of it does
/// not say which worker it failed on.
///
/// A task message the worker cannot read (malformed, or from a newer protocol version) is
/// never run: the worker logs an error and, when the message names its attempt, stores
/// that attempt's failure, then terminates the message; a failure it cannot store gives
/// the message back, to be delivered again until it runs out of deliveries.
///
/// ```no_run
/// use orch_engine::{TaskContext, TaskError};
/// use orch_nats::{NatsConfig, Worker};
/// use tokio_util::sync::CancellationToken;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let worker = Worker::builder()
///     .handler("embed", |ctx: TaskContext| async move {
///         // The task's config is an object, such as `{"text": "..."}`.
///         let text = ctx.config()["text"].as_str().unwrap_or_default();
///         Ok::<_, TaskError>(text.len())
///     })
///     .concurrency(8)
///     .connect(&NatsConfig::from_env()?)
///     .await?;
/// let stop = CancellationToken::new();
/// // Stop on Ctrl-C: running handlers finish (or are handed back after the grace period).
/// let on_signal = stop.clone();
/// tokio::spawn(async move { tokio::signal::ctrl_c().await.ok(); on_signal.cancel() });
/// worker.run(stop).await;
/// # Ok(()) }
/// ```
pub struct Worker {
    shared: Arc<Shared>,
    types: Vec<TypeQueue>,
    limits: Limits,
    subscriptions: Subscriptions,
}

/// What a worker listens to besides its tasks, subscribed before it starts.
struct Subscriptions {
    /// Every run's cancellations.
    cancels: cancels::Heard,
    /// Presence requests, one per task type.
    presence: Vec<async_nats::Subscriber>,
}

/// What every task runner of a worker uses.
pub(crate) struct Shared {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) names: Names,
    pub(crate) name: String,
    pub(crate) state: HandlerState,
    pub(crate) cancels: Cancels,
    pub(crate) max_message_bytes: usize,
    pub(crate) cancel_grace: Duration,
    /// How long a result may keep failing to be stored before its task is given back.
    pub(crate) result_patience: Duration,
    /// The streams and consumers (to set a consumer up again if it goes missing), and how
    /// long stored outputs are kept.
    pub(crate) layout: Layout,
    /// Cancelled once the connection is closed for good (its subscriptions ended).
    pub(crate) closed: CancellationToken,
}

/// Settings of a [`Worker`]; start with [`Worker::builder`].
pub struct WorkerBuilder {
    layout: Layout,
    handlers: Vec<(String, Arc<dyn Handler>)>,
    state: HandlerState,
    concurrency: usize,
    name: Option<String>,
    shutdown_grace: Duration,
    cancel_grace: Duration,
    result_patience: Duration,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types: Vec<&str> = self.handlers.iter().map(|(t, _)| t.as_str()).collect();
        f.debug_struct("WorkerBuilder")
            .field("layout", &self.layout)
            .field("task_types", &types)
            .field("concurrency", &self.concurrency)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// Serves `task_type` with `handler` (replacing an earlier handler of that type).
    pub fn handler(mut self, task_type: impl Into<String>, handler: impl Handler) -> Self {
        let task_type = task_type.into();
        self.handlers.retain(|(t, _)| *t != task_type);
        self.handlers.push((task_type, Arc::new(handler)));
        self
    }

    /// A value handlers read with [`TaskContext::state`](orch_engine::TaskContext::state),
    /// one per type, as [`EngineBuilder::state`](orch_engine::EngineBuilder::state) gives
    /// an engine's.
    pub fn state<S: std::any::Any + Send + Sync>(mut self, value: S) -> Self {
        self.state = self.state.with(value);
        self
    }

    /// How many handlers run at once, across task types (default 16, at least 1; a
    /// number past what can be counted, about 2^61, counts as that).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// The worker's name in results and logs (default: host name and process id).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The streams, consumers and subjects to use (the default [`Layout`] unless set).
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// How long a stopping worker lets running handlers finish before it cancels them
    /// and hands their tasks back to the queue for another worker (each cancelled
    /// handler given the [cancel grace](Self::cancel_grace) to stop). Default 30 s.
    ///
    /// A task handed back counts as delivered once, as one whose worker died does: a
    /// task that one stopping worker after another hands back fails as "worker lost"
    /// after [`Layout::max_deliver`] deliveries. A rolling restart should let running
    /// tasks finish (a grace above the longest task, with the time to upload its output
    /// if that is too large for a message) or allow more deliveries.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// How long a handler whose attempt was cancelled (by its coordinator, its deadline
    /// or the worker's shutdown) may go on before the worker drops it. Default 10 s. It
    /// is given once per attempt: a deadline or a shutdown after the cancellation does
    /// not start it again. `Duration::MAX` never drops a handler (any grace is taken as
    /// at most 30 years). A dropped handler's room goes to the next task; work the drop
    /// cannot stop (a computation that does not await, a [`orch_engine::blocking`]
    /// function) goes on outside the [concurrency](Self::concurrency) limit until it
    /// ends: such a handler should watch its task's cancellation.
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        // Added to the clock's time, it must not overflow it.
        self.cancel_grace = grace.min(GRACE_WITHOUT_END);
        self
    }

    /// How long the worker keeps trying to store a task's result (the server down, or
    /// refusing it) before it gives the task back to the queue. The task is then
    /// delivered again, to this worker or another, and runs again; once it has been
    /// delivered [`Layout::max_deliver`] times it fails as "worker lost", so a worker that
    /// may take tasks but not store results cannot hold a run up for ever. A task's own
    /// deadline ends the trying sooner. Each try is given at least a second. The default,
    /// 60 s, outlasts a server's restart; a longer outage makes the task run again.
    /// `Duration::MAX` tries for ever.
    ///
    /// An output too large for a result message goes to the object store first, tried
    /// again within the same time (the bucket may be full for a while); if it cannot be
    /// stored by then, the attempt's result is a failure that says why. A stop cuts
    /// such an upload short at the end of the shutdown grace (the task is handed back).
    pub fn result_patience(mut self, patience: Duration) -> Self {
        self.result_patience = patience;
        self
    }

    /// Connects with `config`, and finds or creates the streams and each task type's
    /// consumer.
    ///
    /// # Errors
    /// [`ConnectError::Config`] for settings that cannot be used (the layout's, the
    /// connection's, or a worker with no handler); [`ConnectError::Unreachable`],
    /// [`ConnectError::Refused`] or [`ConnectError::Tls`] when connecting fails;
    /// [`ConnectError::NoJetStream`]; and [`ConnectError::Setup`] naming a stream,
    /// consumer or subscription that could not be found or created as needed (for want
    /// of permission, say).
    pub async fn connect(self, config: &NatsConfig) -> Result<Worker, ConnectError> {
        self.layout.check()?;
        let client = config.connect().await?;
        self.start(client).await
    }

    /// Uses a connection made elsewhere; see [`WorkerBuilder::connect`].
    ///
    /// # Errors
    /// As [`WorkerBuilder::connect`], but for connecting.
    pub async fn start(self, client: async_nats::Client) -> Result<Worker, ConnectError> {
        self.layout.check()?;
        if self.handlers.is_empty() {
            return Err(ConnectError::Config(
                "the worker serves no task type: register a handler".to_owned(),
            ));
        }
        let js = jetstream::new(client.clone());
        let streams = setup::ensure_streams(&js, &self.layout).await?;
        let cancels_kept = setup::ensure_cancels_stream(&js, &self.layout).await;
        let mut types = Vec::with_capacity(self.handlers.len());
        for (task_type, handler) in self.handlers {
            let config = setup::ensure_consumer(&js, &self.layout, &task_type).await?;
            let consumer = Names::consumer(&task_type);
            types.push(TypeQueue::new(task_type, handler, consumer, &config));
        }
        let names = self.layout.names();
        let subscriptions = subscribe(&client, &js, &names, &types, cancels_kept).await?;
        let name = self.name.unwrap_or_else(default_name);
        let max_message_bytes = streams.result_limit(client.server_info().max_payload);
        Ok(Worker {
            shared: Arc::new(Shared {
                client,
                js,
                names,
                name,
                state: self.state,
                cancels: Cancels::default(),
                max_message_bytes,
                cancel_grace: self.cancel_grace,
                result_patience: self.result_patience,
                layout: self.layout,
                closed: CancellationToken::new(),
            }),
            types,
            limits: Limits {
                shutdown_grace: self.shutdown_grace,
                concurrency: self.concurrency,
            },
            subscriptions,
        })
    }
}

/// Starts hearing cancellations (on their stream when it is `kept`) and presence
/// requests, and waits until the server has the subscriptions (so that nothing sent once
/// the worker is up goes unheard).
async fn subscribe(
    client: &async_nats::Client,
    js: &jetstream::Context,
    names: &Names,
    types: &[TypeQueue],
    kept: bool,
) -> Result<Subscriptions, ConnectError> {
    let failed = |what: String| {
        move |error: async_nats::SubscribeError| ConnectError::Setup {
            what,
            reason: error.to_string(),
        }
    };
    let cancels = cancels::hear(client, js, names, kept)
        .await
        .map_err(failed("the subscription to cancellations".to_owned()))?;
    let mut presence = Vec::with_capacity(types.len());
    for queue in types {
        let subject = names.presence_subject(&queue.task_type);
        presence.push(
            client
                .queue_subscribe(subject.clone(), "workers".to_owned())
                .await
                .map_err(failed(format!("the subscription to `{subject}`")))?,
        );
    }
    setup::subscriptions_in_place(
        client,
        names.tasks_stream_info(),
        "the worker's subscriptions",
    )
    .await?;
    Ok(Subscriptions { cancels, presence })
}

/// The host name and process id.
fn default_name() -> String {
    format!("{}-{}", host_name(), std::process::id())
}

/// The system's host name; else `$HOSTNAME` (which shells do not export), else `worker`.
fn host_name() -> String {
    #[cfg(unix)]
    if let Some(name) = (nix::unistd::gethostname().ok())
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
    {
        return name;
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned())
}

/// How a worker stops, and how many handlers it runs at once.
struct Limits {
    shutdown_grace: Duration,
    concurrency: usize,
}

impl Worker {
    /// Settings to change before connecting.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder {
            layout: Layout::default(),
            handlers: Vec::new(),
            state: HandlerState::new(),
            concurrency: 16,
            name: None,
            shutdown_grace: Duration::from_secs(30),
            cancel_grace: Duration::from_secs(10),
            result_patience: Duration::from_secs(60),
        }
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Takes and runs tasks until `stop` is cancelled. Before its first task, it reads
    /// the cancellations the server kept until now (waiting at most 5 s for each, or
    /// until `stop`), so that it does not run a task of a run cancelled while it was not
    /// running, also since it connected.
    ///
    /// Once `stop` is cancelled, it takes no more tasks, lets running handlers finish
    /// for the shutdown grace period, cancels those still running (and gives up storing
    /// outputs too large for a message) and hands their tasks back to the queue
    /// (another worker gets them once this worker's last requests for tasks have ended,
    /// within 3 s of `stop`: handed back sooner, a task could go straight back to such a
    /// request; a task the server delivers after `stop`, it hands back the same way),
    /// and returns, waiting at most 5 s more for the server to take its last
    /// acknowledgements.
    ///
    /// It also returns, without `stop`, once its connection is closed for good (say,
    /// drained by the application that lent it with [`WorkerBuilder::start`]), logging
    /// an error: it can take no more tasks, nor send the results of those it runs, whose
    /// handlers it cancels at once (each given the cancel grace to stop).
    ///
    /// Cut off from its server for long (its connection full of what it could not
    /// send), it stops all the same: an acknowledgement or hand-back that finds no room
    /// within 5 s is given up, and the server delivers that task again after its ack
    /// wait, as for a worker that died.
    pub async fn run(self, stop: CancellationToken) {
        self.run_until(stop, CancellationToken::new()).await;
    }

    /// As [`Worker::run`], but the shutdown grace period also ends when `stop_now` is
    /// cancelled (a second Ctrl-C, say): running handlers are cancelled at once (each
    /// given the cancel grace to stop) and their tasks handed back.
    pub async fn run_until(self, stop: CancellationToken, stop_now: CancellationToken) {
        let Self {
            shared,
            types,
            limits,
            mut subscriptions,
        } = self;
        // A worker stopped meanwhile takes no task: it need not wait for the rest.
        tokio::select! {
            () = cancels::catch_up(&shared, &mut subscriptions.cancels) => {}
            () = stop.cancelled() => {}
        }
        let slots = Arc::new(pull::Slots {
            permits: Arc::new(Semaphore::new(limits.concurrency)),
            types: types.len(),
        });
        let hand_back = CancellationToken::new();
        let mut services = JoinSet::new();
        services.spawn(cancels::listen(Arc::clone(&shared), subscriptions.cancels));
        for requests in subscriptions.presence {
            services.spawn(answer_presence(Arc::clone(&shared), requests));
        }
        let mut pullers = JoinSet::new();
        for queue in types {
            let queue = Arc::new(queue);
            services.spawn(queue::follow_settings(
                Arc::clone(&shared),
                Arc::clone(&queue),
            ));
            pullers.spawn(pull::serve(
                Arc::clone(&shared),
                queue,
                Arc::clone(&slots),
                stop.clone(),
                hand_back.clone(),
            ));
        }
        // Pullers end by themselves only when the connection is closed for good: with
        // nothing left to take tasks, the worker stops as if told to.
        tokio::select! {
            () = stop.cancelled() => {}
            () = all_ended(&mut pullers) => {}
        }
        let finished = tokio::select! {
            finished = tokio::time::timeout(limits.shutdown_grace, all_ended(&mut pullers)) => finished.is_ok(),
            () = stop_now.cancelled() => false,
        };
        if !finished {
            hand_back.cancel();
            all_ended(&mut pullers).await;
        }
        services.abort_all();
        // Answered once the server has read the acknowledgements sent before. A server
        // that is gone would keep it waiting for as long as it stays gone: what the
        // server does not get, it delivers again after its ack wait.
        let probe = shared.names.tasks_stream_info();
        match tokio::time::timeout(LAST_FLUSH_WAIT, setup::round_trip(&shared.client, probe)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not send the last acknowledgements"),
            Err(_) => tracing::warn!(
                "the server did not take the last acknowledgements within {LAST_FLUSH_WAIT:?}; \
                 it delivers their tasks again"
            ),
        }
    }
}

/// Waits until every task of `set` has ended (cancel-safe: a task that ended is taken
/// out of the set).
async fn all_ended(set: &mut JoinSet<()>) {
    while set.join_next().await.is_some() {}
}

/// How long a stopping worker waits to send its last acknowledgements.
const LAST_FLUSH_WAIT: Duration = Duration::from_secs(5);

/// The longest cancel grace: 30 years, a grace without end in practice.
const GRACE_WITHOUT_END: Duration = Duration::from_secs(30 * 365 * 86_400);

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types: Vec<&str> = self.types.iter().map(|q| q.task_type.as_str()).collect();
        f.debug_struct("Worker")
            .field("name", &self.shared.name)
            .field("task_types", &types)
            .field("concurrency", &self.limits.concurrency)
            .finish_non_exhaustive()
    }
}

/// Answers coordinators asking whether a worker serves a task type (`requests`); once
/// the subscription ends (the connection was closed for good), says so to the rest of
/// the worker: a puller waiting for a slot asks the connection nothing to find out.
async fn answer_presence(shared: Arc<Shared>, mut requests: async_nats::Subscriber) {
    while let Some(request) = requests.next().await {
        if let Some(reply) = request.reply {
            let _ = shared
                .client
                .publish(reply, shared.name.clone().into())
                .await;
        }
    }
    shared.closed.cancel();
}
