//! The publisher (a task of its own on a multi-threaded tokio runtime, else polled by the
//! run itself): turns a run's notes into subjects and [`EngineEvent`]s and publishes them,
//! in order, waiting for room in lossless subscriptions.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Context;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use orch_core::{EngineEvent, Plan, Workflow};
use orch_events::{EventBus, Subject};
use tokio::runtime::RuntimeFlavor;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::note::Note;

/// What the publisher needs to name a run's events.
///
/// The ids that events share (the workflow id, the task types) are copied afresh for each
/// batch of [`SHARE_COPIES_FOR`] events or more: the subscriber drops a batch's events
/// while the publisher builds the next, and shared reference counts would bounce between
/// their two cores on every event.
pub(crate) struct Names {
    workflow: Workflow,
    workflow_id: Arc<str>,
    run_id: u64,
    /// `workflow.<workflow_id>`, escaped, that every subject of the run begins with.
    prefix: Subject,
    /// Each task type once, with the copy generation it belongs to.
    task_types: Vec<(u64, Arc<str>)>,
    generation: u64,
    /// Events named since the shared ids were last copied.
    since_copy: usize,
}

/// Events after which a new batch gets its own copies of the shared ids; smaller batches
/// (a slow run's) keep sharing them rather than allocate for a few events.
const SHARE_COPIES_FOR: usize = 64;

impl Names {
    /// The names of a run's events; `None` if its subjects could not be written (escaping
    /// makes every id a valid token, so this is not expected).
    pub(crate) fn new(workflow: &Workflow, run_id: u64, plan: &Plan) -> Option<Self> {
        let prefix = format!("workflow.{}", token(workflow.workflow_id()));
        let prefix = match Subject::new(&prefix) {
            Ok(prefix) => prefix,
            Err(error) => {
                tracing::warn!(%error, "no lifecycle events: the workflow id makes no subject");
                return None;
            }
        };
        Some(Self {
            workflow: workflow.clone(),
            workflow_id: workflow.workflow_id().into(),
            run_id,
            prefix,
            task_types: plan
                .task_types()
                .iter()
                .map(|t| (0, Arc::from(t.as_str())))
                .collect(),
            generation: 0,
            since_copy: 0,
        })
    }

    /// Starts a batch: after enough events, the ids events share are copied afresh (the
    /// task types on first use).
    fn next_batch(&mut self) {
        if self.since_copy >= SHARE_COPIES_FOR {
            self.since_copy = 0;
            self.generation += 1;
            self.workflow_id = Arc::from(&*self.workflow_id);
        }
    }

    fn task_type(&mut self, index: usize) -> Option<Arc<str>> {
        let generation = self.generation;
        let (copied_in, name) = self.task_types.get_mut(index)?;
        if *copied_in != generation {
            *copied_in = generation;
            *name = Arc::from(&**name);
        }
        Some(Arc::clone(name))
    }

    /// The subject and event of `note`.
    fn event(&mut self, note: Note) -> Option<(Subject, EngineEvent)> {
        self.since_copy += 1;
        let mut event = EngineEvent::new(
            note.kind,
            Arc::clone(&self.workflow_id),
            self.run_id,
            note.at,
        );
        event.attempt = note.attempt;
        event.duration = note.duration;
        event.error = note.error.map(String::from);
        event.status = note.status;
        let subject = if note.kind.is_task_event() {
            event.task_type = self.task_type(note.task_type as usize);
            let task_id = &self.workflow.get_index(note.task as usize)?.task_id;
            let subject = self
                .prefix
                .join(["task", &token(task_id), note.kind.as_str()]);
            event.task_id = Some(task_id.clone());
            subject
        } else {
            self.prefix.join([note.kind.as_str()])
        };
        match subject {
            Ok(subject) => Some((subject, event)),
            // Escaping makes every id a valid token; this is not reached.
            Err(error) => {
                tracing::warn!(%error, "engine event with an invalid subject");
                None
            }
        }
    }
}

/// Publishes every batch from `batches` until the run hangs up, the bus closes, or `stop`
/// is set (the run was dropped).
async fn publish(
    bus: EventBus<EngineEvent>,
    mut names: Names,
    mut batches: mpsc::Receiver<Vec<Note>>,
    stop: Arc<AtomicBool>,
) {
    let stopped = || stop.load(Ordering::Relaxed);
    let mut events = VecDeque::new();
    while let Some(batch) = batches.recv().await {
        names.next_batch();
        events.extend(batch.into_iter().filter_map(|note| names.event(note)));
        while !events.is_empty() {
            if stopped() || bus.try_publish_batch(&mut events).is_err() {
                return;
            }
            // What is left waits for room in a lossless subscription.
            if let Some((subject, event)) = events.pop_front() {
                if stopped() || bus.publish(subject, event).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Where the publisher runs: as a task of the current tokio runtime when it is
/// multi-threaded, or else inside the run, polled whenever the run flushes (on a
/// current-thread runtime a task gains nothing, and outside a runtime there is none).
///
/// Dropping it (the run was dropped before it finished) stops it: a spawned publisher is
/// told to stop and aborted, so at most the batch it is publishing goes out; the events
/// handed over after that are dropped with the run, as its other state is.
pub(crate) enum Publisher {
    Spawned {
        task: Option<JoinHandle<()>>,
        stop: Arc<AtomicBool>,
    },
    Inline(Option<BoxFuture<'static, ()>>),
}

impl Publisher {
    pub(crate) fn start(
        bus: EventBus<EngineEvent>,
        names: Names,
        batches: mpsc::Receiver<Vec<Note>>,
        span: tracing::Span,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let publishing = publish(bus, names, batches, Arc::clone(&stop)).instrument(span);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
                Self::Spawned {
                    task: Some(runtime.spawn(publishing)),
                    stop,
                }
            }
            _ => Self::Inline(Some(Box::pin(publishing))),
        }
    }

    /// Lets an inline publisher work (a spawned one runs by itself).
    pub(crate) fn poll_inline(&mut self, cx: &mut Context<'_>) {
        if let Self::Inline(publishing) = self {
            if publishing
                .as_mut()
                .is_some_and(|p| p.poll_unpin(cx).is_ready())
            {
                *publishing = None;
            }
        }
    }

    /// Waits until the publisher has published everything (its batches are closed). A
    /// panic of a spawned publisher is raised again here.
    pub(crate) async fn finish(mut self) {
        match &mut self {
            Self::Spawned { task, .. } => {
                // Awaited in place, so that dropping this wait still stops the task.
                let Some(running) = task.as_mut() else { return };
                let outcome = running.await;
                *task = None;
                if let Err(error) = outcome {
                    // The publisher panicked: a bug to report, not to hide.
                    if error.is_panic() {
                        std::panic::resume_unwind(error.into_panic());
                    }
                }
            }
            Self::Inline(publishing) => {
                if let Some(publishing) = publishing.take() {
                    publishing.await;
                }
            }
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Self::Spawned {
            task: Some(task),
            stop,
        } = self
        {
            stop.store(true, Ordering::Relaxed);
            task.abort();
        }
    }
}

/// `id` as one subject token: itself when it is one already, else with what a token
/// cannot hold escaped.
pub(crate) fn token(id: &str) -> Cow<'_, str> {
    if id.is_empty() {
        return Cow::Borrowed("%00");
    }
    let plain = |b: &u8| (b'!'..=b'~').contains(b) && !matches!(b, b'.' | b'*' | b'>' | b'%');
    if id.as_bytes().iter().all(plain) {
        return Cow::Borrowed(id);
    }
    let mut out = String::with_capacity(id.len() + 8);
    for c in id.chars() {
        if matches!(c, '.' | '*' | '>' | '%') || c.is_whitespace() || c.is_control() {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::token;

    #[test]
    fn ids_become_single_subject_tokens() {
        assert_eq!(token("load"), "load");
        assert_eq!(token("load.v2"), "load%2Ev2");
        assert_eq!(token("a*b>c"), "a%2Ab%3Ec");
        assert_eq!(token("50% off"), "50%25%20off");
        assert_eq!(token("tab\there"), "tab%09here");
        assert_eq!(token("é"), "é");
        assert_eq!(token(""), "%00");
        assert!(
            matches!(token("load"), Cow::Borrowed(_)),
            "a plain id is not copied"
        );
    }
}
