//! [`Bridge`]: events between orch [`EventBus`]es and NATS subjects, so that other
//! services watch runs live, and events from elsewhere reach a bus.

mod import_queue;

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_nats::{Client, HeaderMap};
use futures_util::StreamExt;
use orch_events::{BusId, Delivery, EventBus, Overflow, SubscribeError, SubscribeOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::layout::Layout;
use crate::setup;
use crate::{ConnectError, NatsConfig, ROOM_WAIT};
use import_queue::ImportQueue;

/// The header that names the bridge an event left through, so that the same bridge
/// does not bring it back in.
const ORIGIN: &str = "Orch-Bridge";

/// How many events an export holds for NATS before it drops the oldest.
const EXPORT_CAPACITY: usize = 16_384;

/// How many NATS messages an import holds for its bus, and how many bytes of them at
/// most, before it drops the oldest.
const IMPORT_CAPACITY: usize = 16_384;
const IMPORT_BYTES: usize = 64 << 20;

/// Logs that `dropped` messages an import took were not published on its bus.
fn report_dropped(dropped: u64) {
    tracing::warn!(
        dropped,
        "NATS messages were not imported: the bus fell behind"
    );
}

/// The longest NATS subject an export publishes: a longer one (past the server's limit
/// on a protocol line, 4 KiB by default, the server would close the connection) is
/// logged and skipped.
const MAX_SUBJECT: usize = 2048;

/// How many events a bridge's imports published that its exports have not seen yet it
/// remembers (an export that lags further behind sends an imported event out again).
const IMPORTED_REMEMBERED: usize = 65_536;

/// The events a bridge's imports published on one bus, so that its exports of that bus
/// do not send them back out.
#[derive(Debug, Default)]
struct Imported {
    seqs: std::sync::Mutex<ImportedSeqs>,
}

impl Imported {
    fn seqs(&self) -> std::sync::MutexGuard<'_, ImportedSeqs> {
        self.seqs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the event numbered `seq` was imported.
    fn contains(&self, seq: u64) -> bool {
        self.seqs().set.contains(&seq)
    }

    /// Publishes `payload` on `bus` under `subject`, as imported: its number is noted
    /// before any subscription receives it, so an export never waits to tell (also while
    /// a full lossless subscriber holds this publish up).
    async fn publish<T: Send + Sync + 'static>(
        &self,
        bus: &EventBus<T>,
        subject: &str,
        payload: T,
    ) -> Result<u64, orch_events::PublishError> {
        bus.publish_numbered(subject, payload, |seq| self.seqs().insert(seq))
            .await
    }
}

/// Each bus a bridge imports to or exports from, with the events its imports published
/// there (while an import or export of that bus runs).
type ImportedByBus = std::sync::Mutex<HashMap<BusId, Weak<Imported>>>;

/// The sequence numbers of the events imported (the most recent
/// [`IMPORTED_REMEMBERED`]).
#[derive(Debug, Default)]
struct ImportedSeqs {
    set: std::collections::HashSet<u64>,
    /// Oldest first, to forget the oldest.
    order: std::collections::VecDeque<u64>,
}

impl ImportedSeqs {
    fn insert(&mut self, seq: u64) {
        if self.order.len() == IMPORTED_REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.order.push_back(seq);
        self.set.insert(seq);
    }
}

/// Carries events between orch [`EventBus`]es and NATS subjects under a prefix: a bus
/// event on subject `s` is the NATS message on `<prefix>.s`, its payload as JSON.
///
/// [`Bridge::export`] publishes a bus's events (an engine's lifecycle events, or any
/// application events) to NATS; [`Bridge::import`] publishes NATS messages on a bus. An
/// event exported by a bridge is not imported again by the same bridge, and an event it
/// imported is not exported again (it remembers the latest 65,536 events it imported on
/// each bus: an export lagging further behind than that sends one out again), so
/// bridges of several processes that import and export the same subjects do not send
/// events back and forth. In one process, use one
/// bridge (or its clones) for both directions of a bus and prefix: two separate bridges
/// do not know each other's events, and would pass an event between them for ever. A
/// subject token longer
/// than 64 bytes (an event of a task with a very long id) goes out shortened to its
/// start and a hash of the whole token.
///
/// Give a bridge a prefix apart from that of the distributed layout's subjects
/// ([`Layout`], `orch` by default): under the same prefix, bus events on `task.…`,
/// `result.…`, `cancel.…` or `worker.…` would be taken as tasks, results and
/// cancellations, and an import of `>` would take those in.
///
/// ```no_run
/// use orch_core::EngineEvent;
/// use orch_engine::WorkflowEngine;
/// use orch_events::EventBus;
/// use orch_nats::{Bridge, NatsConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let bus: EventBus<EngineEvent> = EventBus::new();
/// let engine = WorkflowEngine::builder().event_bus(bus.clone()).build()?;
/// let bridge = Bridge::connect(&NatsConfig::from_env()?, "orch.events").await?;
/// // Every run's events, on `orch.events.workflow.<id>.…` for any NATS subscriber.
/// let _export = bridge.export(&bus, ">")?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Bridge {
    client: Client,
    prefix: Arc<str>,
    origin: Arc<str>,
    imported: Arc<ImportedByBus>,
}

/// How long an export that ends waits for its connection to send the events it published.
const LAST_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// An export or import running on the tokio runtime; it stops when dropped, or with
/// [`BridgeTask::stop`].
#[derive(Debug)]
pub struct BridgeTask(JoinHandle<()>);

impl BridgeTask {
    /// Stops carrying events.
    pub fn stop(self) {}

    /// Waits until it ends by itself: an export when its bus closes (and its connection
    /// has sent what it published, or at most 5 s more: the server may not have read
    /// the last of it yet, and a connection lost just then loses it), an import when the
    /// connection closes or the bus does.
    pub async fn finished(mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for BridgeTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Bridge {
    /// Connects with `config`; subjects go under `prefix` (such as `orch.events`).
    pub async fn connect(config: &NatsConfig, prefix: &str) -> Result<Self, ConnectError> {
        Layout::with_prefix(prefix).check()?;
        Self::new(config.connect().await?, prefix)
    }

    /// Uses a connection made elsewhere.
    pub fn new(client: Client, prefix: &str) -> Result<Self, ConnectError> {
        Layout::with_prefix(prefix).check()?;
        let origin = client.new_inbox();
        Ok(Self {
            client,
            prefix: prefix.into(),
            origin: origin.into(),
            imported: Arc::default(),
        })
    }

    /// Publishes to NATS every event of `bus` whose subject matches `pattern` (bus
    /// syntax: `*` one token, `>` the rest), as JSON on `<prefix>.<subject>`, until the
    /// bus closes or the returned task stops.
    ///
    /// The export never holds the bus up: when NATS falls behind by more than 16,384
    /// events, it drops the oldest and logs how many. While the server is gone the client
    /// keeps what it is given until it is full; once an event has waited 5 s for room,
    /// events are dropped (and counted in the log) until the client takes one again, so
    /// that an export whose bus closes ends all the same.
    ///
    /// An event whose payload nests arrays and objects more than 127 levels deep is not
    /// exported (an error is logged): no bridge could read it.
    pub fn export<T>(&self, bus: &EventBus<T>, pattern: &str) -> Result<BridgeTask, SubscribeError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let options = SubscribeOptions::new()
            .capacity(EXPORT_CAPACITY)
            .overflow(Overflow::DropOldest);
        let mut events = bus.subscribe_with(pattern, options)?;
        let bridge = self.clone();
        let imported = self.imported_on(bus);
        Ok(BridgeTask(tokio::spawn(async move {
            // Events dropped since the connection last took one at once, after one that
            // waited `ROOM_WAIT` for room (the server gone, the client full).
            let mut stalled: Option<u64> = None;
            while let Some(delivery) = events.recv().await {
                let event = match delivery {
                    Delivery::Event(event) => event,
                    Delivery::Lagged(missed) => {
                        tracing::warn!(missed, "NATS fell behind; events were not exported");
                        continue;
                    }
                };
                if imported.contains(event.seq()) {
                    continue;
                }
                let Some(subject) = bridge.nats_subject(event.subject().as_str()) else {
                    tracing::warn!(subject = %event.subject(), "an event's subject is too long for NATS; not exported");
                    continue;
                };
                let payload = match serde_json::to_vec(event.payload()) {
                    Ok(payload) => payload,
                    Err(error) => {
                        tracing::error!(subject = %event.subject(), %error, "an event cannot be written as JSON");
                        continue;
                    }
                };
                // No bridge could read it: refused here, where it is written.
                let depth = crate::nesting::nesting(&payload);
                if depth > crate::nesting::MAX_NESTING {
                    tracing::error!(subject = %event.subject(), depth, max = crate::nesting::MAX_NESTING,
                        "an event nests too deep for a bridge to read; not exported");
                    continue;
                }
                let mut headers = HeaderMap::new();
                headers.insert(ORIGIN, &*bridge.origin);
                let publish = bridge
                    .client
                    .publish_with_headers(subject, headers, payload.into());
                // Stalled, an event goes only if the client takes it at once.
                let wait = stalled.map_or(ROOM_WAIT, |_| std::time::Duration::ZERO);
                match tokio::time::timeout(wait, publish).await {
                    // Refused by the client before it took it (too large): says nothing
                    // of whether NATS takes events again.
                    Ok(Err(error)) => tracing::warn!(%error, "an event could not be exported"),
                    Ok(Ok(())) => {
                        if let Some(dropped) = stalled.take() {
                            tracing::warn!(
                                dropped,
                                "NATS takes events again; some were not exported"
                            );
                        }
                    }
                    Err(_) if stalled.is_none() => {
                        tracing::warn!(
                            "NATS took no event for {ROOM_WAIT:?}; dropping events until it does"
                        );
                        stalled = Some(1);
                    }
                    Err(_) => stalled = stalled.map(|n| n + 1),
                }
            }
            if let Some(dropped) = stalled {
                tracing::warn!(dropped, "events were not exported: NATS did not take them");
            }
            // Bounded: with the server gone, a flush would wait for it for ever.
            let flushed = tokio::time::timeout(LAST_FLUSH_WAIT, bridge.client.flush()).await;
            if !matches!(flushed, Ok(Ok(()))) {
                tracing::warn!(
                    "the connection did not send the last exported events within {LAST_FLUSH_WAIT:?}; \
                     they may be lost"
                );
            }
        })))
    }

    /// The events this bridge's imports published on `bus`.
    fn imported_on<T>(&self, bus: &EventBus<T>) -> Arc<Imported> {
        let mut buses = self
            .imported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        buses.retain(|_, imported| imported.strong_count() > 0);
        if let Some(imported) = buses.get(&bus.id()).and_then(Weak::upgrade) {
            return imported;
        }
        let imported = Arc::<Imported>::default();
        buses.insert(bus.id(), Arc::downgrade(&imported));
        imported
    }

    /// The NATS subject of bus subject (or pattern) `subject`, each long token
    /// shortened; `None` when it is still too long.
    fn nats_subject(&self, subject: &str) -> Option<String> {
        let mut out = String::with_capacity(self.prefix.len() + 1 + subject.len());
        out.push_str(&self.prefix);
        for token in subject.split('.') {
            out.push('.');
            out.push_str(&crate::protocol::fit_token(token));
        }
        (out.len() <= MAX_SUBJECT).then_some(out)
    }

    /// Publishes on `bus` every NATS message on `<prefix>.<pattern>` (NATS syntax), its
    /// payload read as JSON into `T`, under its subject less the prefix. A payload that
    /// is not a `T`, or a subject the bus refuses, is logged and skipped. A token of the
    /// pattern longer than 64 bytes is shortened as [`Bridge::export`] shortens it, so
    /// that importing a bus subject takes what exporting it sends.
    ///
    /// The import takes messages from NATS as they come and holds up to 16,384 of them
    /// (64 MiB) that the bus has not taken yet; when the bus falls further behind (a
    /// full lossless subscriber holds it up), the oldest are dropped, and how many is
    /// logged. The bus's other events, and its exports, go on meanwhile.
    ///
    /// The import holds a clone of `bus`, so the bus does not close when the
    /// application drops its own clones: it stays open until the import stops (its
    /// [`BridgeTask`] dropped or stopped, or its connection closed) or until
    /// [`EventBus::close`].
    ///
    /// # Errors
    /// [`ConnectError::Config`] for a pattern the bus would not take, or one that, with
    /// the prefix, is longer than 2,048 bytes (the server would refuse it too, and
    /// nothing would ever arrive); [`ConnectError::Setup`] when the subscription cannot
    /// be made, or is not confirmed: the import sends a request to a fresh inbox, which
    /// the server answers only once it has the subscription, so the bridge's user needs
    /// to publish on `_INBOX.>` as well as subscribe on `<prefix>.>` (without it, the
    /// error comes after the client's 10 s request timeout).
    pub async fn import<T>(
        &self,
        pattern: &str,
        bus: &EventBus<T>,
    ) -> Result<BridgeTask, ConnectError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        orch_events::Pattern::new(pattern)
            .map_err(|error| ConnectError::Config(format!("cannot import `{pattern}`: {error}")))?;
        // Past the server's limit on a protocol line, the subscription would have the
        // server close the connection, again at each reconnection.
        let Some(subject) = self.nats_subject(pattern) else {
            return Err(ConnectError::Config(format!(
                "cannot import `{pattern}`: under the prefix `{}` its subject is longer \
                 than the {MAX_SUBJECT} bytes a bridge subscribes to",
                self.prefix
            )));
        };
        let mut messages =
            self.client
                .subscribe(subject.clone())
                .await
                .map_err(|e| ConnectError::Setup {
                    what: format!("the subscription to `{subject}`"),
                    reason: e.to_string(),
                })?;
        // Returns once the server has the subscription, so nothing published after this
        // call is missed.
        setup::subscriptions_in_place(
            &self.client,
            self.client.new_inbox(),
            &format!("the subscription to `{subject}`"),
        )
        .await?;
        let imported = self.imported_on(bus);
        let bus = bus.clone();
        let bridge = self.clone();
        let queue = ImportQueue::new(IMPORT_CAPACITY, IMPORT_BYTES);
        Ok(BridgeTask(tokio::spawn(async move {
            let skip = bridge.prefix.len() + 1;
            let closed = bus.closed();
            tokio::pin!(closed);
            let read = async {
                loop {
                    let message = tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => message,
                            None => break,
                        },
                        // Nothing would be published any more.
                        () = &mut closed => break,
                    };
                    let mine = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(ORIGIN))
                        .is_some_and(|origin| origin.as_str() == &*bridge.origin);
                    if let (false, Some(subject)) = (mine, message.subject.get(skip..)) {
                        // A copy: the payload shares the client's read buffer, which it
                        // would hold whole for as long as the message waits.
                        let payload = bytes::Bytes::copy_from_slice(&message.payload);
                        queue.push((subject.to_owned(), payload));
                    }
                }
                queue.close();
            };
            let publish = async {
                // Messages dropped since the bus fell behind, reported once it keeps up.
                let mut behind = 0;
                while let Some(((subject, payload), dropped)) = queue.next().await {
                    if dropped > 0 && behind == 0 {
                        tracing::warn!("the bus fell behind; dropping the oldest NATS messages");
                    }
                    behind += dropped;
                    if dropped == 0 && behind > 0 {
                        report_dropped(std::mem::take(&mut behind));
                    }
                    let payload: T = match serde_json::from_slice(&payload) {
                        Ok(payload) => payload,
                        Err(error) => {
                            tracing::warn!(subject, %error, "skipping a NATS message that is not the bus's payload");
                            continue;
                        }
                    };
                    match imported.publish(&bus, &subject, payload).await {
                        Ok(_) => {}
                        Err(orch_events::PublishError::Closed) => break,
                        Err(error) => {
                            tracing::warn!(subject, %error, "skipping a NATS message the bus refused")
                        }
                    }
                }
                behind
            };
            let ((), behind) = tokio::join!(read, publish);
            let dropped = behind + queue.dropped();
            if dropped > 0 {
                report_dropped(dropped);
            }
        })))
    }
}
