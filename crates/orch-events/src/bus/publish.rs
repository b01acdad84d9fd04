//! Publishing one event: [`EventBus::publish`], which waits for room, and
//! [`EventBus::try_publish`], which goes to every subscription or to none.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, atomic::Ordering},
    time::SystemTime,
};

use super::{EventBus, Inner};
use crate::{
    Event, IntoSubject, PublishError, Subject, SubscriptionId, TryPublishError,
    TryPublishErrorKind,
    queue::{Push, Waiting},
    routes::Matches,
};

impl<T> Inner<T> {
    /// Numbers the event and queues it for every matching subscription, using the slots
    /// [`reserve_all`] took in the lossless ones, and returns it. What it evicts goes to
    /// `evicted`: the caller drops both once it holds no lock (a payload's destructor
    /// may use the bus).
    pub(super) fn deliver_reserved(
        &self,
        subject: Subject,
        payload: T,
        at: SystemTime,
        matches: &Matches<'_, T>,
        evicted: &mut Vec<Arc<Event<T>>>,
    ) -> Arc<Event<T>> {
        let event = self.stamp(subject, payload, at, evicted);
        for queue in matches.iter() {
            queue.push_reserved(std::slice::from_ref(&event), evicted);
        }
        event
    }
}

/// Decrements the in-flight count even if the publish future is dropped.
struct InFlight<'a, T>(&'a Inner<T>);

impl<T> Drop for InFlight<'_, T> {
    fn drop(&mut self) {
        self.0.finish_in_flight();
    }
}

impl<T> EventBus<T> {
    /// Publishes `payload` on `subject` to every matching subscription and returns its
    /// sequence number.
    ///
    /// Waits while a matching [`Block`](crate::Overflow::Block) subscription has no room
    /// (its queue is full, or publishers that came first wait for its room); never waits
    /// for the drop policies. When it returns, the event is queued for
    /// every matching subscription (or dropped and counted by its policy).
    ///
    /// Publishers waiting for a subscription's room get it in the order they came, and
    /// before any publisher that comes after them (a [`EventBus::try_publish`] is
    /// refused meanwhile). The room goes to the waiting event itself: a publish future
    /// that is kept but not polled (left behind by a `select!`, say) still has its event
    /// queued when the subscriber makes room, and holds up no other publisher (but
    /// [`EventBus::close`] waits for the future to finish or be dropped). If the future is
    /// dropped while waiting, its event reaches the subscriptions that had room for it
    /// by then, and no others.
    ///
    /// # Errors
    /// [`PublishError::InvalidSubject`] or [`PublishError::Closed`]; nothing is published.
    pub async fn publish(
        &self,
        subject: impl IntoSubject,
        payload: T,
    ) -> Result<u64, PublishError> {
        self.publish_numbered(subject, payload, |_| {}).await
    }

    /// As [`EventBus::publish`], and calls `numbered` with the event's sequence number
    /// before any subscription can receive the event: a subscriber of the same bus can
    /// then tell the events this publisher sent (say, so as not to pass them back where
    /// they came from), even while the publish still waits for room elsewhere.
    ///
    /// `numbered` runs while the bus's subscriptions are locked for reading: it must
    /// not call the bus at all (not even [`EventBus::is_closed`] or
    /// [`EventBus::subscription_count`], which read the same lock: a subscribe waiting
    /// in between would leave both waiting for ever).
    ///
    /// A panic in `numbered` is passed on once the bus is unlocked, without waiting: the
    /// event, numbered already, then reaches only the subscriptions that had room for it
    /// (a payload's destructor that panics on the way is passed on instead).
    ///
    /// # Errors
    /// As [`EventBus::publish`]; `numbered` is then not called.
    pub async fn publish_numbered(
        &self,
        subject: impl IntoSubject,
        payload: T,
        numbered: impl FnOnce(u64),
    ) -> Result<u64, PublishError> {
        let subject = subject.into_subject()?;
        // Like tokio's own channels: a publisher that never has to wait still yields to
        // the scheduler now and then, so the subscribers it wakes get to run.
        tokio::task::consume_budget().await;
        let inner = &*self.inner;
        let mut waiting = Vec::new();
        // Payload destructors run once no lock is held: they may use the bus.
        let mut evicted = Vec::new();
        let numbering;
        let (event, _in_flight) = {
            let routes = inner.read();
            if routes.closed {
                return Err(PublishError::Closed);
            }
            let matches = routes.matches(&subject);
            let event = inner.stamp(subject, payload, SystemTime::now(), &mut evicted);
            // Its panic is passed on once the bus is unlocked, after the event is queued.
            numbering = catch_unwind(AssertUnwindSafe(|| numbered(event.seq())));
            for queue in matches.iter() {
                if let Push::InLine(ticket) = queue.push(&event, &mut evicted) {
                    waiting.push(Waiting::new(Arc::clone(queue), ticket));
                }
            }
            let in_flight = (!waiting.is_empty()).then(|| {
                inner.in_flight.fetch_add(1, Ordering::AcqRel);
                InFlight(inner)
            });
            (event, in_flight)
        };
        if let Err(panic) = numbering {
            drop((waiting, _in_flight, event, evicted));
            std::panic::resume_unwind(panic);
        }
        // Every queue's line holds the event already; each queues it when it has room.
        for place in waiting {
            place.queued().await;
        }
        // After the waits: a destructor that panics must not keep the event from the
        // subscriptions that had no room yet.
        drop(evicted);
        Ok(event.seq())
    }

    /// Publishes without ever waiting: either the event goes to every matching
    /// subscription (drop policies apply as usual) and its sequence number is returned,
    /// or nothing is published and the payload comes back in the error.
    ///
    /// Nothing is published if a matching [`Block`](crate::Overflow::Block) subscription
    /// has no room: it is full, or publishers that came first wait for its room
    /// ([`TryPublishErrorKind::Full`] lists such subscriptions). That policy promises no
    /// loss, so the event goes to all or to none. Room is reserved in every such queue
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
        // Payload destructors run once no lock is held: they may use the bus.
        let mut evicted = Vec::new();
        let routes = inner.read();
        if routes.closed {
            return Err(TryPublishError::new(TryPublishErrorKind::Closed, payload));
        }
        let matches = routes.matches(&subject);
        if let Err(first_full) = reserve_all(&matches) {
            // List the queues with no room now.
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
        let event =
            inner.deliver_reserved(subject, payload, SystemTime::now(), &matches, &mut evicted);
        drop(matches);
        drop(routes);
        Ok(event.seq())
    }
}

/// Reserves a slot in every matching [`Block`](crate::Overflow::Block) queue, so an event
/// goes to all of them or to none. On the first one with no room, gives the reservations
/// back and returns its index in `matches`.
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
