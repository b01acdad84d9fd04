//! tokio's timer: whether the runtime polling a run has one, what in a workflow needs it,
//! and the end of a cancelled run's grace period.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use orch_core::Task;

use crate::RunError;
use tokio::runtime::{Handle, Id};
use tokio::time::Sleep;

/// Runtimes found to have no timer, the latest last; a few are enough to spare the common
/// case (one such runtime, used again and again) a second look.
static TIMERLESS: Mutex<Vec<Id>> = Mutex::new(Vec::new());
const TIMERLESS_KEPT: usize = 8;

/// Whether timers can be created here: inside a tokio runtime built with its time driver.
///
/// tokio has no way to ask a runtime whether it has one; creating a timer on a runtime
/// without one panics. So this creates one inside a panic guard, once per such runtime
/// (the panic hook still reports that panic once).
pub(crate) fn available() -> bool {
    let Ok(runtime) = Handle::try_current() else {
        return false;
    };
    let id = runtime.id();
    let mut timerless = TIMERLESS.lock().unwrap_or_else(PoisonError::into_inner);
    if timerless.contains(&id) {
        return false;
    }
    if catch_unwind(AssertUnwindSafe(|| {
        drop(tokio::time::sleep(Duration::ZERO))
    }))
    .is_ok()
    {
        return true;
    }
    if timerless.len() == TIMERLESS_KEPT {
        timerless.remove(0);
    }
    timerless.push(id);
    false
}

/// Whether `task` pauses between attempts (a backoff with no delay does not).
pub(crate) fn pauses_before_retries(task: &Task) -> bool {
    task.retries > 0 && !task.backoff.initial.is_zero() && !task.backoff.max.is_zero()
}

/// The error for the options of `tasks` that need a timer, when there is none here;
/// `None` when nothing needs one or there is one.
pub(crate) fn missing<'w>(tasks: impl Iterator<Item = &'w Task>) -> Option<RunError> {
    let mut needing = tasks
        .filter(|task| task.timeout.is_some() || pauses_before_retries(task))
        .peekable();
    if needing.peek().is_none() || available() {
        return None;
    }
    let mut options = Vec::new();
    for task in needing {
        if task.timeout.is_some() {
            options.push((task.task_id.clone(), "timeout"));
        }
        if pauses_before_retries(task) {
            options.push((task.task_id.clone(), "backoff"));
        }
    }
    Some(RunError::NoTimer {
        options,
        in_runtime: Handle::try_current().is_ok(),
    })
}

/// The end of a cancelled run's grace period.
pub(crate) enum Deadline {
    At(Pin<Box<Sleep>>),
    /// A zero grace period, or no timer to wait with.
    Now,
}

impl Deadline {
    /// `period` from now; now if there is no timer here.
    pub(crate) fn after(period: Duration) -> Self {
        if period.is_zero() || !available() {
            Self::Now
        } else {
            Self::At(Box::pin(tokio::time::sleep(period)))
        }
    }

    /// Whether the deadline has passed (if not, the waker is woken when it does).
    pub(crate) fn poll_passed(&mut self, cx: &mut Context<'_>) -> bool {
        match self {
            Self::At(sleep) => sleep.as_mut().poll(cx).is_ready(),
            Self::Now => true,
        }
    }

    /// The time left until the deadline (zero once it has passed).
    pub(crate) fn left(&self) -> Duration {
        match self {
            Self::At(sleep) => sleep
                .deadline()
                .saturating_duration_since(tokio::time::Instant::now()),
            Self::Now => Duration::ZERO,
        }
    }

    /// Waits until the deadline has passed.
    pub(crate) async fn passed(&mut self) {
        poll_fn(|cx| {
            if self.poll_passed(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}
