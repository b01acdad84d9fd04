//! Running one task message on a worker: read it, run its handler while acknowledging
//! progress, publish its result, then acknowledge the message.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use orch_engine::{Output, RemoteTask, TaskError};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::acks::{ack, give_back, with_progress};
use super::cancels::Place;
use super::grace::wind_down;
use super::publish::store_result;
use super::queue::ProgressDue;
use super::refuse::refuse;
use super::{Shared, TypeQueue};
use crate::protocol::{self, Outcome, TaskMessage};
use crate::routes::AttemptKey;
use crate::stored;

/// How the handler's run ended, for the message.
enum Ending {
    /// Publish this outcome, then acknowledge the message.
    Report(Outcome),
    /// The attempt was cancelled or passed its deadline: remove the message, report
    /// nothing (the coordinator stopped waiting).
    Drop,
    /// The worker is stopping: give the task back for another worker.
    HandBack,
}

/// Runs the task in `message` with `queue`'s handler, holding `permit` until done. The
/// message was last acknowledged (or received) at `last_ack`: the progress it is due
/// goes on from there through every step (the server counts the time from it).
///
/// Rare steps (refusing a message, storing a large output) are boxed with `Box::pin`:
/// inline, they doubled the size of the future that each task's spawn copies.
pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: Arc<TypeQueue>,
    message: async_nats::Message,
    permit: Option<OwnedSemaphorePermit>,
    mut last_ack: Instant,
    stop: CancellationToken,
    hand_back: CancellationToken,
) {
    let _permit = permit;
    let last_ack = &mut last_ack;
    let message = jetstream::Message {
        message,
        context: shared.js.clone(),
    };
    let (place, delivered) = match message.info() {
        Ok(info) => (Place::of(&info), info.delivered),
        Err(_) => (Place::default(), 0),
    };
    let task: TaskMessage = match protocol::read(&message.payload) {
        Ok(task) => task,
        Err(error) => {
            let error = error.to_string();
            let refused = refuse(
                &shared, &queue, &message, place, &error, &hand_back, last_ack,
            );
            return Box::pin(refused).await;
        }
    };
    if task.task.task_type != queue.task_type {
        let error = format!(
            "the message is of task type `{}` but came through the queue of `{}`",
            task.task.task_type, queue.task_type
        );
        let refused = refuse(
            &shared, &queue, &message, place, &error, &hand_back, last_ack,
        );
        return Box::pin(refused).await;
    }
    let key = AttemptKey {
        run: task.run_id.clone(),
        task: task.task.task_id.clone(),
        attempt: task.attempt,
    };
    let span = tracing::info_span!(
        "remote_task",
        run_id = %key.run,
        task_id = %key.task,
        attempt = key.attempt,
        task_type = %queue.task_type,
        traceparent = task.traceparent.as_deref().unwrap_or(""),
    );
    async {
        // A worker that stored the result and died before acknowledging the message
        // leaves it to be delivered again; a coordinator that came back on the run past
        // the server's window for repeated message ids sends an attempt still queued
        // again, as a new message: either way the stored result stands.
        if delivered > 1 || task.resumed {
            // A worker that stops meanwhile (or as answered) hands back the task, not run.
            let stopped = async {
                tokio::select! { () = stop.cancelled() => {}, () = hand_back.cancelled() => {} }
            };
            let look_up = look_up_result(&shared, &key, task.deadline_ms, stopped);
            match Box::pin(with_progress(&message, &queue, last_ack, look_up)).await {
                LookUp::NotStored if stop.is_cancelled() => {
                    return give_back(&queue, &message, last_ack).await;
                }
                LookUp::NotStored => {}
                LookUp::Stored => {
                    tracing::info!(delivered, "not running again a task whose result is stored");
                    return ack(&message, AckKind::Ack).await;
                }
                LookUp::Unanswered(kind) => return ack(&message, kind).await,
                LookUp::HandBack => return give_back(&queue, &message, last_ack).await,
            }
        }
        // Nobody waits for an attempt past its deadline or cancelled: it gets no result,
        // not even the verdict below.
        if task
            .deadline_ms
            .is_some_and(|d| protocol::until(d).is_zero())
        {
            tracing::info!("not running a task whose deadline passed");
            return ack(&message, AckKind::Term).await;
        }
        let Some(running) = shared.cancels.start(&key, place) else {
            tracing::info!("not running a cancelled task");
            return ack(&message, AckKind::Term).await;
        };
        // The consumer delivers once more than `max_deliver`, for this: the verdict is
        // stored as the attempt's result, where a coordinator that was away or
        // disconnected finds it.
        let settings = queue.settings();
        if (settings.deliveries_to_run()).is_some_and(|allowed| delivered > allowed) {
            shared.cancels.finish(&running);
            let error = protocol::worker_lost(
                &key.task,
                &queue.task_type,
                delivered.saturating_sub(1).unsigned_abs(),
                settings.ack_wait,
            );
            tracing::warn!(delivered, "the task ran out of deliveries: {error}");
            let lost = Outcome::Failed {
                error,
                permanent: false,
            };
            let ending = (lost, task.deadline_ms);
            let reported = report(
                &shared, &queue, &message, &key, ending, &hand_back, last_ack,
            );
            return Box::pin(reported).await;
        }
        if delivered > 1 {
            tracing::info!(delivered, "running a task delivered again");
        }
        let deadline_ms = task.deadline_ms;
        let token = running.token.clone();
        let ending = execute(
            &shared,
            &queue,
            &message,
            task,
            (token, &hand_back),
            last_ack,
        )
        .await;
        shared.cancels.finish(&running);
        match ending {
            Ending::Report(outcome) => {
                // Said here too: the coordinator's record does not tell where it failed.
                if let Outcome::Failed { error, permanent } = &outcome {
                    let error = log_start(error);
                    tracing::warn!(permanent, "the task failed: {error}");
                }
                let ending = (outcome, deadline_ms);
                report(
                    &shared, &queue, &message, &key, ending, &hand_back, last_ack,
                )
                .await;
            }
            Ending::Drop => ack(&message, AckKind::Term).await,
            Ending::HandBack => give_back(&queue, &message, last_ack).await,
        }
    }
    .instrument(span)
    .await;
}

/// At most this many bytes of a handler's error are logged (the result carries more).
const LOGGED_ERROR_BYTES: usize = 4096;

/// `error`'s start for the log, saying how much of it was left out: a handler's error
/// may be of any length, and a log line of megabytes helps no one reading the log.
fn log_start(error: &str) -> std::borrow::Cow<'_, str> {
    let logged = protocol::start_of(error, LOGGED_ERROR_BYTES);
    if logged.len() == error.len() {
        return error.into();
    }
    let left_out = error.len() - logged.len();
    format!("{logged}… [{left_out} more bytes not logged]").into()
}

/// Runs the handler until it ends, acknowledging progress meanwhile (from `last_ack`,
/// moved on to the last one sent).
async fn execute(
    shared: &Shared,
    queue: &TypeQueue,
    message: &jetstream::Message,
    mut task: TaskMessage,
    (token, hand_back): (CancellationToken, &CancellationToken),
    last_ack: &mut Instant,
) -> Ending {
    let deadline = task.deadline_ms.map(protocol::until);
    let item = match task.take_item() {
        Ok(item) => item,
        Err(error) => {
            return Ending::Report(Outcome::Failed {
                error: format!("the task cannot run: {error}"),
                permanent: true,
            });
        }
    };
    let mut context = RemoteTask::new(task.run_id, task.workflow_id, task.task, task.attempt);
    if let Some(item) = item {
        context = context.item(item.index, item.value);
    }
    let context = context
        .workflow_name(task.workflow_name)
        .inputs(
            task.inputs
                .into_iter()
                .map(|(id, output)| (id.into(), output)),
        )
        .cancellation(token.clone())
        .resumed(task.resumed)
        .state(shared.state.clone())
        .context();
    let context = match context {
        Ok(context) => context,
        Err(errors) => {
            return Ending::Report(Outcome::Failed {
                error: format!("the task cannot run: {errors}"),
                permanent: true,
            });
        }
    };
    // An inline handler (one that only awaits) runs on this attempt's own task, any other
    // as a task of its own, so that a handler that keeps its thread busy does not hold up
    // the progress acknowledgements.
    let running = orch_engine::run_attempt(Arc::clone(&queue.handler), context);
    tokio::pin!(running);
    // A handler done at its first poll needs no timers: none are armed for it.
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(running.as_mut().poll(cx)));
    if let std::task::Poll::Ready(result) = first.await {
        return ending(result, &token);
    }
    // The first progress acknowledgement is one period after the last one.
    let mut progress = ProgressDue::since(queue, *last_ack);
    // Timers only for what can happen: a deadline when the task has one, the cancel
    // grace once the attempt is cancelled.
    let mut past_deadline = deadline.map(|d| Box::pin(tokio::time::sleep(d)));
    let mut dropped: Timer = None;
    // The end of the cancel grace: the one a cancelled handler already has, if any.
    let grace_end = |dropped: &Timer| {
        dropped.as_ref().map_or_else(
            || tokio::time::Instant::now() + shared.cancel_grace,
            |sleep| sleep.deadline(),
        )
    };
    let ended = loop {
        tokio::select! {
            // A result the handler gave is reported, though the deadline or the hand-back
            // came in the same wake-up: dropped or handed back, the task would run again.
            biased;
            result = &mut running => break ending(result, &token),
            () = progress.tick() => ack(message, AckKind::Progress).await,
            () = elapsed(&mut past_deadline) => {
                tracing::info!("the task passed its deadline; cancelling its handler");
                token.cancel();
                // Given the cancel grace to stop (a command its polite stop), as when
                // the run is cancelled; nobody waits for its result any more.
                let _ = wind_down(running.as_mut(), grace_end(&dropped), &mut progress, message).await;
                break Ending::Drop;
            }
            () = token.cancelled(), if dropped.is_none() => {
                dropped = Some(Box::pin(tokio::time::sleep_until(grace_end(&dropped))));
            }
            () = elapsed(&mut dropped) => {
                tracing::info!("the cancelled task's handler did not stop in time; dropping it");
                break Ending::Drop;
            }
            () = hand_back.cancelled() => {
                // Cancelled by its coordinator before: nobody waits for it, and a worker
                // given it back might not hear of that cancellation (it ends as such).
                // Asked of the token, not of `dropped`: both may be ready in one wake-up.
                let cancelled_before = token.is_cancelled();
                match cancelled_before {
                    true => tracing::info!("the worker is stopping; ending a cancelled task"),
                    false => tracing::info!("the worker is stopping; cancelling the task to hand it back"),
                }
                token.cancel();
                // Given the cancel grace to stop (a command its polite stop); one that
                // completes meanwhile reports its output instead.
                let wound = wind_down(running.as_mut(), grace_end(&dropped), &mut progress, message);
                break match wound.await {
                    Some(Ok(output)) => Ending::Report(outcome(Ok(output))),
                    _ if cancelled_before => Ending::Drop,
                    _ => Ending::HandBack,
                };
            }
        }
    };
    *last_ack = progress.last();
    ended
}

/// Publishes `outcome` as the attempt's result, then acknowledges the message; hands it
/// back instead if the worker stopped first, or if the result could not be stored within
/// the worker's patience or the attempt's deadline.
///
/// Progress goes on until then: storing a large output, or a server that refuses results
/// for a while, may take longer than `ack_wait`, and the task must not go to another
/// worker meanwhile.
async fn report(
    shared: &Shared,
    queue: &TypeQueue,
    message: &jetstream::Message,
    key: &AttemptKey,
    (outcome, deadline_ms): (Outcome, Option<u64>),
    hand_back: &CancellationToken,
    last_ack: &mut Instant,
) {
    let publish = async { store_result(shared, key, outcome, deadline_ms, hand_back).await };
    if with_progress(message, queue, last_ack, publish).await {
        ack(message, AckKind::Ack).await;
    } else if hand_back.is_cancelled() {
        give_back(queue, message, last_ack).await;
    } else {
        ack(message, AckKind::Nak(None)).await;
    }
}

/// What the results stream says of an attempt delivered a second time (or sent again).
enum LookUp {
    /// Its result is stored: the task does not run again.
    Stored,
    /// No result is stored: the task runs.
    NotStored,
    /// The server did not answer: the message is acknowledged as this says, unrun.
    Unanswered(AckKind),
    /// The worker hands its tasks back: given back once its own requests are over.
    HandBack,
}

/// How long a worker keeps asking whether a task delivered again (or a resumed run's
/// task) has a stored result before it hands the task back.
const LOOK_UP_PATIENCE: Duration = Duration::from_secs(60);

/// Asks the results stream whether attempt `key` has a stored result, again and again
/// while the server does not answer: a task whose result is stored must not run twice,
/// so it never runs on a question left unanswered. Given up when `stopped` ends (the
/// worker stops: the task is handed back), when the attempt's deadline passes (nobody waits for it any
/// more) or after [`LOOK_UP_PATIENCE`] (handed back, which counts as a delivery: a
/// worker that is never answered, for want of the right to read results, ends in the
/// "worker lost" verdict rather than in a task run twice).
async fn look_up_result(
    shared: &Shared,
    key: &AttemptKey,
    deadline_ms: Option<u64>,
    stopped: impl Future<Output = ()>,
) -> LookUp {
    tokio::pin!(stopped);
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let asked = stored::find_result(&shared.js, &shared.names, key);
        let answer = tokio::select! {
            biased;
            () = &mut stopped => return LookUp::HandBack,
            answer = asked => answer,
        };
        let unanswered = match answer {
            Ok(Some(_)) => return LookUp::Stored,
            Ok(None) => return LookUp::NotStored,
            Err(stored::NotAnswered(why)) => why,
        };
        if deadline_ms.is_some_and(|d| protocol::until(d).is_zero()) {
            tracing::info!("not running a task whose deadline passed");
            return LookUp::Unanswered(AckKind::Term);
        }
        if started.elapsed() >= LOOK_UP_PATIENCE {
            tracing::error!(
                results_stream = shared.names.results_stream(),
                last_error = %unanswered,
                "the server did not say within {LOOK_UP_PATIENCE:?} whether this attempt's \
                 result is stored already (may this worker read the results stream?); \
                 handing the task back rather than risk running it twice"
            );
            return LookUp::Unanswered(AckKind::Nak(None));
        }
        tracing::warn!(
            error = %unanswered,
            "cannot ask the server whether this attempt's result is stored already; asking \
             again before running it"
        );
        tokio::select! {
            biased;
            () = &mut stopped => return LookUp::HandBack,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// A timer that may not be set.
type Timer = Option<std::pin::Pin<Box<tokio::time::Sleep>>>;

/// Ends when `timer` is set and elapses; never while it is not set.
async fn elapsed(timer: &mut Timer) {
    match timer {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

/// How an attempt whose handler returned `result` ends. A handler that failed after its
/// attempt was cancelled reports nothing: the coordinator stopped waiting, and a stored
/// failure would be taken by a coordinator that comes back on the run for the attempt's
/// own. (An output is kept: it is the task's result, whoever asks.)
fn ending(result: Result<Output, TaskError>, token: &CancellationToken) -> Ending {
    if token.is_cancelled() && result.is_err() {
        return Ending::Drop;
    }
    Ending::Report(outcome(result))
}

/// The outcome of a handler's result.
fn outcome(result: Result<Output, TaskError>) -> Outcome {
    match result {
        Ok(output) => {
            let not_journaled = output.not_journaled_reason().map(str::to_owned);
            Outcome::Completed {
                output: output.into_json().0,
                not_journaled,
            }
        }
        Err(error) if error.is_skip() => Outcome::Skipped {
            reason: error.record_text(),
        },
        Err(error) => Outcome::Failed {
            permanent: error.is_permanent(),
            error: error.record_text(),
        },
    }
}
