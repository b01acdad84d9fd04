//! The bounded queue behind each subscription, with its overflow policy.
//!
//! One mutex guards the queue. The publisher pushes a batch of events per lock; the subscriber
//! takes the whole queue per lock (it swaps in its empty batch buffer, so neither side
//! allocates once both buffers have grown). A subscriber's waker is stored only when it
//! found the queue empty.
//!
//! A publisher that finds a [`Overflow::Block`] queue full leaves its event in the
//! queue's line of waiting events. Whoever frees room (the subscriber taking its events,
//! or a publisher giving back reserved slots) moves events from the front of the line
//! into the queue, so waiting publishers are served in the order they came, and a
//! publisher whose waiting future is not being polled holds up no one. While the line is
//! not empty, every newcomer joins it or is refused.

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
    /// publishes nothing and says which subscriptions have no room.)
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
    /// No room under [`Overflow::Block`]: the event joined the line with this ticket;
    /// wait for it with a [`Waiting`].
    InLine(u64),
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
    /// Publishers waiting for room; made when the first one waits. Boxed: most queues
    /// never need one, and the publish path reads less memory without it inline.
    line: Option<Box<Line<T>>>,
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
    /// Mirrors `State::detached`, for the callback runner's per-event check and waiting
    /// publishers.
    detached: AtomicBool,
    /// Mirrors `State::closed`, for waiting publishers.
    closed: AtomicBool,
    /// Tickets of the line below this were served (their events queued) or withdrawn.
    /// Written under the lock; a waiting publisher reads it without (one lock less per
    /// wait, on the path of a publisher that outpaces its subscriber).
    served_below: AtomicU64,
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

/// The events of publishers waiting for a queue's room, oldest first, with their
/// tickets.
struct Line<T> {
    places: VecDeque<(u64, Arc<Event<T>>)>,
    /// The ticket the next publisher to join the line gets.
    next_ticket: u64,
}

impl<T> State<T> {
    fn line_is_empty(&self) -> bool {
        self.line.as_ref().is_none_or(|line| line.places.is_empty())
    }

    /// Whether `events` more fit now, with none of them overtaking the line.
    fn has_room_for(&self, events: usize, capacity: usize) -> bool {
        self.line_is_empty() && self.buf.len() + self.reserved + events <= capacity
    }

    /// Puts `event` at the end of the line; returns its ticket.
    fn join_line(&mut self, event: &Arc<Event<T>>) -> u64 {
        let line = self.line.get_or_insert_with(|| {
            Box::new(Line {
                places: VecDeque::new(),
                next_ticket: 0,
            })
        });
        let ticket = line.next_ticket;
        line.next_ticket += 1;
        line.places.push_back((ticket, Arc::clone(event)));
        ticket
    }

    /// Moves events from the front of the line into the room there is, and tells
    /// `served_below` the tickets served; says whether it moved any.
    fn serve_line(&mut self, capacity: usize, served_below: &AtomicU64) -> bool {
        let Some(line) = self.line.as_mut() else {
            return false;
        };
        let mut last_served = None;
        while self.buf.len() + self.reserved < capacity {
            let Some((ticket, event)) = line.places.pop_front() else {
                break;
            };
            self.buf.push_back(event);
            last_served = Some(ticket);
        }
        let Some(ticket) = last_served else {
            return false;
        };
        served_below.store(ticket + 1, Ordering::SeqCst);
        self.high_water = self.high_water.max(self.buf.len());
        true
    }

    /// Takes the event with `ticket` out of the line, if it is still there.
    fn withdraw(&mut self, ticket: u64) -> Option<Arc<Event<T>>> {
        let places = &mut self.line.as_mut()?.places;
        let place = places.iter().position(|(t, _)| *t == ticket)?;
        places.remove(place).map(|(_, event)| event)
    }

    /// Empties the line; its events are for the caller to drop unlocked.
    fn clear_line(&mut self) -> VecDeque<(u64, Arc<Event<T>>)> {
        self.line
            .as_mut()
            .map(|line| std::mem::take(&mut line.places))
            .unwrap_or_default()
    }
}

/// A publisher's place in a queue's line ([`Push::InLine`]). Dropping it before its
/// event is queued takes the event out of the line.
pub(crate) struct Waiting<T> {
    queue: Arc<Queue<T>>,
    ticket: u64,
    finished: bool,
}

impl<T> Waiting<T> {
    pub(crate) fn new(queue: Arc<Queue<T>>, ticket: u64) -> Self {
        Self {
            queue,
            ticket,
            finished: false,
        }
    }

    /// Waits until the event is queued (true) or the subscription is gone (false).
    pub(crate) async fn queued(mut self) -> bool {
        loop {
            let notified = self.queue.space.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.ticket < self.queue.served_below.load(Ordering::SeqCst) {
                self.finished = true;
                return true;
            }
            let queue = &self.queue;
            if queue.closed.load(Ordering::SeqCst) || queue.detached.load(Ordering::SeqCst) {
                self.finished = true;
                return false;
            }
            notified.await;
        }
    }
}

impl<T> Drop for Waiting<T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let withdrawn = lock(&self.queue.state).withdraw(self.ticket);
        // Dropped unlocked: a payload's destructor may use the bus.
        drop(withdrawn);
    }
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
                line: None,
                closed: false,
                detached: false,
                delivered: 0,
                dropped: 0,
                high_water: 0,
            }),
            space: Notify::new(),
            detached: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            served_below: AtomicU64::new(0),
            panics: AtomicU64::new(0),
        }
    }

    /// Queues `event` (or applies the overflow policy); under [`Overflow::Block`] with no
    /// room, puts it in the line ([`Push::InLine`]) rather than wait. What the
    /// [`Overflow::DropOldest`] policy pushes out goes to `evicted`, to be dropped once
    /// the caller holds no lock.
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
            if !reserved && lossless && !s.has_room_for(events.len(), self.capacity) {
                // Only `push` comes here, with one event.
                debug_assert_eq!(events.len(), 1, "only one event joins the line at once");
                return Push::InLine(s.join_line(&events[0]));
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

    /// Reserves up to `wanted` slots for [`Queue::push_reserved`] and returns how many
    /// it got: all of them under the drop policies (they make room themselves) and in a
    /// queue that is gone (nothing will be queued), else as many as there is room for.
    /// None while publishers wait in the line: they came first. A publisher that then
    /// waits for room does so in the line ([`Queue::push`]).
    pub(crate) fn try_reserve_up_to(&self, wanted: usize) -> usize {
        if self.policy != Overflow::Block {
            return wanted;
        }
        let mut s = lock(&self.state);
        let granted = if s.detached || s.closed {
            wanted
        } else if !s.line_is_empty() {
            // Publishers that came first wait for the room.
            0
        } else {
            wanted.min(self.capacity.saturating_sub(s.buf.len() + s.reserved))
        };
        s.reserved += granted;
        granted
    }

    /// Gives back `slots` from [`Queue::try_reserve_up_to`]: they go to the publishers
    /// waiting in the line, if any.
    pub(crate) fn unreserve(&self, slots: usize) {
        if self.policy != Overflow::Block || slots == 0 {
            return;
        }
        let waker = {
            let mut s = lock(&self.state);
            s.reserved -= slots;
            if !s.serve_line(self.capacity, &self.served_below) {
                return;
            }
            s.rx_waker.take()
        };
        self.space.notify_waiters();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether a [`Overflow::Block`] queue has no room now (it is full, or publishers
    /// wait in its line).
    pub(crate) fn is_full(&self) -> bool {
        let s = lock(&self.state);
        self.policy == Overflow::Block && !s.has_room_for(1, self.capacity)
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
            let notify = s.serve_line(self.capacity, &self.served_below);
            if batch.is_empty() {
                // Nothing was queued but reserved slots held the room.
                std::mem::swap(&mut s.buf, batch);
            }
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
    ///
    /// The bus closes its queues once no publish is under way, so the line is empty by
    /// then; were it not, its events would not be queued, and their publishers would be
    /// told the subscription is gone.
    pub(crate) fn close(&self) {
        let (waker, line) = {
            let mut s = lock(&self.state);
            s.closed = true;
            self.closed.store(true, Ordering::SeqCst);
            (s.rx_waker.take(), s.clear_line())
        };
        self.space.notify_waiters();
        if let Some(waker) = waker {
            waker.wake();
        }
        // Dropped unlocked: a payload's destructor may use the bus.
        drop(line);
    }

    /// Unsubscribed: nothing more is queued or handed over. Returns the events that were
    /// still queued, for the caller to drop once it has done the rest of unsubscribing
    /// (a payload's destructor may panic).
    #[must_use = "the unread events are dropped by the caller, last"]
    pub(crate) fn detach(&self) -> VecDeque<Arc<Event<T>>> {
        let (unread, waker) = {
            let mut s = lock(&self.state);
            s.detached = true;
            self.detached.store(true, Ordering::SeqCst);
            let mut unread = std::mem::take(&mut s.buf);
            unread.extend(s.clear_line().into_iter().map(|(_, event)| event));
            (unread, s.rx_waker.take())
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

    use super::{Batch, Overflow, Push, Queue, Waiting};
    use crate::{Event, Subject};

    /// Counts its wakes.
    #[derive(Default)]
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn event(payload: u32) -> Arc<Event<u32>> {
        Arc::new(Event::new(
            0,
            SystemTime::now(),
            Subject::new("a").expect("valid"),
            payload,
        ))
    }

    #[test]
    fn giving_back_a_reservation_serves_the_line_and_wakes_its_publisher_and_reader() {
        let queue = Arc::new(Queue::new(1, Overflow::Block, 1));
        let reader = Arc::new(CountingWaker::default());
        let reader_waker = Waker::from(Arc::clone(&reader));
        let mut batch = std::collections::VecDeque::new();
        let empty = queue.take_batch(&mut batch, &mut Context::from_waker(&reader_waker));
        assert!(matches!(empty, Batch::Empty), "the reader waits");
        assert_eq!(queue.try_reserve_up_to(1), 1, "the only slot, reserved");
        let Push::InLine(ticket) = queue.push(&event(7), &mut Vec::new()) else {
            panic!("no room: the event joins the line");
        };

        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let mut waiting = Box::pin(Waiting::new(Arc::clone(&queue), ticket).queued());
        assert!(waiting.as_mut().poll(&mut cx).is_pending(), "no room");

        queue.unreserve(1);
        assert_eq!(queue.stats().queued, 1, "queued by whoever freed the room");
        assert_eq!(
            reader.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the reader is told"
        );
        assert_eq!(
            counter.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "told"
        );
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(true));
    }

    #[test]
    fn a_withdrawn_place_leaves_the_line_and_its_event_is_never_queued() {
        let queue = Arc::new(Queue::new(1, Overflow::Block, 1));
        assert!(matches!(queue.push(&event(1), &mut Vec::new()), Push::Done));
        let Push::InLine(first) = queue.push(&event(2), &mut Vec::new()) else {
            panic!("full");
        };
        let Push::InLine(second) = queue.push(&event(3), &mut Vec::new()) else {
            panic!("the line is not empty");
        };
        drop(Waiting::new(Arc::clone(&queue), first));
        assert_eq!(queue.try_reserve_up_to(1), 0, "the line holds the room");

        let mut batch = std::collections::VecDeque::new();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            queue.take_batch(&mut batch, &mut cx),
            Batch::Got { .. }
        ));
        assert_eq!(batch.iter().map(|e| *e.payload()).collect::<Vec<_>>(), [1]);
        batch.clear();
        assert!(matches!(
            queue.take_batch(&mut batch, &mut cx),
            Batch::Got { .. }
        ));
        assert_eq!(
            batch.iter().map(|e| *e.payload()).collect::<Vec<_>>(),
            [3],
            "the withdrawn event is skipped"
        );
        let mut waiting = Box::pin(Waiting::new(Arc::clone(&queue), second).queued());
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(true));
    }
}
