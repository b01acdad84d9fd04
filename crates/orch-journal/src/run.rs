//! A run read back from a journal ([`LoadedRun`]), and what listing runs returns
//! ([`RunSummary`], [`RunStatus`], [`RunFilter`]).

use std::fmt;
use std::time::SystemTime;

use orch_core::{
    MapSpec, RunId, TaskId, TaskRecord, TaskRecords, TaskStatus, Workflow, WorkflowResult,
    WorkflowStatus,
};

use crate::JournalError;
use crate::WorkflowChanges;
use crate::definition::Definition;
use crate::in_force::InForce;

/// Where a run stands, as its journal tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunStatus {
    /// No end was recorded since the run was last opened: it is going on, or its
    /// process stopped before it ended (it can be resumed).
    Unfinished,
    /// The run ended with every task completed.
    Completed,
    /// The run ended with a task failed.
    Failed,
    /// The run was cancelled.
    Cancelled,
}

impl RunStatus {
    /// The lower-case name: `unfinished`, `completed`, `failed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unfinished => "unfinished",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn parse(text: &str) -> Option<Self> {
        [
            Self::Unfinished,
            Self::Completed,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl From<WorkflowStatus> for RunStatus {
    fn from(status: WorkflowStatus) -> Self {
        match status {
            WorkflowStatus::Completed => Self::Completed,
            WorkflowStatus::Failed => Self::Failed,
            WorkflowStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Which runs [`Journal::list`](crate::Journal::list) returns: all by default, or those
/// of one workflow and/or with one status.
///
/// ```
/// use orch_journal::{RunFilter, RunStatus};
///
/// let filter = RunFilter::default().workflow("etl").status(RunStatus::Unfinished);
/// assert_eq!(filter.workflow_id.as_deref(), Some("etl"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this workflow.
    pub workflow_id: Option<String>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
}

impl RunFilter {
    /// Keeps only runs of `workflow_id`.
    pub fn workflow(mut self, workflow_id: impl Into<String>) -> Self {
        self.workflow_id = Some(workflow_id.into());
        self
    }

    /// Keeps only runs with `status`.
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Whether the filter lets the run `summary` describes through.
    pub fn accepts(&self, summary: &RunSummary) -> bool {
        self.workflow_id
            .as_ref()
            .is_none_or(|w| *w == summary.workflow_id)
            && self.status.is_none_or(|s| s == summary.status)
    }
}

/// One run in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunSummary {
    /// The run.
    pub run_id: RunId,
    /// Its workflow's id.
    pub workflow_id: String,
    /// Where it stands.
    pub status: RunStatus,
    /// When it was first opened.
    pub created: SystemTime,
    /// How many tasks have a record in force (a pending one, written for a task a
    /// resumed run runs again, does not count).
    pub recorded_tasks: usize,
    /// How many of those completed.
    pub completed_tasks: usize,
}

/// A run as its journal holds it: the workflow it was recorded for, and its task records.
///
/// Turn it into the previous result that `WorkflowEngine::resume` takes with
/// [`LoadedRun::to_result`].
#[derive(Clone, Debug)]
pub struct LoadedRun {
    pub(crate) run_id: RunId,
    /// Where the run's head is, for errors: a file, or the PostgreSQL table.
    pub(crate) at: String,
    pub(crate) definition: Definition,
    /// Where `definition` is recorded: the head, or the definition line after it.
    pub(crate) defined_at: String,
    pub(crate) created: SystemTime,
    pub(crate) records: Vec<(TaskId, TaskRecord)>,
    /// For each task (and map instance), the index in `records` of the record in force.
    pub(crate) current: InForce,
    /// The last end recorded, and whether a task record came after it.
    pub(crate) end: Option<(WorkflowStatus, SystemTime)>,
    pub(crate) last_time: SystemTime,
}

impl LoadedRun {
    pub(crate) fn new(
        run_id: RunId,
        at: String,
        definition: Definition,
        created: SystemTime,
    ) -> Self {
        Self {
            run_id,
            defined_at: at.clone(),
            at,
            definition,
            created,
            records: Vec::new(),
            current: InForce::default(),
            end: None,
            last_time: created,
        }
    }

    /// Takes in a task record. A completed record is final: records for the task after
    /// it are kept in [`LoadedRun::records`] but do not replace it, except a pending one,
    /// which a resumed run writes for a task it runs again (its outcome no longer stands,
    /// since a dependency's changed), and which takes a map task's instances' records
    /// out of force too. A map instance's last record is in force (a scheduler records
    /// each instance once per run of its map): instances are recorded as they
    /// complete, and with their map task's end; its completion takes those numbered
    /// past its list out of force (records of an earlier list).
    pub(crate) fn push(&mut self, task_id: TaskId, record: TaskRecord) {
        self.end = None;
        for t in [record.start_time, record.end_time].into_iter().flatten() {
            self.last_time = self.last_time.max(t);
        }
        let index = self.records.len();
        let completed = |i: usize| self.records[i].1.status == TaskStatus::Completed;
        let instance = !self.definition.tasks.contains_key(&task_id);
        let reset = record.status == TaskStatus::Pending;
        let in_force = instance || reset || !self.current.get(&task_id).is_some_and(completed);
        if in_force && !instance && record.status == TaskStatus::Completed {
            // A map's completion holds its list of outputs, one per instance: any
            // instance numbered past those is of an earlier list, not this one. One whose
            // list is not journaled takes none out (a list made anew comes after a reset,
            // which took the earlier list's instances out).
            if let Some(serde_json::Value::Array(outputs)) = &record.result {
                self.forget_instances(&task_id, outputs.len());
            }
        }
        if in_force {
            self.current.insert(task_id.clone(), index);
        }
        if reset && !instance {
            // A map task's instances go with the outcome the reset undoes.
            self.forget_instances(&task_id, 0);
        }
        self.records.push((task_id, record));
    }

    /// Takes the records of map task `task`'s instances numbered `from` on out of force.
    /// A task of the workflow named like one (`x[0]` beside a plain task `x`) is no
    /// instance: a map task cannot have it beside it, so `x` is then no map task.
    fn forget_instances(&mut self, task: &TaskId, from: usize) {
        let tasks = &self.definition.tasks;
        self.current
            .remove_instances(task, from, |id| tasks.contains_key(id));
    }

    /// Takes in the definition of the workflow the run was opened with again, recorded
    /// at `at`: the records of tasks it no longer has go out of force (a task of that id
    /// added back later starts afresh), and the run is unfinished again.
    pub(crate) fn redefine(&mut self, tasks: indexmap::IndexMap<TaskId, String>, at: String) {
        self.defined_at = at;
        let before = std::mem::replace(&mut self.definition.tasks, tasks);
        let definition = &self.definition;
        // A task added under the id of an earlier map task's instance (`m[0]`) does not
        // inherit the instance's record either.
        let tasks = &definition.tasks;
        for added in tasks.keys().filter(|id| !before.contains_key(*id)) {
            self.current.remove(added);
        }
        for removed in before.keys().filter(|id| !tasks.contains_key(*id)) {
            let kept = |id: &str| definition.has_record_for(id);
            self.current.remove_task(removed, kept);
        }
        self.end = None;
    }

    pub(crate) fn ended(&mut self, status: WorkflowStatus, time: SystemTime) {
        self.end = Some((status, time));
        self.last_time = self.last_time.max(time);
    }

    /// The run's id.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// The id of the workflow the run was recorded for.
    pub fn workflow_id(&self) -> &str {
        &self.definition.workflow_id
    }

    /// When the run was first opened.
    pub fn created(&self) -> SystemTime {
        self.created
    }

    /// Where the run stands.
    pub fn status(&self) -> RunStatus {
        self.end
            .map_or(RunStatus::Unfinished, |(status, _)| status.into())
    }

    /// Every task record in the order it was recorded, also those a later record
    /// replaced (a failed attempt that a resumed run then completed), and the records
    /// of map instances (`task[0]`, `task[1]`, ...), recorded as they completed and with
    /// their map task's end. The file journal keeps them all; PostgreSQL keeps only the
    /// record in force.
    pub fn records(&self) -> &[(TaskId, TaskRecord)] {
        &self.records
    }

    /// The name of the workflow the run was recorded for.
    pub fn workflow_name(&self) -> &str {
        &self.definition.name
    }

    /// The ids of the tasks of the workflow the run was last opened with, in its order
    /// (tasks without a record yet among them).
    pub fn task_ids(&self) -> impl Iterator<Item = &TaskId> + '_ {
        self.definition.tasks.keys()
    }

    /// When the run ended, if its end is recorded and it was not opened again since.
    pub fn end_time(&self) -> Option<SystemTime> {
        self.end.map(|(_, time)| time)
    }

    /// The record in force for task `id` (or map instance `task[i]`): its last one, or,
    /// for a task, its first completed one after its last pending one (see
    /// [`LoadedRun::records`]).
    pub fn task(&self, id: &str) -> Option<&TaskRecord> {
        self.current.get(id).map(|i| &self.records[i].1)
    }

    /// How many tasks have a record other than a pending one, and how many of those
    /// completed (map instances not counted).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let tasks = self
            .current
            .iter()
            .filter(|(id, _)| self.definition.tasks.contains_key(*id));
        let (mut recorded, mut completed) = (0, 0);
        for (_, i) in tasks {
            let status = self.records[i].1.status;
            recorded += usize::from(status != TaskStatus::Pending);
            completed += usize::from(status == TaskStatus::Completed);
        }
        (recorded, completed)
    }

    /// The run in brief, as [`Journal::list`](crate::Journal::list) gives it.
    pub fn summary(&self) -> RunSummary {
        let (recorded_tasks, completed_tasks) = self.counts();
        RunSummary {
            run_id: self.run_id.clone(),
            workflow_id: self.definition.workflow_id.clone(),
            status: self.status(),
            created: self.created,
            recorded_tasks,
            completed_tasks,
        }
    }

    /// How `workflow`'s tasks differ from those the run was recorded with.
    pub fn changes(&self, workflow: &Workflow) -> WorkflowChanges {
        self.definition.changes_to(&Definition::of(workflow))
    }

    /// The run as the previous result that `WorkflowEngine::resume` takes for
    /// `workflow`: every task of `workflow` with its record in force (tasks without one
    /// are pending), then the instance records in force of each map task of `workflow`
    /// (those a map that did not complete recorded as they completed, for a resume to
    /// keep). The result's status is `completed` when every task completed,
    /// `failed` when one failed, `cancelled` otherwise; it starts when the run was
    /// created and ends at the last time recorded; its `max_concurrent` is 1 (a journal
    /// does not record the engine's settings).
    ///
    /// Refused when `workflow` has another id than the run's, or when a task that
    /// completed in the run has since changed (its recorded result came from another
    /// definition). Tasks added or removed, and changed tasks that did not complete, are
    /// fine: they run when the run is resumed.
    pub fn to_result(&self, workflow: &Workflow) -> Result<WorkflowResult, JournalError> {
        self.check(workflow)?;
        Ok(self.result_for(workflow))
    }

    /// [`LoadedRun::to_result`] for a workflow already checked.
    pub(crate) fn result_for(&self, workflow: &Workflow) -> WorkflowResult {
        // A task the run was not recorded with starts afresh, even where a record has its
        // id (an instance of a map task the workflow no longer has).
        let recorded = |id: &TaskId| self.definition.tasks.contains_key(id);
        let records = workflow
            .tasks()
            .map(|task| match recorded(&task.task_id) {
                true => self.task(&task.task_id).cloned().unwrap_or_default(),
                false => TaskRecord::default(),
            })
            .collect::<Vec<_>>();
        let status = if records.iter().all(|r| r.status == TaskStatus::Completed) {
            WorkflowStatus::Completed
        } else if records.iter().any(|r| r.status == TaskStatus::Failed) {
            WorkflowStatus::Failed
        } else {
            WorkflowStatus::Cancelled
        };
        // A map's instances are recorded as they complete, and with its completion (those
        // that did not complete): a map that did not complete has those that did.
        let map_of_workflow = |id: &str| {
            self.definition.tasks.contains_key(id)
                && workflow.get(id).is_some_and(|task| task.map.is_some())
        };
        // In the order recorded.
        let instances = self
            .records
            .iter()
            .enumerate()
            .filter(|(i, (id, _))| self.current.get(id) == Some(*i))
            .filter(|(_, (id, _))| {
                MapSpec::parse_instance_id(id).is_some_and(|(map, _)| map_of_workflow(map))
            })
            .filter(|(_, (id, _))| workflow.get(id).is_none())
            .map(|(_, (id, record))| (id.clone(), record.clone()));
        let Some(tasks) = TaskRecords::for_workflow_with_extra(workflow, records, instances) else {
            unreachable!("one record per task of the workflow")
        };
        WorkflowResult {
            workflow_id: workflow.workflow_id().to_owned(),
            run_id: self.run_id.clone(),
            name: workflow.name().to_owned(),
            status,
            start_time: self.created,
            end_time: self.last_time,
            max_concurrent: 1,
            tasks,
        }
    }

    /// Checks that `workflow` may continue this run; returns how its tasks changed.
    pub(crate) fn check(&self, workflow: &Workflow) -> Result<WorkflowChanges, JournalError> {
        if workflow.workflow_id() != self.definition.workflow_id {
            return Err(JournalError::ForeignWorkflow {
                at: self.at.clone(),
                run: self.run_id.clone(),
                expected: workflow.workflow_id().to_owned(),
                found: self.definition.workflow_id.clone(),
            });
        }
        let changes = self.changes(workflow);
        let stale: Vec<TaskId> = changes
            .changed
            .iter()
            .filter(|id| {
                self.task(id)
                    .is_some_and(|r| r.status == TaskStatus::Completed)
            })
            .cloned()
            .collect();
        if !stale.is_empty() {
            return Err(JournalError::WorkflowChanged {
                at: self.defined_at.clone(),
                run: self.run_id.clone(),
                stale,
                changes: Box::new(changes),
            });
        }
        Ok(changes)
    }
}
