//! Delivery guarantees: no loss and order under Block, exact drop counts, panic isolation,
//! unsubscribe, replay, close.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use futures_core::Stream;
use orch_events::{
    Delivery, EventBus, Overflow, PublishError, SubjectError, SubscribeError, SubscribeOptions,
    Subscription, TryPublishErrorKind,
};

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime")
}

/// A subscription to `pattern` with room for `capacity` events and the `overflow` policy.
fn subscribe_to<T>(
    bus: &EventBus<T>,
    pattern: &str,
    capacity: usize,
    overflow: Overflow,
) -> Subscription<T> {
    bus.subscribe_with(
        pattern,
        SubscribeOptions::new()
            .capacity(capacity)
            .overflow(overflow),
    )
    .expect("subscribed")
}

/// Everything left in `sub` until it ends, as events' payloads (`Ok`) and lagged
/// notices (`Err`).
async fn drain<T: Clone>(sub: &mut Subscription<T>) -> Vec<Result<T, u64>> {
    let mut out = Vec::new();
    while let Some(delivery) = sub.recv().await {
        out.push(match delivery {
            Delivery::Event(event) => Ok(event.payload().clone()),
            Delivery::Lagged(n) => Err(n),
        });
    }
    out
}

/// An event carries the time it was published, and a sequence number that goes up.
#[tokio::test]
async fn an_event_carries_the_time_it_was_published_and_its_number() {
    let bus: EventBus<u32> = EventBus::new();
    let mut sub = subscribe_to(&bus, "tick", 8, Overflow::Block);
    let mut times = Vec::new();
    for n in 0..3 {
        let before = std::time::SystemTime::now();
        let seq = bus.publish("tick", n).await.expect("published");
        times.push((before, std::time::SystemTime::now(), seq));
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    for (n, (before, after, seq)) in times.into_iter().enumerate() {
        let Some(Delivery::Event(event)) = sub.recv().await else {
            panic!("an event");
        };
        assert_eq!((*event.payload(), event.seq()), (n as u32, seq));
        assert!(before <= event.timestamp() && event.timestamp() <= after);
    }
}

/// `publish_numbered` gives the event's number before a subscription can receive it,
/// also while the publish waits for room in a full one; an invalid subject is numbered
/// never.
#[tokio::test]
async fn a_numbered_publish_gives_the_number_before_the_event_arrives() {
    let bus: EventBus<u32> = EventBus::new();
    let _full = subscribe_to(&bus, "tick", 1, Overflow::Block);
    let mut open = subscribe_to(&bus, "tick", 8, Overflow::Block);
    bus.publish("tick", 0).await.expect("published");
    let noted = Arc::new(AtomicU64::new(u64::MAX));
    let publishing = tokio::spawn({
        let (bus, noted) = (bus.clone(), Arc::clone(&noted));
        async move {
            let note = |seq| noted.store(seq, Ordering::SeqCst);
            bus.publish_numbered("tick", 1, note).await
        }
    });
    let _ = open.recv().await; // the first event
    let Some(Delivery::Event(second)) = open.recv().await else {
        panic!("the second event, while its publish waits for room");
    };
    assert_eq!(noted.load(Ordering::SeqCst), second.seq());
    assert!(!publishing.is_finished(), "still waiting for room");
    let invalid = bus.publish_numbered("a..b", 2, |_| panic!("not numbered"));
    assert!(invalid.await.is_err());
}

/// A panic in `publish_numbered`'s `numbered` reaches its caller once the event is
/// queued: the event, numbered already, is not lost to the subscriptions with room.
#[tokio::test]
async fn a_numbered_publish_whose_numbering_panics_still_publishes() {
    let bus: EventBus<u32> = EventBus::new();
    let mut open = subscribe_to(&bus, "tick", 8, Overflow::Block);
    let publishing = tokio::spawn({
        let bus = bus.clone();
        async move {
            bus.publish_numbered("tick", 7, |_| panic!("numbering fails"))
                .await
        }
    });
    let panic = publishing.await.expect_err("the panic reaches the caller");
    let message = panic.into_panic();
    assert_eq!(message.downcast_ref::<&str>(), Some(&"numbering fails"));
    assert_eq!(drain_now(&mut open), [7], "the event was published");
    bus.publish("tick", 8).await.expect("the bus goes on");
    assert_eq!(drain_now(&mut open), [8]);
}

#[test]
fn block_loses_nothing_and_keeps_per_publisher_order() {
    const PUBLISHERS: usize = 4;
    const EVENTS: u64 = 5_000;
    multi_thread().block_on(async {
        let bus: EventBus<(usize, u64)> = EventBus::new();
        let mut consumers = Vec::new();
        for capacity in [1, 7, 64] {
            let mut sub = subscribe_to(&bus, "pub.>", capacity, Overflow::Block);
            consumers.push(tokio::spawn(async move {
                let mut next = [0u64; PUBLISHERS];
                let mut last_seq = [None::<u64>; PUBLISHERS];
                while let Some(delivery) = sub.recv().await {
                    let Delivery::Event(event) = delivery else {
                        panic!("Block never drops");
                    };
                    let (publisher, i) = *event.payload();
                    assert_eq!(i, next[publisher], "publisher {publisher} out of order");
                    next[publisher] += 1;
                    assert!(last_seq[publisher] < Some(event.seq()));
                    last_seq[publisher] = Some(event.seq());
                }
                (next, sub.stats())
            }));
        }
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    let subject = format!("pub.{p}");
                    for i in 0..EVENTS {
                        bus.publish(&subject, (p, i)).await.expect("published");
                    }
                })
            })
            .collect();
        for publisher in publishers {
            publisher.await.expect("publisher");
        }
        bus.close().await;
        for consumer in consumers {
            let (counts, stats) = consumer.await.expect("consumer");
            assert_eq!(counts, [EVENTS; PUBLISHERS]);
            assert_eq!(stats.delivered, EVENTS * PUBLISHERS as u64);
            assert_eq!(stats.dropped, 0);
        }
        assert_eq!(bus.next_seq(), EVENTS * PUBLISHERS as u64);
    });
}

#[tokio::test]
async fn drop_oldest_counts_exactly() {
    let bus: EventBus<u32> = EventBus::new();
    let options = SubscribeOptions::new()
        .capacity(4)
        .overflow(Overflow::DropOldest);
    let mut sub = bus.subscribe_with("a", options).expect("subscribed");
    for i in 0..10 {
        bus.publish("a", i).await.expect("never waits");
    }
    assert_eq!(
        sub.recv()
            .await
            .and_then(|d| d.event().is_none().then_some(())),
        Some(())
    );
    let stats = sub.stats();
    assert_eq!((stats.dropped, stats.high_water), (6, 4));
    // Read three more (the rest of that batch), then overflow again.
    for i in 0..3 {
        assert_eq!(sub.recv_event().await.map(|e| *e.payload()), Some(6 + i));
    }
    for i in 10..15 {
        bus.publish("a", i).await.expect("never waits");
    }
    bus.close().await;
    // 9 was already taken from the queue; 10 was dropped to make room for 14.
    assert_eq!(
        drain(&mut sub).await,
        [Ok(9), Err(1), Ok(11), Ok(12), Ok(13), Ok(14)]
    );
    let stats = sub.stats();
    assert_eq!((stats.delivered, stats.dropped, stats.queued), (8, 7, 0));
}

#[tokio::test]
async fn drop_oldest_reports_before_the_retained_events() {
    let bus: EventBus<u32> = EventBus::new();
    let options = SubscribeOptions::new()
        .capacity(4)
        .overflow(Overflow::DropOldest);
    let mut sub = bus.subscribe_with("a", options).expect("subscribed");
    for i in 0..10 {
        bus.publish("a", i).await.expect("never waits");
    }
    bus.close().await;
    assert_eq!(drain(&mut sub).await, [Err(6), Ok(6), Ok(7), Ok(8), Ok(9)]);
}

#[tokio::test]
async fn drop_newest_counts_exactly() {
    let bus: EventBus<u32> = EventBus::new();
    let options = SubscribeOptions::new()
        .capacity(4)
        .overflow(Overflow::DropNewest);
    let mut sub = bus.subscribe_with("a.*", options).expect("subscribed");
    for i in 0..10 {
        bus.publish("a.b", i).await.expect("never waits");
    }
    for i in 0..4 {
        assert_eq!(sub.recv_event().await.map(|e| *e.payload()), Some(i));
    }
    assert!(matches!(sub.recv().await, Some(Delivery::Lagged(6))));
    for i in 10..16 {
        bus.publish("a.c", i).await.expect("never waits");
    }
    bus.close().await;
    assert_eq!(
        drain(&mut sub).await,
        [Ok(10), Ok(11), Ok(12), Ok(13), Err(2)]
    );
    let stats = sub.stats();
    assert_eq!(
        (stats.delivered, stats.dropped, stats.high_water),
        (8, 8, 4)
    );
}

#[test]
fn slow_dropping_subscriber_does_not_hold_up_others() {
    multi_thread().block_on(async {
        let bus: EventBus<u32> = EventBus::new();
        // Never read until the end.
        let mut slow = subscribe_to(&bus, ">", 2, Overflow::DropOldest);
        let mut fast = bus.subscribe("x").expect("subscribed");
        let reader = tokio::spawn(async move { drain(&mut fast).await.len() });
        for i in 0..10_000 {
            bus.publish("x", i).await.expect("published");
        }
        bus.close().await;
        assert_eq!(reader.await.expect("reader"), 10_000);
        assert_eq!(drain(&mut slow).await, [Err(9_998), Ok(9_998), Ok(9_999)]);
    });
}

#[test]
fn panicking_callback_is_isolated() {
    multi_thread().block_on(async {
        let bus: EventBus<u64> = EventBus::new();
        let calls = Arc::new(AtomicU64::new(0));
        let mut callback = bus
            .subscribe_fn(">", SubscribeOptions::new().capacity(2), {
                let calls = Arc::clone(&calls);
                move |delivery: Delivery<u64>| {
                    let calls = Arc::clone(&calls);
                    async move {
                        let event = delivery.into_event().expect("Block never drops");
                        let n = *event.payload();
                        if n.is_multiple_of(3) {
                            panic!("callback panics on {n}");
                        }
                        tokio::task::yield_now().await;
                        if n % 3 == 1 {
                            panic!("callback panics after await on {n}");
                        }
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .expect("subscribed");
        let mut other = bus.subscribe("x.*").expect("subscribed");
        let reader = tokio::spawn(async move { drain(&mut other).await });
        for i in 0..300 {
            bus.publish("x.y", i).await.expect("publisher unaffected");
        }
        bus.close().await;
        let expected: Vec<Result<u64, u64>> = (0..300).map(Ok).collect();
        assert_eq!(reader.await.expect("reader"), expected);
        callback.finished().await;
        let stats = callback.stats();
        assert_eq!(stats.panics, 200);
        assert_eq!(stats.delivered, 300);
        assert_eq!(
            callback.last_panic().as_deref(),
            Some("callback panics after await on 298")
        );
        assert!(callback.is_finished());
        assert_eq!(calls.load(Ordering::Relaxed), 100);
    });
}

/// A panic as a callback's future is dropped (something it holds panics in its
/// destructor) is caught and counted as one in its call: the next delivery proceeds.
#[test]
fn a_callback_whose_future_panics_as_it_is_dropped_is_isolated() {
    /// Panics when dropped.
    struct PanicsOnDrop(u64);
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("dropping the future of call {}", self.0);
        }
    }
    /// A future done at once that holds its guard until it is dropped.
    struct Holding(#[allow(dead_code)] PanicsOnDrop);
    impl std::future::Future for Holding {
        type Output = ();
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            std::task::Poll::Ready(())
        }
    }
    multi_thread().block_on(async {
        let callback = three_panicking_calls(|delivery: Delivery<u64>| {
            let event = delivery.into_event().expect("Block never drops");
            Holding(PanicsOnDrop(*event.payload()))
        })
        .await;
        assert_eq!(
            callback.last_panic().as_deref(),
            Some("dropping the future of call 2")
        );
    });
}

/// A callback that panics with a payload that itself panics when dropped (given to
/// `std::panic::panic_any`) is isolated too: dropping that payload once ended the
/// subscription's task, and no later event reached the callback.
#[test]
fn a_callback_whose_panic_payload_panics_when_dropped_is_isolated() {
    /// Panics when dropped, unless the thread is already unwinding.
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("dropping a panic's payload");
            }
        }
    }
    multi_thread().block_on(async {
        let callback =
            three_panicking_calls(|_: Delivery<u64>| async { std::panic::panic_any(PanicsOnDrop) })
                .await;
        assert_eq!(
            callback.last_panic().as_deref(),
            Some("non-string panic payload")
        );
    });
}

/// Subscribes `call`, whose every call panics, publishes three events and closes the
/// bus; checks that each made a call and each panic was counted. The subscription, for
/// more checks.
async fn three_panicking_calls<Fut>(
    call: impl Fn(Delivery<u64>) -> Fut + Send + Sync + 'static,
) -> orch_events::CallbackSubscription<u64>
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let bus: EventBus<u64> = EventBus::new();
    let calls = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&calls);
    let counted_call = move |delivery: Delivery<u64>| {
        counted.fetch_add(1, Ordering::Relaxed);
        call(delivery)
    };
    let mut callback =
        (bus.subscribe_fn(">", SubscribeOptions::new(), counted_call)).expect("subscribed");
    for i in 0..3 {
        bus.publish("x", i).await.expect("published");
    }
    bus.close().await;
    callback.finished().await;
    assert_eq!(
        calls.load(Ordering::Relaxed),
        3,
        "every delivery made a call"
    );
    assert_eq!(callback.stats().panics, 3);
    callback
}

#[tokio::test]
async fn unsubscribing_after_waiting_for_the_callback_to_finish_returns() {
    let bus: EventBus<u64> = EventBus::new();
    let calls = Arc::new(AtomicU64::new(0));
    let mut callback = bus
        .subscribe_fn(">", SubscribeOptions::new(), {
            let calls = Arc::clone(&calls);
            move |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async {}
            }
        })
        .expect("subscribed");
    bus.publish("a", 1).await.expect("published");
    bus.close().await;
    // On this one-thread runtime the callback has not run yet: `finished` waits for it.
    callback.finished().await;
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    callback.unsubscribe().await;
}

/// A callback that waits for its own subscription to finish is not left waiting on
/// itself: `finished`, called from inside, returns at once (as `unsubscribe` does).
#[tokio::test]
async fn a_callback_waiting_for_its_own_end_goes_on() {
    let bus: EventBus<u64> = EventBus::new();
    let own: Arc<tokio::sync::Mutex<Option<orch_events::CallbackSubscription<u64>>>> =
        Arc::default();
    let calls = Arc::new(AtomicU64::new(0));
    let callback = bus
        .subscribe_fn(">", SubscribeOptions::new(), {
            let (own, calls) = (Arc::clone(&own), Arc::clone(&calls));
            move |_| {
                let (own, calls) = (Arc::clone(&own), Arc::clone(&calls));
                async move {
                    if let Some(itself) = own.lock().await.as_mut() {
                        itself.finished().await;
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .expect("subscribed");
    *own.lock().await = Some(callback);
    bus.publish("a", 1).await.expect("published");
    bus.publish("b", 2).await.expect("published");
    let both_handled = async {
        while calls.load(Ordering::Relaxed) < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), both_handled)
        .await
        .expect("the callback was stuck waiting for its own end");
    bus.close().await;
    let callback = own.lock().await.take().expect("kept");
    callback.unsubscribe().await;
}

#[test]
fn nothing_is_delivered_after_unsubscribe_returns() {
    multi_thread().block_on(async {
        for policy in [Overflow::Block, Overflow::DropOldest] {
            let bus: EventBus<u64> = EventBus::new();
            let calls = Arc::new(AtomicU64::new(0));
            let callback = bus
                .subscribe_fn("t", SubscribeOptions::new().capacity(1).overflow(policy), {
                    let calls = Arc::clone(&calls);
                    move |_| {
                        let calls = Arc::clone(&calls);
                        async move {
                            tokio::task::yield_now().await;
                            calls.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
                .expect("subscribed");
            let publisher = tokio::spawn({
                let bus = bus.clone();
                async move {
                    let mut published = 0u64;
                    while bus.publish("t", published).await.is_ok() {
                        published += 1;
                    }
                    published
                }
            });
            // Let some deliveries through, then unsubscribe while publishes are in flight.
            while calls.load(Ordering::SeqCst) < 50 {
                tokio::task::yield_now().await;
            }
            callback.unsubscribe().await;
            let after_unsubscribe = calls.load(Ordering::SeqCst);
            // The publisher keeps going (a Block publisher is released, not stuck).
            let target = bus.next_seq() + 1_000;
            while bus.next_seq() < target {
                tokio::task::yield_now().await;
            }
            bus.close().await;
            let published = publisher.await.expect("publisher");
            assert!(published >= 1_050);
            assert_eq!(
                calls.load(Ordering::SeqCst),
                after_unsubscribe,
                "{policy:?}"
            );
            assert_eq!(bus.subscription_count(), 0);
        }
    });
}

/// While `close` waits for a publish still under way (here one blocked on a full
/// queue), the bus is closed already and routes new events nowhere: it counts no
/// subscription, as its documentation says.
#[tokio::test]
async fn a_closing_bus_counts_no_subscription() {
    let bus: EventBus<u32> = EventBus::new();
    let mut full = subscribe_to(&bus, "s", 1, Overflow::Block);
    bus.publish("s", 1).await.expect("published");
    let blocked = tokio::spawn({
        let bus = bus.clone();
        async move { bus.publish("s", 2).await }
    });
    while bus.next_seq() < 2 {
        tokio::task::yield_now().await;
    }
    let closing = tokio::spawn({
        let bus = bus.clone();
        async move { bus.close().await }
    });
    while !bus.is_closed() {
        tokio::task::yield_now().await;
    }
    assert!(
        !closing.is_finished(),
        "close waits for the blocked publish"
    );
    assert_eq!(bus.subscription_count(), 0);
    assert_eq!(drain(&mut full).await, [Ok(1), Ok(2)]);
    blocked.await.expect("publisher").expect("published");
    closing.await.expect("closed");
}

#[tokio::test]
async fn dropping_a_stream_unsubscribes() {
    let bus: EventBus<u32> = EventBus::new();
    let sub = bus.subscribe("a.>").expect("subscribed");
    let id = sub.id();
    assert_eq!(bus.subscription_count(), 1);
    drop(sub);
    assert_eq!(bus.subscription_count(), 0);
    // With nobody subscribed, Block never waits.
    for i in 0..5_000 {
        bus.publish("a.b", i).await.expect("published");
    }
    let sub = bus.subscribe("a.>").expect("subscribed");
    assert_ne!(sub.id(), id);
    sub.unsubscribe();
    assert_eq!(bus.subscription_count(), 0);
}

#[tokio::test]
async fn history_replay_and_its_errors() {
    let bus: EventBus<u64> = EventBus::builder().history(5).build();
    for i in 0..10 {
        let subject = if i % 2 == 0 { "a.even" } else { "b.odd" };
        assert_eq!(bus.publish(subject, i).await, Ok(i));
    }
    let mut sub = bus
        .subscribe_with("a.>", SubscribeOptions::new().replay_from(6))
        .expect("replay from 6 is kept");
    let mut all = bus
        .subscribe_with(">", SubscribeOptions::new().replay_from(5))
        .expect("replay from the oldest kept");
    let mut now = bus
        .subscribe_with(">", SubscribeOptions::new().replay_from(10))
        .expect("replay from next is live only");
    assert_eq!(
        bus.subscribe_with(">", SubscribeOptions::new().replay_from(4))
            .err(),
        Some(SubscribeError::ReplayGone {
            requested: 4,
            oldest: 5
        })
    );
    assert_eq!(
        bus.subscribe_with(">", SubscribeOptions::new().replay_from(11))
            .err(),
        Some(SubscribeError::ReplayAhead {
            requested: 11,
            next: 10
        })
    );
    bus.publish("a.even", 10).await.expect("published");
    bus.close().await;
    assert_eq!(drain(&mut sub).await, [Ok(6), Ok(8), Ok(10)]);
    assert_eq!(
        drain(&mut all).await,
        [Ok(5), Ok(6), Ok(7), Ok(8), Ok(9), Ok(10)]
    );
    assert_eq!(drain(&mut now).await, [Ok(10)]);
    assert_eq!(sub.stats().delivered, 3);

    let plain: EventBus<u64> = EventBus::new();
    assert_eq!(
        plain
            .subscribe_with(">", SubscribeOptions::new().replay_from(0))
            .err(),
        Some(SubscribeError::HistoryDisabled { requested: 0 })
    );
}

#[test]
fn replay_while_publishing_has_no_gap_or_repeat() {
    multi_thread().block_on(async {
        let bus: EventBus<u64> = EventBus::builder().history(100_000).build();
        let publisher = tokio::spawn({
            let bus = bus.clone();
            async move {
                for i in 0..20_000 {
                    bus.publish("p", i).await.expect("published");
                }
            }
        });
        while bus.next_seq() < 1_000 {
            tokio::task::yield_now().await;
        }
        let mut sub = bus
            .subscribe_with("p", SubscribeOptions::new().capacity(16).replay_from(0))
            .expect("subscribed");
        let reader = tokio::spawn(async move { drain(&mut sub).await });
        publisher.await.expect("publisher");
        bus.close().await;
        let expected: Vec<Result<u64, u64>> = (0..20_000).map(Ok).collect();
        assert_eq!(reader.await.expect("reader"), expected);
    });
}

#[test]
fn close_drains_everything_published_before() {
    multi_thread().block_on(async {
        let bus: EventBus<u64> = EventBus::new();
        let mut sub = subscribe_to(&bus, "c", 4, Overflow::Block);
        let publisher = tokio::spawn({
            let bus = bus.clone();
            async move {
                let mut ok = 0u64;
                loop {
                    match bus.publish("c", ok).await {
                        Ok(_) => ok += 1,
                        Err(e) => return (ok, e),
                    }
                }
            }
        });
        let mut received = Vec::new();
        while received.len() < 100 {
            received.push(sub.recv_event().await.map(|e| *e.payload()));
        }
        // Close while the publisher is mid-stream (and likely waiting for room); keep
        // reading meanwhile, as close waits for that publish.
        let closer = tokio::spawn({
            let bus = bus.clone();
            async move { bus.close().await }
        });
        while let Some(event) = sub.recv_event().await {
            received.push(Some(*event.payload()));
        }
        closer.await.expect("closer");
        let (ok, error) = publisher.await.expect("publisher");
        assert_eq!(error, PublishError::Closed);
        let expected: Vec<Option<u64>> = (0..ok).map(Some).collect();
        assert_eq!(received, expected);
        assert_eq!(bus.publish("c", 0).await, Err(PublishError::Closed));
        assert_eq!(bus.subscribe("c").err(), Some(SubscribeError::Closed));
        assert!(bus.is_closed());
        bus.close().await;
    });
}

#[tokio::test]
async fn try_publish_is_all_or_nothing_under_block() {
    let bus: EventBus<u32> = EventBus::new();
    let mut blocking = subscribe_to(&bus, "a.*", 1, Overflow::Block);
    let mut dropping = subscribe_to(&bus, "a.>", 1, Overflow::DropNewest);
    assert_eq!(bus.try_publish("a.b", 1).ok(), Some(0));
    let error = bus
        .try_publish("a.b", 2)
        .expect_err("blocking queue is full");
    assert_eq!(
        error.kind(),
        &TryPublishErrorKind::Full {
            blocked: vec![blocking.id()]
        }
    );
    assert_eq!(error.into_payload(), 2);
    // Only the dropping subscriber matches this one: it drops and counts.
    assert_eq!(bus.try_publish("a.b.c", 3).ok(), Some(1));
    assert_eq!(dropping.stats().dropped, 1);
    assert_eq!(bus.next_seq(), 2);
    assert!(matches!(
        bus.try_publish("a..b", 4).map_err(|e| e.into_parts()),
        Err((TryPublishErrorKind::InvalidSubject(_), 4))
    ));
    bus.close().await;
    assert!(matches!(
        bus.try_publish("a.b", 5).map_err(|e| e.into_parts()),
        Err((TryPublishErrorKind::Closed, 5))
    ));
    assert_eq!(drain(&mut blocking).await, [Ok(1)]);
    assert_eq!(drain(&mut dropping).await, [Ok(1), Err(1)]);
}

#[tokio::test]
async fn invalid_input_is_a_typed_error() {
    let bus: EventBus = EventBus::new();
    assert_eq!(
        bus.publish("a.*", serde_json::Value::Null).await,
        Err(PublishError::InvalidSubject(
            SubjectError::WildcardInSubject {
                input: "a.*".into(),
                token: 1,
                byte: 2,
                wildcard: '*'
            }
        ))
    );
    assert_eq!(
        bus.subscribe("a.>.b").err(),
        Some(SubscribeError::InvalidPattern(
            SubjectError::FullWildcardNotLast {
                input: "a.>.b".into(),
                token: 1,
                byte: 2
            }
        ))
    );
    assert_eq!(
        bus.subscribe("").err(),
        Some(SubscribeError::InvalidPattern(SubjectError::Empty))
    );
    assert_eq!(bus.next_seq(), 0);
}

#[tokio::test]
async fn works_as_a_stream_and_ends_when_the_bus_is_dropped() {
    let bus: EventBus<u32> = EventBus::new();
    let mut sub = bus.subscribe("s").expect("subscribed");
    bus.publish("s", 7).await.expect("published");
    drop(bus);
    let next = std::future::poll_fn(|cx| Pin::new(&mut sub).poll_next(cx)).await;
    assert_eq!(
        next.and_then(Delivery::into_event).map(|e| *e.payload()),
        Some(7)
    );
    let end = std::future::poll_fn(|cx| Pin::new(&mut sub).poll_next(cx)).await;
    assert!(end.is_none());
}

#[test]
fn callbacks_need_a_runtime() {
    let bus: EventBus<u32> = EventBus::new();
    let result = bus.subscribe_fn(">", SubscribeOptions::new(), |_| async {});
    assert_eq!(result.err(), Some(SubscribeError::NoRuntime));
    assert_eq!(bus.subscription_count(), 0);
}

#[tokio::test]
async fn cached_routes_follow_subscribe_and_unsubscribe() {
    let bus: EventBus<u32> = EventBus::new();
    let mut first = bus.subscribe("r.*").expect("subscribed");
    // A subject is cached on its second publish: each route below is used from the cache
    // at least once before the subscriptions change under it.
    for n in 1..=3 {
        bus.publish("r.x", n).await.expect("published");
    }
    let mut second = bus.subscribe("r.>").expect("subscribed");
    for n in 4..=6 {
        bus.publish("r.x", n).await.expect("published");
    }
    let mut third = bus.subscribe("r.x").expect("subscribed");
    assert_eq!(drain_now(&mut second), [4, 5, 6]);
    drop(second);
    for n in 7..=9 {
        bus.publish("r.x", n).await.expect("published");
    }
    assert_eq!(bus.subscription_count(), 2);
    bus.close().await;
    assert_eq!(drain(&mut first).await, (1..=9).map(Ok).collect::<Vec<_>>());
    assert_eq!(drain(&mut third).await, [Ok(7), Ok(8), Ok(9)]);
}

/// The events queued in `sub` now, without waiting.
fn drain_now(sub: &mut Subscription<u32>) -> Vec<u32> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut out = Vec::new();
    while let std::task::Poll::Ready(Some(Delivery::Event(event))) = sub.poll_recv(&mut cx) {
        out.push(*event.payload());
    }
    out
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<EventBus>();
    send_sync::<EventBus<String>>();
    send_sync::<orch_events::CallbackSubscription<serde_json::Value>>();
    send::<Subscription<serde_json::Value>>();
    send_sync::<orch_events::Event<serde_json::Value>>();
}

#[test]
fn a_batch_publishes_in_order_up_to_the_first_full_lossless_queue() {
    let runtime = multi_thread();
    runtime.block_on(async {
        let bus: EventBus<u32> = EventBus::new();
        let mut lossless = subscribe_to(&bus, "jobs.>", 3, Overflow::Block);
        let mut lossy = subscribe_to(&bus, "jobs.*", 1, Overflow::DropOldest);
        let subject = orch_events::Subject::new("jobs.done").expect("valid");
        let mut events: std::collections::VecDeque<_> =
            (0..5).map(|i| (subject.clone(), i)).collect();
        assert_eq!(bus.try_publish_batch(&mut events), Ok(3));
        assert_eq!(events.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [3, 4]);
        let mut taken = Vec::new();
        for _ in 0..3 {
            let event = lossless
                .recv_event()
                .await
                .expect("three events are queued");
            taken.push(*event.payload());
        }
        assert_eq!(taken, [0, 1, 2]);
        assert_eq!(bus.try_publish_batch(&mut events), Ok(2));
        assert!(events.is_empty());
        bus.close().await;
        assert_eq!(drain(&mut lossless).await, [Ok(3), Ok(4)]);
        // The lossy subscriber kept only the newest event and was told what it missed.
        assert_eq!(drain(&mut lossy).await, [Err(4), Ok(4)]);
        let mut late: std::collections::VecDeque<_> = [(subject.clone(), 9)].into();
        assert_eq!(bus.try_publish_batch(&mut late), Err(PublishError::Closed));
        assert_eq!(late.len(), 1);
    });
}

#[test]
fn a_batch_for_mixed_routes_queues_each_run_together_and_stops_where_room_ends() {
    multi_thread().block_on(async {
        let bus: EventBus<u32> = EventBus::new();
        let mut a = subscribe_to(&bus, "a.>", 3, Overflow::Block);
        let mut b = subscribe_to(&bus, "b.>", 100, Overflow::Block);
        let mut all = subscribe_to(&bus, ">", 2, Overflow::DropOldest);
        let mut events: std::collections::VecDeque<_> = [
            ("a.x", 1),
            ("a.y", 2),
            ("b.x", 3),
            ("b.y", 4),
            ("a.x", 5),
            ("a.y", 6),
            ("b.x", 7),
        ]
        .into_iter()
        .map(|(s, n)| (orch_events::Subject::new(s).expect("valid"), n))
        .collect();
        // `a.>` has room for three: the batch stops at its fourth event, 6.
        assert_eq!(bus.try_publish_batch(&mut events), Ok(5));
        assert_eq!(events.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [6, 7]);
        assert_eq!(a.stats().queued, 3);
        bus.close().await;
        assert_eq!(drain(&mut a).await, [Ok(1), Ok(2), Ok(5)]);
        assert_eq!(drain(&mut b).await, [Ok(3), Ok(4)]);
        assert_eq!(drain(&mut all).await, [Err(3), Ok(4), Ok(5)]);
        // Only published events are numbered.
        assert_eq!(bus.next_seq(), 5);
    });
}

#[test]
fn a_batch_stopped_by_one_full_queue_gives_the_others_their_room_back() {
    multi_thread().block_on(async {
        let bus: EventBus<u32> = EventBus::new();
        let roomy = subscribe_to(&bus, "a.>", 3, Overflow::Block);
        let tight = subscribe_to(&bus, "a.*", 1, Overflow::Block);
        let subject = orch_events::Subject::new("a.x").expect("valid");
        let mut events: std::collections::VecDeque<_> =
            (0..3).map(|i| (subject.clone(), i)).collect();
        // `roomy` could take all three, `tight` only one: one goes, to both.
        assert_eq!(bus.try_publish_batch(&mut events), Ok(1));
        // The two slots `roomy` granted beyond that are free again.
        assert!(bus.try_publish("a.x.y", 10).is_ok());
        assert!(bus.try_publish("a.x.y", 11).is_ok());
        assert!(bus.try_publish("a.x.y", 12).is_err(), "now `roomy` is full");
        assert_eq!((roomy.stats().queued, tight.stats().queued), (3, 1));
    });
}

/// A `close` given up on while a publish waits for room (a timeout around it) still
/// ends the subscriptions: the waiting publish, once done, closes them.
#[test]
fn a_close_given_up_on_still_ends_the_subscriptions() {
    multi_thread().block_on(async {
        let bus: EventBus<u64> = EventBus::new();
        let mut sub = subscribe_to(&bus, "a", 1, Overflow::Block);
        let first = bus.publish("a", 1).await.expect("room for one");
        let publisher = tokio::spawn({
            let bus = bus.clone();
            async move { bus.publish("a", 2).await }
        });
        // Once the second event is numbered, its publish is under way (and waits for
        // room); a close then waits for it, and is cut short by its timeout.
        while bus.next_seq() <= first + 1 {
            tokio::task::yield_now().await;
        }
        {
            // Polled once, then dropped, as a timeout around it would.
            let mut closing = std::pin::pin!(bus.close());
            let polled =
                std::future::poll_fn(|cx| std::task::Poll::Ready(closing.as_mut().poll(cx))).await;
            assert!(polled.is_pending(), "the close waits for the publish");
        }
        // Before the fix the subscription stayed open for ever: a failure, not a hang.
        let received = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let mut received = Vec::new();
            while let Some(event) = sub.recv_event().await {
                received.push(*event.payload());
            }
            received
        })
        .await
        .expect("the subscription ends");
        assert_eq!(received, [1, 2]);
        publisher.await.expect("publisher").expect("published");
    });
}

/// A subscriber that always finds events waiting still lets the other tasks of its
/// runtime run now and then, as tokio's own channels do: here a task that sets a flag
/// runs before the subscriber has received everything.
#[test]
fn a_busy_subscriber_lets_other_tasks_run() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let bus: EventBus<u32> = EventBus::new();
        let events = 10_000;
        let mut sub = subscribe_to(&bus, "n", events, Overflow::Block);
        for n in 0..events as u32 {
            bus.try_publish("n", n).expect("room");
        }
        let flag = Arc::new(AtomicU64::new(0));
        let setter = Arc::clone(&flag);
        // Spawned first, so it runs first.
        let receiver = tokio::spawn(async move {
            let mut seen_at = None;
            for received in 0..events {
                sub.recv_event().await.expect("an event");
                if seen_at.is_none() && flag.load(Ordering::SeqCst) == 1 {
                    seen_at = Some(received);
                }
            }
            seen_at
        });
        tokio::spawn(async move { setter.store(1, Ordering::SeqCst) });
        let seen_at = receiver.await.expect("receiver");
        assert!(
            seen_at.is_some_and(|at| at < events / 2),
            "the flag was first seen after {seen_at:?} of {events} events"
        );
    });
}
