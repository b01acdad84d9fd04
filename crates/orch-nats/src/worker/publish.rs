//! An attempt's result message: written to fit the server's message size, and stored on
//! the results stream under the attempt's message id.

use std::time::Duration;

use async_nats::jetstream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::nesting::{MAX_NESTING, nesting};
use crate::protocol::{self, HEADER_ROOM, Outcome, ResultMessage};
use crate::routes::AttemptKey;
use crate::stored;

/// The result message of `outcome`, written once. An output too large for a result
/// message goes to the object store, and the outcome names it instead: tried again
/// while `tries` lasts, the attempt fails (and may be retried) if it cannot be stored.
/// `None` if the worker stops meanwhile, or the attempt's deadline passes.
async fn result_payload(
    shared: &Shared,
    key: &AttemptKey,
    outcome: Outcome,
    tries: &mut Tries<'_>,
) -> Option<bytes::Bytes> {
    let mut message = result_message(shared, key, outcome);
    let mut payload = protocol::write(&message);
    if let Some(error) = too_deep(&message.outcome, &payload) {
        message.outcome = Outcome::Failed {
            error,
            permanent: false,
        };
        payload = protocol::write(&message);
    }
    let excess =
        |payload: &[u8]| (payload.len() + HEADER_ROOM).saturating_sub(shared.max_message_bytes);
    if excess(&payload) == 0 {
        return Some(payload.into());
    }
    if let Outcome::Completed {
        output,
        not_journaled,
    } = &mut message.outcome
    {
        let bytes = protocol::write(output);
        let stored = Box::pin(store(shared, key, &bytes, not_journaled.take(), tries)).await?;
        message = result_message(shared, key, stored);
        payload = protocol::write(&message);
    }
    let excess = excess(&payload);
    if excess == 0 {
        return Some(payload.into());
    }
    // A text that cannot fit would make every publish fail, and the worker retry it for
    // ever: it keeps what fits.
    match &mut message.outcome {
        Outcome::Failed { error: text, .. }
        | Outcome::Skipped { reason: text }
        | Outcome::Stored {
            not_journaled: Some(text),
            ..
        } => {
            cut_to_fit(text, excess);
            Some(protocol::write(&message).into())
        }
        _ => Some(payload.into()),
    }
}

/// How many levels a result message adds around an output: its own object and the
/// outcome's.
const OUTPUT_WRAPPING: usize = 2;

/// Why an output cannot travel in `payload`, its result message: nested deeper than its
/// coordinator reads. Stored as it is, the result would be lost on the way, and the
/// coordinator wait for it for ever.
fn too_deep(outcome: &Outcome, payload: &[u8]) -> Option<String> {
    if !matches!(outcome, Outcome::Completed { .. }) {
        return None;
    }
    let depth = nesting(payload);
    (depth > MAX_NESTING).then(|| {
        format!(
            "the output nests {} levels deep (arrays and objects within each other), and a \
             result can carry at most {}",
            depth - OUTPUT_WRAPPING,
            MAX_NESTING - OUTPUT_WRAPPING
        )
    })
}

/// Room for what [`cut_to_fit`] appends.
const CUT_NOTE_ROOM: usize = 128;

/// Shortens `text` by at least `excess` bytes of its message (each byte of text takes
/// at least one in the message), keeping its start and saying how much was cut.
fn cut_to_fit(text: &mut String, excess: usize) {
    let keep = protocol::start_of(text, text.len().saturating_sub(excess + CUT_NOTE_ROOM)).len();
    let cut = text.len() - keep;
    text.truncate(keep);
    text.push_str(&format!(
        " [{cut} more bytes cut: the text was longer than a result message may be]"
    ));
}

/// Stores an output (`bytes` of JSON) in the object store, trying again while `tries`
/// lasts; the outcome names it, or fails if it cannot be stored. `None` if the worker
/// stops first, or if the attempt's deadline passes first.
async fn store(
    shared: &Shared,
    key: &AttemptKey,
    bytes: &[u8],
    not_journaled: Option<String>,
    tries: &mut Tries<'_>,
) -> Option<Outcome> {
    let object = protocol::message_id(&key.run, &key.task, key.attempt);
    loop {
        let put = stored::put(
            &shared.js,
            &shared.names,
            shared.layout.result_retention,
            // The parts go to the bucket's own stream, which only the server's limit binds.
            shared.client.server_info().max_payload,
            &object,
            bytes,
        );
        // One try takes no longer than the time left (but at least the least a try is
        // given).
        let put = async {
            match tries.left() {
                Some(left) => tokio::time::timeout(left.max(LEAST_TRY), put)
                    .await
                    .unwrap_or_else(|_| Err("the server did not store it in time".to_owned())),
                None => put.await,
            }
        };
        // A worker told to stop during the upload hands the task back rather than finish
        // a long upload (the parts sent are left to expire): it stops within its grace
        // period. An output made after that (a handler that ended in its cancel grace)
        // is stored all the same: its task would otherwise run again.
        let put = match tries.stop_cuts_uploads {
            true => tokio::select! {
                biased;
                put = put => put,
                () = tries.hand_back.cancelled() => return None,
            },
            false => put.await,
        };
        let error = match put {
            Ok(size) => {
                return Some(Outcome::Stored {
                    object,
                    bytes: size,
                    not_journaled,
                });
            }
            Err(error) => error,
        };
        if !tries.again("storing an output", &error).await {
            // Past the deadline nobody waits for the attempt: it gets no result.
            let report = !tries.hand_back.is_cancelled() && !tries.past_deadline();
            return report.then(|| Outcome::Failed {
                error: format!(
                    "the output is {} bytes, over a result message's limit, and {error}",
                    bytes.len()
                ),
                permanent: false,
            });
        }
    }
}

pub(super) fn result_message(shared: &Shared, key: &AttemptKey, outcome: Outcome) -> ResultMessage {
    ResultMessage {
        v: protocol::VERSION,
        run_id: key.run.clone(),
        task_id: key.task.clone(),
        attempt: key.attempt,
        worker: shared.name.clone(),
        outcome,
    }
}

/// The least time one try to store a result is given, however little patience or time
/// before the deadline is left: a try cut shorter could hardly succeed.
const LEAST_TRY: Duration = Duration::from_secs(1);

/// How long the client waits for the server to acknowledge a publish before it fails
/// the try (async-nats' default for a JetStream context, which workers use).
const CLIENT_ACK_WAIT: Duration = Duration::from_secs(5);

/// Stores `outcome` as the result of attempt `key` (its output in the object store first,
/// if it is too large for a message), trying again until the worker's patience or the
/// attempt's deadline (`deadline_ms`) runs out; whether it was stored (not if the worker
/// stopped first).
pub(super) async fn store_result(
    shared: &Shared,
    key: &AttemptKey,
    outcome: Outcome,
    deadline_ms: Option<u64>,
    hand_back: &CancellationToken,
) -> bool {
    let mut tries = Tries::new(shared, deadline_ms.map(protocol::until), hand_back);
    let Some(payload) = result_payload(shared, key, outcome, &mut tries).await else {
        return false;
    };
    publish_result(shared, key, payload, &mut tries).await
}

/// How long a worker tries to store an attempt's result (its output in the object store
/// first, when the output goes there): the worker's patience, or until the attempt's
/// deadline when that comes first, or until the worker stops.
struct Tries<'a> {
    /// None: no limit (a time too far for the clock).
    give_up_at: Option<Instant>,
    /// The attempt's deadline comes before the patience runs out.
    deadline_first: bool,
    patience: Duration,
    pause: Duration,
    hand_back: &'a CancellationToken,
    /// The worker had not stopped when the result was ready: a stop ends its upload.
    stop_cuts_uploads: bool,
}

impl<'a> Tries<'a> {
    /// Tries for an attempt whose deadline is `deadline` from now, if it has one.
    fn new(shared: &Shared, deadline: Option<Duration>, hand_back: &'a CancellationToken) -> Self {
        let patience = shared.result_patience;
        Self {
            give_up_at: Instant::now().checked_add(deadline.map_or(patience, |d| d.min(patience))),
            deadline_first: deadline.is_some_and(|d| d <= patience),
            patience,
            pause: Duration::from_millis(50),
            hand_back,
            stop_cuts_uploads: !hand_back.is_cancelled(),
        }
    }

    /// Whether the attempt's deadline has passed.
    fn past_deadline(&self) -> bool {
        self.deadline_first && self.left().is_some_and(|left| left.is_zero())
    }

    /// The time left, if there is a limit.
    fn left(&self) -> Option<Duration> {
        self.give_up_at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// After try at `what` failed with `error`: waits for the next one, and `false` if
    /// there is none (the time is up, or the worker stops).
    async fn again(&mut self, what: &str, error: &(dyn std::fmt::Display + Sync)) -> bool {
        if self.left().is_some_and(|left| left.is_zero()) {
            if self.deadline_first {
                tracing::warn!(%error, "the task passed its deadline before its result could be stored");
            } else {
                tracing::warn!(%error, patience = ?self.patience, "the result could not be stored in time");
            }
            return false;
        }
        tracing::warn!(%error, "{what} failed; trying again");
        let next_try = Instant::now() + self.pause;
        let next_try = self.give_up_at.map_or(next_try, |at| next_try.min(at));
        tokio::select! {
            () = tokio::time::sleep_until(next_try) => {}
            () = self.hand_back.cancelled() => return false,
        }
        self.pause = (self.pause * 2).min(Duration::from_secs(2));
        true
    }
}

/// Publishes a result until the server stores it; `false` if the worker stopped first,
/// if the worker's patience ran out (the task goes back to the queue, and its deliveries
/// are counted), or if the attempt's deadline passed first: its coordinator no longer
/// waits, and the task, handed back, is dropped as past its deadline.
async fn publish_result(
    shared: &Shared,
    key: &AttemptKey,
    payload: bytes::Bytes,
    tries: &mut Tries<'_>,
) -> bool {
    loop {
        let left = tries.left();
        let publish = publish_once(shared, key, payload.clone());
        // A server that never answers (a subject this worker may not publish on) takes
        // no longer than the client's own wait, or the patience left when that is shorter
        // (but at least the least time a try is given): a timer only then.
        let published = match left {
            Some(left) if left < CLIENT_ACK_WAIT => {
                tokio::time::timeout(left.max(LEAST_TRY), publish)
                    .await
                    .unwrap_or_else(|_| Err("no acknowledgement from the server in time".into()))
            }
            _ => publish.await,
        };
        let error = match published {
            Ok(()) => return true,
            Err(error) => error,
        };
        if !tries.again("publishing a result", &error).await {
            return false;
        }
    }
}

/// Publishes a result once, under the attempt's message id, and waits for the server.
async fn publish_once(
    shared: &Shared,
    key: &AttemptKey,
    payload: bytes::Bytes,
) -> Result<(), async_nats::Error> {
    let subject = shared
        .names
        .result_subject(&key.run, &key.task, key.attempt);
    let publish = jetstream::message::PublishMessage::build()
        .payload(payload)
        .message_id(protocol::message_id(&key.run, &key.task, key.attempt));
    shared.js.send_publish(subject, publish).await?.await?;
    Ok(())
}
