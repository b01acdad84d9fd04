//! Sending an attempt's task message: under the attempt's message id, and again under a
//! new one when a restarted coordinator finds that the message it sent before was removed
//! without a result (or settling the attempt as lost, when that message ran out of
//! deliveries while the coordinator was away).

use std::time::{Duration, SystemTime};

use async_nats::header;
use async_nats::jetstream::{self, context::PublishErrorKind, stream::RawMessageErrorKind};
use bytes::Bytes;
use orch_engine::{TaskContext, TaskError};

use super::Inner;
use crate::LOOK_UP_WAIT;
use crate::protocol::{self, ResultMessage};
use crate::routes::{AttemptKey, Settled};
use crate::stored;

/// Whether a task message is still on the tasks stream.
enum Queued {
    /// It is (or the server cannot tell), stored at `stored` if known.
    Yes { stored: Option<SystemTime> },
    /// It was removed.
    No,
}

/// The least time an attempt waits while no stream takes its message: a restarted
/// server answers so until it has recovered its streams.
const NO_STREAM_PATIENCE: Duration = Duration::from_secs(5);

/// How many times an attempt's message is sent again after it was found removed without
/// a result (each time by a coordinator that restarted).
const MAX_RESENDS: u32 = 100;

/// What became of a task message the server already had.
pub(super) enum Fate {
    /// Still queued or held by a worker, stored at `stored` if known.
    Queued { stored: Option<SystemTime> },
    /// A result is stored for the attempt, which it settled.
    Answered,
    /// Removed with no result stored: no worker will answer it.
    Removed,
    /// The server could not say.
    Unknown,
}

/// Where an attempt's task message went: its stream sequence and message id.
pub(super) struct OnStream {
    pub(super) sequence: u64,
    pub(super) id: String,
    /// When the server said it had it.
    pub(super) sent_at: tokio::time::Instant,
}

/// An attempt's task message, on the stream.
pub(super) struct Sent {
    pub(super) message: OnStream,
    /// The server had it already (sent by a coordinator that stopped) and it is still
    /// queued: it may yet be removed without a result (a worker that heard the earlier
    /// coordinator's cancellation drops it), and is then sent again from `next_resend`.
    pub(super) queued_before: bool,
    pub(super) next_resend: u32,
}

impl Sent {
    fn new(message: OnStream, queued_before: bool, resend: u32) -> Self {
        Sent {
            message,
            queued_before,
            next_resend: resend + 1,
        }
    }
}

impl Inner {
    /// Publishes the task message of `key` on `subject` (the `first_resend`th time it is
    /// sent again, 0 for the first time). `sequence` is set to the message's stream
    /// sequence as soon as the server stored it, for an attempt dropped while this looks
    /// into what became of a message sent before.
    ///
    /// A message the server already had (sent by a coordinator that stopped, within the
    /// duplicate window) stands while it is still queued or running; a result stored for
    /// it settles the attempt. One that was removed without a result (its run was
    /// cancelled, or its deadline passed, before the coordinator stopped) would never be
    /// answered: the message goes out again under the next id, `<run>.<task>.<attempt>.1`
    /// and so on.
    pub(super) async fn dispatch(
        &self,
        subject: &str,
        key: &AttemptKey,
        payload: Bytes,
        ctx: &TaskContext,
        first_resend: u32,
        sequence_slot: &mut Option<u64>,
    ) -> Result<Sent, TaskError> {
        // A run cancelled while the attempt got ready (its type's consumer made) sends
        // nothing a worker could start. A resumed attempt goes on: an earlier
        // coordinator's message may be queued, and sending finds it, to cancel it.
        if ctx.cancellation().is_cancelled() && !ctx.resumed() {
            return Err(TaskError::new(
                "cancelled before the task was sent to a worker",
            ));
        }
        let first_id = protocol::message_id(&key.run, &key.task, key.attempt);
        for resend in first_resend..=MAX_RESENDS {
            let id = protocol::resent_id(&first_id, resend);
            let began = tokio::time::Instant::now();
            let (sequence, duplicate, retried) =
                self.publish(subject, &id, payload.clone(), ctx).await?;
            // A duplicate of this process's own earlier try (its answer was lost) was not
            // queued by a coordinator before: it is this attempt's fresh message, which a
            // cancellation made meanwhile covers as any other.
            let own_try = retried && resend == first_resend && !ctx.resumed();
            let sent_before = duplicate && !own_try;
            let cancelled = self.routes.published(key, sequence, sent_before, began);
            *sequence_slot = Some(sequence);
            let message = OnStream {
                sequence,
                id,
                sent_at: tokio::time::Instant::now(),
            };
            // A cancelled one is settled: it is not looked for, nor sent again once removed.
            if !duplicate || cancelled {
                return Ok(Sent::new(message, false, resend));
            }
            let fate = Box::pin(self.fate(key, &message)).await;
            // Nor does it need watching as one.
            let sent = |queued_before: bool| Sent::new(message, queued_before && !own_try, resend);
            match fate {
                Fate::Answered => return Ok(sent(false)),
                Fate::Unknown => return Ok(sent(true)),
                Fate::Queued { stored } => {
                    // Still there, but perhaps out of deliveries: then no worker will ever
                    // answer it, and the server said so while this coordinator was away.
                    if let Some(deliveries) = self.lost.deliveries(sequence, stored) {
                        self.routes.settle(key, Settled::Lost { deliveries });
                    }
                    return Ok(sent(true));
                }
                // Cancelled during the look-up: nothing is sent again (a worker could take
                // it before the cancellation); the wait ends with the run's, as after any
                // removed message of a cancelled run.
                Fate::Removed if ctx.cancellation().is_cancelled() => return Ok(sent(false)),
                Fate::Removed => {
                    self.removed(key, sequence);
                    // Not this message's any more: a cancellation covers the next one's.
                    *sequence_slot = None;
                }
            }
        }
        Err(TaskError::new(format!(
            "the message of attempt {} of task `{}` was removed without a result {MAX_RESENDS} times",
            key.attempt, key.task
        )))
    }

    /// What became of task `message` of attempt `key`: a stored result settles the
    /// attempt ([`Fate::Answered`]); a message removed without one will never be
    /// answered ([`Fate::Removed`]: a worker ended the attempt without a result, as it
    /// does a cancelled attempt, or the message was purged, removed by a limit of the
    /// stream, or lost with the stream made anew).
    pub(super) async fn fate(&self, key: &AttemptKey, message: &OnStream) -> Fate {
        // Queued first, then stored: a worker stores the result before it removes the
        // message, so a message gone with no result stored had none.
        let queued = self.still_queued(message).await;
        match (self.settle_from_store(key).await, queued) {
            (Ok(true), _) => Fate::Answered,
            (Err(stored::NotAnswered(_)), _) => Fate::Unknown,
            (Ok(false), Queued::Yes { stored }) => Fate::Queued { stored },
            (Ok(false), Queued::No) => Fate::Removed,
        }
    }

    /// Settles `key` from the results stream if a result for it is stored; whether one
    /// was (one that cannot be read whole settles the attempt as failed; one that does
    /// not even name its attempt counts as none).
    pub(super) async fn settle_from_store(
        &self,
        key: &AttemptKey,
    ) -> Result<bool, stored::NotAnswered> {
        let Some(payload) = stored::find_result(&self.js, &self.names, key).await? else {
            return Ok(false);
        };
        let Ok(result) = ResultMessage::read_or_failure(&payload) else {
            return Ok(false);
        };
        // One naming another attempt (whose shortened name is the same) is not this one's.
        if AttemptKey::of(&result) != *key {
            return Ok(false);
        }
        self.routes.settle(key, Settled::Result(result));
        Ok(true)
    }

    /// Forgets message `sequence` of attempt `key`, removed without a result, which is to
    /// be sent again.
    pub(super) fn removed(&self, key: &AttemptKey, sequence: u64) {
        self.routes.unpublished(key, sequence);
        tracing::info!(task = %key.task, attempt = key.attempt,
            "the attempt's message was removed without a result; sending it again");
    }

    /// Whether task `message` is still on the tasks stream (queued, or held by a
    /// worker), and when it was stored; there when the server cannot tell (within
    /// [`LOOK_UP_WAIT`]: on a connection full while the server is away, the question
    /// would wait as long as the outage).
    /// Another message at its sequence (the stream was made anew) means it is gone.
    async fn still_queued(&self, message: &OnStream) -> Queued {
        let Ok(stream) = self.js.get_stream_no_info(self.names.tasks_stream()).await else {
            return Queued::Yes { stored: None };
        };
        let asked = stream.get_raw_message(message.sequence);
        let Ok(answer) = tokio::time::timeout(LOOK_UP_WAIT, asked).await else {
            return Queued::Yes { stored: None };
        };
        match answer {
            Ok(found) => match found.headers.get(header::NATS_MESSAGE_ID) {
                Some(id) if id.as_str() == message.id => Queued::Yes {
                    stored: Some(SystemTime::from(found.time)),
                },
                _ => Queued::No,
            },
            Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => Queued::No,
            Err(_) => Queued::Yes { stored: None },
        }
    }

    /// Publishes a task message until the server stores it (or the run is cancelled);
    /// returns its stream sequence, whether the server had it already, and whether it
    /// took more than one try (a duplicate may then be the earlier try's). A message the
    /// server does not store within half the duplicate window fails its attempt (not
    /// permanently): sent again past the window, a message the server stored before its
    /// answer was lost would be stored twice, and could run twice.
    async fn publish(
        &self,
        subject: &str,
        id: &str,
        payload: Bytes,
        ctx: &TaskContext,
    ) -> Result<(u64, bool, bool), TaskError> {
        let mut pause = Duration::from_millis(50);
        // Since when no stream has taken the task's subject (the tasks stream is gone,
        // or briefly missing while a restarted server recovers it).
        let mut no_stream_since: Option<tokio::time::Instant> = None;
        let started = tokio::time::Instant::now();
        let patience = self.layout.duplicate_window / 2;
        // Whether every try went unanswered, as a publish the server refuses for want of
        // permission does.
        let mut unanswered = true;
        // Whether a try may have been stored though its answer was lost.
        let mut maybe_stored = false;
        let mut tries = 0u32;
        // For a map instance, its own id (`square[2]`), not the map's.
        let task = ctx.record_id();
        loop {
            // Sent while the connection is down, a try waits in the client until it is
            // back, however late: stored after its attempt gave up, it would run with
            // nobody waiting. None is sent until then, and the patience still runs.
            if self.client.connection_state() != async_nats::connection::State::Connected {
                if started.elapsed() >= patience {
                    let reason = "the connection to the server is down";
                    return Err(not_stored_in_time(&task, patience, reason));
                }
                wait_or_cancelled(pause, ctx).await?;
                continue;
            }
            tries = tries.saturating_add(1);
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(id);
            let sent = async {
                let ack = self.js.send_publish(subject.to_owned(), publish).await?;
                ack.await
            };
            match sent.await {
                Ok(ack) => return Ok((ack.sequence, ack.duplicate, tries > 1)),
                Err(error) if crate::error::too_large(&error) => {
                    return Err(TaskError::permanent(format!(
                        "the server refused the message of task `{task}` as too large: {error}"
                    )));
                }
                // Past half the window after a try that may have been stored, the next
                // could be stored again: the attempt fails, as in the arm below.
                Err(error)
                    if error.kind() == PublishErrorKind::StreamNotFound
                        && !(maybe_stored && started.elapsed() >= patience) =>
                {
                    unanswered = false;
                    let since = *no_stream_since.get_or_insert_with(tokio::time::Instant::now);
                    // No worker can get the task meanwhile: it waits as long as for one,
                    // and at least as long as a restarted server may take to recover.
                    if since.elapsed() >= self.missing_worker_timeout.max(NO_STREAM_PATIENCE) {
                        return Err(TaskError::permanent(format!(
                            "no stream takes task messages on `{subject}` (was stream `{}` \
                             deleted?): {error}",
                            self.names.tasks_stream()
                        )));
                    }
                    tracing::warn!(%task, %error, "no stream takes the task; trying again");
                }
                Err(error) if started.elapsed() >= patience => {
                    unanswered &= error.kind() == PublishErrorKind::TimedOut;
                    let hint = match unanswered {
                        true => format!(
                            " (it never answered: is it reachable, and may this user publish \
                             on `{subject}`? the server leaves a publish it refuses for want \
                             of permission unanswered)"
                        ),
                        false => String::new(),
                    };
                    return Err(not_stored_in_time(
                        &task,
                        patience,
                        &format!("{error}{hint}"),
                    ));
                }
                Err(error) => {
                    unanswered &= error.kind() == PublishErrorKind::TimedOut;
                    maybe_stored = true;
                    no_stream_since = None;
                    tracing::warn!(%task, %error, "publishing a task failed; trying again");
                }
            }
            wait_or_cancelled(pause, ctx).await?;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// The error of an attempt whose message the server did not store within `patience`.
fn not_stored_in_time(task: &str, patience: Duration, reason: &str) -> TaskError {
    TaskError::new(format!(
        "the server did not store the message of task `{task}` within {patience:?} (half \
         the duplicate window; sent again later, it could run twice): {reason}"
    ))
}

/// Waits `pause` before a task message is sent again, unless its run is cancelled first.
async fn wait_or_cancelled(pause: Duration, ctx: &TaskContext) -> Result<(), TaskError> {
    tokio::select! {
        () = tokio::time::sleep(pause) => Ok(()),
        () = ctx.cancellation().cancelled() => {
            Err(TaskError::new("cancelled before the task reached the server"))
        }
    }
}
