//! What the tasks stream holds, read once for every waiting attempt: whether an
//! attempt's message may have left it with no result (the stream purged, its oldest
//! messages removed by a limit, or the stream made anew), so that only then is that
//! message looked up on its own.

use std::time::Duration;

use async_nats::jetstream;
use tokio::time::Instant;

/// The coordinator's latest reading of the tasks stream's state.
pub(super) struct StreamWatch {
    /// How long a reading (or a failure to read) stands before an attempt that asks
    /// reads the stream again.
    fresh_for: Duration,
    read: tokio::sync::Mutex<Read>,
}

struct Read {
    /// When the stream was last read, or tried.
    tried: Instant,
    /// The last reading that succeeded.
    reading: Option<Reading>,
}

#[derive(Clone, Copy)]
struct Reading {
    first: u64,
    last: u64,
    created: async_nats::datetime::DateTime,
    /// When a reading first found the stream made anew since the one before.
    made_anew_at: Option<Instant>,
}

impl StreamWatch {
    /// Reads stream `name` once, so that a stream made anew after this is told apart.
    pub(super) async fn start(js: &jetstream::Context, name: &str, fresh_for: Duration) -> Self {
        let reading = read_stream(js, name, None).await;
        Self {
            fresh_for,
            read: tokio::sync::Mutex::new(Read {
                tried: Instant::now(),
                reading,
            }),
        }
    }

    /// Whether the message at `sequence` may have left the stream `name`: its sequence
    /// is below the stream's first message or past its last, or the stream was found
    /// made anew after `there_at`, when the message was last known to be in it (sent, or
    /// found there). No when the stream cannot be read (a message removed while others
    /// before it remain is not seen here either).
    pub(super) async fn may_have_lost(
        &self,
        js: &jetstream::Context,
        name: &str,
        sequence: u64,
        there_at: Instant,
    ) -> bool {
        let mut read = self.read.lock().await;
        if read.tried.elapsed() >= self.fresh_for {
            if let Some(now) = read_stream(js, name, read.reading.as_ref()).await {
                read.reading = Some(now);
            }
            read.tried = Instant::now();
        }
        read.reading.is_some_and(|r| {
            sequence < r.first
                || sequence > r.last
                || r.made_anew_at.is_some_and(|at| at > there_at)
        })
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
        first: info.state.first_sequence,
        last: info.state.last_sequence,
        created: info.created,
        made_anew_at: match made_anew {
            true => Some(Instant::now()),
            false => before.and_then(|b| b.made_anew_at),
        },
    })
}
