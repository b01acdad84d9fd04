//! Events and what a subscriber receives.

use std::{sync::Arc, time::SystemTime};

use serde::Serialize;

use crate::Subject;

/// One published event. Allocated once per publish and shared (`Arc`) by every
/// subscriber it is delivered to.
#[derive(Debug, Clone, Serialize)]
pub struct Event<T> {
    seq: u64,
    timestamp: SystemTime,
    subject: Subject,
    payload: T,
}

impl<T> Event<T> {
    pub(crate) fn new(seq: u64, timestamp: SystemTime, subject: Subject, payload: T) -> Self {
        Self {
            seq,
            timestamp,
            subject,
            payload,
        }
    }

    /// The per-bus sequence number: 0 for the bus's first event, then one more for each
    /// publish. Each publisher's events get increasing numbers in publish order.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When it was published (wall clock). The events of one
    /// [`EventBus::try_publish_batch`](crate::EventBus::try_publish_batch) share the
    /// time the batch was published.
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }

    /// The subject it was published on.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }
}

/// What a subscription yields: an event, or a notice of how many events its overflow
/// policy dropped at this point of the stream.
#[derive(Debug, Clone)]
pub enum Delivery<T> {
    /// An event.
    Event(Arc<Event<T>>),
    /// This many events matching the subscription were dropped here (never under
    /// [`Overflow::Block`](crate::Overflow::Block)). Under
    /// [`DropOldest`](crate::Overflow::DropOldest) they came before the events that
    /// follow; under [`DropNewest`](crate::Overflow::DropNewest), after the events that
    /// came before.
    Lagged(u64),
}

impl<T> Delivery<T> {
    /// The event, if this is one.
    pub fn event(&self) -> Option<&Arc<Event<T>>> {
        match self {
            Self::Event(event) => Some(event),
            Self::Lagged(_) => None,
        }
    }

    /// The event, if this is one.
    pub fn into_event(self) -> Option<Arc<Event<T>>> {
        match self {
            Self::Event(event) => Some(event),
            Self::Lagged(_) => None,
        }
    }
}
