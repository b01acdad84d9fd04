//! [`Redefined`]: how a workflow's tasks differ from the definition its run was recorded
//! with.

use orch_core::{TaskId, Workflow};

/// The tasks of a workflow whose definitions differ from those its run was recorded with
/// in the journal (none for a run that continues no journaled one).
#[derive(Debug, Default)]
pub(crate) struct Redefined {
    /// Tasks whose definition changed (see `orch_journal::WorkflowChanges::changed`).
    pub(crate) changed: Vec<TaskId>,
    /// Tasks the recorded definition did not have.
    pub(crate) added: Vec<TaskId>,
}

/// Per task of `workflow` (by plan index), whether it is among `ids`.
pub(crate) fn marked(workflow: &Workflow, ids: &[TaskId]) -> Vec<bool> {
    let mut marked = vec![false; workflow.len()];
    for index in ids.iter().filter_map(|id| workflow.index_of(id)) {
        marked[index] = true;
    }
    marked
}
