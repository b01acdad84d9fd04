//! Acknowledging task messages: progress while a task is worked on, giving a task back
//! to the queue, and the last word on it. Each is given up after [`ROOM_WAIT`].

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use tokio::time::Instant;

use super::queue::ProgressDue;
use super::{Shared, TypeQueue};
use crate::ROOM_WAIT;

/// Runs `work`, acknowledging progress on `message` as `queue`'s consumer needs until
/// it ends: the first a period after `last_ack` (when the message was last acknowledged
/// or received), which is moved on to the last one sent.
pub(super) async fn with_progress<T>(
    message: &jetstream::Message,
    queue: &TypeQueue,
    last_ack: &mut Instant,
    work: impl Future<Output = T>,
) -> T {
    let mut progress = ProgressDue::since(queue, *last_ack);
    let done = progress_while(&mut progress, message, work).await;
    *last_ack = progress.last();
    done
}

/// [`with_progress`], the acknowledgements due as `progress` says (one already running).
pub(super) async fn progress_while<T>(
    progress: &mut ProgressDue,
    message: &jetstream::Message,
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            done = &mut work => return done,
            () = progress.tick() => ack(message, AckKind::Progress).await,
        }
    }
}

/// Gives the task of a stopping worker back to the queue, once the worker's request for
/// tasks of its type has ended (acknowledging progress until then): given back while
/// that request is open, the server may deliver it straight back to it.
pub(super) async fn give_back(
    queue: &TypeQueue,
    message: &jetstream::Message,
    last_ack: &mut Instant,
) {
    let requests_over = queue.requests_over.cancelled();
    with_progress(message, queue, last_ack, requests_over).await;
    ack(message, AckKind::Nak(None)).await;
}

/// Gives a task the worker received, and will not run, back to the queue for delivery
/// again after `delay`.
pub(super) async fn hand_back(shared: &Shared, message: &async_nats::Message, delay: Duration) {
    let message = jetstream::Message {
        message: message.clone(),
        context: shared.js.clone(),
    };
    ack(&message, AckKind::Nak(Some(delay))).await;
}

/// Tells the server that a task a worker received is still being worked on.
pub(super) async fn in_progress(shared: &Shared, message: &async_nats::Message) {
    let message = jetstream::Message {
        message: message.clone(),
        context: shared.js.clone(),
    };
    ack(&message, AckKind::Progress).await;
}

/// Acknowledges `message` as `kind`. Given up after [`ROOM_WAIT`], so that a worker
/// cut off from its server still stops: one the server never gets, it acts on as if
/// the worker were gone (it delivers the task again after its ack wait).
pub(super) async fn ack(message: &jetstream::Message, kind: AckKind) {
    let error = match tokio::time::timeout(ROOM_WAIT, message.ack_with(kind)).await {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("the connection took nothing for {ROOM_WAIT:?}"),
    };
    // Which acknowledgement of which message was lost matters: the task is delivered
    // again after a lost `Ack`, and may be after a lost `Progress`.
    let stream_sequence = message.info().map(|info| info.stream_sequence).ok();
    tracing::warn!(%error, ?kind, ?stream_sequence, "could not acknowledge a task message");
}
