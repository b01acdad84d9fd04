//! The bus: its shared state, its builder and closing. Publishing, subscribing and the
//! history kept for replay each have their own file under `bus/`.

mod batch;
mod history;
mod publish;
mod subscribe;

use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use tokio::sync::Notify;

use crate::routes::Routes;
use history::History;

/// A pub/sub event bus. Cheap to clone: clones share one bus.
///
/// Publish with [`EventBus::publish`] (waits for room under [`Overflow::Block`]) or
/// [`EventBus::try_publish`] (never waits); subscribe with [`EventBus::subscribe`] (a
/// stream) or [`EventBus::subscribe_fn`] (a callback). When the last clone is dropped
/// the bus closes as by [`EventBus::close`], without waiting (a clone held by a
/// callback counts: see [`EventBus::subscribe_fn`]).
///
/// When the bus drops a payload (no subscription matched, a full queue's policy, the
/// history's oldest), it does so holding none of its locks: the payload's destructor
/// may publish to the bus and subscribe to it.
///
/// [`Overflow::Block`]: crate::Overflow::Block
pub struct EventBus<T = serde_json::Value> {
    inner: Arc<Inner<T>>,
}

/// Builds an [`EventBus`] with options.
#[derive(Debug, Clone, Default)]
pub struct EventBusBuilder {
    history: usize,
}

impl EventBusBuilder {
    /// Defaults: no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep the last `events` events so that late subscribers can replay them
    /// ([`SubscribeOptions::replay_from`](crate::SubscribeOptions::replay_from)). 0 (the
    /// default) keeps none.
    #[must_use]
    pub fn history(mut self, events: usize) -> Self {
        self.history = events;
        self
    }

    /// Builds the bus.
    pub fn build<T>(self) -> EventBus<T> {
        EventBus {
            inner: Arc::new(Inner {
                id: NEXT_BUS_ID.fetch_add(1, Ordering::Relaxed),
                routes: RwLock::new(Routes::new()),
                next_seq: AtomicU64::new(0),
                history: (self.history > 0).then(|| Mutex::new(History::new(self.history))),
                next_id: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                closing: Notify::new(),
            }),
        }
    }
}

/// The id the next bus gets.
static NEXT_BUS_ID: AtomicU64 = AtomicU64::new(0);

/// Tells buses apart (see [`EventBus::id`]), for instance to keep something per bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BusId(u64);

pub(crate) struct Inner<T> {
    id: u64,
    routes: RwLock<Routes<T>>,
    next_seq: AtomicU64,
    history: Option<Mutex<History<T>>>,
    next_id: AtomicU64,
    /// Publishes past their routing step still delivering (waiting for room).
    in_flight: AtomicUsize,
    idle: Notify,
    /// Wakes what waits in [`EventBus::closed`].
    closing: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Inner<T> {
    pub(super) fn read(&self) -> RwLockReadGuard<'_, Routes<T>> {
        self.routes.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Routes<T>> {
        self.routes.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn finish_in_flight(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last publish under way on a closed bus ends the subscriptions itself:
            // the `close` that waits for it may have been dropped (a timeout around it).
            if self.read().closed {
                self.close_queues();
            }
            self.idle.notify_waiters();
        }
    }

    /// Ends every subscription (each gets what was queued for it first), if the bus is
    /// closed and no publish is under way; otherwise the last one to finish does it.
    ///
    /// Checked under the write lock: a publish counts itself in under the read lock and
    /// only while the bus is open, so a count of 0 here stays 0. (A publish that finished
    /// just before another counted itself in may call this late, and must not end the
    /// subscriptions the other is still delivering to.)
    ///
    /// The subscriptions end under the lock too: a `close` that finds none left to end
    /// returns only once whoever took them has ended them all.
    fn close_queues(&self) {
        let queues = {
            let mut routes = self.write();
            if !routes.closed || self.in_flight.load(Ordering::Acquire) != 0 {
                return;
            }
            let queues = routes.take_all();
            for queue in &queues {
                queue.close();
            }
            queues
        };
        // Dropped unlocked: the last hold on a queue drops its events, whose payloads'
        // destructors may use the bus.
        drop(queues);
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        let routes = self
            .routes
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for queue in routes.take_all() {
            queue.close();
        }
    }
}

impl<T> Clone for EventBus<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Default for EventBus<T> {
    fn default() -> Self {
        EventBusBuilder::default().build()
    }
}

impl<T> std::fmt::Debug for EventBus<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscriptions", &self.subscription_count())
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

impl EventBus {
    /// A builder for a bus with options; its [`EventBusBuilder::build`] picks the payload
    /// type (`EventBus::builder().history(100).build::<MyEvent>()`).
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder::default()
    }
}

impl<T> EventBus<T> {
    /// A bus without history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence number the next published event will get.
    pub fn next_seq(&self) -> u64 {
        self.inner.next_seq.load(Ordering::Relaxed)
    }

    /// This bus's id: its clones have it too, and no other bus of this process ever has.
    ///
    /// ```
    /// use orch_events::EventBus;
    ///
    /// let bus: EventBus = EventBus::new();
    /// assert_eq!(bus.id(), bus.clone().id());
    /// assert_ne!(bus.id(), EventBus::<serde_json::Value>::new().id());
    /// ```
    pub fn id(&self) -> BusId {
        BusId(self.inner.id)
    }

    /// How many subscriptions new events are routed to: those not yet unsubscribed or
    /// dropped, none once the bus is closed (a closed bus's subscriptions still hand
    /// out what they had queued). A callback subscription that unsubscribes from inside
    /// its callback counts until that call returns.
    pub fn subscription_count(&self) -> usize {
        let routes = self.inner.read();
        // Closed, the routes go once publishes under way finish.
        if routes.closed { 0 } else { routes.len() }
    }

    /// Whether [`EventBus::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.read().closed
    }

    /// Waits until [`EventBus::close`] is called (returns at once if it was): for a task
    /// that feeds the bus from elsewhere and should stop with it.
    ///
    /// The clone this is called on keeps the bus open: a task that waits here for the
    /// bus to close by its last clone being dropped waits for ever. Close it with
    /// [`EventBus::close`] instead.
    ///
    /// ```
    /// use orch_events::EventBus;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let bus: EventBus = EventBus::new();
    /// let closer = bus.clone();
    /// tokio::spawn(async move { closer.close().await });
    /// bus.closed().await;
    /// assert!(bus.is_closed());
    /// # });
    /// ```
    pub async fn closed(&self) {
        let closing = self.inner.closing.notified();
        let mut closing = std::pin::pin!(closing);
        // Registered before the check: a `close` after the check wakes it.
        closing.as_mut().enable();
        if self.is_closed() {
            return;
        }
        closing.await;
    }

    /// Closes the bus: later publishes and subscribes fail with `Closed`; publishes
    /// already under way finish (this waits for them); then every subscription gets
    /// everything published before and ends.
    ///
    /// Under [`Block`](crate::Overflow::Block) a publish under way waits for its slow
    /// subscribers, so this does too. Calling it again is harmless. So a subscriber
    /// must not wait for `close` in the code that receives its events (a callback, or
    /// its receive loop) while a publish may be waiting for room in its queue: neither
    /// would go on. Spawn the `close` instead. A publish future that waits for room is
    /// under way until it finishes or is dropped: drop one you gave up on (after a
    /// timeout on `&mut publish`, say) before closing, or `close` waits for it.
    pub async fn close(&self) {
        let inner = &*self.inner;
        inner.write().closed = true;
        inner.closing.notify_waiters();
        // Every publish either finished under the read lock, or counted itself in.
        loop {
            let idle = inner.idle.notified();
            let mut idle = std::pin::pin!(idle);
            idle.as_mut().enable();
            if inner.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
        inner.close_queues();
    }
}

#[cfg(test)]
mod tests;
