//! The futures a run keeps in flight: one attempt of a task, or the pause before a retry.
//!
//! A handler's future is polled and dropped only inside a panic guard: a panic while it
//! runs fails the attempt, and so does a panic while it is dropped (after it finished,
//! timed out, or at the end of a cancelled run), with the panic's message.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::time::Sleep;

use crate::handler::{drop_panic_message, panic_message};
use crate::{Handler, TaskContext, TaskError};

/// One attempt of one task: the handler's future, its deadline, and its tracing span.
pub(crate) struct Attempt<'h> {
    pub(crate) index: u32,
    /// The handler's future; `None` once it has been dropped.
    future: Option<BoxFuture<'h, Result<Value, TaskError>>>,
    deadline: Option<(Pin<Box<Sleep>>, Duration)>,
    span: tracing::Span,
}

impl<'h> Attempt<'h> {
    /// Calls the handler; a panic while creating its future fails the attempt like a panic
    /// while polling it.
    pub(crate) fn start(
        handler: &'h dyn Handler,
        ctx: TaskContext,
        timeout: Option<Duration>,
        span: tracing::Span,
    ) -> Self {
        let index = ctx.index;
        let future = match catch_unwind(AssertUnwindSafe(|| handler.call(ctx))) {
            Ok(future) => future,
            Err(panic) => {
                let error = TaskError::new(panic_message(panic.as_ref()));
                Box::pin(async move { Err(error) })
            }
        };
        Self {
            index,
            future: Some(future),
            deadline: timeout.map(|t| (Box::pin(tokio::time::sleep(t)), t)),
            span,
        }
    }
}

impl Attempt<'_> {
    /// Drops the handler's future inside a panic guard; the message of a panic there, if
    /// one happened.
    pub(crate) fn release(&mut self) -> Option<String> {
        let future = self.future.take()?;
        let _entered = self.span.enter();
        catch_unwind(AssertUnwindSafe(move || drop(future)))
            .err()
            .map(|panic| drop_panic_message(panic.as_ref()))
    }

    /// The outcome of the attempt, with its future dropped: a panic while dropping it
    /// fails an attempt that succeeded, and is added to the error of one that failed.
    fn conclude(&mut self, outcome: Result<Value, TaskError>) -> Result<Value, TaskError> {
        match (self.release(), outcome) {
            (None, outcome) => outcome,
            (Some(panic), Ok(_)) => Err(TaskError::new(panic)),
            (Some(panic), Err(error)) => Err(error.with_note(&panic)),
        }
    }

    fn poll_handler(&mut self, cx: &mut Context<'_>) -> Poll<Result<Value, TaskError>> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(Err(TaskError::new("the attempt was already over")));
        };
        let _entered = self.span.enter();
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(Err(TaskError::new(panic_message(panic.as_ref())))),
        }
    }
}

impl Future for Attempt<'_> {
    type Output = Result<Value, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(outcome) = this.poll_handler(cx) {
            return Poll::Ready(this.conclude(outcome));
        }
        if let Some((sleep, limit)) = &mut this.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                let message = format!("timed out after {}", seconds(*limit));
                return Poll::Ready(this.conclude(Err(TaskError::new(message))));
            }
        }
        Poll::Pending
    }
}

impl Drop for Attempt<'_> {
    /// A future dropped with the whole run (the run itself was dropped) has no record left
    /// to note a panic in; the panic is contained and logged.
    fn drop(&mut self) {
        if let Some(panic) = self.release() {
            tracing::warn!(task = self.index, %panic, "a dropped run's handler panicked");
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// What a run waits for.
pub(crate) enum InFlight<'h> {
    /// A handler is running.
    Attempt(Attempt<'h>),
    /// A failed task waits before its next attempt (no time at all without a sleep).
    Backoff {
        index: u32,
        sleep: Option<Pin<Box<Sleep>>>,
    },
}

/// What finished.
pub(crate) enum Landed {
    Attempt(u32, Result<Value, TaskError>),
    BackoffOver(u32),
}

impl Future for InFlight<'_> {
    type Output = Landed;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Landed> {
        match self.get_mut() {
            InFlight::Attempt(attempt) => {
                let index = attempt.index;
                Pin::new(attempt)
                    .poll(cx)
                    .map(|outcome| Landed::Attempt(index, outcome))
            }
            InFlight::Backoff { index, sleep } => match sleep {
                Some(sleep) => sleep.as_mut().poll(cx),
                None => Poll::Ready(()),
            }
            .map(|()| Landed::BackoffOver(*index)),
        }
    }
}
