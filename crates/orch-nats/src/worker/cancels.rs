//! The attempts a worker runs, by key, so that a cancellation from a coordinator reaches
//! their handlers; and the cancellations it heard of recently, so that a cancelled
//! attempt taken later does not run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::StreamExt;
use orch_core::RunId;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::protocol::{self, CancelMessage};
use crate::routes::AttemptKey;

/// How many recent cancellations a worker remembers.
const REMEMBERED: usize = 4096;

#[derive(Default)]
pub(crate) struct Cancels {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: HashMap<AttemptKey, CancellationToken>,
    /// Cancelled runs and attempts, oldest first (a run as an attempt with no task).
    recent: VecDeque<Cancelled>,
    recent_set: HashSet<Cancelled>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Cancelled {
    Run(RunId),
    Attempt(AttemptKey),
}

impl Cancels {
    /// Registers a running attempt and gives its token; `None` when it was cancelled
    /// already.
    pub(crate) fn start(&self, key: &AttemptKey) -> Option<CancellationToken> {
        let mut state = self.lock();
        if state.recent_set.contains(&Cancelled::Run(key.run.clone()))
            || state.recent_set.contains(&Cancelled::Attempt(key.clone()))
        {
            return None;
        }
        let token = CancellationToken::new();
        state.running.insert(key.clone(), token.clone());
        Some(token)
    }

    /// Forgets a running attempt.
    pub(crate) fn finish(&self, key: &AttemptKey) {
        self.lock().running.remove(key);
    }

    fn cancel(&self, message: &CancelMessage) {
        let mut state = self.lock();
        let cancelled = match (&message.task_id, message.attempt) {
            (Some(task), Some(attempt)) => Cancelled::Attempt(AttemptKey {
                run: message.run_id.clone(),
                task: task.clone(),
                attempt,
            }),
            _ => Cancelled::Run(message.run_id.clone()),
        };
        for (key, token) in &state.running {
            let hit = match &cancelled {
                Cancelled::Run(run) => key.run == *run,
                Cancelled::Attempt(attempt) => key == attempt,
            };
            if hit {
                token.cancel();
            }
        }
        if state.recent_set.insert(cancelled.clone()) {
            state.recent.push_back(cancelled);
            if state.recent.len() > REMEMBERED
                && let Some(oldest) = state.recent.pop_front()
            {
                state.recent_set.remove(&oldest);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hears cancellations (on `messages`, a subscription to every run's cancellations) for
/// as long as the worker runs.
pub(crate) async fn listen(shared: Arc<Shared>, mut messages: async_nats::Subscriber) {
    while let Some(message) = messages.next().await {
        match protocol::read::<CancelMessage>(&message.payload) {
            Ok(cancel) => shared.cancels.cancel(&cancel),
            Err(error) => {
                tracing::error!(subject = %message.subject, %error, "ignoring a cancellation that cannot be read")
            }
        }
    }
}
