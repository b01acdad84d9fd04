//! What the tasks stream holds, read once for every waiting attempt: whether an
//! attempt's message may have left it with no result (the stream purged, its oldest
//! messages removed by a limit, or the stream made anew), so that only then is that
//! message looked up on its own.

use std::time::Duration;

use async_nats::jetstream;
use tokio::time::Instant;

use super::dispatch::OnStream;

/// The coordinator's latest reading of the tasks stream's state.
pub(super) struct StreamWatch {
    /// How long a reading stands before an attempt that asks reads the stream again.
    fresh_for: Duration,
    read: tokio::sync::Mutex<Option<Reading>>,
}

#[derive(Clone, Copy)]
struct Reading {
    at: Instant,
    first: u64,
    last: u64,
    created: async_nats::datetime::DateTime,
    /// When a reading first found the stream made anew since the one before.
    made_anew_at: Option<Instant>,
}

impl StreamWatch {
    pub(super) fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            read: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether `message` may have left the stream `name`: its sequence is below the
    /// stream's first message or past its last, or the stream was made anew since it
    /// was sent. No when the stream cannot be read (a message removed while others before
    /// it remain is not seen here either).
    pub(super) async fn may_have_lost(
        &self,
        js: &jetstream::Context,
        name: &str,
        message: &OnStream,
    ) -> bool {
        let (sequence, sent_at) = (message.sequence, message.sent_at);
        let mut read = self.read.lock().await;
        let stale = read.is_none_or(|r| r.at.elapsed() >= self.fresh_for);
        if stale && let Some(now) = read_stream(js, name, read.as_ref()).await {
            *read = Some(now);
        }
        read.is_some_and(|r| {
            sequence < r.first || sequence > r.last || r.made_anew_at.is_some_and(|at| at > sent_at)
        })
    }

    /// Reads the stream once, so that a stream made anew after this is told apart.
    pub(super) async fn start(&self, js: &jetstream::Context, name: &str) {
        let mut read = self.read.lock().await;
        if read.is_none() {
            *read = read_stream(js, name, None).await;
        }
    }
}

/// The stream's state now, after `before`; none if it cannot be read.
async fn read_stream(
    js: &jetstream::Context,
    name: &str,
    before: Option<&Reading>,
) -> Option<Reading> {
    let info = tokio::time::timeout(Duration::from_secs(5), js.get_stream(name))
        .await
        .ok()?
        .ok()?;
    let info = info.cached_info();
    let made_anew = before.is_some_and(|b| b.created != info.created);
    Some(Reading {
        at: Instant::now(),
        first: info.state.first_sequence,
        last: info.state.last_sequence,
        created: info.created,
        made_anew_at: match made_anew {
            true => Some(Instant::now()),
            false => before.and_then(|b| b.made_anew_at),
        },
    })
}
