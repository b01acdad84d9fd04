//! Task messages that ran out of deliveries, as the server's advisories tell. A coordinator
//! remembers them for the tasks stream's duplicate window (those kept on the lost-tasks
//! stream before it started, and those it hears of while it runs), so that when it comes
//! back on a run and finds the message it sent before still queued, it can tell whether
//! any worker will ever be given that message again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::protocol::Names;

/// The server's advisory that a task message ran out of deliveries (the fields read).
#[derive(Deserialize)]
pub(crate) struct MaxDeliveries {
    /// The task message's sequence in the tasks stream.
    pub(crate) stream_seq: u64,
    /// How many times it was delivered.
    pub(crate) deliveries: u64,
}

/// How much earlier than the message it is about an advisory may say it was kept: one
/// heard live is dated by this process's clock, the message by the server's (and a
/// message whose sending this process dates, by its clock, against an advisory the
/// server kept). A clock further ahead of the server's delays an attempt's settling as
/// lost until its next look-up of its message.
const CLOCK_SLACK: Duration = Duration::from_secs(1);

/// Whether an advisory kept at `at` was kept before a message stored (or sent) at
/// `stored`, by more than [`CLOCK_SLACK`]: then it is about an earlier message of the
/// same sequence (the tasks stream was made anew since).
pub(crate) fn kept_before(at: SystemTime, stored: SystemTime) -> bool {
    at + CLOCK_SLACK < stored
}

/// The task messages known to have run out of deliveries within the duplicate window.
pub(crate) struct LostMessages {
    window: Duration,
    noted: Mutex<Noted>,
}

#[derive(Default)]
struct Noted {
    by_sequence: HashMap<u64, Lost>,
    /// When each was noted, oldest first, to forget them after the window.
    order: VecDeque<(Instant, u64)>,
}

#[derive(Clone, Copy)]
struct Lost {
    deliveries: u64,
    /// When the server kept the advisory (for one heard live, when it was heard).
    at: SystemTime,
    /// When this coordinator noted it last.
    noted: Instant,
}

impl LostMessages {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            noted: Mutex::default(),
        }
    }

    /// Notes that task message `sequence` ran out after `deliveries` (the advisory kept at
    /// `at`).
    pub(crate) fn note(&self, sequence: u64, deliveries: u64, at: SystemTime) {
        self.note_at(Instant::now(), sequence, deliveries, at);
    }

    /// [`Self::note`], noted at `now`.
    fn note_at(&self, now: Instant, sequence: u64, deliveries: u64, at: SystemTime) {
        let mut noted = self.noted.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(&(when, old)) = noted.order.front() {
            if now.duration_since(when) < self.window {
                break;
            }
            noted.order.pop_front();
            // Unless noted again since (read both live and from the stream, say).
            if noted
                .by_sequence
                .get(&old)
                .is_some_and(|lost| lost.noted == when)
            {
                noted.by_sequence.remove(&old);
            }
        }
        noted.order.push_back((now, sequence));
        let lost = Lost {
            deliveries,
            at,
            noted: now,
        };
        noted.by_sequence.insert(sequence, lost);
    }

    /// How many times task message `sequence` (stored at `stored`, if known) was
    /// delivered, if it ran out of deliveries. An advisory kept before the message was
    /// stored (by more than [`CLOCK_SLACK`]) is about an earlier message of that sequence
    /// (the tasks stream was made anew), and is not taken; nor is one noted longer ago
    /// than the window.
    pub(crate) fn deliveries(&self, sequence: u64, stored: Option<SystemTime>) -> Option<u64> {
        let noted = self.noted.lock().unwrap_or_else(PoisonError::into_inner);
        let lost = noted.by_sequence.get(&sequence)?;
        if lost.noted.elapsed() >= self.window {
            return None;
        }
        match stored {
            Some(stored) if kept_before(lost.at, stored) => None,
            _ => Some(lost.deliveries),
        }
    }
}

/// Reads into `lost` the advisories the lost-tasks stream kept, up to sequence `up_to`
/// (the last one before the coordinator began to follow the stream; `u64::MAX` for the
/// last one now). Gives up (with a warning) after `limit`: the coordinator then knows
/// only of those it hears of from now on.
pub(crate) async fn recall(
    js: &jetstream::Context,
    names: &Names,
    lost: &LostMessages,
    up_to: u64,
    limit: Duration,
) {
    let read = async {
        let stream = js.get_stream(names.lost_stream()).await?;
        let state = &stream.cached_info().state;
        let up_to = up_to.min(state.last_sequence);
        if state.messages == 0 || state.first_sequence > up_to {
            return Ok::<_, async_nats::Error>(());
        }
        let (name, filter) = (names.lost_stream(), names.max_deliveries_advisory());
        let mut advisories =
            crate::follow::from_sequence(js, &name, &filter, state.first_sequence).await?;
        // The last one may have aged out meanwhile: a pause also ends the reading.
        while let Ok(Some(advisory)) =
            tokio::time::timeout(Duration::from_secs(2), advisories.next()).await
        {
            let advisory = advisory?;
            let info = advisory.info()?;
            if info.stream_sequence > up_to {
                break;
            }
            if let Ok(message) = serde_json::from_slice::<MaxDeliveries>(&advisory.payload) {
                let at = SystemTime::from(info.published);
                lost.note(message.stream_seq, message.deliveries, at);
            }
            if info.stream_sequence == up_to {
                break;
            }
        }
        Ok(())
    };
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot read the tasks that ran out of deliveries before this coordinator started");
        }
        Err(_) => {
            tracing::warn!(
                "reading the tasks that ran out of deliveries before this coordinator started took over {limit:?}; going on without"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advisory_is_taken_for_its_message_and_not_for_a_later_one_of_its_sequence() {
        let lost = LostMessages::new(Duration::from_secs(60));
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        lost.note(7, 3, t);
        lost.note(8, 2, t);
        assert_eq!(
            lost.deliveries(7, Some(t - Duration::from_secs(1))),
            Some(3)
        );
        assert_eq!(lost.deliveries(7, None), Some(3));
        // Stored after the advisory: a message of a tasks stream made anew; but not
        // within the clocks' slack.
        assert_eq!(lost.deliveries(7, Some(t + Duration::from_secs(2))), None);
        assert_eq!(lost.deliveries(7, Some(t + CLOCK_SLACK)), Some(3));
        assert_eq!(
            lost.deliveries(8, Some(t)),
            Some(2),
            "stored as it was kept"
        );
        assert_eq!(lost.deliveries(9, None), None);
    }

    #[test]
    fn advisories_are_forgotten_after_the_window() {
        let lost = LostMessages::new(Duration::from_secs(60));
        let now = Instant::now();
        let long_ago = now.checked_sub(Duration::from_secs(61));
        let long_ago = long_ago.expect("this test needs a clock past a minute");
        lost.note_at(long_ago, 1, 2, SystemTime::UNIX_EPOCH);
        // Forgotten when asked, though no later note cleared it.
        assert_eq!(lost.deliveries(1, None), None);
        lost.note_at(now, 2, 2, SystemTime::UNIX_EPOCH);
        assert_eq!(lost.deliveries(2, None), Some(2));
    }

    #[test]
    fn an_advisory_noted_again_is_kept_for_the_window_from_then() {
        let lost = LostMessages::new(Duration::from_secs(1));
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        lost.note_at(at(0), 5, 3, SystemTime::UNIX_EPOCH);
        lost.note_at(at(600), 5, 3, SystemTime::UNIX_EPOCH);
        // The first note is past the window, the second is not.
        lost.note_at(at(1200), 6, 2, SystemTime::UNIX_EPOCH);
        assert_eq!(lost.deliveries(5, None), Some(3));
        // Nor is it once its own window is over.
        lost.note_at(at(1600), 7, 2, SystemTime::UNIX_EPOCH);
        assert_eq!(lost.deliveries(5, None), None);
    }
}
