//! Refusing a task message a worker cannot run: its attempt's failure is stored where
//! the message says which attempt it is, and the message is terminated.

use async_nats::jetstream::{self, AckKind};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::acks::{ack, give_back, with_progress};
use super::cancels::Place;
use super::publish::store_result;
use super::{Shared, TypeQueue};
use crate::protocol::{self, Envelope, Outcome};
use crate::routes::AttemptKey;

/// A message that cannot be run: terminated (never delivered again) with a logged
/// error, once its attempt's failure is stored when the message says which attempt it
/// is. A failure that cannot be stored hands the message back instead, to be refused
/// again: its coordinator waits for the attempt, and finds out only from a stored result
/// (or from the message running out of deliveries). An attempt nobody waits for (past
/// its deadline, or cancelled) is terminated with no failure stored: a coordinator that
/// comes back on a cancelled run sends the attempt again, and would take the failure
/// for its outcome.
pub(super) async fn refuse(
    shared: &Shared,
    queue: &TypeQueue,
    message: &jetstream::Message,
    place: Place,
    error: &str,
    hand_back: &CancellationToken,
    last_ack: &mut Instant,
) {
    let sequence = place.sequence;
    let envelope = serde_json::from_slice::<Envelope>(&message.payload).ok();
    let (run_id, task_id) = (envelope.as_ref())
        .map(|e| (e.run_id.to_string(), e.task.task_id.to_string()))
        .unzip();
    let refused = |action: &str| {
        tracing::error!(
            stream_sequence = sequence,
            subject = %message.subject,
            run_id = run_id.as_deref(),
            task_id = task_id.as_deref(),
            %error,
            "{action} a task message this worker cannot run"
        );
    };
    let Some(envelope) = envelope else {
        refused("terminating");
        return ack(message, AckKind::Term).await;
    };
    let key = AttemptKey {
        run: envelope.run_id,
        task: envelope.task.task_id,
        attempt: envelope.attempt,
    };
    let past_deadline = || (envelope.deadline_ms).is_some_and(|d| protocol::until(d).is_zero());
    if past_deadline() || shared.cancels.covers(&key, place) {
        refused(
            "terminating (with no failure stored: its attempt was cancelled or is past its deadline)",
        );
        return ack(message, AckKind::Term).await;
    }
    let failed = Outcome::Failed {
        error: format!(
            "worker `{}` cannot run the task message: {error}",
            shared.name
        ),
        permanent: true,
    };
    // Cut to fit like any result: the error quotes the message, which may be as long
    // as a message can be.
    let publish = store_result(shared, &key, failed, envelope.deadline_ms, hand_back);
    let stored = with_progress(message, queue, last_ack, publish).await;
    // Past its deadline now, nobody waits for the attempt: given back, it would only be
    // refused again.
    if stored || past_deadline() {
        refused("terminating");
        ack(message, AckKind::Term).await;
    } else {
        refused("handing back (its failure could not be stored)");
        match hand_back.is_cancelled() {
            true => give_back(queue, message, last_ack).await,
            false => ack(message, AckKind::Nak(None)).await,
        }
    }
}
