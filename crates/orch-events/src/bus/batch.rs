//! Publishing a batch: one routing lock for all of it, and one queue lock (and at most
//! one wake) per subscription for each run of events that go to the same subscriptions.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use super::EventBus;
use crate::{
    PublishError, Subject,
    routes::Matches,
    trie::{Reach, begins_with_tokens},
};

/// The most events queued per queue lock.
const RUN: usize = 1024;

impl<T> EventBus<T> {
    /// Publishes events from the front of `events`, in order, without ever waiting, and
    /// returns how many it published. It stops at the first event that a
    /// [`Block`](crate::Overflow::Block) subscription has no room for yet (it is full, or
    /// publishers that came first wait for its room); that event and the
    /// rest stay in `events`. Each event goes to all its subscriptions or to none, as with
    /// [`EventBus::try_publish`], but the routing lock is taken once for the whole batch,
    /// and consecutive events bound for the same subscriptions are queued together. The
    /// events of one batch share one timestamp.
    ///
    /// # Errors
    /// [`PublishError::Closed`]; nothing is published.
    ///
    /// ```
    /// use orch_events::{EventBus, Subject, SubscribeOptions};
    /// use std::collections::VecDeque;
    ///
    /// let bus: EventBus<u32> = EventBus::new();
    /// let _small = bus.subscribe_with("jobs.>", SubscribeOptions::new().capacity(2)).unwrap();
    /// let subject = Subject::new("jobs.done").unwrap();
    /// let mut events: VecDeque<_> = (0..3).map(|i| (subject.clone(), i)).collect();
    /// assert_eq!(bus.try_publish_batch(&mut events), Ok(2));
    /// assert_eq!(events.front().map(|(_, n)| *n), Some(2)); // waits for room
    /// ```
    pub fn try_publish_batch(
        &self,
        events: &mut VecDeque<(Subject, T)>,
    ) -> Result<usize, PublishError> {
        let inner = &*self.inner;
        // Events nothing else holds any more, dropped once no lock is held: a payload's
        // destructor may use the bus.
        let mut orphans = Vec::new();
        let routes = inner.read();
        if routes.closed {
            return Err(PublishError::Closed);
        }
        let at = SystemTime::now();
        let mut published = 0;
        let mut stamped = Vec::new();
        let mut evicted = Vec::new();
        let mut spare = Vec::new();
        // The route of `events[0]`, when it was looked up while extending the last run.
        let mut next: Option<(Matches<'_, T>, Reach)> = None;
        while let Some((first, _)) = events.front() {
            let (matches, reach) = match next.take() {
                Some(route) => route,
                None => routes.matches_reusing(first, std::mem::take(&mut spare)),
            };
            // The run of events with the same route: those whose subjects share the
            // tokens that decided the first one's need no look-up at all.
            let deciding = reach.deciding_prefix(first.as_str());
            let mut run = 1;
            while let Some((subject, _)) = events.get(run).filter(|_| run < RUN) {
                if deciding.is_some_and(|prefix| begins_with_tokens(subject.as_str(), prefix)) {
                    run += 1;
                    continue;
                }
                let route = routes.matches_reusing(subject, std::mem::take(&mut spare));
                if !route.0.same_queues(&matches) {
                    next = Some(route);
                    break;
                }
                spare = route.0.into_spare().unwrap_or_default();
                run += 1;
            }
            let granted = reserve_up_to(&matches, run);
            if granted == 0 {
                break;
            }
            stamped.extend(
                events
                    .drain(..granted)
                    .map(|(subject, payload)| inner.stamp(subject, payload, at, &mut evicted)),
            );
            for queue in matches.iter() {
                queue.push_reserved(&stamped, &mut evicted);
            }
            // Usually the queues hold them: letting go is a count going down.
            let unheld = stamped.drain(..).chain(evicted.drain(..));
            orphans.extend(unheld.filter_map(Arc::into_inner));
            published += granted;
            if granted < run {
                break;
            }
            spare = matches.into_spare().unwrap_or_default();
        }
        Ok(published)
    }
}

/// Reserves the same number of slots, as many as possible up to `wanted`, in every
/// lossless queue of `matches`, and returns it. Each queue is asked for what the one
/// before it granted; the last answer is what all can take, and the queues that granted
/// more give the excess back.
fn reserve_up_to<T>(matches: &Matches<'_, T>, wanted: usize) -> usize {
    let mut granted = Vec::new();
    let mut least = wanted;
    for queue in matches.iter() {
        least = queue.try_reserve_up_to(least);
        if matches.len() > 1 {
            granted.push(least);
        }
        if least == 0 {
            break;
        }
    }
    for (queue, got) in matches.iter().zip(granted) {
        queue.unreserve(got - least);
    }
    least
}
