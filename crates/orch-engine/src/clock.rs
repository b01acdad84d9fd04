//! [`Clock`]: the timestamps of a run.

use std::time::{Duration, SystemTime};

/// Wall-clock timestamps that advance with tokio's monotonic clock: durations never go
/// backwards when the system clock is adjusted, and follow tokio's paused time in tests.
///
/// The clock is read whenever the run wakes up, when an attempt ends, and after a
/// handler's first poll on the run's own task that did not finish it; a task that starts
/// in between takes the last reading, which is older only by the scheduler's own
/// bookkeeping. That halves the clock reads of tasks that finish on their first poll.
///
/// Readings are whole microseconds, as results write times: a result read back from its
/// JSON (or a journal) is the one the run returned, its durations the differences of
/// the times it shows, and a resumed run decides on the same times either way.
pub(crate) struct Clock {
    pub(crate) wall: SystemTime,
    start: tokio::time::Instant,
    last: SystemTime,
}

impl Clock {
    pub(crate) fn start() -> Self {
        let wall = whole_micros(SystemTime::now());
        Self {
            wall,
            start: tokio::time::Instant::now(),
            last: wall,
        }
    }

    /// Reads the clock.
    pub(crate) fn now(&mut self) -> SystemTime {
        self.last = whole_micros(self.wall + self.start.elapsed());
        self.last
    }

    /// The last reading.
    pub(crate) fn last(&self) -> SystemTime {
        self.last
    }
}

/// `time` cut down to a whole microsecond (toward the past, as results write times).
fn whole_micros(time: SystemTime) -> SystemTime {
    let nanos = |d: Duration| Duration::from_nanos(u64::from(d.subsec_nanos() % 1_000));
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => time - nanos(since),
        // A clock set before 1970: further back, to the microsecond before.
        Err(before) => match nanos(before.duration()) {
            Duration::ZERO => time,
            part => time - (Duration::from_micros(1) - part),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::whole_micros;

    #[test]
    fn a_reading_is_cut_to_the_microsecond_results_write() {
        let after = UNIX_EPOCH + Duration::new(5, 123_456_789);
        assert_eq!(
            whole_micros(after),
            UNIX_EPOCH + Duration::new(5, 123_456_000)
        );
        let before = UNIX_EPOCH - Duration::new(5, 123_456_789);
        assert_eq!(
            whole_micros(before),
            UNIX_EPOCH - Duration::new(5, 123_457_000)
        );
        for time in [after, before, UNIX_EPOCH - Duration::from_micros(3)] {
            let cut = whole_micros(time);
            assert_eq!(orch_core::format_time(cut), orch_core::format_time(time));
            assert_eq!(whole_micros(cut), cut);
        }
    }
}
