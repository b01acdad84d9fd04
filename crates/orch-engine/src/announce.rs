//! Publishing a run's lifecycle events on the engine's bus, in order and without loss.
//!
//! The run records each event as a small [`Note`] (no lock, no allocation for most) and
//! hands the notes over in batches to a publisher, which builds the subjects and
//! [`EngineEvent`](orch_core::EngineEvent)s and publishes them. On a tokio runtime, of
//! either flavour, the publisher is a task of its own, so events cost the run's thread
//! little; a run polled outside tokio has nothing to spawn it on and polls it at every
//! flush instead. Every event is published, whoever listens: a subscription made during a
//! run receives every event published after it was made (and, on a bus with history, can
//! replay earlier ones).
//!
//! # Backpressure
//! One rule: while eight batches ([`BATCHES_IN_FLIGHT`]) wait for the publisher (a full
//! lossless subscription holds it up), the run starts no new task, nor a map task's next
//! instance or an instance's retry. It goes on handling the
//! tasks that are running, and starts tasks again as soon as the publisher takes a batch.
//! So a slow subscriber slows the run down instead of letting events pile up.
//!
//! A cancelled run waits for its publisher only until its grace period ends, then leaves
//! the rest of the publishing to a background task or thread
//! ([`Announcer::finish_or_leave`]).
//!
//! # Subjects
//! Workflow events go to `workflow.<workflow_id>.<event>` (`started`, `finished`); task
//! events to `workflow.<workflow_id>.task.<task_id>.<event>` (`started`, `completed`,
//! `failed`, `retrying`, `skipped`, `cancelled`, `restored`). Ids are written into
//! subjects with percent-escapes for the characters a subject token cannot hold: `.`,
//! `*`, `>`, `%`, white space and control characters become `%XX` (their UTF-8 bytes in
//! upper-case hex), so `load.v2` is the token `load%2Ev2`. An empty id is written `%`
//! (no escape is a lone `%`, so it stands for no other id).

#![cfg(feature = "events")]

mod publisher;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::future::{self, BoxFuture, Either};
use orch_core::{Plan, RunId, Workflow};
use tokio::sync::mpsc::{self, OwnedPermit, error::TrySendError};

use crate::note::Note;
use publisher::{Names, Publisher};

/// Batches of notes handed over but not yet published; past this the run waits.
const BATCHES_IN_FLIGHT: usize = 8;

/// Where an engine's runs publish their events.
#[derive(Clone)]
pub(crate) struct EventTarget {
    pub(crate) bus: orch_events::EventBus<orch_core::EngineEvent>,
    /// Whether completed tasks' events carry their outputs.
    pub(crate) outputs: bool,
}

/// A run's events on their way to the bus.
pub(crate) struct Announcer {
    notes: Vec<Note>,
    /// Where batches of notes go; `None` once the publisher has stopped (the bus closed,
    /// or the publisher panicked: `finish` raises that again).
    batches: Option<mpsc::Sender<Vec<Note>>>,
    /// Room in `batches`, being waited for.
    waiting: Option<BoxFuture<'static, Option<OwnedPermit<Vec<Note>>>>>,
    publisher: Publisher,
    /// Whether completed tasks' events carry their outputs.
    outputs: bool,
}

impl Announcer {
    /// The announcer of one run publishing to `target` (`None` only if the run's subjects
    /// cannot be written, which escaping the ids always allows).
    pub(crate) fn start(
        target: EventTarget,
        workflow: &Workflow,
        plan: &Plan,
        run_id: &RunId,
        span: &tracing::Span,
    ) -> Option<Self> {
        let names = Names::new(workflow, run_id.clone(), plan)?;
        let (batches, incoming) = mpsc::channel(BATCHES_IN_FLIGHT);
        Some(Self {
            publisher: Publisher::start(target.bus, names, incoming, span.clone()),
            outputs: target.outputs,
            notes: Vec::new(),
            batches: Some(batches),
            waiting: None,
        })
    }

    /// Whether the publisher is too far behind (see [Backpressure](self#backpressure)):
    /// the run then starts no new task.
    pub(crate) fn is_stalled(&self) -> bool {
        self.waiting.is_some()
    }

    /// Whether the events of completed (and restored) tasks carry their outputs.
    pub(crate) fn wants_outputs(&self) -> bool {
        self.outputs
    }

    /// Queues `note`.
    pub(crate) fn note(&mut self, note: Note) {
        self.notes.push(note);
    }

    /// Hands the queued notes to the publisher, and lets an inline publisher work. Pending
    /// while it is too far behind, with the waker registered for when it catches up.
    pub(crate) fn flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let poll = self.hand_over(cx);
        self.publisher.poll_inline(cx);
        poll
    }

    fn hand_over(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(waiting) = &mut self.waiting {
                let Poll::Ready(permit) = waiting.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                self.waiting = None;
                match permit {
                    Some(permit) => {
                        permit.send(std::mem::take(&mut self.notes));
                    }
                    None => self.publisher_gone(),
                }
            }
            if self.notes.is_empty() {
                return Poll::Ready(());
            }
            let Some(batches) = &self.batches else {
                self.notes.clear();
                return Poll::Ready(());
            };
            let handed = self.notes.len();
            match batches.try_send(std::mem::take(&mut self.notes)) {
                Ok(()) => {
                    // The next batch starts with room for as many notes.
                    self.notes.reserve(handed);
                    return Poll::Ready(());
                }
                Err(TrySendError::Full(notes)) => {
                    self.notes = notes;
                    let batches = batches.clone();
                    self.waiting =
                        Some(Box::pin(async move { batches.reserve_owned().await.ok() }));
                }
                Err(TrySendError::Closed(_)) => self.publisher_gone(),
            }
        }
    }

    /// The publisher stopped (the bus closed, or it panicked): no one is left to tell.
    fn publisher_gone(&mut self) {
        self.batches = None;
        self.notes.clear();
    }

    /// Hands over what is left and waits until the publisher has published it all.
    async fn finish(mut self) {
        std::future::poll_fn(|cx| self.flush(cx)).await;
        self.batches = None;
        self.publisher.finish().await;
    }

    /// Waits until every event is published, or until `until` completes: then what is
    /// left is published in the background (see [`deliver_later`]).
    pub(crate) async fn finish_or_leave(self, until: impl Future<Output = ()>) {
        let finishing = Box::pin(self.finish());
        let until = pin!(until);
        if let Either::Right(((), rest)) = future::select(finishing, until).await {
            deliver_later(rest);
        }
    }
}

/// Publishes the rest of a run's events after the run returned: on a task of the current
/// tokio runtime, or outside one on a thread of its own. Either way it ends once every
/// event is queued for its subscribers: when the full ones read or are dropped, or when
/// the bus closes (or, on a runtime, when the runtime shuts down).
fn deliver_later(rest: Pin<Box<impl Future<Output = ()> + Send + 'static>>) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(rest);
        return;
    }
    let thread = std::thread::Builder::new()
        .name("orch-event-delivery".to_owned())
        .spawn(move || block_on(rest));
    if let Err(error) = thread {
        tracing::error!(%error, "no thread to publish a cancelled run's last events: they are lost");
    }
}

/// Runs `future` to its end on this thread, which sleeps while it waits.
fn block_on(future: impl Future<Output = ()>) {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    while future.as_mut().poll(&mut cx).is_pending() {
        std::thread::park();
    }
}
