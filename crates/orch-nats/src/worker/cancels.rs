//! The attempts a worker runs, by key, so that a cancellation from a coordinator reaches
//! their handlers; and the cancellations it heard of recently, so that a cancelled
//! attempt taken later does not run. A cancellation that names the last task message it
//! covers (its stream sequence) leaves alone a message sent after it: the same attempt
//! sent again by a coordinator that came back on the run.

use std::collections::{HashMap, VecDeque};
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

struct State {
    /// Running attempts, by registration: their keys, tokens and the stream sequences of
    /// their messages.
    running: HashMap<u64, (AttemptKey, CancellationToken, u64)>,
    /// The id of the next registration.
    next_id: u64,
    /// Cancelled runs, and the last task message each cancellation covers.
    runs: Remembered<RunId>,
    /// Cancelled attempts, and the last task message each cancellation covers.
    attempts: Remembered<AttemptKey>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            running: HashMap::new(),
            next_id: 0,
            runs: Remembered::new(REMEMBERED_RUNS, |run| run.as_str().len()),
            attempts: Remembered::new(REMEMBERED, |key| {
                key.run.as_str().len() + key.task.as_str().len()
            }),
        }
    }
}

impl State {
    fn covers(&self, key: &AttemptKey, sequence: u64) -> bool {
        self.runs.covers(&key.run, sequence) || self.attempts.covers(key, sequence)
    }
}

/// Recent cancellations of one kind, oldest first, each with the last task message it
/// covers (`None`: every message); at most `most` of them and [`REMEMBERED_BYTES`] of ids.
struct Remembered<K> {
    recent: VecDeque<K>,
    covers: HashMap<K, Option<u64>>,
    bytes: usize,
    most: usize,
    size: fn(&K) -> usize,
}

impl<K: Clone + Eq + std::hash::Hash> Remembered<K> {
    fn new(most: usize, size: fn(&K) -> usize) -> Self {
        Self {
            recent: VecDeque::new(),
            covers: HashMap::new(),
            bytes: 0,
            most,
            size,
        }
    }

    fn covers(&self, key: &K, sequence: u64) -> bool {
        (self.covers.get(key)).is_some_and(|up_to| covered(*up_to, sequence))
    }

    fn remember(&mut self, key: K, up_to: Option<u64>) {
        match self.covers.get_mut(&key) {
            // Heard before: it now covers what either cancellation covers.
            Some(known) => *known = known.zip(up_to).map(|(a, b)| a.max(b)),
            None => {
                self.bytes += (self.size)(&key);
                self.covers.insert(key.clone(), up_to);
                self.recent.push_back(key);
                while self.recent.len() > self.most || self.bytes > REMEMBERED_BYTES {
                    let Some(oldest) = self.recent.pop_front() else {
                        break;
                    };
                    self.bytes -= (self.size)(&oldest);
                    self.covers.remove(&oldest);
                }
            }
        }
    }
}

/// Whether a cancellation that covers messages up to `up_to` covers message `sequence`.
fn covered(up_to: Option<u64>, sequence: u64) -> bool {
    up_to.is_none_or(|last| sequence <= last)
}

impl Cancels {
    /// Registers a running attempt, whose message is stream message `sequence`, with its
    /// token; `None` when it was cancelled already.
    pub(crate) fn start(&self, key: &AttemptKey, sequence: u64) -> Option<Running> {
        let mut state = self.lock();
        if state.covers(key, sequence) {
            return None;
        }
        let token = CancellationToken::new();
        let id = state.next_id;
        state.next_id += 1;
        state
            .running
            .insert(id, (key.clone(), token.clone(), sequence));
        Some(Running { id, token })
    }

    /// Whether a cancellation heard of covers `key`'s attempt, whose message is stream
    /// message `sequence`.
    pub(crate) fn covers(&self, key: &AttemptKey, sequence: u64) -> bool {
        self.lock().covers(key, sequence)
    }

    /// Forgets a running attempt.
    pub(crate) fn finish(&self, running: &Running) {
        self.lock().running.remove(&running.id);
    }

    fn cancel(&self, message: &CancelMessage) {
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
        let up_to = message.up_to_sequence;
        for (key, token, sequence) in state.running.values() {
            let hit = match &attempt {
                None => key.run == message.run_id,
                Some(attempt) => key == attempt,
            };
            if hit && covered(up_to, *sequence) {
                token.cancel();
            }
        }
        match attempt {
            None => state.runs.remember(message.run_id.clone(), up_to),
            Some(attempt) => state.attempts.remember(attempt, up_to),
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

/// Applies the cancellations kept from before this worker started, before it takes any
/// task: a queued attempt of a run cancelled while no worker was up, or whose
/// cancellation this worker forgot, does not run. One that does not come within
/// [`CATCH_UP_PATIENCE`] is left to [`listen`] (with a warning).
pub(crate) async fn catch_up(shared: &Shared, heard: &mut Heard) {
    let Some(kept) = &mut heard.kept else {
        return;
    };
    while kept.place.next <= kept.earlier {
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
        if info.pending == 0 {
            return;
        }
    }
}

/// Hears cancellations for as long as the worker runs.
pub(crate) async fn listen(shared: Arc<Shared>, heard: Heard) {
    let Heard { mut live, kept } = heard;
    let live = async {
        while let Some(message) = live.next().await {
            apply(&shared, &message.subject, &message.payload, true);
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
    let new = message
        .info()
        .is_ok_and(|info| info.stream_sequence > earlier);
    apply(shared, &message.subject, &message.payload, new);
}

/// Applies a cancellation; one sent before this worker started (not `new`) only if it
/// names the last task message it covers.
fn apply(shared: &Shared, subject: &str, payload: &[u8], new: bool) {
    match protocol::read::<CancelMessage>(payload) {
        Ok(cancel) if new || cancel.up_to_sequence.is_some() => shared.cancels.cancel(&cancel),
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
        }
    }

    #[test]
    fn remembered_cancellations_are_bounded_by_count_and_by_bytes() {
        let cancels = Cancels::default();
        // Long task ids: the bytes bound keeps about 16 of these 1 MiB ones.
        for i in 0..40 {
            cancels.cancel(&cancel_of("r", format!("{i}{}", "t".repeat(1 << 20))));
        }
        let state = cancels.lock();
        assert!(state.attempts.bytes <= REMEMBERED_BYTES);
        let recent = state.attempts.recent.len();
        assert!(recent < 20, "{recent}");
        assert_eq!(state.attempts.covers.len(), recent);
        drop(state);
        for i in 0..REMEMBERED + 10 {
            cancels.cancel(&cancel_of("r", format!("t{i}")));
        }
        let state = cancels.lock();
        assert_eq!(state.attempts.recent.len(), REMEMBERED);
        assert_eq!(state.attempts.covers.len(), REMEMBERED);
        // The newest are the ones kept.
        let newest = AttemptKey {
            run: RunId::parse("r").expect("a run id"),
            task: format!("t{}", REMEMBERED + 9).into(),
            attempt: 1,
        };
        drop(state);
        assert!(
            cancels.start(&newest, 1).is_none(),
            "a cancelled attempt does not start"
        );
    }

    /// A run's cancellation is remembered apart: the cancellations of many attempts
    /// (one per attempt that timed out) do not push it out.
    #[test]
    fn a_cancelled_run_outlasts_many_cancelled_attempts() {
        let cancels = Cancels::default();
        cancels.cancel(&CancelMessage {
            task_id: None,
            attempt: None,
            up_to_sequence: Some(10),
            ..cancel_of("gone", String::new())
        });
        for i in 0..2 * REMEMBERED {
            cancels.cancel(&cancel_of("other", format!("t{i}")));
        }
        let key = |sequence| {
            let key = AttemptKey {
                run: RunId::parse("gone").expect("a run id"),
                task: "t".into(),
                attempt: 1,
            };
            cancels.start(&key, sequence)
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
        let Some(running) = cancels.start(&key, 7) else {
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
            cancels.cancel(&half);
            assert!(!running.token.is_cancelled(), "{half:?} cancelled the run");
            let later = AttemptKey {
                task: "u".into(),
                ..key.clone()
            };
            assert!(cancels.start(&later, 8).is_some(), "{half:?} was kept");
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
        let both = |task| (cancels.start(&key(task), 7), cancels.start(&key(task), 7));
        let (Some(first), Some(second)) = both("t") else {
            panic!("not cancelled yet: both run");
        };
        cancels.cancel(&cancel_of("r", "t".to_owned()));
        assert!(first.token.is_cancelled() && second.token.is_cancelled());

        // One ending does not unregister the other.
        let (Some(first), Some(second)) = both("u") else {
            panic!("not cancelled yet: both run");
        };
        cancels.finish(&first);
        cancels.cancel(&cancel_of("r", "u".to_owned()));
        assert!(
            second.token.is_cancelled(),
            "the one still running is cancelled"
        );
    }
}
