//! The bus keeps no memory for subjects it has delivered: after many distinct long
//! subjects are published (twice each, so that the route cache would keep them) and
//! their events consumed, the memory in use is back near where it started.
//!
//! A test binary of its own: it counts every allocation of the process, so nothing else
//! may run beside it.

use std::fmt::Write;

use orch_events::{EventBus, Subscription};
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// Distinct subjects per round, as many as the route cache holds.
const SUBJECTS: usize = 8192;

/// Publishes `SUBJECTS` distinct subjects of `bytes` bytes twice, each event read as soon
/// as it is published, and returns how many more bytes are in use afterwards than before.
async fn kept_after_publishing(
    bus: &EventBus<usize>,
    everything: &mut Subscription<usize>,
    bytes: usize,
) -> usize {
    let mut text = String::with_capacity(bytes);
    text.push_str("long.");
    text.extend(std::iter::repeat_n('x', bytes - 14));
    let stem = text.len();
    let baseline = ALLOCATOR.current_usage();
    for round in 0..2 {
        for i in 0..SUBJECTS {
            text.truncate(stem);
            write!(text, ".{i:08}").expect("written");
            let n = round * SUBJECTS + i;
            bus.publish(text.as_str(), n).await.expect("published");
            let event = everything.recv_event().await.expect("delivered");
            assert_eq!((event.subject().as_str(), *event.payload()), (&text[..], n));
        }
    }
    ALLOCATOR.current_usage().saturating_sub(baseline)
}

#[test]
fn long_subjects_are_not_kept_after_their_events_are_consumed() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let bus: EventBus<usize> = EventBus::new();
        let mut everything = bus.subscribe("long.>").expect("valid pattern");
        // One publish and its delivery first, so that what the bus allocates once (the
        // queue's buffer, say) is part of the baseline.
        bus.publish("long.warm-up", 0).await.expect("published");
        assert!(everything.recv_event().await.is_some());
        // 64 KiB subjects are too long to be cached at all; 8 KiB ones are cached, up to
        // the cache's 1 MiB. Before, the cache kept 8,192 of either: 512 MiB or 64 MiB.
        for bytes in [64 << 10, 8 << 10] {
            let kept = kept_after_publishing(&bus, &mut everything, bytes).await;
            assert!(
                kept <= 2 << 20,
                "{kept} bytes still in use after every event on {bytes}-byte subjects was consumed"
            );
        }
        drop(everything);
        bus.close().await;
    });
}
