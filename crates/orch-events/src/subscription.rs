//! Stream subscriptions.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Weak},
    task::{Context, Poll},
};

use crate::{
    Delivery, Event, Overflow, Pattern, SubscriptionStats,
    bus::Inner,
    queue::{Batch, Queue},
};

/// Identifies a subscription within its bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct SubscriptionId(pub(crate) u64);

impl std::fmt::Display for SubscriptionId {
    /// `sub-` and the number; a width, fill, alignment or precision given applies to the
    /// whole.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&format!("sub-{}", self.0))
    }
}

/// How to subscribe: queue capacity, overflow policy, replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) replay_from: Option<u64>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            capacity: Self::DEFAULT_CAPACITY,
            overflow: Overflow::Block,
            replay_from: None,
        }
    }
}

impl SubscribeOptions {
    /// The queue capacity unless set.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// Defaults: capacity [`Self::DEFAULT_CAPACITY`], [`Overflow::Block`], no replay.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most events the queue holds (0 is taken as 1). The subscription takes the
    /// queued events in one go as it receives, so up to this many more, taken and not
    /// yet received, may be held besides: a [`Overflow::Block`] publisher waits once
    /// the queue is full again, and [`Overflow::DropOldest`] drops from the queue, not
    /// from those already taken.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// What to do when the queue is full.
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// First deliver the kept events (see
    /// [`EventBusBuilder::history`](crate::EventBusBuilder::history)) matching the
    /// pattern with sequence numbers from `seq` on, then live events, with no gap and no
    /// repeat. Subscribing fails if events from `seq` on are no longer all kept.
    ///
    /// The replayed events are taken into the subscription at once, whatever its
    /// [`capacity`](Self::capacity): until they are read, it holds up to the bus's
    /// history size besides.
    #[must_use]
    pub fn replay_from(mut self, seq: u64) -> Self {
        self.replay_from = Some(seq);
        self
    }
}

/// A subscription delivering [`Delivery`] items, as a [`futures_core::Stream`] or through
/// [`Subscription::recv`].
///
/// It ends (yields `None`) after the bus is closed and everything published before has
/// been delivered. Dropping it unsubscribes.
pub struct Subscription<T> {
    queue: Arc<Queue<T>>,
    pattern: Pattern,
    bus: Weak<Inner<T>>,
    batch: VecDeque<Arc<Event<T>>>,
    lag_after: u64,
    ended: bool,
}

impl<T> Subscription<T> {
    pub(crate) fn new(
        queue: Arc<Queue<T>>,
        pattern: Pattern,
        bus: Weak<Inner<T>>,
        backlog: VecDeque<Arc<Event<T>>>,
    ) -> Self {
        Self {
            queue,
            pattern,
            bus,
            batch: backlog,
            lag_after: 0,
            ended: false,
        }
    }

    /// This subscription's id.
    pub fn id(&self) -> SubscriptionId {
        SubscriptionId(self.queue.id)
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// Its counters.
    pub fn stats(&self) -> SubscriptionStats {
        self.queue.stats()
    }

    /// The next delivery, or `None` once the bus is closed and drained.
    pub async fn recv(&mut self) -> Option<Delivery<T>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next event, skipping [`Delivery::Lagged`] notices; `None` at the end.
    pub async fn recv_event(&mut self) -> Option<Arc<Event<T>>> {
        loop {
            if let Delivery::Event(event) = self.recv().await? {
                return Some(event);
            }
        }
    }

    /// Polls for the next delivery (what the [`futures_core::Stream`] impl does).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery<T>>> {
        // Like tokio's own channels: a subscriber that always finds events waiting still
        // yields to the scheduler now and then, so that the runtime's other tasks run.
        let budget = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let delivered = self.poll_delivery(cx);
        if delivered.is_ready() {
            budget.made_progress();
        }
        delivered
    }

    fn poll_delivery(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery<T>>> {
        loop {
            if let Some(event) = self.batch.pop_front() {
                return Poll::Ready(Some(Delivery::Event(event)));
            }
            if self.lag_after > 0 {
                return Poll::Ready(Some(Delivery::Lagged(std::mem::take(&mut self.lag_after))));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            // A replayed history may have made this buffer far larger than the queue
            // it is swapped with ever needs; that room is given back once it is read.
            let room = self.queue.capacity();
            if self.batch.capacity() > room.max(8).saturating_mul(2) {
                self.batch.shrink_to(room);
            }
            match self.queue.take_batch(&mut self.batch, cx) {
                Batch::Got { lagged: 0 } => {}
                Batch::Got { lagged } => match self.queue.policy {
                    Overflow::DropNewest => self.lag_after = lagged,
                    _ => return Poll::Ready(Some(Delivery::Lagged(lagged))),
                },
                Batch::Empty => return Poll::Pending,
                Batch::Ended => self.ended = true,
            }
        }
    }

    /// Unsubscribes (as dropping does): nothing more is delivered.
    pub fn unsubscribe(self) {}

    pub(crate) fn queue(&self) -> &Arc<Queue<T>> {
        &self.queue
    }
}

impl<T> futures_core::Stream for Subscription<T> {
    type Item = Delivery<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<T> futures_core::FusedStream for Subscription<T> {
    fn is_terminated(&self) -> bool {
        self.ended && self.batch.is_empty() && self.lag_after == 0
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        let unread = self.queue.detach();
        if let Some(bus) = self.bus.upgrade() {
            bus.remove(&self.pattern, self.queue.id);
        }
        // Last, so that a payload's destructor that panics cannot leave the route behind.
        drop(unread);
    }
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id())
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}
