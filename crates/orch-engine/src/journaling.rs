//! A durable run's journal as the scheduler uses it: the engine's journal settings
//! ([`JournalSettings`]), the open run's writer with the records waiting for the next
//! commit ([`RunJournal`]), and a commit on its way ([`PendingCommit`]).
//!
//! The rule it keeps: the dependents of a task that completed, failed or was skipped are
//! told only once its record is committed, so whatever the journal holds has its
//! dependencies in it too, whatever their outcome.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use orch_core::{RunId, TaskId, TaskRecord, TaskStatus, Workflow, WorkflowResult};
use orch_journal::{Durability, Journal, JournalError, JournalFuture, RunWriter, WorkflowChanges};
use serde_json::json;

use crate::RunError;
use crate::context::RunShared;
use crate::durable::JournalFailure;
use crate::output::Stored;
use crate::redefined::Redefined;

/// The journal an engine records its durable runs in, and how durably.
#[derive(Clone, Debug)]
pub(crate) struct JournalSettings {
    pub(crate) journal: Arc<dyn Journal>,
    pub(crate) durability: Durability,
}

/// A durable run opened in the journal: what it recorded before (to resume from), the
/// tasks whose definition changed or that were added since, and the run's journal for
/// the scheduler.
pub(crate) struct Opened {
    pub(crate) previous: Option<WorkflowResult>,
    pub(crate) redefined: Redefined,
    pub(crate) journal: RunJournal,
}

/// What the journal recorded of run `run_id`, read without opening it (nothing is
/// written): the result to resume from and the tasks whose definition changed or that
/// were added since.
pub(crate) async fn recorded(
    settings: &JournalSettings,
    workflow: &Workflow,
    run_id: &RunId,
) -> Result<(Option<WorkflowResult>, Redefined), RunError> {
    let failed = |error| RunError::Journal(JournalFailure::new(error));
    let loaded = match settings.journal.load(run_id).await {
        Ok(Some(loaded)) => loaded,
        // Its start never made it whole: opening the run begins it afresh.
        Ok(None) | Err(JournalError::HeadMissing { .. }) => {
            return Ok((None, Redefined::default()));
        }
        Err(error) => return Err(failed(error)),
    };
    let previous = loaded.to_result(workflow).map_err(failed)?;
    Ok((Some(previous), loaded.changes(workflow).into()))
}

impl From<WorkflowChanges> for Redefined {
    fn from(changes: WorkflowChanges) -> Self {
        Self {
            changed: changes.changed,
            added: changes.added,
        }
    }
}

/// Opens run `run_id` of `workflow` in the journal.
pub(crate) async fn open(
    settings: &JournalSettings,
    workflow: &Workflow,
    run_id: &RunId,
) -> Result<Opened, RunError> {
    // Refused when opened: no task ran (`JournalFailure::while_running` is false).
    let opened = (settings.journal.open(run_id, workflow).await)
        .map_err(|error| RunError::Journal(JournalFailure::new(error)))?;
    let journal = RunJournal {
        writer: opened.writer,
        durability: settings.durability,
        batch: Vec::new(),
        recorded: vec![false; workflow.len()],
        resets: Vec::new(),
        reused: Vec::new(),
        unjournalable: HashMap::new(),
        retried_instances: InstanceRecords::default(),
        failure: None,
    };
    Ok(Opened {
        previous: opened.previous,
        redefined: opened.changes.into(),
        journal,
    })
}

/// One run's writer, and what it has yet to commit.
pub(crate) struct RunJournal {
    writer: Box<dyn RunWriter>,
    durability: Durability,
    /// Tasks that ended since the last commit.
    batch: Vec<u32>,
    /// Per task, whether a commit holding its record has resolved (or the record came
    /// from the journal itself).
    recorded: Vec<bool>,
    /// Tasks of a resumed run whose recorded outcome no longer stands, each with the
    /// record that resets it (pending, with the attempts made so far): committed by
    /// [`RunJournal::commit_resets`] before any task runs.
    resets: Vec<(u32, TaskRecord)>,
    /// The records of map instances a resumed run keeps, written again after `resets`.
    reused: Vec<(TaskId, TaskRecord)>,
    /// Tasks (and map instances) whose output the journal refused, with its reason: their
    /// records hold the reason instead, as for an output marked not to be journaled.
    unjournalable: HashMap<TaskId, String>,
    /// The instance records of a commit the journal refused, for the commit that takes
    /// its batch again.
    retried_instances: InstanceRecords,
    failure: Option<JournalError>,
}

/// The map instances' records a commit holds.
#[derive(Default)]
pub(crate) struct InstanceRecords {
    /// Those of instances that completed, each recorded as it did: a resume keeps them
    /// even when their map does not complete.
    pub(crate) completed: Vec<(TaskId, TaskRecord)>,
    /// For map tasks of the commit that completed, each with its index, the rest of
    /// their instances' records: each map's go just before its own.
    pub(crate) of_maps: Vec<(u32, Vec<(TaskId, TaskRecord)>)>,
}

impl InstanceRecords {
    fn is_empty(&self) -> bool {
        self.completed.is_empty() && self.of_maps.is_empty()
    }

    fn append(&mut self, other: &mut Self) {
        self.completed.append(&mut other.completed);
        self.of_maps.append(&mut other.of_maps);
    }
}

impl RunJournal {
    /// Takes note that task `index` ended (completed, failed or skipped): its dependents
    /// wait for the commit that records it.
    pub(crate) fn push(&mut self, index: usize) {
        self.batch.push(index as u32);
    }

    /// Marks the tasks a resumed run kept from the journal as recorded, and `resets`,
    /// whose recorded outcomes the run does not keep, to be reset in the journal before
    /// anything else is recorded, followed by `reused`: the records of map instances the
    /// run keeps, which the resets of their maps take out of force.
    pub(crate) fn restored(
        &mut self,
        kept: &[bool],
        resets: Vec<(u32, TaskRecord)>,
        reused: Vec<(TaskId, TaskRecord)>,
    ) {
        for (recorded, &kept) in self.recorded.iter_mut().zip(kept) {
            *recorded |= kept;
        }
        self.resets = resets;
        self.reused = reused;
    }

    /// Commits the resets of a resumed run at once, before any task runs. The journal
    /// takes the run's new definition with this first commit, in the same write: so a
    /// changed task's old outcome never stands under the new definition, even when the
    /// run stops right after.
    pub(crate) async fn commit_resets(&mut self, shared: &RunShared) -> Result<(), RunError> {
        if self.resets.is_empty() {
            return Ok(());
        }
        let resets = std::mem::take(&mut self.resets);
        let reused = std::mem::take(&mut self.reused);
        let pairs: Vec<(&TaskId, &TaskRecord)> = (resets.iter())
            .map(|(index, record)| (&shared.task(*index as usize).task_id, record))
            .chain(reused.iter().map(|(id, record)| (id, record)))
            .collect();
        let commit = self.writer.commit(&pairs, self.durability);
        commit
            .await
            .map_err(|error| RunError::Journal(JournalFailure::new(error)))
    }

    /// The tasks that ended since the last commit.
    pub(crate) fn batch(&self) -> &[u32] {
        &self.batch
    }

    /// Commits the tasks that ended since the last commit, and `instances`, if any: the
    /// instances that completed go first; each completed map's other instances go just
    /// before its own record, in the same commit.
    pub(crate) fn commit(
        &mut self,
        records: &[TaskRecord],
        shared: &RunShared,
        mut instances: InstanceRecords,
    ) -> Option<PendingCommit> {
        instances.append(&mut self.retried_instances);
        if self.batch.is_empty() && instances.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut self.batch);
        let ids = batch
            .iter()
            .map(|&index| &shared.task(index as usize).task_id);
        let mut lines: Vec<TaskRecord> = batch
            .iter()
            .map(|&index| journal_record(&records[index as usize], shared, index))
            .collect();
        if !self.unjournalable.is_empty() {
            let mark = |id: &TaskId, line: &mut TaskRecord| {
                if let Some(reason) = self.unjournalable.get(id) {
                    leave_out(line, reason);
                }
            };
            let of_maps = instances.of_maps.iter_mut().flat_map(|(_, them)| them);
            for (id, line) in instances.completed.iter_mut().chain(of_maps) {
                mark(id, line);
            }
            for (id, line) in ids.clone().zip(lines.iter_mut()) {
                mark(id, line);
            }
        }
        let mut pairs: Vec<(&TaskId, &TaskRecord)> =
            Vec::with_capacity(batch.len() + instances.completed.len());
        pairs.extend(instances.completed.iter().map(|(i, r)| (i, r)));
        for ((&index, id), line) in batch.iter().zip(ids).zip(&lines) {
            let map = instances.of_maps.iter().find(|(map, _)| *map == index);
            pairs.extend(
                map.into_iter()
                    .flat_map(|(_, them)| them.iter().map(|(i, r)| (i, r))),
            );
            pairs.push((id, line));
        }
        let future = self.writer.commit(&pairs, self.durability);
        Some(PendingCommit {
            future,
            batch: Some(batch),
            instances,
        })
    }

    /// Takes in a commit that resolved: the tasks whose dependents it releases, or none
    /// when the journal failed (the run must then stop).
    ///
    /// A commit refused for an output the journal cannot hold (nested too deep, too
    /// large) stored nothing: its tasks wait for the next commit, where that output's
    /// record holds the journal's reason instead, as if the handler had marked the output
    /// not to be journaled. The run goes on with the output in this process; a resumed
    /// run runs the task again if a task that runs needs it. An error text too long for
    /// the journal is cut short in the same way.
    pub(crate) fn committed(&mut self, commit: Commit) -> Option<Vec<u32>> {
        match commit.result {
            Ok(()) => {
                for &index in &commit.batch {
                    self.recorded[index as usize] = true;
                }
                Some(commit.batch)
            }
            Err(error) => match self.left_out(error) {
                Ok(_) => {
                    let mut batch = commit.batch;
                    batch.append(&mut self.batch);
                    self.batch = batch;
                    let mut instances = commit.instances;
                    self.retried_instances.append(&mut instances);
                    Some(Vec::new())
                }
                Err(error) => {
                    self.failure.get_or_insert(error);
                    None
                }
            },
        }
    }

    /// Takes in a journal's refusal of a task's output or error text it cannot hold, the
    /// first for that task: from now on, the task's record leaves it out (or cuts it
    /// short). The task and the journal's reason; any other failure as it is.
    fn left_out(&mut self, error: JournalError) -> Result<(TaskId, &str), JournalError> {
        match error {
            JournalError::InvalidRecord {
                task,
                field: "result" | "error",
                reason,
            } if !self.unjournalable.contains_key(&task) => {
                tracing::warn!(task_id = %task, %reason,
                    "the journal cannot hold the task's output: it is kept in this process only");
                let reason = self.unjournalable.entry(task.clone()).or_insert(reason);
                Ok((task, reason.as_str()))
            }
            error => Err(error),
        }
    }

    /// Records the tasks that ended without completing and are not recorded yet
    /// (cancellations, tasks skipped after a failure upstream, and failures whose
    /// commit a cancelled run cut short), then the run's end, and waits until that is as
    /// durable as the engine's setting asks. A completion whose commit the end of a
    /// cancelled run cut short is not recorded again: no dependent of it ran; if its
    /// write reached the journal before the cut, a resume keeps it, else it runs again.
    /// An error text the journal cannot hold is cut short, as in a commit.
    ///
    /// Once the run is cancelled (`cancel`, before or meanwhile), the journal is waited
    /// for `grace` more (what is left of the run's grace period; at least
    /// [`LEAST_WAIT`]): one that has not answered by then fails with
    /// [`JournalError::NoAnswer`]. With no timer to wait with, it is waited for.
    pub(crate) async fn close(
        self,
        result: &WorkflowResult,
        cancel: &tokio_util::sync::CancellationToken,
        grace: std::time::Duration,
    ) -> Result<(), RunError> {
        let closing = self.close_now(result);
        let action = "record the end of the cancelled run";
        unless_silent_once_cancelled(closing, cancel, grace, action, true).await
    }

    async fn close_now(mut self, result: &WorkflowResult) -> Result<(), RunError> {
        let failed = |error| RunError::Journal(JournalFailure::in_run(error));
        if let Some(error) = self.failure {
            return Err(failed(error));
        }
        let ended = result
            .tasks
            .iter()
            .zip(&self.recorded)
            .filter(|((_, record), recorded)| {
                !**recorded && !matches!(record.status, TaskStatus::Pending | TaskStatus::Completed)
            })
            .map(|((id, record), _)| (id, record.clone()));
        let mut rest: Vec<(&TaskId, TaskRecord)> = ended.collect();
        // An error text the journal refused before, or refuses now, is cut short as in
        // a commit (a cancelled task's text quotes its last attempt's).
        for (id, line) in &mut rest {
            if let Some(reason) = self.unjournalable.get(*id) {
                leave_out(line, reason);
            }
        }
        while !rest.is_empty() {
            let pairs: Vec<(&TaskId, &TaskRecord)> = rest.iter().map(|(i, r)| (*i, r)).collect();
            match self.writer.append(&pairs).await {
                Ok(()) => break,
                Err(error) => {
                    let (task, reason) = self.left_out(error).map_err(failed)?;
                    if let Some((_, line)) = rest.iter_mut().find(|(id, _)| **id == task) {
                        leave_out(line, reason);
                    }
                }
            }
        }
        self.writer.finish(result.status).await.map_err(failed)?;
        if self.durability == Durability::Power {
            self.writer.sync().await.map_err(failed)?;
        }
        Ok(())
    }
}

/// Waits for `call` to the journal; once the run is cancelled (`cancel`, before or
/// meanwhile), for `grace` more (at least [`LEAST_WAIT`]): a journal that has not answered
/// by then fails with [`JournalError::NoAnswer`] for `action` (a failure while the run
/// ran when `in_run`, else one before any task ran). With no timer to wait with, it is
/// waited for.
pub(crate) async fn unless_silent_once_cancelled<T>(
    call: impl Future<Output = Result<T, RunError>>,
    cancel: &tokio_util::sync::CancellationToken,
    grace: std::time::Duration,
    action: &'static str,
    in_run: bool,
) -> Result<T, RunError> {
    use futures_util::future::{Either, select};
    let mut call = std::pin::pin!(call);
    if !crate::timer::available() {
        return call.await;
    }
    if !cancel.is_cancelled() {
        let cancelled = std::pin::pin!(cancel.cancelled());
        if let Either::Left((answered, _)) = select(call.as_mut(), cancelled).await {
            return answered;
        }
    }
    let limit = grace.max(LEAST_WAIT);
    let mut deadline = crate::timer::Deadline::after(limit);
    let gave_up = std::pin::pin!(deadline.passed());
    match select(call, gave_up).await {
        Either::Left((answered, _)) => answered,
        Either::Right(_) => {
            let error = JournalError::NoAnswer {
                action,
                waited: limit,
            };
            let failure = match in_run {
                true => JournalFailure::in_run(error),
                false => JournalFailure::new(error),
            };
            Err(RunError::Journal(failure))
        }
    }
}

/// The least time a cancelled run waits for its journal to record its end, however short
/// its grace period: a file journal's sync may take that long on a busy disk.
const LEAST_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the journal holds of a task's record: the record with its output, unless the
/// output stays in this process (then a summary, or the reason it was left out, marked
/// as not the output itself).
fn journal_record(record: &TaskRecord, shared: &RunShared, index: u32) -> TaskRecord {
    let mut line = record.clone();
    // A failed map task's partial list is for its dependents in this run only.
    let output = shared.results[index as usize].get();
    if let Some(output) = output.filter(|_| record.status == TaskStatus::Completed) {
        let (result, in_process) = match output {
            Stored::Json(value) => (value.clone(), false),
            Stored::Shared(shared) => (shared.summary.clone(), true),
            Stored::Unjournaled(kept) => (json!({ "not_journaled": kept.1 }), true),
        };
        line.result = Some(result);
        line.shared_output |= in_process;
    }
    line
}

/// In place of an output the journal cannot hold: why, marked as not the output itself.
/// An error text too long for it (a failure that quotes gigabytes of a program's output)
/// is cut to its first [`KEPT_ERROR`] bytes, saying so.
fn leave_out(line: &mut TaskRecord, reason: &str) {
    if line.status == TaskStatus::Completed {
        line.result = Some(json!({
            "not_journaled": format!("the journal cannot hold this output: {reason}")
        }));
        line.shared_output = true;
    }
    if let Some(error) = line.error.as_mut().filter(|e| e.len() > KEPT_ERROR) {
        let mut end = KEPT_ERROR;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
        error.push_str(&format!(
            " ... (cut short: the journal cannot hold the whole text: {reason})"
        ));
    }
}

/// The bytes of an error text the journal keeps when it cannot hold all of it.
const KEPT_ERROR: usize = 64 << 10;

/// A commit on its way: resolves with the batch it records.
pub(crate) struct PendingCommit {
    future: JournalFuture,
    batch: Option<Vec<u32>>,
    instances: InstanceRecords,
}

/// A commit that resolved.
pub(crate) struct Commit {
    result: Result<(), JournalError>,
    batch: Vec<u32>,
    instances: InstanceRecords,
}

impl Future for PendingCommit {
    type Output = Commit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Commit> {
        let this = self.get_mut();
        this.future.as_mut().poll(cx).map(|result| Commit {
            result,
            batch: this.batch.take().unwrap_or_default(),
            instances: std::mem::take(&mut this.instances),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_too_long_for_the_journal_is_cut_at_a_character() {
        // Two bytes a character, so that the cut falls inside one unless it looks.
        let long = "é".repeat(KEPT_ERROR);
        let mut line = TaskRecord {
            status: TaskStatus::Failed,
            error: Some(format!("x{long}")),
            ..TaskRecord::default()
        };
        leave_out(&mut line, "too long");
        let error = line.error.expect("an error");
        let (kept, said) = error.split_once(" ... ").expect("cut short");
        assert_eq!(kept, format!("x{}", "é".repeat((KEPT_ERROR - 1) / 2)));
        assert_eq!(
            said,
            "(cut short: the journal cannot hold the whole text: too long)"
        );
        // A short error stays as it is.
        let mut short = TaskRecord {
            status: TaskStatus::Failed,
            error: Some("db down".to_owned()),
            ..TaskRecord::default()
        };
        leave_out(&mut short, "too long");
        assert_eq!(short.error.as_deref(), Some("db down"));
    }
}
