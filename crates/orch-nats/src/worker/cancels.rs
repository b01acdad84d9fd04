//! The attempts a worker runs, by key, so that a cancellation from a coordinator reaches
//! their handlers; and the cancellations it heard of recently, so that a cancelled
//! attempt taken later does not run. A cancellation that names the last task message it
//! covers (its stream sequence) leaves alone a message sent after it: the same attempt
//! sent again by a coordinator that came back on the run.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_nats::jetstream;
use futures_util::StreamExt;
use orch_core::RunId;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::follow::{self, Followed};
use crate::protocol::{self, CancelMessage, Names};
use crate::routes::AttemptKey;

/// How many recent cancellations a worker remembers, and how many bytes of ids at most
/// (a task id has no length limit of its own).
const REMEMBERED: usize = 4096;
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

#[derive(Default)]
struct State {
    /// Running attempts, by registration: their keys, tokens and the stream sequences of
    /// their messages.
    running: HashMap<u64, (AttemptKey, CancellationToken, u64)>,
    /// The id of the next registration.
    next_id: u64,
    /// Cancelled runs and attempts, oldest first (a run as an attempt with no task).
    recent: VecDeque<Cancelled>,
    /// The last task message each covers (`None`: every message).
    covers: HashMap<Cancelled, Option<u64>>,
    /// The bytes of the ids in `recent`.
    recent_bytes: usize,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Cancelled {
    Run(RunId),
    Attempt(AttemptKey),
}

impl State {
    fn covers(&self, key: &AttemptKey, sequence: u64) -> bool {
        [
            Cancelled::Run(key.run.clone()),
            Cancelled::Attempt(key.clone()),
        ]
        .iter()
        .any(|c| {
            self.covers
                .get(c)
                .is_some_and(|up_to| covered(*up_to, sequence))
        })
    }
}

impl Cancelled {
    /// The bytes its ids take.
    fn size(&self) -> usize {
        match self {
            Cancelled::Run(run) => run.as_str().len(),
            Cancelled::Attempt(key) => key.run.as_str().len() + key.task.as_str().len(),
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
        let cancelled = match (&message.task_id, message.attempt) {
            (Some(task), Some(attempt)) => Cancelled::Attempt(AttemptKey {
                run: message.run_id.clone(),
                task: task.clone(),
                attempt,
            }),
            (None, None) => Cancelled::Run(message.run_id.clone()),
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
            let hit = match &cancelled {
                Cancelled::Run(run) => key.run == *run,
                Cancelled::Attempt(attempt) => key == attempt,
            };
            if hit && covered(up_to, *sequence) {
                token.cancel();
            }
        }
        match state.covers.get_mut(&cancelled) {
            // Heard before: it now covers what either cancellation covers.
            Some(known) => *known = known.zip(up_to).map(|(a, b)| a.max(b)),
            None => {
                state.recent_bytes += cancelled.size();
                state.covers.insert(cancelled.clone(), up_to);
                state.recent.push_back(cancelled);
                while state.recent.len() > REMEMBERED || state.recent_bytes > REMEMBERED_BYTES {
                    let Some(oldest) = state.recent.pop_front() else {
                        break;
                    };
                    state.recent_bytes -= oldest.size();
                    state.covers.remove(&oldest);
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a worker hears cancellations: live, and on the stream that keeps them when it
/// may read it (from the message with sequence `next` on), so that none sent while its
/// connection is down is missed, and none is missed while the stream is missing. One
/// heard both ways is applied twice, which changes nothing.
pub(crate) struct Heard {
    live: async_nats::Subscriber,
    kept: Option<(Box<jetstream::consumer::push::Ordered>, follow::Place)>,
}

/// Starts hearing cancellations: live, and on the stream that keeps them when it is
/// `kept` and this worker may read it. Every cancellation sent once this returns is
/// heard.
pub(crate) async fn hear(
    client: &async_nats::Client,
    js: &jetstream::Context,
    names: &Names,
    kept: bool,
) -> Result<Heard, async_nats::SubscribeError> {
    let live = client.subscribe(names.all_cancels()).await?;
    let kept = match kept {
        true => follow::from_now(js, &followed(names)).await,
        false => None,
    };
    let kept = kept.map(|(messages, place)| (Box::new(messages), place));
    Ok(Heard { live, kept })
}

fn followed(names: &Names) -> Followed {
    Followed {
        stream: names.cancels_stream(),
        filter: names.all_cancels(),
        what: "the cancellations stream",
    }
}

/// Hears cancellations for as long as the worker runs.
pub(crate) async fn listen(shared: Arc<Shared>, heard: Heard) {
    let Heard { mut live, kept } = heard;
    let live = async {
        while let Some(message) = live.next().await {
            apply(&shared, &message.subject, &message.payload);
        }
    };
    let kept = async {
        if let Some((messages, place)) = kept {
            let (js, followed) = (shared.js.clone(), followed(&shared.names));
            follow::follow(js, followed, *messages, place, |message| {
                apply(&shared, &message.subject, &message.payload);
            })
            .await;
        }
    };
    tokio::join!(live, kept);
}

fn apply(shared: &Shared, subject: &str, payload: &[u8]) {
    match protocol::read::<CancelMessage>(payload) {
        Ok(cancel) => shared.cancels.cancel(&cancel),
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
        assert!(state.recent_bytes <= REMEMBERED_BYTES);
        assert!(state.recent.len() < 20, "{}", state.recent.len());
        assert_eq!(state.covers.len(), state.recent.len());
        drop(state);
        for i in 0..REMEMBERED + 10 {
            cancels.cancel(&cancel_of("r", format!("t{i}")));
        }
        let state = cancels.lock();
        assert_eq!(state.recent.len(), REMEMBERED);
        assert_eq!(state.covers.len(), REMEMBERED);
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
