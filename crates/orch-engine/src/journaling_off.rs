//! Without the `journal` feature: no run has a journal, so none of these types has a
//! value; they keep the scheduler's code the same in both builds.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use orch_core::{RunId, TaskId, TaskRecord, Workflow, WorkflowResult};

use crate::RunError;
use crate::context::RunShared;
use crate::redefined::Redefined;

/// No journal settings exist without the feature.
#[derive(Clone, Debug)]
pub(crate) enum JournalSettings {}

/// Never made without the feature (the fields keep the scheduler's code the same).
pub(crate) struct Opened {
    pub(crate) previous: Option<WorkflowResult>,
    pub(crate) redefined: Redefined,
    pub(crate) journal: RunJournal,
}

pub(crate) async fn recorded(
    settings: &JournalSettings,
    _workflow: &Workflow,
    _run_id: &RunId,
) -> Result<(Option<WorkflowResult>, Redefined), RunError> {
    match *settings {}
}

pub(crate) async fn open(
    settings: &JournalSettings,
    _workflow: &Workflow,
    _run_id: &RunId,
) -> Result<Opened, RunError> {
    match *settings {}
}

/// Waits for `call` (with no journal, nothing waits on one).
pub(crate) async fn unless_silent_once_cancelled<T>(
    call: impl Future<Output = Result<T, RunError>>,
    _cancel: &tokio_util::sync::CancellationToken,
    _grace: std::time::Duration,
    _action: &'static str,
    _in_run: bool,
) -> Result<T, RunError> {
    call.await
}

pub(crate) enum RunJournal {}

/// The map instances' records a commit would hold (the fields keep the scheduler's code
/// the same).
#[derive(Default)]
pub(crate) struct InstanceRecords {
    pub(crate) completed: Vec<(TaskId, TaskRecord)>,
    pub(crate) of_maps: Vec<(u32, Vec<(TaskId, TaskRecord)>)>,
}

impl RunJournal {
    pub(crate) fn push(&mut self, _index: usize) {
        match *self {}
    }

    pub(crate) fn restored(
        &mut self,
        _kept: &[bool],
        _resets: Vec<(u32, TaskRecord)>,
        _reused: Vec<(TaskId, TaskRecord)>,
    ) {
        match *self {}
    }

    pub(crate) async fn commit_resets(
        &mut self,
        _shared: &crate::context::RunShared,
    ) -> Result<(), RunError> {
        match *self {}
    }

    pub(crate) fn batch(&self) -> &[u32] {
        match *self {}
    }

    pub(crate) fn commit(
        &mut self,
        _records: &[TaskRecord],
        _shared: &RunShared,
        _instances: InstanceRecords,
    ) -> Option<PendingCommit> {
        match *self {}
    }

    pub(crate) fn committed(&mut self, commit: Commit) -> Option<Vec<u32>> {
        match commit {}
    }

    pub(crate) async fn close(
        self,
        _result: &WorkflowResult,
        _cancel: &tokio_util::sync::CancellationToken,
        _grace: std::time::Duration,
    ) -> Result<(), RunError> {
        match self {}
    }
}

pub(crate) enum PendingCommit {}

pub(crate) enum Commit {}

impl Future for PendingCommit {
    type Output = Commit;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Commit> {
        match *self.get_mut() {}
    }
}
