//! [`Clock`]: the timestamps of a run.

use std::time::SystemTime;

/// Wall-clock timestamps that advance with tokio's monotonic clock: durations never go
/// backwards when the system clock is adjusted, and follow tokio's paused time in tests.
///
/// The clock is read whenever the run wakes up, when an attempt ends, and after a
/// handler's first poll on the run's own task that did not finish it; a task that starts
/// in between takes the last reading, which is older only by the scheduler's own
/// bookkeeping. That halves the clock reads of tasks that finish on their first poll.
pub(crate) struct Clock {
    pub(crate) wall: SystemTime,
    start: tokio::time::Instant,
    last: SystemTime,
}

impl Clock {
    pub(crate) fn start() -> Self {
        let wall = SystemTime::now();
        Self {
            wall,
            start: tokio::time::Instant::now(),
            last: wall,
        }
    }

    /// Reads the clock.
    pub(crate) fn now(&mut self) -> SystemTime {
        self.last = self.wall + self.start.elapsed();
        self.last
    }

    /// The last reading.
    pub(crate) fn last(&self) -> SystemTime {
        self.last
    }
}
