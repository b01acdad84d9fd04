//! Whether any worker serves a task type: workers answer requests on
//! `<prefix>.worker.<type>`, and the server tells a requester at once when nobody
//! listens. Answers are shared by every attempt waiting on a type for a short while.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::{Client, RequestErrorKind};

use crate::protocol::Names;

/// What a coordinator last learnt about each task type's workers.
pub(crate) struct Presence {
    client: Client,
    names: Names,
    /// How long an answer stands before the next attempt that asks sends a request.
    fresh_for: Duration,
    seen: Mutex<HashMap<String, Seen>>,
}

#[derive(Clone, Copy)]
struct Seen {
    asked: Instant,
    /// Since when no worker has answered; none if one answered at the last request.
    missing_since: Option<Instant>,
}

impl Presence {
    pub(crate) fn new(client: Client, names: Names, fresh_for: Duration) -> Self {
        Self {
            client,
            names,
            fresh_for,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// How long no worker has served `task_type` (zero while one does).
    pub(crate) async fn missing_for(&self, task_type: &str) -> Duration {
        let known = self.lock().get(task_type).copied();
        let seen = match known {
            Some(seen) if seen.asked.elapsed() < self.fresh_for => seen,
            _ => {
                let subject = self.names.presence_subject(task_type);
                let asked = Instant::now();
                let request = self.client.request(subject, bytes_empty());
                let answered = match tokio::time::timeout(
                    self.fresh_for.max(Duration::from_millis(200)),
                    request,
                )
                .await
                {
                    Ok(Ok(_)) => true,
                    Ok(Err(error)) => error.kind() != RequestErrorKind::NoResponders,
                    // A worker that listens but is slow to answer still serves the type.
                    Err(_) => true,
                };
                let mut seen = self.lock();
                // Absence counts from an earlier request only while requests followed
                // one another (attempts kept waiting): a worker may have come and gone
                // unseen in a longer gap.
                let continuous = self.fresh_for.max(Duration::from_secs(1)) * 2;
                let previous = (seen.get(task_type))
                    .filter(|s| asked.saturating_duration_since(s.asked) <= continuous)
                    .and_then(|s| s.missing_since);
                let now = Seen {
                    asked,
                    missing_since: if answered {
                        None
                    } else {
                        Some(previous.unwrap_or(asked))
                    },
                };
                seen.insert(task_type.to_owned(), now);
                now
            }
        };
        seen.missing_since
            .map_or(Duration::ZERO, |since| since.elapsed())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn bytes_empty() -> bytes::Bytes {
    bytes::Bytes::new()
}
