//! [`burst`]: many events published on one subject before anyone reads, checked against
//! a model of each subscription's queue.

use std::task::{Context, Poll, Waker};

use orch_events::{Delivery, EventBus, Overflow, Subscription, TryPublishErrorKind};

use super::{Live, Violation, matches_tokens};

/// What a subscription hands over: an event's payload, or a count of events it dropped.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Got {
    Event(u64),
    Lagged(u64),
}

/// Publishes `count` events on `subject` (valid) with `try_publish`, reading nothing,
/// then checks what each subscription holds against the model: an event goes to every
/// matching subscription or to none, and none while a matching waiting (`Block`)
/// queue is full, which `try_publish` reports as `Full`; so `accepted`, the events
/// published, are the first `min(count, smallest waiting capacity)`. A queue that drops
/// holds the last of them (`DropOldest`, after a count of those it dropped) or the first
/// (`DropNewest`, before that count) up to its capacity.
pub(super) fn burst(
    bus: &EventBus<u64>,
    live: &mut [Live],
    subject: &str,
    count: usize,
    seq: &mut u64,
) -> Result<(), Violation> {
    let tokens: Vec<&str> = subject.split('.').collect();
    let matching: Vec<bool> = (live.iter())
        .map(|l| matches_tokens(&l.tokens, &tokens))
        .collect();
    let room = (live.iter().zip(&matching))
        .filter(|(l, m)| **m && l.overflow == Overflow::Block)
        .map(|(l, _)| l.capacity)
        .min()
        .unwrap_or(usize::MAX);
    let first = *seq;
    let mut accepted = 0;
    for i in 0..count {
        let published = bus.try_publish(subject, *seq);
        *seq += 1;
        match (published, i < room) {
            (Ok(_), true) => accepted += 1,
            (Err(e), false) if matches!(e.kind(), TryPublishErrorKind::Full { .. }) => {}
            (result, _) => {
                return Err(Violation::new(
                    "burst",
                    format!(
                        "publish {} of {count} on {subject:?} gave {:?}, where the smallest full waiting queue holds {room}",
                        i + 1,
                        result.map(|_| ()).map_err(|e| e.kind().to_string())
                    ),
                    None,
                ));
            }
        }
    }
    let events = first..first + accepted as u64;
    for (entry, matching) in live.iter_mut().zip(matching) {
        let expected = if matching {
            held(entry.overflow, entry.capacity, events.clone())
        } else {
            Vec::new()
        };
        let got = drain_all(&mut entry.subscription);
        if got != expected {
            return Err(Violation::new(
                "burst",
                format!(
                    "after {accepted} events on {subject:?}, pattern {:?} ({:?}, capacity {}) holds {got:?}, not {expected:?}",
                    entry.pattern, entry.overflow, entry.capacity
                ),
                None,
            ));
        }
    }
    Ok(())
}

/// What a queue of `capacity` holds after `events` came with no one reading.
fn held(overflow: Overflow, capacity: usize, events: std::ops::Range<u64>) -> Vec<Got> {
    let all: Vec<u64> = events.collect();
    let dropped = all.len().saturating_sub(capacity) as u64;
    let lag = (dropped > 0).then_some(Got::Lagged(dropped));
    match overflow {
        Overflow::DropOldest => (lag.into_iter())
            .chain(all[dropped as usize..].iter().map(|&e| Got::Event(e)))
            .collect(),
        Overflow::DropNewest => (all[..all.len() - dropped as usize].iter())
            .map(|&e| Got::Event(e))
            .chain(lag)
            .collect(),
        // `Block`: the events past its room were not published.
        _ => all.into_iter().map(Got::Event).collect(),
    }
}

/// Everything a subscription holds, lag counts included, without waiting.
pub(super) fn drain_all(subscription: &mut Subscription<u64>) -> Vec<Got> {
    let mut context = Context::from_waker(Waker::noop());
    let mut got = Vec::new();
    while let Poll::Ready(Some(delivery)) = subscription.poll_recv(&mut context) {
        got.push(match delivery {
            Delivery::Event(event) => Got::Event(*event.payload()),
            Delivery::Lagged(n) => Got::Lagged(n),
        });
    }
    got
}

#[cfg(test)]
mod tests {
    use super::super::{parse, run};
    use super::*;

    #[test]
    fn queues_that_drop_keep_the_last_or_the_first_and_count_the_rest() {
        use Got::{Event, Lagged};
        assert_eq!(
            held(Overflow::DropOldest, 2, 10..15),
            [Lagged(3), Event(13), Event(14)]
        );
        assert_eq!(
            held(Overflow::DropNewest, 2, 10..15),
            [Event(10), Event(11), Lagged(3)]
        );
        assert_eq!(held(Overflow::Block, 8, 0..2), [Event(0), Event(1)]);
        // The bus agrees, with a waiting queue of 8 holding the burst to its first 8.
        let script =
            "sub a 4 oldest\nsub a 2 newest\nsub a.* 3 oldest\nsub a 8\nburst 20 a\npub a\n";
        assert_eq!(run(&parse(script)), Ok(()));
        let dropping_only = "sub > 3 newest\nsub a 5 oldest\nburst 40 a\nburst 2 b\n";
        assert_eq!(run(&parse(dropping_only)), Ok(()));
    }
}
