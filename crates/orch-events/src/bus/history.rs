//! The history a bus keeps for late subscribers: numbering events in order, keeping the
//! last few, and replaying them from a sequence number.

use std::{
    collections::VecDeque,
    sync::{Arc, atomic::Ordering},
    time::SystemTime,
};

use super::{EventBus, Inner, lock};
use crate::{Event, Pattern, Subject, SubscribeError};

/// The last `capacity` events, oldest first.
pub(super) struct History<T> {
    events: VecDeque<Arc<Event<T>>>,
    capacity: usize,
}

impl<T> History<T> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            events: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }
}

impl<T> Inner<T> {
    /// Numbers the event and keeps it in the history; the event that leaves the history
    /// for it goes to `evicted`, to be dropped once the caller holds no lock. Called under
    /// the routing read lock, so a subscriber (which takes the write lock) sees every
    /// event either in the history or live, never both, never neither.
    pub(super) fn stamp(
        &self,
        subject: Subject,
        payload: T,
        at: SystemTime,
        evicted: &mut Vec<Arc<Event<T>>>,
    ) -> Arc<Event<T>> {
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
                    evicted.extend(history.events.pop_front());
                }
                history.events.push_back(Arc::clone(&event));
                event
            }
        }
    }
}

impl<T> EventBus<T> {
    /// The kept events matching `pattern` from `from` on. Called under the write lock.
    pub(super) fn backlog(
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
}
