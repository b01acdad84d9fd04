//! Cancelling attempts on the workers: a whole run ([`RemoteHandler::cancel_run`]), or
//! one attempt whose wait ended before its result came ([`Pending`]).

use std::sync::Arc;
use std::time::Duration;

use super::{Inner, RemoteHandler};
use crate::protocol::{self, CancelMessage};
use crate::routes::AttemptKey;
use crate::{CancelRunError, ROOM_WAIT};

impl RemoteHandler {
    /// Tells the workers running attempts of run `run` to cancel them (their handlers
    /// see their cancellation token fire), for a run whose coordinator is gone: its
    /// attempts on workers stop instead of running to their end, and its attempts still
    /// queued are dropped by whichever worker takes them, also one that starts later.
    ///
    /// To cancel a run that is still running, use its
    /// [`RunHandle::cancel`](orch_engine::RunHandle::cancel): the engine tells the
    /// workers itself, and the whole run stops. Called on a running run, this fails,
    /// permanently, the attempts this handler is waiting for whose task messages went
    /// out before the cancellation (their dependents are skipped; other tasks go on, and
    /// their attempts sent later run). A coordinator in another process that waits for
    /// an attempt of the run sees its message removed without a result (within the
    /// task type's `ack_wait`), and sends it again: there, the run goes on.
    ///
    /// # Errors
    /// [`CancelRunError`] when the tasks stream cannot be read (the server cannot be
    /// reached, or the stream is gone): nothing is sent; or when the cancellation could
    /// not be sent (the connection, cut off from its server for long, took nothing for
    /// a few seconds).
    pub async fn cancel_run(&self, run: &orch_core::RunId) -> Result<(), CancelRunError> {
        // The attempts the cancellation covers, once sent: one sent meanwhile is not.
        let refused = |reason| CancelRunError {
            run: run.clone(),
            reason,
        };
        let last = (self.inner.last_task_message(3).await).map_err(refused)?;
        // A message whose publish began by now may be stored before the stream was read.
        let read_at = tokio::time::Instant::now();
        let up_to = Some(last.sequence);
        (self
            .inner
            .send_cancel(run, None, up_to, Some(last.stored_ns))
            .await)
            .map_err(refused)?;
        self.inner.routes.cancel_run(run, up_to, read_at);
        Ok(())
    }
}

/// The tasks stream's last message, as a cancellation covers the messages up to it.
struct LastMessage {
    /// Its stream sequence.
    sequence: u64,
    /// When it was stored (or the stream made, if later), in nanoseconds since the Unix
    /// epoch: every message the stream holds was stored by then.
    stored_ns: i64,
}

impl Inner {
    /// The tasks stream's last message, asked for `tries` times at most (half a second
    /// apart); why it could not be read.
    async fn last_task_message(&self, tries: u32) -> Result<LastMessage, String> {
        let mut tried = 0;
        loop {
            tried += 1;
            let asked = self.js.get_stream(self.names.tasks_stream());
            let error = match tokio::time::timeout(ROOM_WAIT, asked).await {
                Ok(Ok(stream)) => {
                    let info = stream.cached_info();
                    // A stream made anew holds no message from before it was made, even
                    // while it is empty (its last message's time then is the year 1).
                    let made = protocol::nanos(info.created);
                    return Ok(LastMessage {
                        sequence: info.state.last_sequence,
                        stored_ns: protocol::nanos(info.state.last_timestamp).max(made),
                    });
                }
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no answer within {ROOM_WAIT:?}"),
            };
            if tried >= tries {
                let stream = self.names.tasks_stream();
                return Err(format!("cannot read stream `{stream}`: {error}"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Tells the workers to cancel run `run`'s attempts, or one attempt (its task, its
    /// number and its message's stream sequence if known). The cancellation covers the
    /// messages sent so far, not the attempt sent again later by a coordinator that
    /// comes back on the run, also to a tasks stream made anew. Why it could not be
    /// sent, if it could not.
    pub(super) async fn publish_cancel(
        &self,
        run: &orch_core::RunId,
        attempt: Option<(&orch_core::TaskId, u32)>,
        sequence: Option<u64>,
    ) -> Result<(), String> {
        // Asked once: this runs while a cancelled attempt's wait goes on.
        let last = self.last_task_message(1).await.ok();
        let up_to = sequence.or(last.as_ref().map(|last| last.sequence));
        let stored_by = last.map(|last| last.stored_ns);
        self.send_cancel(run, attempt, up_to, stored_by).await
    }

    /// Sends a cancellation that covers the task messages up to stream sequence `up_to`
    /// stored by `stored_by` (each `None`: no bound).
    async fn send_cancel(
        &self,
        run: &orch_core::RunId,
        attempt: Option<(&orch_core::TaskId, u32)>,
        up_to: Option<u64>,
        stored_by: Option<i64>,
    ) -> Result<(), String> {
        let message = CancelMessage {
            v: protocol::VERSION,
            run_id: run.clone(),
            task_id: attempt.map(|(task, _)| task.clone()),
            attempt: attempt.map(|(_, number)| number),
            up_to_sequence: up_to,
            up_to_stored_ns: stored_by,
        };
        let subject = self.names.cancel_subject(run);
        let client = self.js.client();
        let sent = client.publish(subject, protocol::write(&message).into());
        let error = match tokio::time::timeout(ROOM_WAIT, sent).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("the connection took nothing for {ROOM_WAIT:?}"),
        };
        tracing::warn!(%run, %error, "could not publish a cancellation");
        Err(format!("cannot publish the cancellation: {error}"))
    }
}

/// An attempt published and not yet settled: if its wait ends another way (the engine
/// timed it out or dropped it, or it failed here), the workers are told to cancel it
/// (unless they already were) and its message is removed from the queue if no worker
/// took it yet.
pub(super) struct Pending {
    inner: Arc<Inner>,
    pub(super) key: AttemptKey,
    /// Its task message's stream sequence, once known.
    pub(super) sequence: Option<u64>,
    /// Its result came: nothing is to be cancelled.
    settled: bool,
    /// Its cancellation went out while its wait went on: sending it again would only
    /// take room on the stream that keeps cancellations.
    cancel_sent: bool,
}

impl Pending {
    /// Attempt `key`, about to be published by `inner`.
    pub(super) fn new(inner: Arc<Inner>, key: AttemptKey) -> Self {
        Pending {
            inner,
            key,
            sequence: None,
            settled: false,
            cancel_sent: false,
        }
    }

    /// Tells the workers to cancel the attempt, covering its message if sent. A failure
    /// is logged, and the cancellation is sent again when the wait ends.
    pub(super) async fn forward_cancel(&mut self) {
        let attempt = Some((&self.key.task, self.key.attempt));
        let sent = (self.inner).publish_cancel(&self.key.run, attempt, self.sequence);
        self.cancel_sent = sent.await.is_ok();
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.inner.routes.forget(&self.key, self.sequence);
        if self.settled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        let key = self.key.clone();
        let (sequence, cancel_sent) = (self.sequence, self.cancel_sent);
        runtime.spawn(async move { withdraw(&inner, &key, sequence, cancel_sent).await });
    }
}

impl Pending {
    /// Ends the wait, `settled` when a result came. Otherwise the attempt is withdrawn
    /// now, as dropping it would in the background: one that ends here with no result
    /// (no worker serves its type, say) leaves nothing queued, also when the process
    /// ends with the run.
    pub(super) async fn end(&mut self, settled: bool) {
        if !settled && !self.settled {
            // Sent first, and noted: dropped before the rest is done, this is not sent
            // again.
            if !self.cancel_sent {
                self.forward_cancel().await;
            }
            withdraw(&self.inner, &self.key, self.sequence, self.cancel_sent).await;
        }
        self.settled = true;
    }
}

/// Tells the workers to cancel attempt `key` (unless `cancel_sent`) and removes its
/// message, at `sequence`, from the queue if no worker took it yet.
async fn withdraw(inner: &Inner, key: &AttemptKey, sequence: Option<u64>, cancel_sent: bool) {
    let attempt = Some((&key.task, key.attempt));
    if !cancel_sent {
        // Logged inside: nothing more can be done about it from here.
        let _ = inner.publish_cancel(&key.run, attempt, sequence).await;
    }
    if let Some(sequence) = sequence
        && let Ok(stream) = inner
            .js
            .get_stream_no_info(inner.names.tasks_stream())
            .await
        && holds_attempt(&stream, sequence, key).await
    {
        let removed = stream.delete_message(sequence);
        let _ = tokio::time::timeout(ROOM_WAIT, removed).await;
    }
    // The cancellation is on its way before the attempt ends.
    let _ = tokio::time::timeout(ROOM_WAIT, inner.js.client().flush()).await;
}

/// Whether the message at `sequence` on `stream` is one of attempt `key`'s: a stream made
/// anew numbers from 1 again, and another attempt's message may be there now.
async fn holds_attempt(
    stream: &async_nats::jetstream::stream::Stream<()>,
    sequence: u64,
    key: &AttemptKey,
) -> bool {
    let id = protocol::message_id(&key.run, &key.task, key.attempt);
    let found = tokio::time::timeout(ROOM_WAIT, stream.get_raw_message(sequence)).await;
    let Ok(Ok(found)) = found else {
        return false;
    };
    (found.headers.get(async_nats::header::NATS_MESSAGE_ID))
        .is_some_and(|found| protocol::sent_as(found.as_str(), &id))
}
