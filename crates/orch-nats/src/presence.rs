//! Whether any worker serves a task type: workers answer requests on
//! `<prefix>.worker.<type>`, and the server tells a requester at once when nobody
//! listens. A request that times out was heard by something that did not answer: a slow
//! worker, or another subscriber to the subject (`nats sub '>'`); the type's consumer
//! then tells, by whether anyone waits for its tasks or holds one. Answers are shared by
//! every attempt waiting on a type for a short while, and while one request is out for a
//! type, the attempts that would ask too wait for its answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use async_nats::{Client, RequestErrorKind};

use crate::protocol::Names;

/// What a coordinator last learnt about each task type's workers.
pub(crate) struct Presence {
    client: Client,
    js: jetstream::Context,
    names: Names,
    /// How long an answer stands before the next attempt that asks sends a request.
    fresh_for: Duration,
    seen: Mutex<HashMap<String, LastSeen>>,
}

/// What was last learnt about one task type, held while a request is out for it.
type LastSeen = Arc<tokio::sync::Mutex<Option<Seen>>>;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Seen {
    asked: Instant,
    /// When the answer came (or the request was given up): it stands from then on.
    learnt: Instant,
    /// Since when no worker has answered; none if one answered at the last request.
    missing_since: Option<Instant>,
}

impl Seen {
    /// What a request sent at `asked`, `answered` or not, tells after `previous`, when
    /// answers stand for `fresh_for`. Absence counts from an earlier request only while
    /// requests followed one another (attempts kept waiting, each asking at most every
    /// other check, a check every `fresh_for`): a worker may have come and gone unseen
    /// in a longer gap.
    fn after(previous: Option<&Seen>, asked: Instant, answered: bool, fresh_for: Duration) -> Self {
        let continuous = fresh_for * 4 + Duration::from_secs(1);
        let before = previous
            .filter(|s| asked.saturating_duration_since(s.asked) <= continuous)
            .and_then(|s| s.missing_since);
        Seen {
            asked,
            learnt: Instant::now(),
            missing_since: (!answered).then(|| before.unwrap_or(asked)),
        }
    }
}

impl Presence {
    pub(crate) fn new(
        client: Client,
        js: jetstream::Context,
        names: Names,
        fresh_for: Duration,
    ) -> Self {
        Self {
            client,
            js,
            names,
            fresh_for,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// How long no worker has served `task_type` (zero while one does).
    pub(crate) async fn missing_for(&self, task_type: &str) -> Duration {
        let entry = {
            let mut seen = self.lock();
            // The type's name is copied once, not on every look.
            match seen.get(task_type) {
                Some(entry) => Arc::clone(entry),
                None => Arc::clone(seen.entry(task_type.to_owned()).or_default()),
            }
        };
        let mut known = entry.lock().await;
        let seen = match *known {
            Some(seen) if seen.learnt.elapsed() < self.fresh_for => seen,
            previous => {
                let subject = self.names.presence_subject(task_type);
                let asked = Instant::now();
                let request = self.client.request(subject, bytes_empty());
                let patience = self.fresh_for.max(Duration::from_millis(200));
                let answered = match tokio::time::timeout(patience, request).await {
                    Ok(Ok(_)) => true,
                    Ok(Err(error)) => error.kind() != RequestErrorKind::NoResponders,
                    Err(_) => self.consumer_in_use(task_type, patience).await,
                };
                let now = Seen::after(previous.as_ref(), asked, answered, self.fresh_for);
                *known = Some(now);
                now
            }
        };
        seen.missing_since
            .map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// Whether a worker waits for `task_type`'s tasks or holds one, by its consumer (no
    /// worker made one: no); when that cannot be told (the look-up fails or takes longer
    /// than `patience`), yes, as a worker slow to answer still serves the type.
    async fn consumer_in_use(&self, task_type: &str, patience: Duration) -> bool {
        use jetstream::stream::ConsumerErrorKind;
        let consumer = Names::consumer(task_type);
        let stream = self.names.tasks_stream();
        let look_up = self
            .js
            .get_consumer_from_stream::<consumer::pull::Config, _, _>(consumer, stream);
        match tokio::time::timeout(patience, look_up).await {
            Ok(Ok(found)) => {
                let info = found.cached_info();
                info.num_waiting > 0 || info.num_ack_pending > 0
            }
            Ok(Err(error)) => !matches!(error.kind(),
                ConsumerErrorKind::JetStream(e) if e.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND),
            Err(_) => true,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LastSeen>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn bytes_empty() -> bytes::Bytes {
    bytes::Bytes::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absence_counts_across_requests_that_follow_one_another_and_not_across_a_gap() {
        let fresh_for = Duration::from_secs(1);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let first = Seen::after(None, at(0), false, fresh_for);
        assert_eq!(first.missing_since, Some(at(0)));
        // The next check found the answer still fresh; the one after asks, a little late.
        let next = Seen::after(Some(&first), at(2_150), false, fresh_for);
        assert_eq!(next.missing_since, Some(at(0)));
        // Nobody asked for a minute: the absence starts again.
        let later = Seen::after(Some(&next), at(62_150), false, fresh_for);
        assert_eq!(later.missing_since, Some(at(62_150)));
        // A worker answered: none missing.
        let answered = Seen::after(Some(&later), at(63_150), true, fresh_for);
        assert_eq!(answered.missing_since, None);
    }
}
