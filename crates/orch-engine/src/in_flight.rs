//! What a run waits for, all together: its attempts, the pauses before retries, and the
//! journal's commits.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::FuturesUnordered;
use tokio::time::Sleep;

use crate::attempt::Attempt;
use crate::journaling::{Commit, PendingCommit};
use crate::{Output, TaskError};

/// What a run waits for.
pub(crate) enum InFlight<'h> {
    /// A handler is running.
    Attempt(Attempt<'h>),
    /// A failed task waits before its next attempt (no time at all without a sleep).
    Backoff {
        index: u32,
        sleep: Option<Pin<Box<Sleep>>>,
    },
    /// A durable run's journal records tasks that ended.
    Commit(PendingCommit),
}

/// What a run waits for, all together. Dropped with attempts still among them (the run
/// itself was dropped before its end, its caller no longer awaiting it), it cancels the
/// tokens of their own that timed attempts watch (the run's token, which the others
/// watch, is cancelled by [`execute`](crate::run::execute)): dropping a handler's future
/// stops it, not a [`blocking`](crate::blocking) function or work it handed to a task of
/// its own.
pub(crate) struct InFlightSet<'h> {
    futures: FuturesUnordered<InFlight<'h>>,
}

impl<'h> InFlightSet<'h> {
    pub(crate) fn new() -> Self {
        Self {
            futures: FuturesUnordered::new(),
        }
    }

    /// Takes every future out, leaving the set empty.
    pub(crate) fn take(&mut self) -> FuturesUnordered<InFlight<'h>> {
        std::mem::take(&mut self.futures)
    }
}

impl<'h> std::ops::Deref for InFlightSet<'h> {
    type Target = FuturesUnordered<InFlight<'h>>;

    fn deref(&self) -> &Self::Target {
        &self.futures
    }
}

impl std::ops::DerefMut for InFlightSet<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.futures
    }
}

impl Drop for InFlightSet<'_> {
    fn drop(&mut self) {
        for flight in self.futures.iter() {
            if let InFlight::Attempt(attempt) = flight {
                attempt.cancel();
            }
        }
    }
}

/// An attempt that ended.
pub(crate) struct AttemptEnded {
    /// Its task's (or map instance's) place in the run.
    pub(crate) index: u32,
    pub(crate) outcome: Result<Output, TaskError>,
    /// Whether the run was cancelled before the poll the attempt ended on (another
    /// handler cancelled it in this pass of the run, say).
    pub(crate) cancelled_before: bool,
}

/// What finished.
pub(crate) enum Landed {
    Attempt(AttemptEnded),
    BackoffOver(u32),
    Committed(Commit),
}

impl Future for InFlight<'_> {
    type Output = Landed;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Landed> {
        match self.get_mut() {
            InFlight::Attempt(attempt) => {
                let index = attempt.index;
                let cancelled_before = attempt.run_cancelled();
                Pin::new(attempt).poll(cx).map(|outcome| {
                    Landed::Attempt(AttemptEnded {
                        index,
                        outcome,
                        cancelled_before,
                    })
                })
            }
            InFlight::Backoff { index, sleep } => match sleep {
                Some(sleep) => sleep.as_mut().poll(cx),
                None => Poll::Ready(()),
            }
            .map(|()| Landed::BackoffOver(*index)),
            InFlight::Commit(commit) => Pin::new(commit).poll(cx).map(Landed::Committed),
        }
    }
}
