//! The orch event bus: a fast pub/sub bus, lossless by default ([`Overflow::Block`]).
//! Publish events on dotted subjects, subscribe with NATS-style wildcard patterns. It
//! knows nothing of workflows.
//!
//! ```
//! use orch_events::{Delivery, EventBus};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus: EventBus = EventBus::new(); // payload: serde_json::Value
//! let mut completed = bus.subscribe("workflow.*.task.*.completed")?;
//! let mut everything = bus.subscribe("workflow.>")?;
//!
//! let seq = bus.publish("workflow.etl.task.load.completed", json!({"rows": 42})).await?;
//! bus.publish("workflow.etl.started", json!({})).await?;
//! bus.close().await; // subscribers get everything published before, then end
//!
//! let Some(Delivery::Event(event)) = completed.recv().await else { panic!("no event") };
//! assert_eq!(event.seq(), seq);
//! assert_eq!(event.subject().as_str(), "workflow.etl.task.load.completed");
//! assert_eq!(event.payload()["rows"], 42);
//! assert!(completed.recv().await.is_none());
//!
//! let mut subjects = Vec::new();
//! while let Some(event) = everything.recv_event().await {
//!     subjects.push(event.subject().to_string());
//! }
//! assert_eq!(subjects, ["workflow.etl.task.load.completed", "workflow.etl.started"]);
//! # Ok(())
//! # }
//! ```
//!
//! # Subjects and patterns
//! A [`Subject`] is dot-separated tokens (`workflow.etl.task.load.completed`). A
//! [`Pattern`] may use `*` for exactly one token and, as its last token, `>` for one or
//! more tokens, as NATS does: `a.>` matches `a.b` and `a.b.c` but not `a`; `a.*`
//! matches `a.b` only. Invalid ones are [`SubjectError`]s naming the token at fault.
//!
//! # Delivery
//! Routing goes through a subject trie: a publish costs a few look-ups per subject
//! token and per pattern prefix it matches, not one per subscription (patterns with
//! `*` in many places can match many prefixes of one subject). The answer is cached from a subject's
//! second publish until the next subscribe or unsubscribe (within the bounds under
//! Limits), and a batch ([`EventBus::try_publish_batch`]) reuses one answer for
//! consecutive events whose subjects share the leading tokens that decided it. Each event is allocated once and shared
//! ([`Arc`](std::sync::Arc)). Every subscription has a bounded queue and an
//! [`Overflow`] policy: [`Overflow::Block`] (the default: the publisher waits, nothing is
//! lost), [`Overflow::DropOldest`] or [`Overflow::DropNewest`] (the publisher never waits;
//! the subscriber gets a [`Delivery::Lagged`] notice with the number it missed, and
//! [`SubscriptionStats`] counts them). Each subscriber sees each publisher's events in
//! publish order.
//!
//! [`EventBus::publish`] waits for room under `Block`; [`EventBus::try_publish`] never
//! waits: it delivers to all matching subscriptions or, if a `Block` one has no room
//! (it is full, or publishers that came first wait for its room), to none, and hands the
//! payload back with those subscriptions' ids. Publishers waiting for room get it in the
//! order they came.
//!
//! Subscribe as a [`Subscription`] ([`futures_core::Stream`]; dropping it unsubscribes) or
//! with a callback ([`EventBus::subscribe_fn`], panics caught and counted). With
//! [`EventBusBuilder::history`], a late subscriber can replay from a sequence number
//! ([`SubscribeOptions::replay_from`]).
//!
//! # Limits
//! - A subject or pattern has at most [`MAX_TOKENS`] (256) tokens; a longer one is refused,
//!   when publishing or subscribing, with [`SubjectError::TooManyTokens`]. Real subjects
//!   have a handful of tokens; the limit bounds the routing work of each publish. Routing
//!   never recurses per token, so no subject or pattern can exhaust a thread's stack.
//! - The route cache (see Delivery) holds at most 8,192 subjects, and at most 1 MiB in
//!   the text of those longer than 56 bytes and in their lists of subscriptions (besides
//!   its table: some 100 bytes per subject, a short subject's text included); a route
//!   that would take more than
//!   16 KiB by itself (a subject longer than that, or one matched by about 2,000
//!   subscriptions or more) is never cached, and is looked up in the trie each time. So
//!   once their events are consumed, the subjects published on a bus keep no more than
//!   that alive, however many and however long they were.

mod bus;
mod callback;
mod error;
mod event;
mod queue;
mod route_cache;
mod routes;
mod subject;
mod subscription;
mod trie;

pub use bus::{BusId, EventBus, EventBusBuilder};
pub use callback::CallbackSubscription;
pub use error::{PublishError, SubjectError, SubscribeError, TryPublishError, TryPublishErrorKind};
pub use event::{Delivery, Event};
pub use queue::{Overflow, SubscriptionStats};
pub use subject::{IntoSubject, MAX_TOKENS, Pattern, Subject};
pub use subscription::{SubscribeOptions, Subscription, SubscriptionId};
