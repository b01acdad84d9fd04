//! The attempts a worker runs, by key, so that a cancellation from a coordinator reaches
//! their handlers; and the cancellations it heard of recently, so that a cancelled
//! attempt taken later does not run. A cancellation that names the last task message it
//! covers (its stream sequence, and when the stream stored it) leaves alone a message
//! sent after it: the same attempt sent again by a coordinator that came back on the run,
//! also to a tasks stream made anew, which numbers its messages from 1 again.

mod remembered;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use orch_core::RunId;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::follow::{self, Followed};
use crate::protocol::{self, CancelMessage, Names};
use crate::routes::AttemptKey;
use remembered::Remembered;

/// How many recent cancellations of attempts a worker remembers (one is sent for each
/// attempt that timed out or was lost), and how many of runs
/// ([`RemoteHandler::cancel_run`](crate::RemoteHandler::cancel_run), rare), each kind
/// apart so that many of the one do not push out the other; and how many bytes of ids at
/// most for each (a task id has no length limit of its own).
const REMEMBERED: usize = 4096;
const REMEMBERED_RUNS: usize = 65_536;
const REMEMBERED_BYTES: usize = 16 << 20;

#[derive(Default)]
pub(crate) struct Cancels {
    state: Mutex<State>,
}

/// A running attempt, as [`Cancels::start`] registered it: two deliveries of one task
/// message may run on one worker at once (the first lost its lease while the connection
/// was down), each registered apart.
pub(crate) struct Running {
    id: u64,
    pub(crate) token: CancellationToken,
}

/// Where a task message is on the tasks stream: its sequence, and when it was stored (in
/// nanoseconds since the Unix epoch, by the server's clock).
#[derive(Clone, Copy, Default)]
pub(crate) struct Place {
    pub(crate) sequence: u64,
    stored_ns: i64,
}

impl Place {
    /// The place of a delivered message.
    pub(crate) fn of(info: &jetstream::message::Info<'_>) -> Self {
        Self {
            sequence: info.stream_sequence,
            stored_ns: protocol::nanos(info.published),
        }
    }
}

/// The task messages a cancellation covers: those up to stream sequence `up_to` stored
/// by `stored_by`, give or take [`CLOCK_SLACK_NS`] (each `None`: no bound).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bound {
    up_to: Option<u64>,
    stored_by: Option<i64>,
}

/// How much later than a cancellation's time a message it covers may say it was stored:
/// in a cluster, the server that stored the message may not be the one whose clock the
/// cancellation went by. A stream made anew this soon after a cancellation, and the
/// same attempt sent to it, is covered by sequence alone.
const CLOCK_SLACK_NS: i64 = 1_000_000_000;

impl Bound {
    fn covers(self, place: Place) -> bool {
        self.up_to.is_none_or(|last| place.sequence <= last)
            && (self.stored_by)
                .is_none_or(|by| place.stored_ns <= by.saturating_add(CLOCK_SLACK_NS))
    }

    /// Widens this bound to [`Self::or`] `other`.
    fn merge(&mut self, other: Self) {
        *self = self.or(other);
    }

    /// The least single bound that covers what either covers (it may cover more: a
    /// message of a stream made anew between the two, say). Of two with the same
    /// sequence, one without a time is the same cancellation heard live from an older
    /// coordinator and read back from the stream that keeps it, with the time it was
    /// kept: that time bounds it.
    fn or(self, other: Self) -> Self {
        fn wider<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
            a.zip(b).map(|(a, b)| a.max(b))
        }
        let stored_by = match (self.stored_by, other.stored_by) {
            (Some(by), None) | (None, Some(by)) if self.up_to == other.up_to => Some(by),
            (a, b) => wider(a, b),
        };
        Self {
            up_to: wider(self.up_to, other.up_to),
            stored_by,
        }
    }
}

struct State {
    /// Running attempts, by registration: their keys, tokens and their messages' places.
    running: HashMap<u64, (AttemptKey, CancellationToken, Place)>,
    /// The id of the next registration.
    next_id: u64,
    /// Cancelled runs, and the last task message each cancellation covers.
    runs: Remembered<RunId, Bound>,
    /// Cancelled attempts, and the last task message each cancellation covers.
    attempts: Remembered<AttemptKey, Bound>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            running: HashMap::new(),
            next_id: 0,
            runs: Remembered::new(REMEMBERED_RUNS, REMEMBERED_BYTES, |run| run.as_str().len()),
            attempts: Remembered::new(REMEMBERED, REMEMBERED_BYTES, |key| {
                key.run.as_str().len() + key.task.as_str().len()
            }),
        }
    }
}

impl State {
    fn covers(&self, key: &AttemptKey, place: Place) -> bool {
        let covers = |bound: &Bound| bound.covers(place);
        self.runs.get(&key.run).is_some_and(covers) || self.attempts.get(key).is_some_and(covers)
    }
}

impl Cancels {
    /// Registers a running attempt, whose message is at `place`, with its token; `None`
    /// when it was cancelled already.
    pub(crate) fn start(&self, key: &AttemptKey, place: Place) -> Option<Running> {
        let mut state = self.lock();
        if state.covers(key, place) {
            return None;
        }
        let token = CancellationToken::new();
        let id = state.next_id;
        state.next_id += 1;
        state
            .running
            .insert(id, (key.clone(), token.clone(), place));
        Some(Running { id, token })
    }

    /// Whether a cancellation heard of covers `key`'s attempt, whose message is at
    /// `place`.
    pub(crate) fn covers(&self, key: &AttemptKey, place: Place) -> bool {
        self.lock().covers(key, place)
    }

    /// Forgets a running attempt.
    pub(crate) fn finish(&self, running: &Running) {
        self.lock().running.remove(&running.id);
    }

    /// Applies `message`; `kept_at`, for one read from the stream that keeps them, is
    /// when it was kept: it covers no task message stored later, even when it does not
    /// say when the last one it covers was stored.
    fn cancel(&self, message: &CancelMessage, kept_at: Option<i64>) {
        let attempt = match (&message.task_id, message.attempt) {
            (Some(task), Some(attempt)) => Some(AttemptKey {
                run: message.run_id.clone(),
                task: task.clone(),
                attempt,
            }),
            (None, None) => None,
            // Cancelling the whole run would do more than was asked.
            (task, attempt) => {
                tracing::error!(
                    run_id = %message.run_id,
                    task_id = task.as_ref().map(|t| t.as_str()),
                    attempt,
                    "ignoring a cancellation that names a task without an attempt, or an \
                     attempt without a task"
                );
                return;
            }
        };
        let mut state = self.lock();
        let bound = Bound {
            up_to: message.up_to_sequence,
            stored_by: message.up_to_stored_ns.or(kept_at),
        };
        for (key, token, place) in state.running.values() {
            let hit = match &attempt {
                None => key.run == message.run_id,
                Some(attempt) => key == attempt,
            };
            if hit && bound.covers(*place) {
                token.cancel();
            }
        }
        match attempt {
            // Heard before: it now covers what either cancellation covers.
            None => state
                .runs
                .remember(message.run_id.clone(), bound, Bound::merge),
            Some(attempt) => state.attempts.remember(attempt, bound, Bound::merge),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a worker hears cancellations: live, and on the stream that keeps them when it
/// may read it, so that none sent while its connection is down is missed, and none is
/// missed while the stream is missing. One heard both ways is applied twice, which
/// changes nothing.
pub(crate) struct Heard {
    live: async_nats::Subscriber,
    kept: Option<Kept>,
}

/// The stream that keeps cancellations, read from its first message.
struct Kept {
    messages: Box<jetstream::consumer::push::Ordered>,
    place: follow::Place,
    /// The last message it kept before the worker started. Those up to it are applied
    /// only if they name the last task message they cover: one that names none, from
    /// before this worker, would cover the attempts of a run that came back under its id.
    earlier: u64,
}

/// Starts hearing cancellations: live, and on the stream that keeps them when it is
/// `kept` and this worker may read it (from its first message: see [`catch_up`]). Every
/// cancellation sent once this returns is heard.
pub(crate) async fn hear(
    client: &async_nats::Client,
    js: &jetstream::Context,
    names: &Names,
    kept: bool,
) -> Result<Heard, async_nats::SubscribeError> {
    let live = client.subscribe(names.all_cancels()).await?;
    let kept = match kept {
        true => follow::from_first(js, &followed(names)).await,
        false => None,
    };
    let kept = kept.map(|(messages, place, earlier)| Kept {
        messages: Box::new(messages),
        place,
        earlier,
    });
    Ok(Heard { live, kept })
}

fn followed(names: &Names) -> Followed {
    Followed {
        stream: names.cancels_stream(),
        filter: names.all_cancels(),
        what: "the cancellations stream",
    }
}

/// How long a worker waits for each cancellation kept from before it started.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(5);

/// Applies the cancellations kept until the worker is run ([`Worker::run`]), before it
/// takes any task: a queued attempt of a run cancelled while no worker was up, or whose
/// cancellation this worker forgot, or cancelled since it connected, does not run. One
/// that does not come within [`CATCH_UP_PATIENCE`] is left to [`listen`] (with a
/// warning). Then it applies the cancellations heard live that are already here, which
/// [`listen`] would apply while the first tasks start.
///
/// [`Worker::run`]: super::Worker::run
pub(crate) async fn catch_up(shared: &Shared, heard: &mut Heard) {
    catch_up_kept(shared, heard).await;
    let mut here = 0;
    // Unconstrained: tokio's budget would make a ready message look not yet there.
    let next_here = |live: &mut async_nats::Subscriber| {
        futures_util::FutureExt::now_or_never(tokio::task::coop::unconstrained(live.next()))
    };
    while here < MOST_HEARD_AT_START
        && let Some(Some(message)) = next_here(&mut heard.live)
    {
        apply(shared, &message.subject, &message.payload, true, None);
        here += 1;
    }
}

/// How many cancellations heard live [`catch_up`] applies at most: a flood of them
/// does not hold the worker's start up (the rest are applied by [`listen`]).
const MOST_HEARD_AT_START: usize = 100_000;

/// The part of [`catch_up`] that reads the stream that keeps cancellations: up to what
/// it keeps now (those sent since the worker connected were heard live, unless its
/// connection was down meanwhile).
async fn catch_up_kept(shared: &Shared, heard: &mut Heard) {
    let Some(kept) = &mut heard.kept else {
        return;
    };
    let stream = shared.names.cancels_stream();
    let now = follow::last_kept(&shared.js, &stream, &kept.place, CATCH_UP_PATIENCE).await;
    let until = now.unwrap_or(0).max(kept.earlier);
    while kept.place.next <= until {
        let next = tokio::time::timeout(CATCH_UP_PATIENCE, kept.messages.next()).await;
        let message = match next {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, "reading the cancellations kept from before this worker started was interrupted; taking tasks meanwhile");
                return;
            }
            Ok(None) | Err(_) => {
                tracing::warn!(
                    "the cancellations kept from before this worker started did not all come within {CATCH_UP_PATIENCE:?}; taking tasks meanwhile"
                );
                return;
            }
        };
        let Ok(info) = message.info() else {
            return;
        };
        kept.place.next = info.stream_sequence + 1;
        apply_kept(shared, &message, kept.earlier);
        // (What a message says is pending is as of when it came: one kept after the
        // worker connected came at once, with none after it then.)
    }
}

/// Hears cancellations for as long as the worker runs.
pub(crate) async fn listen(shared: Arc<Shared>, heard: Heard) {
    let Heard { mut live, kept } = heard;
    let live = async {
        while let Some(message) = live.next().await {
            apply(&shared, &message.subject, &message.payload, true, None);
        }
    };
    let kept = async {
        if let Some(Kept {
            messages,
            place,
            earlier,
        }) = kept
        {
            let (js, followed) = (shared.js.clone(), followed(&shared.names));
            // Once the stream was made anew, none of its messages is from before.
            let started_in = place;
            follow::follow(js, followed, *messages, place, |message, now| {
                let earlier = if now.same_stream(&started_in) {
                    earlier
                } else {
                    0
                };
                apply_kept(&shared, message, earlier);
            })
            .await;
        }
    };
    tokio::join!(live, kept);
}

/// Applies a cancellation read from the stream that keeps them, whose messages up to
/// `earlier` were kept before this worker started.
fn apply_kept(shared: &Shared, message: &jetstream::Message, earlier: u64) {
    let info = message.info().ok();
    let new = info
        .as_ref()
        .is_some_and(|info| info.stream_sequence > earlier);
    let kept_at = info.map(|info| protocol::nanos(info.published));
    apply(shared, &message.subject, &message.payload, new, kept_at);
}

/// Applies a cancellation (kept on the stream at `kept_at`, if read there); one sent
/// before this worker started (not `new`) only if it names the last task message it
/// covers.
fn apply(shared: &Shared, subject: &str, payload: &[u8], new: bool, kept_at: Option<i64>) {
    match protocol::read::<CancelMessage>(payload) {
        Ok(cancel) if new || cancel.up_to_sequence.is_some() => {
            shared.cancels.cancel(&cancel, kept_at);
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(%subject, %error, "ignoring a cancellation that cannot be read")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancel_of(run: &str, task: String) -> CancelMessage {
        CancelMessage {
            v: protocol::VERSION,
            run_id: RunId::parse(run).expect("a run id"),
            task_id: Some(task.into()),
            attempt: Some(1),
            up_to_sequence: None,
            up_to_stored_ns: None,
        }
    }

    /// Stream message `sequence`, stored at time 0.
    fn at(sequence: u64) -> Place {
        Place {
            sequence,
            stored_ns: 0,
        }
    }

    #[test]
    fn remembered_cancellations_are_bounded_by_count_and_by_bytes() {
        let cancels = Cancels::default();
        // Long task ids: the bytes bound keeps about 16 of these 1 MiB ones.
        for i in 0..40 {
            cancels.cancel(&cancel_of("r", format!("{i}{}", "t".repeat(1 << 20))), None);
        }
        let state = cancels.lock();
        assert!(state.attempts.bytes().0 <= REMEMBERED_BYTES);
        let recent = state.attempts.len();
        assert!(recent < 20, "{recent}");
        drop(state);
        for i in 0..REMEMBERED + 10 {
            cancels.cancel(&cancel_of("r", format!("t{i}")), None);
        }
        let state = cancels.lock();
        assert_eq!(state.attempts.len(), REMEMBERED);
        // The newest are the ones kept.
        let newest = AttemptKey {
            run: RunId::parse("r").expect("a run id"),
            task: format!("t{}", REMEMBERED + 9).into(),
            attempt: 1,
        };
        drop(state);
        assert!(
            cancels.start(&newest, at(1)).is_none(),
            "a cancelled attempt does not start"
        );
    }

    /// A run's cancellation is remembered apart: the cancellations of many attempts
    /// (one per attempt that timed out) do not push it out.
    #[test]
    fn a_cancelled_run_outlasts_many_cancelled_attempts() {
        let cancels = Cancels::default();
        cancels.cancel(
            &CancelMessage {
                task_id: None,
                attempt: None,
                up_to_sequence: Some(10),
                ..cancel_of("gone", String::new())
            },
            None,
        );
        for i in 0..2 * REMEMBERED {
            cancels.cancel(&cancel_of("other", format!("t{i}")), None);
        }
        let key = |sequence| {
            let key = AttemptKey {
                run: RunId::parse("gone").expect("a run id"),
                task: "t".into(),
                attempt: 1,
            };
            cancels.start(&key, at(sequence))
        };
        assert!(
            key(10).is_none(),
            "a task message sent before it is cancelled"
        );
        assert!(key(11).is_some(), "one sent after it is not");
    }

    #[test]
    fn a_cancellation_naming_a_task_or_an_attempt_alone_cancels_nothing() {
        let cancels = Cancels::default();
        let key = AttemptKey {
            run: RunId::parse("r").expect("a run id"),
            task: "t".into(),
            attempt: 1,
        };
        let Some(running) = cancels.start(&key, at(7)) else {
            panic!("not cancelled yet: it runs");
        };
        let task_alone = CancelMessage {
            attempt: None,
            ..cancel_of("r", "t".to_owned())
        };
        let attempt_alone = CancelMessage {
            task_id: None,
            ..cancel_of("r", "t".to_owned())
        };
        for half in [task_alone, attempt_alone] {
            cancels.cancel(&half, None);
            assert!(!running.token.is_cancelled(), "{half:?} cancelled the run");
            let later = AttemptKey {
                task: "u".into(),
                ..key.clone()
            };
            assert!(cancels.start(&later, at(8)).is_some(), "{half:?} was kept");
        }
    }

    #[test]
    fn each_of_two_deliveries_of_one_attempt_running_at_once_is_cancelled() {
        let cancels = Cancels::default();
        let key = |task: &str| AttemptKey {
            run: RunId::parse("r").expect("a run id"),
            task: task.into(),
            attempt: 1,
        };
        let both = |task| {
            (
                cancels.start(&key(task), at(7)),
                cancels.start(&key(task), at(7)),
            )
        };
        let (Some(first), Some(second)) = both("t") else {
            panic!("not cancelled yet: both run");
        };
        cancels.cancel(&cancel_of("r", "t".to_owned()), None);
        assert!(first.token.is_cancelled() && second.token.is_cancelled());

        // One ending does not unregister the other.
        let (Some(first), Some(second)) = both("u") else {
            panic!("not cancelled yet: both run");
        };
        cancels.finish(&first);
        cancels.cancel(&cancel_of("r", "u".to_owned()), None);
        assert!(
            second.token.is_cancelled(),
            "the one still running is cancelled"
        );
    }

    /// A tasks stream made anew numbers its messages from 1 again: a cancellation that
    /// says when the last message it covers was stored leaves alone one stored later at
    /// a lower sequence, the same attempt sent again to the new stream; one kept on the
    /// stream without saying so is bounded by when it was kept.
    #[test]
    fn a_cancellation_covers_no_message_stored_after_it_on_a_stream_made_anew() {
        let key = AttemptKey {
            run: RunId::parse("r").expect("a run id"),
            task: "t".into(),
            attempt: 1,
        };
        // Times in seconds, the slack a second.
        const SECOND: i64 = 1_000_000_000;
        let stored = |sequence, seconds: i64| Place {
            sequence,
            stored_ns: seconds * SECOND,
        };
        let run_cancel = |seconds: Option<i64>| CancelMessage {
            task_id: None,
            attempt: None,
            up_to_sequence: Some(500),
            up_to_stored_ns: seconds.map(|s| s * SECOND),
            ..cancel_of("r", String::new())
        };
        for (cancel, kept_at) in [
            (run_cancel(Some(1_000)), None),
            (run_cancel(None), Some(1_000 * SECOND)),
        ] {
            let cancels = Cancels::default();
            cancels.cancel(&cancel, kept_at);
            assert!(
                cancels.start(&key, stored(400, 900)).is_none(),
                "in the old stream"
            );
            assert!(
                cancels.start(&key, stored(400, 1_001)).is_none(),
                "its last message, stored by another server's clock"
            );
            assert!(
                cancels.start(&key, stored(3, 1_002)).is_some(),
                "in the new stream"
            );
            assert!(
                cancels.start(&key, stored(501, 900)).is_some(),
                "past its sequence"
            );
        }
        // Without either, by sequence alone, as before.
        let cancels = Cancels::default();
        cancels.cancel(&run_cancel(None), None);
        assert!(cancels.start(&key, stored(3, 1_002)).is_none());

        // Heard twice, it covers what either covers.
        let cancels = Cancels::default();
        cancels.cancel(&run_cancel(Some(1_000)), None);
        cancels.cancel(
            &CancelMessage {
                up_to_sequence: Some(10),
                ..run_cancel(Some(2_000))
            },
            None,
        );
        assert!(cancels.start(&key, stored(10, 1_500)).is_none());
        assert!(cancels.start(&key, stored(400, 900)).is_none());
        assert!(
            cancels.start(&key, stored(11, 2_002)).is_some(),
            "in neither"
        );

        // Heard live from an older coordinator, without a time, then read back from the
        // stream that keeps it: bounded by when it was kept, in either order.
        for kept_first in [false, true] {
            let cancels = Cancels::default();
            let mut heard = [
                (run_cancel(None), None),
                (run_cancel(None), Some(1_000 * SECOND)),
            ];
            if kept_first {
                heard.reverse();
            }
            for (cancel, kept_at) in heard {
                cancels.cancel(&cancel, kept_at);
            }
            assert!(cancels.start(&key, stored(400, 900)).is_none());
            assert!(
                cancels.start(&key, stored(3, 1_002)).is_some(),
                "kept first: {kept_first}"
            );
        }
    }
}
