//! A subscription that replays a long history keeps no room for it once it has been
//! read: afterwards it holds about what its own capacity needs.
//!
//! A test binary of its own: it counts every allocation of the process, so nothing else
//! may run beside it.

use orch_events::{EventBus, SubscribeOptions};
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// Events in the history the subscription replays.
const REPLAYED: usize = 200_000;

#[test]
fn a_replayed_history_is_not_kept_once_read() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let bus: EventBus<usize> = EventBus::builder().history(2 * REPLAYED).build();
        for n in 0..REPLAYED {
            bus.publish("tick", n).await.expect("published");
        }
        let baseline = ALLOCATOR.current_usage();
        let options = SubscribeOptions::new().capacity(4).replay_from(0);
        let mut ticks = bus.subscribe_with("tick", options).expect("subscribed");
        for n in 0..REPLAYED + 100 {
            if n >= REPLAYED {
                bus.publish("tick", n).await.expect("published");
            }
            let event = ticks.recv_event().await.expect("delivered");
            assert_eq!(*event.payload(), n);
        }
        // 100 more events in the history, and the subscription's own two small buffers.
        let kept = ALLOCATOR.current_usage().saturating_sub(baseline);
        assert!(
            kept <= 64 << 10,
            "{kept} bytes still in use after a replay of {REPLAYED} events was read"
        );
        drop(ticks);
        bus.close().await;
    });
}
