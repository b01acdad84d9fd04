//! `Backoff::delay` against a plain model: the initial delay grown by the multiplier per
//! retry, capped at the maximum, and within its upper half with jitter.

use std::time::Duration;

use orch_core::Backoff;
use proptest::prelude::*;

/// The model: exact for a zero initial delay, within rounding otherwise.
fn model(backoff: &Backoff, retry: u32) -> f64 {
    if backoff.initial.is_zero() {
        return 0.0;
    }
    let mut delay = backoff.initial.as_secs_f64();
    for _ in 1..retry {
        delay *= backoff.multiplier;
        if delay >= backoff.max.as_secs_f64() {
            return backoff.max.as_secs_f64();
        }
    }
    delay.min(backoff.max.as_secs_f64())
}

fn backoff() -> impl Strategy<Value = Backoff> {
    (
        prop_oneof![Just(0u64), 0u64..5_000],
        prop_oneof![Just(1.0f64), 1.0f64..1.01, 1.0f64..4.0, Just(1e200)],
        0u64..100_000,
    )
        .prop_map(|(initial_ms, multiplier, extra_ms)| Backoff {
            initial: Duration::from_millis(initial_ms),
            multiplier,
            max: Duration::from_millis(initial_ms + extra_ms),
            jitter: false,
        })
}

proptest! {
    #[test]
    fn a_delay_grows_by_the_multiplier_up_to_the_maximum(
        backoff in backoff(),
        retry in prop_oneof![1u32..40, 1000u32..3000],
        unit in 0.0f64..1.0,
    ) {
        let delay = backoff.delay(retry, unit).as_secs_f64();
        let expected = model(&backoff, retry);
        prop_assert!((delay - expected).abs() <= 1e-6 * expected.max(1.0), "{delay} vs {expected}");
        let jittered = Backoff { jitter: true, ..backoff }.delay(retry, unit).as_secs_f64();
        prop_assert!(jittered <= delay + 1e-9 && jittered >= delay / 2.0 - 1e-9, "{jittered} vs {delay}");
    }
}

#[test]
fn no_initial_delay_stays_none_however_many_retries() {
    let backoff = Backoff {
        initial: Duration::ZERO,
        multiplier: 2.0,
        max: Duration::from_secs(30),
        jitter: false,
    };
    assert_eq!(backoff.delay(2000, 0.5), Duration::ZERO);
}

/// A multiplier close to 1 grows the delay over thousands of retries too.
#[test]
fn a_slow_growth_goes_on_past_a_thousand_retries() {
    let backoff = Backoff {
        initial: Duration::from_millis(100),
        multiplier: 1.001,
        max: Duration::from_secs(30),
        jitter: false,
    };
    let delay = backoff.delay(5000, 0.0).as_secs_f64();
    let expected = 0.1 * 1.001f64.powi(4999);
    assert!(
        (delay - expected).abs() < 1e-6 * expected,
        "{delay} vs {expected}"
    );
    assert_eq!(backoff.delay(u32::MAX, 0.0), backoff.max);
}
