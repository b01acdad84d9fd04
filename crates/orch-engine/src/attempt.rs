//! The futures a run keeps in flight: one attempt of a task, or the pause before a retry.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::time::Sleep;

use crate::handler::panic_message;
use crate::{Handler, TaskContext, TaskError};

/// One attempt of one task: the handler's future, its deadline, and its tracing span.
pub(crate) struct Attempt<'h> {
    pub(crate) index: u32,
    future: BoxFuture<'h, Result<Value, TaskError>>,
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
            future,
            deadline: timeout.map(|t| (Box::pin(tokio::time::sleep(t)), t)),
            span,
        }
    }
}

impl Future for Attempt<'_> {
    type Output = Result<Value, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let _entered = this.span.enter();
        match catch_unwind(AssertUnwindSafe(|| this.future.as_mut().poll(cx))) {
            Ok(Poll::Ready(outcome)) => return Poll::Ready(outcome),
            Ok(Poll::Pending) => {}
            Err(panic) => return Poll::Ready(Err(TaskError::new(panic_message(panic.as_ref())))),
        }
        if let Some((sleep, limit)) = &mut this.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                let message = format!("timed out after {}", seconds(*limit));
                return Poll::Ready(Err(TaskError::new(message)));
            }
        }
        Poll::Pending
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// What a run waits for.
pub(crate) enum InFlight<'h> {
    /// A handler is running.
    Attempt(Attempt<'h>),
    /// A failed task waits before its next attempt.
    Backoff { index: u32, sleep: Pin<Box<Sleep>> },
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
            InFlight::Backoff { index, sleep } => sleep
                .as_mut()
                .poll(cx)
                .map(|()| Landed::BackoffOver(*index)),
        }
    }
}
