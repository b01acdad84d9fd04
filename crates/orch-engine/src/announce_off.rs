//! Without the `events` feature there is no bus: an announcer that cannot exist.

use orch_core::{Plan, RunId, Workflow};
use std::task::{Context, Poll};

use crate::note::Note;

/// Never constructed: an engine without the `events` feature has nowhere to publish.
#[derive(Clone)]
pub(crate) enum EventTarget {}

/// Never constructed: every run's `Option<Announcer>` is `None`.
pub(crate) enum Announcer {}

impl Announcer {
    pub(crate) fn start(
        target: EventTarget,
        _: &Workflow,
        _: &Plan,
        _: &RunId,
        _: &tracing::Span,
    ) -> Option<Self> {
        match target {}
    }

    pub(crate) fn is_stalled(&self) -> bool {
        match *self {}
    }

    pub(crate) fn wants_outputs(&self) -> bool {
        match *self {}
    }

    pub(crate) fn note(&mut self, _: Note) {
        match *self {}
    }

    pub(crate) fn flush(&mut self, _: &mut Context<'_>) -> Poll<()> {
        match *self {}
    }

    pub(crate) async fn finish_or_leave(self, _: impl std::future::Future<Output = ()>) {
        match self {}
    }
}
