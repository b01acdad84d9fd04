//! The writer of one run of a [`NatsJournal`](super::NatsJournal): its batches stored in
//! order, one at a time, each only after the writer's own last message.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind};
use orch_core::{RunId, TaskId, TaskRecord, WorkflowStatus};
use orch_journal::backend::{Claim, RunLines};
use orch_journal::{JournalError, JournalFuture, RunWriter};

use super::{BATCH_REST, BATCH_START, failed};
use crate::error::too_large;
use crate::protocol::HEADER_ROOM;

/// Appends one run's batches to its subject, in order, one at a time.
pub(super) struct NatsRunWriter {
    pub(super) js: jetstream::Context,
    pub(super) subject: String,
    /// Held while a batch is numbered and stored, so that batches are stored in the
    /// order of their numbers, each after the one before.
    pub(super) state: Arc<tokio::sync::Mutex<WriterState>>,
    /// The run's claim, held by every batch given to the writer until it is stored, so
    /// that the run is not opened again while one still is.
    pub(super) claim: Arc<Claim>,
    /// Batches given to the writer and not numbered yet, in the order given.
    pub(super) waiting: Arc<std::sync::Mutex<Vec<Waiting>>>,
}

pub(super) struct WriterState {
    pub(super) lines: RunLines,
    /// The stream sequence of the run's last stored message (0: none yet).
    pub(super) last: u64,
    /// Why an earlier append failed: the writer takes no more.
    pub(super) broken: Option<String>,
    /// The run's end is stored: the writer takes no more.
    pub(super) finished: bool,
    /// This writer's name in its messages' ids (`<id>.<n>`), unique to it.
    pub(super) writer_id: String,
    /// How many messages it sent.
    pub(super) sent: u64,
}

impl fmt::Debug for NatsRunWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsRunWriter")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl NatsRunWriter {
    pub(super) async fn append_batch(&self, batch: Vec<u8>) -> Result<(), JournalError> {
        let mut state = self.state.lock().await;
        store(&self.js, &self.subject, &mut state, batch)
            .await
            .map_err(|why| failed(format!("append to `{}`", self.subject), why))
    }

    /// Numbers a batch with `make` and stores it; the run's end when `ends`.
    ///
    /// Numbering and storing run as a task of their own, which finishes even if the
    /// future returned is dropped: a batch numbered but not stored would leave a gap
    /// in the run's lines. Batches that wait while another is being stored go out
    /// together, as one, when it is.
    fn append_with(
        &self,
        ends: bool,
        make: impl FnOnce(&mut RunLines) -> Result<Vec<u8>, JournalError> + Send + 'static,
    ) -> JournalFuture {
        self.queue(Some(Box::new(make)), ends)
    }

    /// Queues a batch `make` numbers (none for a sync) and starts a flush.
    fn queue(&self, make: Option<MakeBatch>, ends: bool) -> JournalFuture {
        let (done, stored) = tokio::sync::oneshot::channel();
        lock(&self.waiting).push(Waiting {
            make,
            ends,
            done,
            claim: Arc::clone(&self.claim),
        });
        tokio::spawn(flush(
            self.js.clone(),
            self.subject.clone(),
            Arc::clone(&self.state),
            Arc::clone(&self.waiting),
        ));
        let action = format!("append to `{}`", self.subject);
        Box::pin(async move {
            stored
                .await
                .map_err(|_| failed(action, "the writer stopped before the batch was stored"))?
        })
    }
}

/// Writes a batch's lines, numbered from where the run's lines are.
type MakeBatch = Box<dyn FnOnce(&mut RunLines) -> Result<Vec<u8>, JournalError> + Send>;

/// A batch waiting to be numbered and stored, and whoever waits for it.
pub(super) struct Waiting {
    /// None for a sync, which waits for the batches before it and makes none.
    make: Option<MakeBatch>,
    ends: bool,
    done: tokio::sync::oneshot::Sender<Result<(), JournalError>>,
    /// Held until the batch is stored: the run is not opened again before.
    claim: Arc<Claim>,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Numbers and stores, as one batch, every batch waiting (none if an earlier flush took
/// them), and tells each who waits how it went.
async fn flush(
    js: jetstream::Context,
    subject: String,
    state: Arc<tokio::sync::Mutex<WriterState>>,
    waiting: Arc<std::sync::Mutex<Vec<Waiting>>>,
) {
    let mut state = state.lock().await;
    let waiting = std::mem::take(&mut *lock(&waiting));
    let mut batch = Vec::new();
    // Who waits, with their answer when it is known before storing.
    let mut answers = Vec::with_capacity(waiting.len());
    let mut claims = Vec::with_capacity(waiting.len());
    let mut ends = state.finished;
    let failure = |why: &String| failed(format!("append to `{subject}`"), why);
    for item in waiting {
        let run = || item.claim.run().clone();
        let answer = match item.make {
            // A sync before any batch of this write hears how the earlier writes went
            // (none after the run's end); one after a batch, how this write goes.
            None if batch.is_empty() => Answer::Known(usable(&state).map_err(|why| failure(&why))),
            None => Answer::AsStored,
            Some(_) if state.finished => Answer::Known(Err(JournalError::Finished { run: run() })),
            // After the end this write stores: refused if it is stored.
            Some(_) if ends => Answer::FinishedIfStored(run()),
            // A writer that failed makes no more lines: `store` refuses, saying why.
            Some(_) if state.broken.is_some() => Answer::AsStored,
            Some(make) => match make(&mut state.lines) {
                Ok(lines) => {
                    batch.extend_from_slice(&lines);
                    ends = item.ends;
                    Answer::AsStored
                }
                Err(error) => Answer::Known(Err(error)),
            },
        };
        answers.push((item.done, answer));
        claims.push(item.claim);
    }
    let stored = match batch.is_empty() {
        // Nothing to store: whoever waits has heard, or hears of an earlier failure.
        true => usable(&state),
        false => store(&js, &subject, &mut state, batch).await,
    };
    if stored.is_ok() {
        state.finished = ends;
    }
    drop(state);
    // The run may be opened again as soon as its writer is gone and nothing it was
    // given is still being stored: before anyone hears back.
    drop(claims);
    for (done, answer) in answers {
        let answer = match (answer, &stored) {
            (Answer::Known(known), _) => known,
            (Answer::AsStored, Ok(())) => Ok(()),
            (Answer::FinishedIfStored(run), Ok(())) => Err(JournalError::Finished { run }),
            (Answer::AsStored | Answer::FinishedIfStored(_), Err(why)) => Err(failure(why)),
        };
        let _ = done.send(answer);
    }
}

/// What one who waits on a write hears.
enum Answer {
    /// This, whatever the write does.
    Known(Result<(), JournalError>),
    /// How the write goes.
    AsStored,
    /// An append after the end of the run that the write stores: refused as after the
    /// run's end if the write is stored, failed with it if not.
    FinishedIfStored(RunId),
}

/// Refuses a writer whose earlier append failed, saying why.
fn usable(state: &WriterState) -> Result<(), String> {
    match &state.broken {
        Some(why) => Err(format!(
            "an earlier append failed ({why}); this writer takes no more"
        )),
        None => Ok(()),
    }
}

/// Stores `batch` as the next message(s) of `subject`, each only if the subject's last
/// message is still the one this writer stored last. The parts fit the largest message
/// of the server connected to (one reconnected to may take smaller ones: a batch none
/// of which is stored yet is parted again when that server refuses a part as too
/// large).
async fn store(
    js: &jetstream::Context,
    subject: &str,
    state: &mut WriterState,
    batch: Vec<u8>,
) -> Result<(), String> {
    usable(state)?;
    let batch = bytes::Bytes::from(batch);
    let mut part_bytes = part_size(js);
    let stored = loop {
        let stored = store_parts(js, subject, part_bytes, state, &batch).await;
        let now = part_size(js);
        match stored {
            Err((
                0,
                Unstored {
                    too_large: true, ..
                },
            )) if now < part_bytes => part_bytes = now,
            stored => break stored,
        }
    };
    stored.map_err(|(_, unstored)| {
        state.broken = Some(unstored.why.clone());
        unstored.why
    })
}

/// The largest part of a batch one message to the server connected to now carries.
fn part_size(js: &jetstream::Context) -> usize {
    js.client().max_payload().saturating_sub(HEADER_ROOM).max(1)
}

/// Why a message was not stored.
struct Unstored {
    why: String,
    /// Refused as larger than the server connected to takes.
    too_large: bool,
}

/// Stores `batch` in messages of at most `part_bytes`; the part that was not stored
/// (counted from 0), and why.
async fn store_parts(
    js: &jetstream::Context,
    subject: &str,
    part_bytes: usize,
    state: &mut WriterState,
    batch: &bytes::Bytes,
) -> Result<(), (usize, Unstored)> {
    let parts = batch.len().div_ceil(part_bytes).max(1);
    // The stream sequence of the batch's first message, which its later ones name.
    let mut first = 0;
    for part in 0..parts {
        let end = ((part + 1) * part_bytes).min(batch.len());
        let id = format!("{}.{}", state.writer_id, state.sent);
        let mut publish = jetstream::message::PublishMessage::build()
            .payload(batch.slice(part * part_bytes..end))
            .expected_last_subject_sequence(state.last)
            // Sent again after a lost connection, it is stored once.
            .message_id(&id);
        state.sent += 1;
        if parts > 1 {
            publish = publish.header(BATCH_REST, (parts - 1 - part).to_string());
        }
        if part > 0 {
            publish = publish.header(BATCH_START, first.to_string());
        }
        let sequence = (publish_until_stored(js, subject, &id, publish).await)
            .map_err(|unstored| (part, unstored))?;
        if part == 0 {
            first = sequence;
        }
        state.last = sequence;
    }
    Ok(())
}

/// How long a message is sent again while the server cannot be reached.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Publishes `publish`, of message id `id`, until the server stores it (sending it again
/// while the server cannot be reached, for up to a minute); its stream sequence, or why
/// it was not stored.
async fn publish_until_stored(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    publish: jetstream::message::PublishMessage,
) -> Result<u64, Unstored> {
    let refused = |why: String| Unstored {
        why,
        too_large: false,
    };
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    let mut sent_before = false;
    loop {
        let stored = async {
            js.send_publish(subject.to_owned(), publish.clone())
                .await?
                .await
        };
        let error = match stored.await {
            Ok(ack) => return Ok(ack.sequence),
            Err(error) => error,
        };
        match error.kind() {
            PublishErrorKind::WrongLastSequence => {
                // Sent again after its acknowledgement was lost, a stored message is
                // refused so by servers that check the subject's last message before
                // the message id (2.12 on): it is the subject's last message then.
                let another = || {
                    "another writer stored messages of this run since this one opened it \
                     (is the run open in another coordinator?)"
                        .to_owned()
                };
                if !sent_before {
                    return Err(refused(another()));
                }
                match stored_last(js, subject, id).await {
                    Ok(Some(sequence)) => return Ok(sequence),
                    Ok(None) => return Err(refused(another())),
                    // Not known yet (the server as slow as when it lost the answer): sent
                    // again, the message is refused again, and looked for again.
                    Err(error) if started.elapsed() < RETRY_FOR => {
                        tracing::warn!(subject, %error, "cannot look for a journal append sent again; looking again");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                    Err(error) => {
                        return Err(refused(format!(
                            "cannot tell whether a journal append sent again was stored: {error}"
                        )));
                    }
                }
            }
            // No stream found: also what the server answers while a restarted server
            // is still recovering its streams.
            PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::Other
            | PublishErrorKind::StreamNotFound
                if started.elapsed() < RETRY_FOR && !refused_for_good(&error) =>
            {
                tracing::warn!(subject, %error, "a journal append was not acknowledged; sending it again");
                sent_before = true;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            _ => {
                return Err(Unstored {
                    why: error.to_string(),
                    too_large: too_large(&error),
                });
            }
        }
    }
}

/// Whether the server refused the append for a limit that sending it again does not
/// change: the stream's largest message or its limits with new messages discarded, or
/// the account's or server's storage.
fn refused_for_good(error: &jetstream::context::PublishError) -> bool {
    use jetstream::ErrorCode;
    let Some(refusal) = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
    else {
        return false;
    };
    match refusal.error_code() {
        ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM
        | ErrorCode::STORAGE_RESOURCES_EXCEEDED
        | ErrorCode::MEMORY_RESOURCES_EXCEEDED
        | ErrorCode::ACCOUNT_RESOURCES_EXCEEDED
        | ErrorCode::INSUFFICIENT_RESOURCES => true,
        // Any failure to store, a stream closing for a moment too: only its limits
        // (`maximum messages exceeded`, `maximum bytes ...`) are for good.
        ErrorCode::STREAM_STORE_FAILED => refusal.to_string().contains("maximum"),
        _ => false,
    }
}

/// The stream sequence of `subject`'s last message if that is the message of id `id`,
/// `None` if it is another; an error when the server could not say.
async fn stored_last(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
) -> Result<Option<u64>, String> {
    let stream = js
        .stream_by_subject(subject)
        .await
        .map_err(|e| e.to_string())?;
    let stream = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| e.to_string())?;
    let last = stream
        .get_last_raw_message_by_subject(subject)
        .await
        .map_err(|e| e.to_string())?;
    let last_id = last.headers.get(async_nats::header::NATS_MESSAGE_ID);
    Ok(last_id
        .is_some_and(|last_id| last_id.as_str() == id)
        .then_some(last.sequence))
}

impl RunWriter for NatsRunWriter {
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture {
        let owned: Vec<(TaskId, TaskRecord)> = records
            .iter()
            .map(|(id, record)| ((*id).clone(), (*record).clone()))
            .collect();
        self.append_with(false, move |lines| {
            let borrowed: Vec<(&TaskId, &TaskRecord)> = owned.iter().map(|(i, r)| (i, r)).collect();
            lines.tasks(&borrowed)
        })
    }

    fn sync(&self) -> JournalFuture {
        // Resolves once the appends before it are stored (failing if one failed); what
        // survives a power loss is then the server's choice (its stream's storage).
        self.queue(None, false)
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        self.append_with(true, move |lines| lines.end(status))
    }
}
