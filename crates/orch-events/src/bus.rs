//! The bus: routing, sequence numbers, history, publishing, closing.

mod batch;

use std::{
    collections::VecDeque,
    future::Future,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::SystemTime,
};

use tokio::sync::Notify;

use crate::{
    CallbackSubscription, Delivery, Event, IntoSubject, Pattern, PublishError, Subject,
    SubscribeError, SubscribeOptions, Subscription, SubscriptionId, TryPublishError,
    TryPublishErrorKind,
    queue::{Push, Queue},
    routes::{Matches, Routes},
};

/// A pub/sub event bus. Cheap to clone: clones share one bus.
///
/// Publish with [`EventBus::publish`] (waits for room under [`Overflow::Block`]) or
/// [`EventBus::try_publish`] (never waits); subscribe with [`EventBus::subscribe`] (a
/// stream) or [`EventBus::subscribe_fn`] (a callback). When the last clone is dropped
/// the bus closes as by [`EventBus::close`], without waiting.
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
    /// ([`SubscribeOptions::replay_from`]). 0 (the default) keeps none.
    #[must_use]
    pub fn history(mut self, events: usize) -> Self {
        self.history = events;
        self
    }

    /// Builds the bus.
    pub fn build<T>(self) -> EventBus<T> {
        EventBus {
            inner: Arc::new(Inner {
                routes: RwLock::new(Routes::new()),
                next_seq: AtomicU64::new(0),
                history: (self.history > 0).then(|| {
                    Mutex::new(History {
                        events: VecDeque::with_capacity(self.history.min(1 << 16)),
                        capacity: self.history,
                    })
                }),
                next_id: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }
}

pub(crate) struct Inner<T> {
    routes: RwLock<Routes<T>>,
    next_seq: AtomicU64,
    history: Option<Mutex<History<T>>>,
    next_id: AtomicU64,
    /// Publishes past their routing step still delivering (waiting for room).
    in_flight: AtomicUsize,
    idle: Notify,
}

struct History<T> {
    events: VecDeque<Arc<Event<T>>>,
    capacity: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Inner<T> {
    fn read(&self) -> RwLockReadGuard<'_, Routes<T>> {
        self.routes.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Routes<T>> {
        self.routes.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers the event and keeps it in the history. Called under the routing read
    /// lock, so a subscriber (which takes the write lock) sees every event either in
    /// the history or live, never both, never neither.
    fn stamp(&self, subject: Subject, payload: T, at: SystemTime) -> Arc<Event<T>> {
        match &self.history {
            None => {
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                Arc::new(Event::new(seq, at, subject, payload))
            }
            Some(history) => {
                // Numbered under the history lock so the history stays in order.
                let mut history = lock(history);
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                let event = Arc::new(Event::new(seq, at, subject, payload));
                if history.events.len() == history.capacity {
                    history.events.pop_front();
                }
                history.events.push_back(Arc::clone(&event));
                event
            }
        }
    }

    /// Numbers the event and queues it for every matching subscription, using the slots
    /// [`reserve_all`] took in the lossless ones; returns its sequence number.
    fn deliver_reserved(
        &self,
        subject: Subject,
        payload: T,
        at: SystemTime,
        matches: &Matches<'_, T>,
    ) -> u64 {
        let event = self.stamp(subject, payload, at);
        let mut evicted = Vec::new();
        for queue in matches.iter() {
            queue.push_reserved(std::slice::from_ref(&event), &mut evicted);
        }
        drop(evicted);
        event.seq()
    }

    pub(crate) fn remove(&self, pattern: &Pattern, id: u64) {
        let mut routes = self.write();
        routes.remove(pattern, id);
    }

    fn finish_in_flight(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
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

/// Decrements the in-flight count even if the publish future is dropped.
struct InFlight<'a, T>(&'a Inner<T>);

impl<T> Drop for InFlight<'_, T> {
    fn drop(&mut self) {
        self.0.finish_in_flight();
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

    /// How many subscriptions are active.
    pub fn subscription_count(&self) -> usize {
        self.inner.read().len()
    }

    /// Whether [`EventBus::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.read().closed
    }

    /// Publishes `payload` on `subject` to every matching subscription and returns its
    /// sequence number.
    ///
    /// Waits while a matching [`Block`](crate::Overflow::Block) subscription's queue is
    /// full; never waits for the drop policies. When it returns, the event is queued for
    /// every matching subscription (or dropped and counted by its policy). If the future
    /// is dropped while waiting, the event reaches only some subscriptions.
    ///
    /// # Errors
    /// [`PublishError::InvalidSubject`] or [`PublishError::Closed`]; nothing is published.
    pub async fn publish(
        &self,
        subject: impl IntoSubject,
        payload: T,
    ) -> Result<u64, PublishError> {
        let subject = subject.into_subject()?;
        // Like tokio's own channels: a publisher that never has to wait still yields to
        // the scheduler now and then, so the subscribers it wakes get to run.
        tokio::task::consume_budget().await;
        let inner = &*self.inner;
        let mut waiting = Vec::new();
        let (event, _in_flight) = {
            let routes = inner.read();
            if routes.closed {
                return Err(PublishError::Closed);
            }
            let matches = routes.matches(&subject);
            let event = inner.stamp(subject, payload, SystemTime::now());
            for queue in matches.iter() {
                if let Push::Full = queue.push(&event) {
                    waiting.push(Arc::clone(queue));
                }
            }
            if waiting.is_empty() {
                return Ok(event.seq());
            }
            inner.in_flight.fetch_add(1, Ordering::AcqRel);
            (event, InFlight(inner))
        };
        for queue in waiting {
            queue.push_wait(&event).await;
        }
        Ok(event.seq())
    }

    /// Publishes without ever waiting: either the event goes to every matching
    /// subscription (drop policies apply as usual) and its sequence number is returned,
    /// or nothing is published and the payload comes back in the error.
    ///
    /// Nothing is published if a matching [`Block`](crate::Overflow::Block) subscription
    /// is full ([`TryPublishErrorKind::Full`] lists the full ones): that policy promises
    /// no loss, so the event goes to all or to none. Room is reserved in every such queue
    /// before anything is queued, so racing publishers cannot make it partial.
    ///
    /// # Errors
    /// [`TryPublishErrorKind::InvalidSubject`], [`TryPublishErrorKind::Closed`] or
    /// [`TryPublishErrorKind::Full`], with the payload.
    pub fn try_publish(
        &self,
        subject: impl IntoSubject,
        payload: T,
    ) -> Result<u64, TryPublishError<T>> {
        let subject = match subject.into_subject() {
            Ok(subject) => subject,
            Err(e) => return Err(TryPublishError::new(e.into(), payload)),
        };
        let inner = &*self.inner;
        let routes = inner.read();
        if routes.closed {
            return Err(TryPublishError::new(TryPublishErrorKind::Closed, payload));
        }
        let matches = routes.matches(&subject);
        if let Err(first_full) = reserve_all(&matches) {
            // List the queues that are full now.
            let blocked = matches
                .iter()
                .skip(first_full)
                .enumerate()
                .filter(|(i, queue)| *i == 0 || queue.is_full())
                .map(|(_, queue)| SubscriptionId(queue.id))
                .collect();
            return Err(TryPublishError::new(
                TryPublishErrorKind::Full { blocked },
                payload,
            ));
        }
        Ok(inner.deliver_reserved(subject, payload, SystemTime::now(), &matches))
    }

    /// Subscribes to `pattern` with the default options (capacity
    /// [`SubscribeOptions::DEFAULT_CAPACITY`], [`Block`](crate::Overflow::Block)).
    ///
    /// # Errors
    /// [`SubscribeError::InvalidPattern`] or [`SubscribeError::Closed`].
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription<T>, SubscribeError> {
        self.subscribe_with(pattern, SubscribeOptions::default())
    }

    /// Subscribes to `pattern` with `options`.
    ///
    /// # Errors
    /// [`SubscribeError::InvalidPattern`], [`SubscribeError::Closed`], or for replay
    /// [`SubscribeError::HistoryDisabled`], [`SubscribeError::ReplayGone`] and
    /// [`SubscribeError::ReplayAhead`].
    pub fn subscribe_with(
        &self,
        pattern: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription<T>, SubscribeError> {
        let pattern = Pattern::new(pattern)?;
        let inner = &*self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(Queue::new(id, options.overflow, options.capacity));
        let backlog = {
            let mut routes = inner.write();
            if routes.closed {
                return Err(SubscribeError::Closed);
            }
            let backlog = match options.replay_from {
                None => VecDeque::new(),
                Some(from) => self.backlog(&pattern, from)?,
            };
            routes.insert(&pattern, Arc::clone(&queue));
            backlog
        };
        queue.count_delivered(backlog.len());
        Ok(Subscription::new(
            queue,
            pattern,
            Arc::downgrade(&self.inner),
            backlog,
        ))
    }

    /// The kept events matching `pattern` from `from` on. Called under the write lock.
    fn backlog(
        &self,
        pattern: &Pattern,
        from: u64,
    ) -> Result<VecDeque<Arc<Event<T>>>, SubscribeError> {
        let Some(history) = &self.inner.history else {
            return Err(SubscribeError::HistoryDisabled { requested: from });
        };
        let history = lock(history);
        let next = self.inner.next_seq.load(Ordering::Relaxed);
        let oldest = history.events.front().map_or(next, |e| e.seq());
        if from > next {
            return Err(SubscribeError::ReplayAhead {
                requested: from,
                next,
            });
        }
        if from < oldest {
            return Err(SubscribeError::ReplayGone {
                requested: from,
                oldest,
            });
        }
        let skip = usize::try_from(from - oldest).unwrap_or(usize::MAX);
        Ok(history
            .events
            .iter()
            .skip(skip)
            .filter(|e| pattern.matches(e.subject()))
            .cloned()
            .collect())
    }

    /// Closes the bus: later publishes and subscribes fail with `Closed`; publishes
    /// already under way finish (this waits for them); then every subscription gets
    /// everything published before and ends.
    ///
    /// Under [`Block`](crate::Overflow::Block) a publish under way waits for its slow
    /// subscribers, so this does too. Calling it again is harmless.
    pub async fn close(&self) {
        let inner = &*self.inner;
        inner.write().closed = true;
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
        let queues = {
            let mut routes = inner.write();
            routes.take_all()
        };
        for queue in queues {
            queue.close();
        }
    }
}

/// Reserves a slot in every matching [`Block`](crate::Overflow::Block) queue, so an event
/// goes to all of them or to none. On the first full one, gives the reservations back and
/// returns its index in `matches`.
fn reserve_all<T>(matches: &Matches<'_, T>) -> Result<(), usize> {
    let reserved = matches
        .iter()
        .take_while(|queue| queue.try_reserve_up_to(1) == 1)
        .count();
    if reserved == matches.len() {
        return Ok(());
    }
    matches
        .iter()
        .take(reserved)
        .for_each(|queue| queue.unreserve(1));
    Err(reserved)
}

impl<T: Send + Sync + 'static> EventBus<T> {
    /// Runs `callback` for each delivery on `pattern`, on a task of the current tokio
    /// runtime. See [`CallbackSubscription`] for how panics are handled.
    ///
    /// # Errors
    /// As [`EventBus::subscribe_with`], plus [`SubscribeError::NoRuntime`] outside a tokio
    /// runtime.
    pub fn subscribe_fn<F, Fut>(
        &self,
        pattern: &str,
        options: SubscribeOptions,
        callback: F,
    ) -> Result<CallbackSubscription<T>, SubscribeError>
    where
        F: Fn(Delivery<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| SubscribeError::NoRuntime)?;
        let subscription = self.subscribe_with(pattern, options)?;
        Ok(CallbackSubscription::spawn(
            &runtime,
            subscription,
            callback,
        ))
    }
}
