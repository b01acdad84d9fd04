//! The publisher (a task of its own on a tokio runtime, else polled by the run itself):
//! turns a run's notes into subjects and [`EngineEvent`]s and publishes them, in order,
//! waiting for room in lossless subscriptions.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Context;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use orch_core::{EngineEvent, Plan, RunId, Workflow};
use orch_events::{EventBus, Subject};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::note::{Detail, Note};
use crate::subject_token as token;

/// What the publisher needs to name a run's events.
///
/// The ids that all events share (the workflow id, the run id, the task types) are copied
/// afresh for each batch once [`SHARE_COPIES_FOR`] events or more used the last copies:
/// the subscriber drops a batch's events on its core while the publisher builds the next
/// on another, and one shared reference count would bounce between the two on every event
/// (what that costs: the `+bus` rows in BENCHMARKS.md).
pub(crate) struct Names {
    workflow: Workflow,
    workflow_id: Arc<str>,
    run_id: RunId,
    /// `workflow.<workflow_id>`, escaped, that every subject of the run begins with.
    prefix: String,
    /// Each task type once, by its index in the plan, with the copy generation it
    /// belongs to (a type is copied when first used in a generation).
    task_types: Vec<(u64, Arc<str>)>,
    generation: u64,
    /// Events named since the shared ids were last copied.
    since_copy: usize,
    /// Where each subject is written before it is checked.
    text: String,
}

/// Events after which a new batch gets its own copies of the shared ids; smaller batches
/// (a slow run's) keep sharing them rather than allocate for a few events.
const SHARE_COPIES_FOR: usize = 64;

impl Names {
    /// The names of a run's events; `None` if its subjects could not be written (escaping
    /// makes every id a valid token, so this is not expected).
    pub(crate) fn new(workflow: &Workflow, run_id: RunId, plan: &Plan) -> Option<Self> {
        let prefix = format!("workflow.{}", token(workflow.workflow_id()));
        if let Err(error) = Subject::new(&prefix) {
            tracing::warn!(%error, "no lifecycle events: the workflow id makes no subject");
            return None;
        }
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
            text: String::new(),
        })
    }

    /// Starts a batch: after enough events, the ids events share are copied afresh (the
    /// task types on first use).
    fn next_batch(&mut self) {
        if self.since_copy >= SHARE_COPIES_FOR {
            self.since_copy = 0;
            self.generation += 1;
            self.workflow_id = Arc::from(&*self.workflow_id);
            // A valid id parses again; the clone is never needed.
            self.run_id = self
                .run_id
                .as_str()
                .parse()
                .unwrap_or_else(|_| self.run_id.clone());
        }
    }

    fn task_type(&mut self, index: u32) -> Option<Arc<str>> {
        let generation = self.generation;
        let (copied_in, name) = self.task_types.get_mut(index as usize)?;
        if *copied_in != generation {
            *copied_in = generation;
            *name = Arc::from(&**name);
        }
        Some(Arc::clone(name))
    }

    /// Writes the subject and event of `note` at the back of `events`. The event is built
    /// in one expression, where it is queued, so that it is not copied on the way.
    fn push_event(&mut self, note: Note, events: &mut VecDeque<(Subject, EngineEvent)>) {
        self.since_copy += 1;
        self.text.clear();
        self.text.push_str(&self.prefix);
        let (mut task_id, mut task_type) = (None, None);
        let (instance, detail) = match note.detail.map(|detail| *detail) {
            Some(Detail::Instance { item, detail }) => (Some(item), detail),
            detail => (None, detail.map(Box::new)),
        };
        if note.kind.is_task_event() {
            let Some(id) = self
                .workflow
                .get_index(note.task as usize)
                .map(|t| &t.task_id)
            else {
                return;
            };
            let id = match instance {
                Some(item) => orch_core::MapSpec::instance_id(id, item as usize),
                None => id.clone(),
            };
            self.text.push_str(".task.");
            self.text.push_str(&token(&id));
            task_id = Some(id);
            task_type = self.task_type(note.task_type);
        }
        self.text.push('.');
        self.text.push_str(note.kind.as_str());
        let subject = match Subject::new(&self.text) {
            Ok(subject) => subject,
            // Escaping makes every id a valid token; this is not reached.
            Err(error) => {
                tracing::warn!(%error, "engine event with an invalid subject");
                return;
            }
        };
        let (mut error, mut output, mut total_tasks, mut restored_tasks) = (None, None, None, None);
        match detail.map(|detail| *detail) {
            None | Some(Detail::Instance { .. }) => {}
            Some(Detail::Error(text)) => error = Some(text),
            Some(Detail::Output(value)) => output = Some(Arc::new(value)),
            Some(Detail::Tasks { total, restored }) => {
                total_tasks = Some(total);
                restored_tasks = Some(restored);
            }
        }
        events.push_back((
            subject,
            EngineEvent {
                kind: note.kind,
                workflow_id: Arc::clone(&self.workflow_id),
                run_id: self.run_id.clone(),
                task_id,
                map_item: instance,
                task_type,
                attempt: note.attempt,
                timestamp: note.at,
                duration: note.duration,
                error,
                status: note.status,
                total_tasks,
                restored_tasks,
                output,
            },
        ));
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
        for note in batch {
            names.push_event(note, &mut events);
        }
        while !events.is_empty() {
            if stopped() || bus.try_publish_batch(&mut events).is_err() {
                return;
            }
            // What is left waits for room in a lossless subscription.
            if let Some((subject, event)) = events.pop_front()
                && (stopped() || bus.publish(subject, event).await.is_err())
            {
                return;
            }
        }
    }
}

/// Where the publisher runs: as a task of the current tokio runtime, whatever its
/// flavour, or, for a run polled outside tokio (where there is nothing to spawn on),
/// inside the run, polled whenever the run flushes.
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
            Ok(runtime) => Self::Spawned {
                task: Some(runtime.spawn(publishing)),
                stop,
            },
            Err(_) => Self::Inline(Some(Box::pin(publishing))),
        }
    }

    /// Lets an inline publisher work (a spawned one runs by itself).
    pub(crate) fn poll_inline(&mut self, cx: &mut Context<'_>) {
        if let Self::Inline(publishing) = self
            && publishing
                .as_mut()
                .is_some_and(|p| p.poll_unpin(cx).is_ready())
        {
            *publishing = None;
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
