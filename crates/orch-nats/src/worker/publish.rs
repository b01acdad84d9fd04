//! An attempt's result message: written to fit the server's message size, and stored on
//! the results stream under the attempt's message id.

use std::time::Duration;

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::nesting::{MAX_NESTING, nesting};
use crate::protocol::{self, HEADER_ROOM, Outcome, ResultMessage};
use crate::routes::AttemptKey;
use crate::stored;

/// The result message of `outcome`, written once. An output too large for a result
/// message goes to the object store, and the outcome names it instead; the attempt fails
/// (and may be retried) if it cannot be stored.
pub(super) async fn result_payload(
    shared: &Shared,
    key: &AttemptKey,
    outcome: Outcome,
) -> bytes::Bytes {
    let mut message = result_message(shared, key, outcome);
    let mut payload = protocol::write(&message);
    if let Some(error) = too_deep(&message.outcome, &payload) {
        message.outcome = Outcome::Failed {
            error,
            permanent: false,
        };
        payload = protocol::write(&message);
    }
    let excess = (payload.len() + HEADER_ROOM).saturating_sub(shared.max_message_bytes);
    if excess == 0 {
        return payload.into();
    }
    match &mut message.outcome {
        Outcome::Completed {
            output,
            not_journaled,
        } => {
            let bytes = protocol::write(output);
            let outcome = Box::pin(store(shared, key, &bytes, not_journaled.take())).await;
            protocol::write(&result_message(shared, key, outcome)).into()
        }
        // A text that cannot fit would make every publish fail, and the worker retry it
        // for ever: it keeps what fits.
        Outcome::Failed { error: text, .. } | Outcome::Skipped { reason: text } => {
            cut_to_fit(text, excess);
            protocol::write(&message).into()
        }
        Outcome::Stored { .. } => payload.into(),
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
    let mut keep = text.len().saturating_sub(excess + CUT_NOTE_ROOM);
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    let cut = text.len() - keep;
    text.truncate(keep);
    text.push_str(&format!(
        " [{cut} more bytes cut: the text was longer than a result message may be]"
    ));
}

/// Stores an output (`bytes` of JSON) in the object store; the outcome names it, or
/// fails if it cannot be stored.
async fn store(
    shared: &Shared,
    key: &AttemptKey,
    bytes: &[u8],
    not_journaled: Option<String>,
) -> Outcome {
    let object = protocol::message_id(&key.run, &key.task, key.attempt);
    match stored::put(
        &shared.js,
        &shared.names,
        shared.layout.result_retention,
        shared.max_message_bytes,
        &object,
        bytes,
    )
    .await
    {
        Ok(()) => Outcome::Stored {
            object,
            bytes: bytes.len() as u64,
            not_journaled,
        },
        Err(error) => Outcome::Failed {
            error: format!(
                "the output is {} bytes, over a result message's limit, and {error}",
                bytes.len()
            ),
            permanent: false,
        },
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

/// Publishes a result until the server stores it; `false` if the worker stopped first,
/// if the worker's patience ran out (the task goes back to the queue, and its deliveries
/// are counted), or if the attempt's deadline (`deadline` from now) passed first: its
/// coordinator no longer waits, and the task, handed back, is dropped as past its
/// deadline.
pub(super) async fn publish_result(
    shared: &Shared,
    key: &AttemptKey,
    payload: bytes::Bytes,
    deadline: Option<Duration>,
    hand_back: &CancellationToken,
) -> bool {
    let mut pause = Duration::from_millis(50);
    let give_up = deadline.map_or(shared.result_patience, |d| d.min(shared.result_patience));
    // A time too far for the clock is no limit.
    let give_up_at = tokio::time::Instant::now().checked_add(give_up);
    loop {
        let left = give_up_at.map(|at| at.saturating_duration_since(tokio::time::Instant::now()));
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
        if give_up_at.is_some_and(|at| at <= tokio::time::Instant::now()) {
            if deadline.is_some_and(|d| d <= shared.result_patience) {
                tracing::warn!(%error, "the task passed its deadline before its result could be stored");
            } else {
                tracing::warn!(
                    %error,
                    patience = ?shared.result_patience,
                    "the result could not be stored in time; giving the task back"
                );
            }
            return false;
        }
        tracing::warn!(%error, "publishing a result failed; trying again");
        let next_try = tokio::time::Instant::now() + pause;
        let next_try = give_up_at.map_or(next_try, |at| next_try.min(at));
        tokio::select! {
            () = tokio::time::sleep_until(next_try) => {}
            () = hand_back.cancelled() => return false,
        }
        pause = (pause * 2).min(Duration::from_secs(2));
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
