//! Publishing a run's lifecycle events on the engine's bus, in order and without loss.
//!
//! # Subjects
//! Workflow events go to `workflow.<workflow_id>.<event>` (`started`, `finished`); task
//! events to `workflow.<workflow_id>.task.<task_id>.<event>` (`started`, `completed`,
//! `failed`, `retrying`, `skipped`, `cancelled`). Ids are written into subjects with
//! percent-escapes for the characters a subject token cannot hold: `.`, `*`, `>`, `%`,
//! white space and control characters become `%XX` (their UTF-8 bytes in upper-case hex),
//! so `load.v2` is the token `load%2Ev2`. An empty id is written `%00`.

#![cfg(feature = "events")]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use orch_core::{EngineEvent, EngineEventKind, Plan, Task, WorkflowStatus};
use orch_events::{EventBus, Subject};

use crate::engine::EngineInner;

/// Run ids, unique within the process.
static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

/// Writes `id` as one subject token, escaping what a token cannot hold.
pub(crate) fn push_token(out: &mut String, id: &str) {
    if id.is_empty() {
        out.push_str("%00");
        return;
    }
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
}

/// A run's events on their way to the bus.
pub(crate) struct Announcer {
    bus: EventBus<EngineEvent>,
    workflow_id: Arc<str>,
    run_id: u64,
    /// `workflow.<workflow_id>.`, escaped.
    prefix: String,
    /// Each task type once, shared by the events of its tasks.
    task_types: Vec<Arc<str>>,
    pending: VecDeque<(Subject, EngineEvent)>,
    /// Where subjects are written before they are validated and copied: reused, so an
    /// event costs one allocation for its subject, not two.
    scratch: String,
    /// Whether the bus had subscriptions at the last flush: events are built only then.
    /// (A subscription made during a run sees its events from the next flush on.)
    listening: bool,
    /// A publish that had to wait for room in a lossless subscription.
    waiting: Option<BoxFuture<'static, ()>>,
}

impl Announcer {
    /// The announcer of one run, when the engine has a bus.
    pub(crate) fn for_engine(engine: &EngineInner, workflow_id: &str, plan: &Plan) -> Option<Self> {
        let bus = engine.bus.clone()?;
        Some(Self::new(bus, workflow_id, plan))
    }

    fn new(bus: EventBus<EngineEvent>, workflow_id: &str, plan: &Plan) -> Self {
        let mut prefix = String::from("workflow.");
        push_token(&mut prefix, workflow_id);
        prefix.push('.');
        let listening = bus.subscription_count() > 0;
        Self {
            listening,
            bus,
            workflow_id: workflow_id.into(),
            run_id: NEXT_RUN.fetch_add(1, Ordering::Relaxed),
            prefix,
            task_types: plan
                .task_types()
                .iter()
                .map(|t| Arc::from(t.as_str()))
                .collect(),
            pending: VecDeque::new(),
            scratch: String::new(),
            waiting: None,
        }
    }

    /// Whether publishing is stalled on a full lossless subscription; the run then starts
    /// no new tasks, so events cannot pile up without bound.
    pub(crate) fn is_stalled(&self) -> bool {
        self.waiting.is_some()
    }

    /// Queues a workflow event.
    pub(crate) fn workflow(
        &mut self,
        kind: EngineEventKind,
        at: SystemTime,
        status: Option<WorkflowStatus>,
        duration: Option<std::time::Duration>,
    ) {
        if !self.listening {
            return;
        }
        let mut event = EngineEvent::new(kind, Arc::clone(&self.workflow_id), self.run_id, at);
        event.status = status;
        event.duration = duration;
        let mut subject = std::mem::take(&mut self.scratch);
        subject.clear();
        subject.push_str(&self.prefix);
        subject.push_str(kind.as_str());
        self.push(subject, event);
    }

    /// Queues a task event; `fill` sets the fields particular to it.
    pub(crate) fn task(
        &mut self,
        kind: EngineEventKind,
        task: &Task,
        type_index: usize,
        at: SystemTime,
        fill: impl FnOnce(&mut EngineEvent),
    ) {
        if !self.listening {
            return;
        }
        let mut event = EngineEvent::new(kind, Arc::clone(&self.workflow_id), self.run_id, at);
        event.task_id = Some(task.task_id.clone());
        event.task_type = self.task_types.get(type_index).cloned();
        fill(&mut event);
        let mut subject = std::mem::take(&mut self.scratch);
        subject.clear();
        subject.push_str(&self.prefix);
        subject.push_str("task.");
        push_token(&mut subject, &task.task_id);
        subject.push('.');
        subject.push_str(kind.as_str());
        self.push(subject, event);
    }

    /// Queues `event` on the subject written in `text` (the scratch buffer, handed back).
    fn push(&mut self, text: String, event: EngineEvent) {
        match Subject::new(&text) {
            Ok(subject) => self.pending.push_back((subject, event)),
            // Escaping makes every id a valid token; this is not reached.
            Err(error) => tracing::warn!(%error, "engine event with an invalid subject"),
        }
        self.scratch = text;
    }

    /// Publishes what is queued, in order. Pending while a lossless subscription has no
    /// room; events are never dropped, except when the bus has been closed.
    pub(crate) fn flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.listening = self.bus.subscription_count() > 0;
        loop {
            if let Some(waiting) = &mut self.waiting {
                if waiting.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.waiting = None;
            }
            if self.pending.is_empty() {
                return Poll::Ready(());
            }
            if self.bus.try_publish_batch(&mut self.pending).is_err() {
                // A closed bus has no one left to tell.
                self.pending.clear();
                return Poll::Ready(());
            }
            // Whatever is left waits for room in a lossless subscription: publish the
            // first one with waiting, then go on without.
            let Some((subject, event)) = self.pending.pop_front() else {
                return Poll::Ready(());
            };
            let bus = self.bus.clone();
            self.waiting = Some(Box::pin(async move {
                // Only a closed bus fails here; its subscribers are gone.
                let _ = bus.publish(subject, event).await;
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::push_token;

    fn token(id: &str) -> String {
        let mut out = String::new();
        push_token(&mut out, id);
        out
    }

    #[test]
    fn ids_become_single_subject_tokens() {
        assert_eq!(token("load"), "load");
        assert_eq!(token("load.v2"), "load%2Ev2");
        assert_eq!(token("a*b>c"), "a%2Ab%3Ec");
        assert_eq!(token("50% off"), "50%25%20off");
        assert_eq!(token("tab\there"), "tab%09here");
        assert_eq!(token("é"), "é");
        assert_eq!(token(""), "%00");
    }
}
