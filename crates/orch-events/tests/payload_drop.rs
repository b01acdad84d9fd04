//! A payload's destructor runs outside the bus's locks: one that publishes to its bus and
//! subscribes to it does not deadlock, however the bus comes to drop it (no subscriber,
//! the new event refused or an old one evicted by a full queue, an event pushed out of
//! the history), with each way of publishing. And one that panics, left unread when its
//! subscription is dropped, does not leave the subscription on the bus.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use orch_events::{EventBus, Overflow, Subject, SubscribeOptions};

/// A payload whose destructor publishes a plain event on its bus and subscribes to it,
/// counting the destructors that got that far.
enum Payload {
    Plain,
    UsesTheBus(EventBus<Payload>, Arc<AtomicUsize>),
}

impl Drop for Payload {
    fn drop(&mut self) {
        if let Payload::UsesTheBus(bus, dropped) = self {
            let _ = bus.try_publish("echo.dropped", Payload::Plain);
            if bus.subscribe("echo.>").is_ok() {
                dropped.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Ways to publish one event.
#[derive(Clone, Copy, Debug)]
enum Publish {
    Wait,
    Try,
    Batch,
}

fn publish(bus: &EventBus<Payload>, dropped: &Arc<AtomicUsize>, how: Publish, subject: &str) {
    let payload = Payload::UsesTheBus(bus.clone(), Arc::clone(dropped));
    match how {
        Publish::Wait => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            runtime
                .block_on(bus.publish(subject, payload))
                .expect("published");
        }
        Publish::Try => {
            assert!(bus.try_publish(subject, payload).is_ok(), "published");
        }
        Publish::Batch => {
            let subject = Subject::new(subject).expect("a subject");
            let mut events = VecDeque::from([(subject, payload)]);
            assert_eq!(bus.try_publish_batch(&mut events), Ok(1));
        }
    }
}

/// Runs `scenario` on a thread of its own; fails if it has not ended in 10 s (a
/// deadlock), which is a bound on a broken build, not a timing.
fn ends(what: &str, scenario: impl FnOnce() + Send + 'static) {
    let (done, ended) = mpsc::channel();
    std::thread::spawn(move || {
        scenario();
        let _ = done.send(());
    });
    ended
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what}: deadlocked or panicked"));
}

#[test]
fn a_payload_dropped_with_no_subscriber_may_use_the_bus() {
    for how in [Publish::Wait, Publish::Try, Publish::Batch] {
        ends(&format!("{how:?}"), move || {
            let (bus, dropped) = (EventBus::new(), Arc::default());
            publish(&bus, &dropped, how, "work.done");
            // Its destructor published and subscribed (the bus's write lock).
            assert_eq!(dropped.load(Ordering::SeqCst), 1);
        });
    }
}

#[test]
fn a_payload_a_full_queue_drops_may_use_the_bus() {
    for overflow in [Overflow::DropOldest, Overflow::DropNewest] {
        for how in [Publish::Wait, Publish::Try, Publish::Batch] {
            ends(&format!("{overflow:?}, {how:?}"), move || {
                let (bus, dropped) = (EventBus::new(), Arc::default());
                let options = SubscribeOptions::new().capacity(1).overflow(overflow);
                let _slow = bus.subscribe_with("work.>", options).expect("subscribed");
                publish(&bus, &dropped, how, "work.one");
                publish(&bus, &dropped, how, "work.two");
                // One of the two was dropped, and its destructor used the bus.
                assert_eq!(dropped.load(Ordering::SeqCst), 1);
            });
        }
    }
}

#[test]
fn a_payload_pushed_out_of_the_history_may_use_the_bus() {
    for how in [Publish::Wait, Publish::Try, Publish::Batch] {
        ends(&format!("{how:?}"), move || {
            let (bus, dropped) = (EventBus::builder().history(1).build(), Arc::default());
            publish(&bus, &dropped, how, "work.one");
            publish(&bus, &dropped, how, "work.two");
            // The first left the history, its last holder; its destructor published,
            // which pushed the second out in turn; both destructors used the bus.
            assert_eq!(dropped.load(Ordering::SeqCst), 2);
        });
    }
}

/// A payload whose destructor panics.
struct Explodes;

impl Drop for Explodes {
    fn drop(&mut self) {
        panic!("a payload's destructor panicked");
    }
}

#[test]
fn a_panicking_payload_left_unread_does_not_keep_its_subscription_routed() {
    let bus: EventBus<Explodes> = EventBus::new();
    let subscription = bus.subscribe("boom.>").expect("subscribes");
    let Ok(_) = bus.try_publish("boom.now", Explodes) else {
        panic!("published");
    };
    let unsubscribed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(subscription);
    }));
    assert!(unsubscribed.is_err(), "the payload's destructor ran");
    assert_eq!(
        bus.subscription_count(),
        0,
        "the subscription is gone from the bus"
    );
}

/// A payload whose destructor panics when its flag says so.
struct Named(&'static str, bool);

impl Drop for Named {
    fn drop(&mut self) {
        if self.1 {
            panic!("the destructor of `{}` panicked", self.0);
        }
    }
}

#[test]
fn an_evicted_payload_that_panics_does_not_keep_the_event_from_a_full_lossless_queue() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let bus: EventBus<Named> = EventBus::new();
        let lossy = SubscribeOptions::new()
            .capacity(1)
            .overflow(Overflow::DropOldest);
        let lossy = bus.subscribe_with("a", lossy).expect("subscribes");
        let lossless = SubscribeOptions::new()
            .capacity(1)
            .overflow(Overflow::Block);
        let mut lossless = bus.subscribe_with(">", lossless).expect("subscribes");
        assert!(bus.try_publish("a", Named("first", true)).is_ok());
        // Read: the lossy queue now holds the only reference to `first`.
        drop(lossless.recv_event().await);
        assert!(bus.try_publish("b", Named("second", false)).is_ok());
        // `third` evicts `first` from the lossy queue and waits for room in the full
        // lossless one.
        let publisher = tokio::spawn({
            let bus = bus.clone();
            async move { bus.publish("a", Named("third", false)).await.map(|_| ()) }
        });
        // Once `first` is evicted, the publisher waits (or, as it once did, has dropped
        // `first` and panicked without waiting).
        while lossy.stats().dropped == 0 {
            tokio::task::yield_now().await;
        }
        let second = lossless.recv_event().await.map(|e| e.payload().0);
        assert_eq!(second, Some("second"));
        let published = publisher.await;
        assert!(published.is_err(), "the destructor of `first` panicked");
        bus.close().await;
        let third = lossless.recv_event().await.map(|e| e.payload().0);
        assert_eq!(
            third,
            Some("third"),
            "the lossless subscriber got the event"
        );
    });
}
