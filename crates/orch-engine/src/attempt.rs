//! One attempt of a task, which a run keeps in flight (see [`crate::in_flight`]).
//!
//! A handler's future is polled and dropped only inside a panic guard: a panic while it
//! runs fails the attempt, and so does a panic while it is dropped (after it finished,
//! timed out, or at the end of a cancelled run), with the panic's message. An attempt runs
//! either on the run's own task or, spawned, as a tokio task of its own that runs the same
//! guard; the run then waits for its join handle, and aborts it on timeout or
//! cancellation.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{BoxFuture, Either};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::handler::{drop_panic_message, joined, panic_message};
use crate::{Handler, Output, TaskContext, TaskError};

/// A handler's future, polled and dropped inside panic guards.
struct Guarded<'h> {
    /// `None` once it has been dropped.
    future: Option<BoxFuture<'h, Result<Output, TaskError>>>,
    span: tracing::Span,
}

impl Guarded<'_> {
    /// Drops the future inside a panic guard; the message of a panic there, if one
    /// happened.
    fn release(&mut self) -> Option<String> {
        release(&mut self.future, &self.span)
    }

    /// Polls the future; once it is ready, drops it: a panic while dropping it fails an
    /// attempt that succeeded, and is added to the error of one that failed.
    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Result<Output, TaskError>> {
        if self.future.is_none() {
            return Poll::Ready(Err(TaskError::new("the attempt was already over")));
        }
        let mut polled = Poll::Pending;
        let panic = {
            let _entered = self.span.enter();
            let future = &mut self.future;
            catch_unwind(AssertUnwindSafe(|| poll_and_drop(future, &mut polled, cx))).err()
        };
        conclude(&mut self.future, &self.span, &mut polled, panic);
        polled
    }
}

/// A handler's future, dropped inside a panic guard under its span; the message of a
/// panic there, if one happened.
fn release(
    future: &mut Option<BoxFuture<'_, Result<Output, TaskError>>>,
    span: &tracing::Span,
) -> Option<String> {
    let future = future.take()?;
    let _entered = span.enter();
    catch_unwind(AssertUnwindSafe(move || drop(future)))
        .err()
        .map(drop_panic_message)
}

/// Makes `polled`, what a poll of `future` gave, the attempt's outcome so far, given the
/// panic it raised, if any (while the future was polled, or, once it was ready, dropped).
///
/// The poll writes its outcome in place and the guard returns only the panic: moving
/// a freshly written outcome out of a return value costs more than the rest of a
/// no-op attempt, so outcomes stay where the poll wrote them.
#[inline]
fn conclude(
    future: &mut Option<BoxFuture<'_, Result<Output, TaskError>>>,
    span: &tracing::Span,
    polled: &mut Poll<Result<Output, TaskError>>,
    panic: Option<Box<dyn std::any::Any + Send>>,
) {
    if let Some(panic) = panic {
        conclude_panicked(future, span, polled, panic);
    }
}

#[cold]
fn conclude_panicked(
    future: &mut Option<BoxFuture<'_, Result<Output, TaskError>>>,
    span: &tracing::Span,
    polled: &mut Poll<Result<Output, TaskError>>,
    panic: Box<dyn std::any::Any + Send>,
) {
    *polled = Poll::Ready(match std::mem::replace(polled, Poll::Pending) {
        Poll::Pending => {
            // The poll panicked: the future is dropped under a guard of its own.
            let error = TaskError::new(panic_message(panic));
            match release(future, span) {
                None => Err(error),
                Some(dropped) => Err(error.with_note(&dropped)),
            }
        }
        Poll::Ready(outcome) => {
            let dropped = drop_panic_message(panic);
            match outcome {
                Ok(_) => Err(TaskError::new(dropped)),
                // A skip asked for is not taken: the attempt failed.
                Err(error) if error.is_skip() => {
                    Err(TaskError::new(error.record_text()).with_note(&dropped))
                }
                Err(error) => Err(error.with_note(&dropped)),
            }
        }
    });
}

/// Calls `handler` and polls and drops its future inside the guards of the run's own
/// task, under `span`: for an attempt whose future must own its handler (a spawned one,
/// or one outside a run). Nothing unwinds through the future, which a second panic in
/// its drop would abort; dropped unfinished, it is released by its guard.
async fn call_owned(
    handler: Arc<dyn Handler>,
    ctx: TaskContext,
    span: tracing::Span,
) -> Result<Output, TaskError> {
    let called = {
        let _entered = span.enter();
        catch_unwind(AssertUnwindSafe(|| handler.call(ctx)))
    };
    let mut guarded = match called {
        Ok(future) => Guarded {
            future: Some(future),
            span,
        },
        Err(panic) => return Err(TaskError::new(panic_message(panic))),
    };
    std::future::poll_fn(|cx| guarded.poll_outcome(cx)).await
}

/// Polls `future`, writing what it gives to `polled`; once it is ready, drops it (a panic
/// there then leaves the outcome in `polled` and the future gone).
fn poll_and_drop<'h>(
    future: &mut Option<BoxFuture<'h, Result<Output, TaskError>>>,
    polled: &mut Poll<Result<Output, TaskError>>,
    cx: &mut Context<'_>,
) {
    if let Some(running) = future.as_mut() {
        *polled = running.as_mut().poll(cx);
        if polled.is_ready() {
            drop(future.take());
        }
    }
}

impl Drop for Guarded<'_> {
    /// A future dropped unfinished with no record left to note a panic in (its run or
    /// its spawned task was dropped): the panic is contained and logged.
    fn drop(&mut self) {
        if let Some(panic) = self.release() {
            tracing::warn!(%panic, "a dropped handler panicked");
        }
    }
}

/// Runs `handler` on `ctx` outside a run ([`crate::run_attempt`]): spawned at once as a
/// tokio task of its own, or, for a handler that runs inline, in the returned future;
/// either way under the guards a run's attempts have.
pub(crate) fn run_alone(
    handler: Arc<dyn Handler>,
    ctx: TaskContext,
) -> impl Future<Output = Result<Output, TaskError>> + Send + 'static {
    let inline = crate::handler::runs_inline(handler.as_ref());
    let call = call_owned(handler, ctx, tracing::Span::current());
    let running = match inline {
        true => Either::Left(call),
        false => Either::Right(AbortOnDropHandle::new(tokio::spawn(call))),
    };
    async move {
        match running {
            Either::Left(call) => call.await,
            Either::Right(task) => joined(task.await),
        }
    }
}

/// Where an attempt's handler runs.
enum Running<'h> {
    Inline(Guarded<'h>),
    Spawned(AbortOnDropHandle<Finished>),
}

/// A spawned handler's outcome, and when it came for an attempt with a deadline: the
/// run may get to it late (busy on its own thread), and must not take an outcome that
/// came after the deadline.
type Finished = (Result<Output, TaskError>, Option<Instant>);

/// [`call_owned`], noting when it finished if `timed`.
async fn call_timed(
    handler: Arc<dyn Handler>,
    ctx: TaskContext,
    span: tracing::Span,
    timed: bool,
) -> Finished {
    let outcome = call_owned(handler, ctx, span).await;
    (outcome, timed.then(Instant::now))
}

/// One attempt of one task: the handler's future (or its spawned task) and its deadline.
pub(crate) struct Attempt<'h> {
    pub(crate) index: u32,
    running: Running<'h>,
    deadline: Option<(Pin<Box<Sleep>>, Duration)>,
    /// The token its handler sees, for an attempt with a timeout: cancelled when it
    /// times out, and when the run is cancelled ([`Attempt::cancel`]).
    cancel: Option<CancellationToken>,
    /// The run's token, given once the run waits for the attempt
    /// ([`Attempt::watched_by`]).
    run_cancel: Option<CancellationToken>,
}

impl<'h> Attempt<'h> {
    /// Calls the handler, on the run's task or (`spawn`) as a tokio task of its own, and
    /// polls it once: the attempt to keep polling, or `None` when it is over already,
    /// with its outcome in `polled`. A panic while creating its future fails the attempt
    /// like a panic while polling it.
    ///
    /// A handler on the run's task is called and polled under one panic guard, and one
    /// that finishes on that poll never becomes an `Attempt` (no deadline timer either):
    /// most such handlers finish at once, and this is their whole cost in the engine.
    pub(crate) fn start(
        handler: &'h Arc<dyn Handler>,
        ctx: TaskContext,
        timeout: Option<Duration>,
        span: tracing::Span,
        spawn: bool,
        cx: &mut Context<'_>,
        polled: &mut Poll<Result<Output, TaskError>>,
    ) -> Option<Self> {
        let mut ctx = ctx;
        let index = ctx.index;
        // An attempt with a timeout has a token of its own, so that its handler hears of
        // it. Not a child of the run's: registering one there and taking it off again
        // cost more than the rest of an attempt that ends at once; the run's end
        // cancels it instead ([`Attempt::cancel`]).
        let cancel = timeout.map(|_| {
            let token = CancellationToken::new();
            if ctx.run.cancel.is_cancelled() {
                token.cancel();
            }
            token
        });
        ctx.attempt_cancel.clone_from(&cancel);
        // A limit too long for the clock to reach is none.
        let deadline = |started: Instant| {
            let limit = timeout?;
            let at = started.checked_add(limit)?;
            Some((Box::pin(tokio::time::sleep_until(at)), limit))
        };
        if spawn {
            let timed = timeout.is_some();
            let task = tokio::spawn(call_timed(Arc::clone(handler), ctx, span, timed));
            let mut attempt = Self {
                index,
                running: Running::Spawned(AbortOnDropHandle::new(task)),
                deadline: deadline(Instant::now()),
                cancel,
                run_cancel: None,
            };
            *polled = Pin::new(&mut attempt).poll(cx);
            return polled.is_pending().then_some(attempt);
        }
        // Read only when there is a deadline: a clock read costs more than the rest.
        let started = timeout.map(|_| Instant::now());
        // A guard only for a handler that is still running: most finish on this poll.
        let mut future = None;
        let panic = {
            let _entered = span.enter();
            let future = &mut future;
            catch_unwind(AssertUnwindSafe(|| {
                *future = Some(handler.call(ctx));
                poll_and_drop(future, polled, cx);
            }))
            .err()
        };
        conclude(&mut future, &span, polled, panic);
        // The limit, if this poll held the thread past it.
        let overran_limit = timeout.filter(|limit| started.is_some_and(|s| s.elapsed() >= *limit));
        if polled.is_ready() {
            if let Some(limit) = overran_limit
                && let Poll::Ready(outcome) = std::mem::replace(polled, Poll::Pending)
            {
                *polled = Poll::Ready(Err(overran(limit, outcome, cancel.as_ref())));
            }
            return None;
        }
        let mut attempt = Self {
            index,
            running: Running::Inline(Guarded { future, span }),
            deadline: started.and_then(deadline),
            cancel,
            run_cancel: None,
        };
        // Held the thread past its limit, and waits: stopped now, as a spawned one would
        // have been at the limit (the timer, not yet told the time, may not see it).
        if let Some(limit) = overran_limit {
            *polled = Poll::Ready(Err(attempt.stop_at_deadline(limit)));
            return None;
        }
        match attempt.poll_deadline(cx) {
            Poll::Ready(timed_out) => {
                *polled = Poll::Ready(Err(timed_out));
                None
            }
            Poll::Pending => Some(attempt),
        }
    }

    /// Stops the attempt: drops the handler's future inside a panic guard (the message of
    /// a panic there, if one happened), or aborts its spawned task (whose future tokio
    /// drops later, containing any panic).
    pub(crate) fn release(&mut self) -> Option<String> {
        match &mut self.running {
            Running::Inline(guarded) => guarded.release(),
            Running::Spawned(task) => {
                task.abort();
                None
            }
        }
    }

    /// The attempt, watched by the run whose token is `run_cancel`: from now on, its
    /// outcome comes with whether the run was cancelled before the poll it ended on.
    pub(crate) fn watched_by(mut self, run_cancel: &CancellationToken) -> Self {
        self.run_cancel = Some(run_cancel.clone());
        self
    }

    /// Whether the run that watches the attempt is cancelled.
    pub(crate) fn run_cancelled(&self) -> bool {
        self.run_cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }

    /// Tells the handler, through its own token if it has one, that the run is cancelled
    /// (a handler without one watches the run's).
    pub(crate) fn cancel(&self) {
        if let Some(token) = &self.cancel {
            token.cancel();
        }
    }

    /// The timeout error once the deadline has passed (the handler is then stopped).
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<TaskError> {
        let Some((sleep, limit)) = &mut self.deadline else {
            return Poll::Pending;
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let limit = *limit;
        Poll::Ready(self.stop_at_deadline(limit))
    }

    /// Stops the attempt, past its deadline `limit` after it started: the timeout error.
    fn stop_at_deadline(&mut self, limit: Duration) -> TaskError {
        let error = timed_out(limit);
        // Told first: a blocking handler, which nothing can stop, runs on until it looks.
        self.cancel();
        match self.release() {
            Some(panic) => error.with_note(&panic),
            None => error,
        }
    }
}

impl Future for Attempt<'_> {
    type Output = Result<Output, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let polled = match &mut this.running {
            Running::Inline(guarded) => match &this.deadline {
                // A handler on the run's own task that holds it across its deadline in
                // this poll: spawned, it would have been stopped there, so it times out.
                // (One merely polled late, the run being busy, is not.)
                // Nor is one that waits after such a poll: it is stopped at once (the
                // timer, not yet told the time, may not see the deadline passed).
                Some((sleep, limit)) if Instant::now() < sleep.deadline() => {
                    let (limit, polled) = (*limit, guarded.poll_outcome(cx));
                    if Instant::now() < sleep.deadline() {
                        polled
                    } else if let Poll::Ready(outcome) = polled {
                        Poll::Ready(Err(overran(limit, outcome, this.cancel.as_ref())))
                    } else {
                        return Poll::Ready(Err(this.stop_at_deadline(limit)));
                    }
                }
                _ => guarded.poll_outcome(cx),
            },
            // A spawned handler that finished past its deadline timed out, however late
            // the run gets to it.
            Running::Spawned(task) => Pin::new(task).poll(cx).map(|joined_task| {
                let (outcome, finished) = match joined_task {
                    Ok(finished) => finished,
                    Err(error) => (joined(Err(error)), None),
                };
                match (&this.deadline, finished) {
                    (Some((sleep, limit)), Some(at)) if at >= sleep.deadline() => {
                        Err(overran(*limit, outcome, this.cancel.as_ref()))
                    }
                    _ => outcome,
                }
            }),
        };
        if polled.is_ready() {
            return polled;
        }
        this.poll_deadline(cx).map(Err)
    }
}

/// The error of an attempt that ran past its limit, `limit`. A handler on the run's own
/// task that keeps the thread past it (it does not wait) is not stopped at the limit,
/// but its outcome is not taken either: it times out as a spawned one would.
fn timed_out(limit: Duration) -> TaskError {
    TaskError::new(format!("timed out after {}", seconds(limit)))
}

/// The timeout error of an attempt whose `outcome` came past `limit` (on the run's own
/// task within one poll, or spawned and found late): an error (a panic's, say) is kept
/// as a note, a permanent one stays permanent (no retry would help), and the attempt's
/// token, `cancel`, is cancelled as at a deadline.
fn overran(
    limit: Duration,
    outcome: Result<Output, TaskError>,
    cancel: Option<&CancellationToken>,
) -> TaskError {
    // Told, as at a deadline: helpers watching the attempt's token stop too.
    if let Some(token) = cancel {
        token.cancel();
    }
    match outcome {
        Ok(_) => timed_out(limit),
        Err(error) => {
            let late = match error.is_permanent() {
                true => TaskError::permanent(timed_out(limit).into_inner()),
                false => timed_out(limit),
            };
            late.with_note(&error.record_text())
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}
