//! The bounded queue behind each subscription, with its overflow policy.
//!
//! One mutex guards the queue. The publisher pushes a batch of events per lock; the subscriber
//! takes the whole queue per lock (it swaps in its empty batch buffer, so neither side
//! allocates once both buffers have grown). A subscriber's waker is stored only when it
//! found the queue empty, and a waiting publisher is notified only when one is waiting.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Waker},
};

use serde::Serialize;
use tokio::sync::Notify;

use crate::Event;

/// What to do with an event for a subscription whose queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[non_exhaustive]
pub enum Overflow {
    /// The publisher waits for room: nothing is ever lost. The default.
    /// ([`EventBus::try_publish`](crate::EventBus::try_publish) never waits: it
    /// publishes nothing and says which subscriptions are full.)
    #[default]
    Block,
    /// The oldest queued event is dropped to make room; the subscriber is told how many
    /// it missed ([`Delivery::Lagged`](crate::Delivery::Lagged)).
    DropOldest,
    /// The new event is dropped; the subscriber is told how many it missed
    /// ([`Delivery::Lagged`](crate::Delivery::Lagged)).
    DropNewest,
}

/// Counters of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct SubscriptionStats {
    /// Events taken out of the subscription's queue, and events replayed to it. A
    /// stream takes everything queued at once and hands it out one by one, so this may
    /// run ahead of what it has yielded; a callback's events are counted as they are
    /// taken for it, including any it is not called for because it unsubscribed.
    pub delivered: u64,
    /// Events its overflow policy dropped.
    pub dropped: u64,
    /// The most events its queue ever held at once.
    pub high_water: usize,
    /// Events in its queue now.
    pub queued: usize,
    /// Callback invocations that panicked (always 0 for a stream subscription).
    pub panics: u64,
}

pub(crate) enum Push {
    /// Queued (or dropped by the policy, and counted).
    Done,
    /// Full under [`Overflow::Block`]: wait for room.
    Full,
    /// The subscription is gone or closed.
    Gone,
}

struct State<T> {
    buf: VecDeque<Arc<Event<T>>>,
    /// Slots reserved by a `try_publish` or `try_publish_batch` in progress, not yet
    /// pushed or given back.
    reserved: usize,
    /// Dropped events not yet reported to the subscriber.
    lagged: u64,
    rx_waker: Option<Waker>,
    tx_waiting: bool,
    /// The bus closed: deliver what is queued, then end.
    closed: bool,
    /// Unsubscribed: deliver nothing more.
    detached: bool,
    delivered: u64,
    dropped: u64,
    high_water: usize,
}

pub(crate) struct Queue<T> {
    pub(crate) id: u64,
    pub(crate) policy: Overflow,
    capacity: usize,
    state: Mutex<State<T>>,
    space: Notify,
    /// Mirrors `State::detached`, for the callback runner's per-event check.
    detached: AtomicBool,
    pub(crate) panics: AtomicU64,
}

/// What one [`Queue::take_batch`] got.
pub(crate) enum Batch {
    /// Events were swapped into the caller's buffer, after `lagged` drops.
    Got { lagged: u64 },
    /// Nothing now; the waker is stored.
    Empty,
    /// Nothing, ever again.
    Ended,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No user code runs under our locks except payload destructors; a panic in one
    // leaves the queue itself consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Queue<T> {
    pub(crate) fn new(id: u64, policy: Overflow, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            id,
            policy,
            capacity,
            state: Mutex::new(State {
                buf: VecDeque::with_capacity(capacity.min(4096)),
                reserved: 0,
                lagged: 0,
                rx_waker: None,
                tx_waiting: false,
                closed: false,
                detached: false,
                delivered: 0,
                dropped: 0,
                high_water: 0,
            }),
            space: Notify::new(),
            detached: AtomicBool::new(false),
            panics: AtomicU64::new(0),
        }
    }

    /// Queues `event` (or applies the overflow policy); under [`Overflow::Block`], says
    /// `Full` rather than wait. What the [`Overflow::DropOldest`] policy pushes out goes to
    /// `evicted`, to be dropped once the caller holds no lock.
    pub(crate) fn push(&self, event: &Arc<Event<T>>, evicted: &mut Vec<Arc<Event<T>>>) -> Push {
        self.push_all(std::slice::from_ref(event), false, |old| evicted.push(old))
    }

    /// Queues `events` in order, under one lock and with at most one wake. Under
    /// [`Overflow::Block`] their slots were reserved by [`Queue::try_reserve_up_to`];
    /// under the drop policies the policy makes room, and what it evicts goes to
    /// `evicted`, for the caller to drop once every queue has its events (a payload
    /// destructor that panics then cannot leave reserved slots behind).
    pub(crate) fn push_reserved(
        &self,
        events: &[Arc<Event<T>>],
        evicted: &mut Vec<Arc<Event<T>>>,
    ) -> Push {
        self.push_all(events, true, |old| evicted.push(old))
    }

    /// Queues `events`; `evict` takes what the [`Overflow::DropOldest`] policy pushes out,
    /// to be dropped outside the lock.
    fn push_all(
        &self,
        events: &[Arc<Event<T>>],
        reserved: bool,
        mut evict: impl FnMut(Arc<Event<T>>),
    ) -> Push {
        let lossless = self.policy == Overflow::Block;
        let waker = {
            let mut s = lock(&self.state);
            if reserved && lossless {
                s.reserved -= events.len();
            }
            if s.detached || s.closed {
                return Push::Gone;
            }
            if !reserved && lossless && s.buf.len() + s.reserved + events.len() > self.capacity {
                s.tx_waiting = true;
                return Push::Full;
            }
            for event in events {
                if !lossless && s.buf.len() >= self.capacity {
                    s.lagged += 1;
                    s.dropped += 1;
                    if self.policy == Overflow::DropNewest {
                        continue;
                    }
                    if let Some(old) = s.buf.pop_front() {
                        evict(old);
                    }
                }
                s.buf.push_back(Arc::clone(event));
            }
            s.high_water = s.high_water.max(s.buf.len());
            s.rx_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Push::Done
    }

    /// Queues `event`, waiting for room under [`Overflow::Block`]. Returns whether it
    /// was queued.
    pub(crate) async fn push_wait(&self, event: &Arc<Event<T>>) -> bool {
        loop {
            let notified = self.space.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            // Only `Block` waits, and it evicts nothing.
            match self.push(event, &mut Vec::new()) {
                Push::Done => return true,
                Push::Gone => return false,
                Push::Full => notified.await,
            }
        }
    }

    /// Reserves up to `wanted` slots for [`Queue::push_reserved`] and returns how many
    /// it got: all of them under the drop policies (they make room themselves) and in a
    /// queue that is gone (nothing will be queued), else as many as there is room for.
    /// A publisher that then waits for room does so through [`Queue::push_wait`].
    pub(crate) fn try_reserve_up_to(&self, wanted: usize) -> usize {
        if self.policy != Overflow::Block {
            return wanted;
        }
        let mut s = lock(&self.state);
        let granted = if s.detached || s.closed {
            wanted
        } else {
            wanted.min(self.capacity.saturating_sub(s.buf.len() + s.reserved))
        };
        s.reserved += granted;
        granted
    }

    /// Gives back `slots` from [`Queue::try_reserve_up_to`].
    /// A publisher waiting for room is told: the slots may be all the room there is.
    pub(crate) fn unreserve(&self, slots: usize) {
        if self.policy != Overflow::Block || slots == 0 {
            return;
        }
        let notify = {
            let mut s = lock(&self.state);
            s.reserved -= slots;
            std::mem::take(&mut s.tx_waiting)
        };
        if notify {
            self.space.notify_waiters();
        }
    }

    /// Whether a [`Overflow::Block`] queue is full now.
    pub(crate) fn is_full(&self) -> bool {
        let s = lock(&self.state);
        self.policy == Overflow::Block && s.buf.len() + s.reserved >= self.capacity
    }

    /// Swaps the queued events into `batch` (which must be empty).
    pub(crate) fn take_batch(
        &self,
        batch: &mut VecDeque<Arc<Event<T>>>,
        cx: &mut Context<'_>,
    ) -> Batch {
        let (result, notify) = {
            let mut s = lock(&self.state);
            std::mem::swap(&mut s.buf, batch);
            let lagged = std::mem::take(&mut s.lagged);
            let notify = std::mem::take(&mut s.tx_waiting);
            let result = if !batch.is_empty() || lagged > 0 {
                s.delivered += batch.len() as u64;
                Batch::Got { lagged }
            } else if s.closed || s.detached {
                Batch::Ended
            } else {
                match &s.rx_waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => s.rx_waker = Some(cx.waker().clone()),
                }
                Batch::Empty
            };
            (result, notify)
        };
        if notify {
            self.space.notify_waiters();
        }
        result
    }

    /// Counts replayed events as delivered.
    pub(crate) fn count_delivered(&self, n: usize) {
        lock(&self.state).delivered += n as u64;
    }

    /// The bus closed: the subscriber gets what is queued, then the end.
    pub(crate) fn close(&self) {
        let waker = {
            let mut s = lock(&self.state);
            s.closed = true;
            s.tx_waiting = false;
            s.rx_waker.take()
        };
        self.space.notify_waiters();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Unsubscribed: nothing more is queued or handed over. Returns the events that were
    /// still queued, for the caller to drop once it has done the rest of unsubscribing
    /// (a payload's destructor may panic).
    #[must_use = "the unread events are dropped by the caller, last"]
    pub(crate) fn detach(&self) -> VecDeque<Arc<Event<T>>> {
        let (unread, waker) = {
            let mut s = lock(&self.state);
            s.detached = true;
            self.detached.store(true, Ordering::Release);
            s.tx_waiting = false;
            (std::mem::take(&mut s.buf), s.rx_waker.take())
        };
        self.space.notify_waiters();
        if let Some(waker) = waker {
            waker.wake();
        }
        unread
    }

    pub(crate) fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }

    /// The most events the queue holds.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn stats(&self) -> SubscriptionStats {
        let s = lock(&self.state);
        SubscriptionStats {
            delivered: s.delivered,
            dropped: s.dropped,
            high_water: s.high_water,
            queued: s.buf.len(),
            panics: self.panics.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::SystemTime;

    use super::{Overflow, Queue};
    use crate::{Event, Subject};

    /// Counts its wakes.
    #[derive(Default)]
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn giving_back_a_reservation_wakes_a_publisher_waiting_for_room() {
        let queue: Queue<u32> = Queue::new(1, Overflow::Block, 1);
        let event = Arc::new(Event::new(
            0,
            SystemTime::now(),
            Subject::new("a").expect("valid"),
            7,
        ));
        assert_eq!(queue.try_reserve_up_to(1), 1, "the only slot, reserved");

        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let mut waiting = Box::pin(queue.push_wait(&event));
        assert!(waiting.as_mut().poll(&mut cx).is_pending(), "no room");

        queue.unreserve(1);
        assert_eq!(
            counter.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "told"
        );
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(true));
        assert_eq!(queue.stats().queued, 1);
    }
}
