//! Publishers waiting for a `Block` subscription's room: served in the order they came,
//! ahead of newcomers, and none held up by a waiting publish that is not being polled.

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use orch_events::{
    Delivery, EventBus, Overflow, SubscribeOptions, Subscription, TryPublishErrorKind,
};

/// A subscription to `tick` with room for one event.
fn room_for_one(bus: &EventBus<u32>) -> Subscription<u32> {
    bus.subscribe_with(
        "tick",
        SubscribeOptions::new()
            .capacity(1)
            .overflow(Overflow::Block),
    )
    .expect("subscribed")
}

/// The payload of the next event queued in `sub` now, without waiting.
fn next_now(sub: &mut Subscription<u32>) -> Option<u32> {
    let mut cx = Context::from_waker(Waker::noop());
    match sub.poll_recv(&mut cx) {
        Poll::Ready(Some(Delivery::Event(event))) => Some(*event.payload()),
        _ => None,
    }
}

/// `publisher`'s outcome, or a failure (not a hang) if it is not told its event was
/// queued.
async fn finished(
    publisher: tokio::task::JoinHandle<Result<u64, orch_events::PublishError>>,
) -> u64 {
    tokio::time::timeout(std::time::Duration::from_secs(10), publisher)
        .await
        .expect("the publisher is told its event was queued")
        .expect("joined")
        .expect("published")
}

fn is_full(result: &Result<u64, orch_events::TryPublishError<u32>>) -> bool {
    matches!(
        result.as_ref().map_err(|e| e.kind()),
        Err(TryPublishErrorKind::Full { .. })
    )
}

#[tokio::test]
async fn a_waiting_publisher_gets_freed_room_before_a_newcomer() {
    let bus = EventBus::new();
    let mut small = room_for_one(&bus);
    bus.publish("tick", 0).await.expect("published");
    let waiting = tokio::spawn({
        let bus = bus.clone();
        async move { bus.publish("tick", 1).await }
    });
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "the second publish waits for room");
    // The reader frees the slot; the waiting publisher has not run since.
    assert_eq!(next_now(&mut small), Some(0));
    let newcomer = bus.try_publish("tick", 2);
    assert!(
        is_full(&newcomer),
        "the freed room went to the waiting publisher: {newcomer:?}"
    );
    finished(waiting).await;
    assert_eq!(next_now(&mut small), Some(1));
}

#[tokio::test]
async fn a_waiting_publish_that_is_not_polled_holds_up_no_one() {
    let bus = EventBus::new();
    let mut small = room_for_one(&bus);
    bus.publish("tick", 0).await.expect("published");
    let mut kept = pin!(bus.publish("tick", 1));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(kept.as_mut().poll(&mut cx).is_pending(), "no room yet");

    // Never polled again until the end, as a `select!` over `&mut fut` may leave it.
    assert_eq!(next_now(&mut small), Some(0));
    assert_eq!(
        next_now(&mut small),
        Some(1),
        "queued while its publisher slept"
    );
    assert!(bus.try_publish("tick", 2).is_ok(), "the room is free again");
    assert_eq!(next_now(&mut small), Some(2));
    assert!(matches!(kept.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
}

#[tokio::test]
async fn waiting_publishers_are_served_in_the_order_they_came() {
    let bus = EventBus::new();
    let mut small = room_for_one(&bus);
    bus.publish("tick", 0).await.expect("published");
    let mut publishers = Vec::new();
    for n in 1..=5 {
        let bus = bus.clone();
        let publisher = tokio::spawn(async move { bus.publish("tick", n).await });
        // It runs, finds no room and joins the line before the next one starts.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        assert!(!publisher.is_finished());
        publishers.push(publisher);
    }
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), small.recv());
        match next.await.expect("the reader is told of the next event") {
            Some(Delivery::Event(event)) => seen.push(*event.payload()),
            other => panic!("only events: {other:?}"),
        }
        // A newcomer between reads never gets ahead of those waiting.
        if seen.len() < 6 {
            assert!(is_full(&bus.try_publish("tick", 99)));
        }
    }
    assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
    for publisher in publishers {
        finished(publisher).await;
    }
}

#[tokio::test]
async fn a_waiting_publish_given_up_on_leaves_the_line_and_its_event_never_arrives() {
    let bus = EventBus::new();
    let mut small = room_for_one(&bus);
    bus.publish("tick", 0).await.expect("published");
    let gave_up =
        tokio::time::timeout(std::time::Duration::from_millis(10), bus.publish("tick", 1)).await;
    assert!(gave_up.is_err(), "it waited for room and was dropped");
    let later = tokio::spawn({
        let bus = bus.clone();
        async move { bus.publish("tick", 2).await }
    });
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    assert_eq!(next_now(&mut small), Some(0));
    finished(later).await;
    assert_eq!(next_now(&mut small), Some(2), "1 was withdrawn");
    assert_eq!(next_now(&mut small), None);
}

mod against_a_model {
    //! Random publishes, reads and give-ups on one `Block` subscription, against a
    //! model of a queue with a line of waiting events.

    use std::{collections::VecDeque, future::Future, pin::Pin};

    use proptest::prelude::*;

    use super::*;

    type Publish<'a> = Pin<Box<dyn Future<Output = Result<u64, orch_events::PublishError>> + 'a>>;

    #[derive(Debug, Clone)]
    enum Step {
        /// A publish, polled once; it waits if it finds no room.
        Publish,
        TryPublish,
        /// Reads one event, as a subscriber does: takes the whole queue when its own
        /// batch is empty.
        Read,
        /// Polls the waiting publish with this index (modulo how many there are).
        Poll(usize),
        /// Drops it.
        GiveUp(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Publish),
            2 => Just(Step::TryPublish),
            4 => Just(Step::Read),
            1 => any::<usize>().prop_map(Step::Poll),
            1 => any::<usize>().prop_map(Step::GiveUp),
        ]
    }

    /// What the subscriber should see.
    #[derive(Default)]
    struct Model {
        capacity: usize,
        queued: VecDeque<u32>,
        line: VecDeque<u32>,
        batch: VecDeque<u32>,
    }

    impl Model {
        fn has_room(&self) -> bool {
            self.line.is_empty() && self.queued.len() < self.capacity
        }

        fn read(&mut self) -> Option<u32> {
            if self.batch.is_empty() {
                std::mem::swap(&mut self.batch, &mut self.queued);
                while self.queued.len() < self.capacity {
                    let Some(next) = self.line.pop_front() else {
                        break;
                    };
                    self.queued.push_back(next);
                }
            }
            self.batch.pop_front()
        }
    }

    proptest! {
        #[test]
        fn the_subscriber_sees_what_the_model_says(
            capacity in 1usize..4,
            steps in prop::collection::vec(step(), 1..80),
        ) {
            let bus = EventBus::new();
            let mut sub = bus
                .subscribe_with(
                    "tick",
                    SubscribeOptions::new().capacity(capacity).overflow(Overflow::Block),
                )
                .expect("subscribed");
            let mut model = Model { capacity, ..Model::default() };
            let mut cx = Context::from_waker(Waker::noop());
            let mut waiting: Vec<(u32, Publish<'_>)> = Vec::new();
            for (n, step) in (0u32..).zip(steps) {
                match step {
                    Step::Publish => {
                        let mut publish: Publish<'_> = Box::pin(bus.publish("tick", n));
                        let done = publish.as_mut().poll(&mut cx).is_ready();
                        prop_assert_eq!(done, model.has_room(), "publish {} waits only without room", n);
                        if done {
                            model.queued.push_back(n);
                        } else {
                            model.line.push_back(n);
                            waiting.push((n, publish));
                        }
                    }
                    Step::TryPublish => {
                        let published = bus.try_publish("tick", n).is_ok();
                        prop_assert_eq!(published, model.has_room(), "try_publish {}", n);
                        if published {
                            model.queued.push_back(n);
                        }
                    }
                    Step::Read => prop_assert_eq!(next_now(&mut sub), model.read()),
                    Step::Poll(i) if !waiting.is_empty() => {
                        let i = i % waiting.len();
                        let (n, publish) = &mut waiting[i];
                        let done = publish.as_mut().poll(&mut cx).is_ready();
                        prop_assert_eq!(done, !model.line.contains(n), "publish {} is done once queued", n);
                        if done {
                            drop(waiting.remove(i));
                        }
                    }
                    Step::GiveUp(i) if !waiting.is_empty() => {
                        let (n, _) = waiting.remove(i % waiting.len());
                        model.line.retain(|m| *m != n);
                    }
                    Step::Poll(_) | Step::GiveUp(_) => {}
                }
            }
        }
    }
}

/// A publish waiting in two subscriptions' lines, dropped once one of them queued its
/// event: that one keeps it, the other never gets it, and neither is held up.
#[tokio::test]
async fn a_publish_dropped_after_one_of_its_lines_served_it_reaches_that_one_only() {
    let bus = EventBus::new();
    let (mut first, mut second) = (room_for_one(&bus), room_for_one(&bus));
    bus.publish("tick", 0).await.expect("published");
    {
        let mut dropped = pin!(bus.publish("tick", 1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(dropped.as_mut().poll(&mut cx).is_pending(), "both are full");
        assert_eq!(next_now(&mut first), Some(0));
    }
    assert_eq!(next_now(&mut second), Some(0));
    assert!(
        bus.try_publish("tick", 2).is_err(),
        "the first still holds 1"
    );
    assert_eq!(next_now(&mut first), Some(1));
    bus.publish("tick", 2).await.expect("published");
    assert_eq!(next_now(&mut first), Some(2));
    assert_eq!(
        next_now(&mut second),
        Some(2),
        "1 was withdrawn from its line"
    );
}
