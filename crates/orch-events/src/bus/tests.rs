//! The closing of a bus against publishes still under way.

use std::time::Duration;

use crate::{Delivery, EventBus, Overflow, SubscribeOptions};

/// A publish that finished just before another began waiting for room may get to its
/// closing step only after `close` was called: that step must leave the subscriptions to
/// the publish still under way, which then delivers its event before they end.
#[test]
fn a_late_closing_step_leaves_a_waiting_publish_its_subscribers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let bus: EventBus<u32> = EventBus::new();
        let options = SubscribeOptions::new()
            .capacity(1)
            .overflow(Overflow::Block);
        let mut slow = bus.subscribe_with("jobs.>", options).expect("subscribes");
        bus.publish("jobs.first", 1).await.expect("room for one");
        let waiting = tokio::spawn({
            let bus = bus.clone();
            async move { bus.publish("jobs.second", 2).await }
        });
        while bus
            .inner
            .in_flight
            .load(std::sync::atomic::Ordering::Acquire)
            == 0
        {
            tokio::task::yield_now().await;
        }
        let closing = tokio::spawn({
            let bus = bus.clone();
            async move { bus.close().await }
        });
        while !bus.is_closed() {
            tokio::task::yield_now().await;
        }
        // The closing step of the publish that finished first, arriving late.
        bus.inner.close_queues();

        let mut seen = Vec::new();
        while let Some(delivery) = tokio::time::timeout(Duration::from_secs(5), slow.recv())
            .await
            .expect("no hang")
        {
            if let Delivery::Event(event) = delivery {
                seen.push(*event.payload());
            }
        }
        assert_eq!(
            seen,
            [1, 2],
            "every event published before the close arrives"
        );
        waiting.await.expect("no panic").expect("published");
        closing.await.expect("no panic");
    });
}

/// `closed` waits while the bus is open, even with publishes coming and going, and ends
/// with `close`; once closed, it returns at once.
#[tokio::test]
async fn closed_waits_for_close_and_then_returns_at_once() {
    let bus: EventBus<u32> = EventBus::new();
    let _events = bus.subscribe("jobs.>").expect("subscribes");
    let waiting = tokio::spawn({
        let bus = bus.clone();
        async move { bus.closed().await }
    });
    for n in 0..100 {
        bus.publish("jobs.x", n).await.expect("published");
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "the bus is still open");
    bus.close().await;
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken by close")
        .expect("no panic");
    tokio::time::timeout(Duration::from_secs(5), bus.closed())
        .await
        .expect("returns at once on a closed bus");
}

/// Whether `subscription` has ended: nothing queued and nothing more to come.
fn has_ended(subscription: &mut crate::Subscription<u32>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(
        subscription.poll_recv(&mut cx),
        std::task::Poll::Ready(None)
    )
}

/// A `close` returns only once every subscription has ended, even when another `close`
/// is the one ending them (the last publish under way on a closed bus ends them through
/// the same step, `close_queues`).
#[test]
fn close_returns_only_once_every_subscription_has_ended() {
    let close = |bus: &EventBus<u32>| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(bus.close());
    };
    let bus: EventBus<u32> = EventBus::new();
    // One pattern: the subscriptions end in the order they were made, and ending this
    // many takes the first `close` a while.
    let one_event = crate::SubscribeOptions::new().capacity(1);
    let mut subscriptions: Vec<_> = (0..100_000)
        .map(|_| (bus.subscribe_with("jobs.done", one_event.clone())).expect("subscribes"))
        .collect();
    let second = std::thread::spawn({
        let bus = bus.clone();
        move || {
            while !has_ended(&mut subscriptions[0]) {
                std::hint::spin_loop();
            }
            close(&bus);
            let last = subscriptions.last_mut().expect("subscriptions");
            has_ended(last)
        }
    });
    close(&bus);
    assert!(
        second.join().expect("no panic"),
        "the second close returned before the last subscription ended"
    );
}
