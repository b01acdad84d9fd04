//! Reading a run back from the journal's stream: its messages in order, each waited
//! for as long as the read patience, its batches put together again.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use futures_util::{FutureExt as _, StreamExt};
use orch_core::RunId;
use orch_journal::JournalError;

use super::{BATCH_REST, BATCH_START, NatsJournal, failed};

/// What the stream holds for one run.
pub(super) struct Stored {
    /// Its whole batches, in order (the parts of a batch that was not stored whole,
    /// its writer having failed midway, are left out).
    pub(super) bytes: Vec<u8>,
    /// The stream sequence of the run's last message.
    pub(super) last: u64,
    /// The stream sequence of the last message of its last whole batch.
    pub(super) last_whole: u64,
}

/// A read's consumer, deleted on the server in the background when the read ends. The
/// consumer sets itself up again under the names `{name}_1`, `{name}_2`… after a lost
/// connection or heartbeat, each deleting the one before: when `name` is gone, the
/// one left is found among the stream's consumers.
struct DeleteWhenRead {
    stream: stream::Stream<()>,
    name: String,
}

impl Drop for DeleteWhenRead {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (stream, name) = (self.stream.clone(), std::mem::take(&mut self.name));
        runtime.spawn(async move {
            if stream.delete_consumer(&name).await.is_ok() {
                return;
            }
            // (With `name` itself, should its deletion have failed on the way.)
            let again = format!("{name}_");
            let names: Vec<_> = stream.consumer_names().collect().await;
            for found in names.into_iter().flatten() {
                if found == name || found.starts_with(&again) {
                    let _ = stream.delete_consumer(&found).await;
                }
            }
        });
    }
}

/// The batch being read: its first message's sequence, the parts read, and how many
/// more its last part said would follow.
#[derive(Default)]
struct Batch {
    start: u64,
    parts: Vec<bytes::Bytes>,
    rest: u64,
}

impl NatsJournal {
    /// `step`'s outcome, or a failure of `action` when the server did not answer within
    /// the read patience.
    async fn patiently<T, E: fmt::Display>(
        &self,
        action: &(dyn Fn() -> String + Sync),
        step: impl Future<Output = Result<T, E>>,
    ) -> Result<T, JournalError> {
        self.patiently_for(self.read_patience, action, step).await
    }

    /// [`Self::patiently`], with `left` of the read patience to wait.
    async fn patiently_for<T, E: fmt::Display>(
        &self,
        left: Duration,
        action: &(dyn Fn() -> String + Sync),
        step: impl Future<Output = Result<T, E>>,
    ) -> Result<T, JournalError> {
        match tokio::time::timeout(left, step).await {
            Ok(done) => done.map_err(|e| failed(action(), e)),
            Err(_) => Err(failed(
                action(),
                format!("the server did not answer within {:?}", self.read_patience),
            )),
        }
    }

    /// What is stored for `run`; `None` when nothing is.
    pub(super) async fn read_stored(&self, run: &RunId) -> Result<Option<Stored>, JournalError> {
        let action = || format!("read run `{run}` from stream `{}`", self.stream);
        self.read_messages(run, &action).await
    }

    async fn read_messages(
        &self,
        run: &RunId,
        action: &(dyn Fn() -> String + Sync),
    ) -> Result<Option<Stored>, JournalError> {
        let subject = self.subject(run);
        let stream = self.stream(&action()).await?;
        // Each answer is waited for as long as the read patience, not the whole read.
        let last = self.patiently(action, async {
            match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(message) => Ok(Some(message.sequence)),
                Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                    Ok(None)
                }
                Err(error) => Err(error),
            }
        });
        let Some(last) = last.await? else {
            return Ok(None);
        };
        let inbox = self.js.client().new_inbox();
        // Named after its inbox (a unique token): it is deleted when the read ends,
        // where the server would keep it 30 s (against the account's consumer limit).
        let name = format!("orch_read_{}", inbox.rsplit('.').next().unwrap_or_default());
        let consumer = stream.create_consumer(consumer::push::OrderedConfig {
            deliver_subject: inbox,
            filter_subject: subject.clone(),
            name: Some(name.clone()),
            ..Default::default()
        });
        let _delete = DeleteWhenRead {
            stream: stream.clone(),
            name,
        };
        let consumer = self.patiently(action, consumer).await?;
        let mut messages = self.patiently(action, consumer.messages()).await?;
        let mut stored = Stored {
            bytes: Vec::new(),
            last: 0,
            last_whole: 0,
        };
        let mut batch = Batch::default();
        let mut heard_at = tokio::time::Instant::now();
        loop {
            let next = messages.next().map(Ok::<_, std::convert::Infallible>);
            let left = self.read_patience.saturating_sub(heard_at.elapsed());
            let Some(message) = self.patiently_for(left, action, next).await? else {
                break;
            };
            let message = match message {
                // The consumer heard nothing for 10 s (a server stalled, say), and sets
                // itself up again from where it was: only the patience ends the read.
                Err(error)
                    if error.kind() == consumer::push::OrderedErrorKind::MissingHeartbeat
                        && heard_at.elapsed() < self.read_patience =>
                {
                    continue;
                }
                message => message.map_err(|e| failed(action(), e))?,
            };
            heard_at = tokio::time::Instant::now();
            let info = message.info().map_err(|e| failed(action(), e))?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            let header = |name: &str| -> Option<u64> {
                let value = message.headers.as_ref()?.get(name)?;
                value.as_str().parse().ok()
            };
            let rest = header(BATCH_REST).unwrap_or(0);
            // Present but unreadable: a part of no batch of this journal's.
            let start = (message.headers.as_ref())
                .and_then(|headers| headers.get(BATCH_START))
                .map(|_| header(BATCH_START));
            match start {
                // A batch's first message: a batch still unfinished before it was torn.
                None => {
                    batch = Batch {
                        start: sequence,
                        parts: vec![message.payload.clone()],
                        rest,
                    }
                }
                Some(Some(start))
                    if start == batch.start && rest.checked_add(1) == Some(batch.rest) =>
                {
                    batch.parts.push(message.payload.clone());
                    batch.rest = rest;
                }
                // A part of a batch whose beginning is not here: left out with it.
                Some(_) => batch = Batch::default(),
            }
            // (A part left out adds nothing: the last whole batch is still the one before.)
            if batch.rest == 0 && !batch.parts.is_empty() {
                for part in batch.parts.drain(..) {
                    stored.bytes.extend_from_slice(&part);
                }
                stored.last_whole = sequence;
            }
            stored.last = sequence;
            if sequence >= last {
                return Ok(Some(stored));
            }
            // The consumer says nothing more is coming: so does the stream, unless the
            // run's last message is one this read has not had.
            if pending == 0 {
                let now_last = stream.get_last_raw_message_by_subject(&subject);
                let now_last = self.patiently(action, now_last).await?.sequence;
                if now_last <= sequence {
                    return Ok(Some(stored));
                }
            }
        }
        Err(failed(
            action(),
            "the stream ended before the run's last batch",
        ))
    }
}
