//! The end of a run: cancel what is unfinished, assemble the result, record and
//! announce the end.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::{self, Either};
use orch_core::{
    EngineEventKind, RunId, TaskRecord, TaskRecords, TaskStatus, WorkflowResult, WorkflowStatus,
};
use tokio_util::sync::CancellationToken;

use super::Scheduler;
use crate::RunError;
use crate::announce::Announcer;
use crate::in_flight::InFlight;
use crate::journaling::RunJournal;
use crate::note::Note;
use crate::output::Stored;
use crate::timer::Deadline;

/// Records the end of the run that gave `result` in its `journal`, handing the run's
/// events to the publisher meanwhile; then announces `WorkflowFinished` (after the
/// record, for those reading the journal; with the journal's error when the record
/// failed) and waits until the publisher is done. A
/// cancelled run waits for its publisher only until the grace period that began at its
/// cancellation (`grace`, once set) ends, and for its journal until then too, but at
/// least 5 s from when the record begins.
pub(super) async fn record_and_announce(
    result: &WorkflowResult,
    journal: Option<RunJournal>,
    mut announcer: Option<(Announcer, Note)>,
    cancel: &CancellationToken,
    grace_period: Duration,
    mut grace: Option<Deadline>,
) -> Result<(), RunError> {
    // Handed over only while the journal is at work: a publisher held up by a full
    // subscriber is waited for below, within the grace of a cancelled run.
    let handing_over = pin!(async {
        if let Some((announcer, _)) = &mut announcer {
            std::future::poll_fn(|cx| announcer.flush(cx)).await;
        }
    });
    // What is left of the grace period, for a run cancelled already; a run cancelled
    // while it records its end has all of it from then.
    let journal_grace = match &grace {
        // To the millisecond: the wait is said in an error.
        Some(deadline) => Duration::from_millis(deadline.left().as_millis() as u64),
        None => grace_period,
    };
    let closing = pin!(async {
        match journal {
            Some(journal) => journal.close(result, cancel, journal_grace).await,
            None => Ok(()),
        }
    });
    let recorded = match future::select(closing, handing_over).await {
        Either::Left((recorded, _)) => recorded,
        Either::Right(((), closing)) => closing.await,
    };
    if let Some((mut announcer, mut finished)) = announcer {
        // Watchers hear of the end either way, and of a journal that did not record it.
        if let Err(error) = &recorded {
            finished = finished.with_detail(crate::note::Detail::Error(error.to_string()));
        }
        announcer.note(finished);
        let cancelled_and_grace_passed = async {
            let grace = match &mut grace {
                Some(grace) => grace,
                None => {
                    cancel.cancelled().await;
                    grace.insert(Deadline::after(grace_period))
                }
            };
            grace.passed().await;
        };
        announcer.finish_or_leave(cancelled_and_grace_passed).await;
    }
    recorded
}

impl Scheduler<'_> {
    /// The run stops: nothing more starts, and retry pauses end now. Once every task has
    /// ended, with nothing left to wait for (a journal's commit), there is nothing to
    /// stop, and the run keeps its tasks' status.
    pub(super) fn stop_starting(&mut self) {
        let recording = self.journal.as_ref().is_some_and(|j| !j.batch().is_empty());
        let unfinished =
            |r: &TaskRecord| matches!(r.status, TaskStatus::Pending | TaskStatus::Running);
        if self.in_flight.is_empty() && !recording && !self.records.iter().any(unfinished) {
            // What is left queued is a map task's turn to start more instances, the map
            // having failed since: it must not keep the run waiting to start it.
            self.ready.clear();
            return;
        }
        self.stopping = true;
        self.ready.clear();
        self.retrying.clear();
        // Map instances held for the publisher will not start either (each held a slot).
        self.active -= self.held.len();
        self.held.clear();
        // A pause before a retry that will not start: over now, not when it would end.
        let in_flight = self.in_flight.take();
        for waiting in in_flight {
            match waiting {
                // A map instance's pause holds its map's slot (see `start_attempt_with`).
                InFlight::Backoff { index, .. } if index as usize >= self.records.len() => {
                    self.active -= 1;
                }
                InFlight::Backoff { .. } => {}
                waiting => {
                    // The run is cancelled: a handler with a token of its own hears it there.
                    if let InFlight::Attempt(attempt) = &waiting {
                        attempt.cancel();
                    }
                    self.in_flight.push(waiting);
                }
            }
        }
    }

    /// Whether the run was cancelled since its task was last polled (by a handler whose
    /// first poll ran in this pass, or by another thread): then it stops starting tasks
    /// at once, rather than at its next poll.
    pub(super) fn cancelled_mid_pass(&mut self) -> bool {
        let cancelled = self.shared.cancel.is_cancelled();
        if cancelled && !self.stopping {
            self.stop_starting();
        }
        cancelled
    }

    /// Cancels what is unfinished and assembles the result of run `run_id`; with the
    /// announcer, if any, and the note of `WorkflowFinished`, which it is left to the
    /// caller to queue once the run's end is recorded.
    pub(super) fn finish(mut self, run_id: RunId) -> (WorkflowResult, Option<(Announcer, Note)>) {
        let end_time = self.clock.now();
        let mut dropped = self.drop_in_flight();
        // Instances end before their map, as in a run that was not stopped.
        if self.extras.is_some() {
            self.cancel_instances(end_time, &mut dropped);
        }
        let mut failed = false;
        let mut cancelled = false;
        // In execution order, as skips are announced: none comes before a dependency.
        let plan = self.plan;
        for &index in plan.order() {
            let index = index as usize;
            let record = &mut self.records[index];
            match record.status {
                TaskStatus::Pending | TaskStatus::Running => {
                    let error = cancel(record, end_time);
                    if let Some(at) = dropped.iter().position(|(i, _)| *i == index) {
                        error.push_str("; ");
                        error.push_str(&dropped.swap_remove(at).1);
                    }
                    cancelled = true;
                    self.log_ended(index);
                    self.announce_ended(EngineEventKind::TaskCancelled, index);
                }
                TaskStatus::Failed => failed |= !self.failure_handled(index),
                TaskStatus::Cancelled => cancelled = true,
                TaskStatus::Completed | TaskStatus::Skipped => {}
            }
        }
        // Tasks skipped by a handler's choice, a branch or a rule do not fail the
        // workflow; tasks skipped after a failure come with that failure. A failure
        // handled by a task whose rule reacts to failures does not fail it either.
        let status = if cancelled || self.stopping {
            WorkflowStatus::Cancelled
        } else if failed {
            WorkflowStatus::Failed
        } else {
            WorkflowStatus::Completed
        };
        // Only for a bus: a run without one has no one to tell.
        let finished = self.announcer.is_some().then(|| self.finished_note(status));
        let workflow = self.shared.workflow.clone();
        let count = |status| self.records.iter().filter(|r| r.status == status).count();
        tracing::info!(
            workflow_id = workflow.workflow_id(),
            %run_id,
            %status,
            completed = count(TaskStatus::Completed),
            failed = count(TaskStatus::Failed),
            skipped = count(TaskStatus::Skipped),
            cancelled = count(TaskStatus::Cancelled),
            "workflow run finished"
        );
        // Records keep the JSON of each output; a shared value keeps its summary.
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => {
                for (record, result) in self.records.iter_mut().zip(shared.results) {
                    if record.status == TaskStatus::Completed
                        && let Some((value, shared_output)) =
                            result.into_inner().map(Stored::into_record)
                    {
                        // Most records hold no result yet, and dropping nothing is an
                        // out-of-line call per task.
                        let before = record.result.replace(value);
                        if before.is_some() {
                            drop(before);
                        } else {
                            std::mem::forget(before);
                        }
                        record.shared_output |= shared_output;
                    }
                }
            }
            Err(shared) => {
                for (record, result) in self.records.iter_mut().zip(&shared.results) {
                    if record.status == TaskStatus::Completed
                        && let Some(output) = result.get()
                    {
                        record.result = Some(output.json().clone());
                        record.shared_output |= matches!(output, Stored::Shared(_));
                    }
                }
            }
        }
        let instances = match self.extras.take() {
            Some(extras) => extras.into_records(&workflow),
            None => Vec::new(),
        };
        let tasks = match TaskRecords::for_workflow_with_extra(&workflow, self.records, instances) {
            Some(tasks) => tasks,
            None => unreachable!("one record per task"),
        };
        let result = WorkflowResult {
            workflow_id: workflow.workflow_id().to_owned(),
            run_id,
            name: workflow.name().to_owned(),
            status,
            start_time: self.clock.wall,
            end_time,
            max_concurrent: self.max_concurrent,
            tasks,
        };
        (result, self.announcer.zip(finished))
    }

    /// Cancels the instances that had not ended when the run stopped, each with its
    /// event, as the run's own unfinished tasks are; an instance whose handler panicked
    /// when dropped (in `dropped`, by attempt index) has that added to its error.
    pub(super) fn cancel_instances(
        &mut self,
        end_time: SystemTime,
        dropped: &mut Vec<(usize, String)>,
    ) {
        let Some(extras) = self.extras.as_deref() else {
            return;
        };
        let unfinished: Vec<usize> = (extras.instances.iter().enumerate())
            .filter(|(_, instance)| !instance.record.status.is_finished())
            .map(|(k, _)| k)
            .collect();
        let n = self.records.len();
        for k in unfinished {
            let error = cancel(&mut self.extras().instances[k].record, end_time);
            if let Some(at) = dropped.iter().position(|(index, _)| *index == n + k) {
                error.push_str("; ");
                error.push_str(&dropped.remove(at).1);
            }
            self.announce_instance(EngineEventKind::TaskCancelled, k);
        }
    }

    /// Drops every handler future still running, each inside a panic guard, and returns
    /// the panics that happened, by attempt index (an instance's past the tasks').
    fn drop_in_flight(&mut self) -> Vec<(usize, String)> {
        let mut dropped = Vec::new();
        for flight in self.in_flight.iter_mut() {
            if let InFlight::Attempt(attempt) = flight
                && let Some(panic) = attempt.release()
            {
                dropped.push((attempt.index as usize, panic));
            }
        }
        self.in_flight.clear();
        dropped
    }
}

/// Marks the unfinished `record` cancelled with the run, which ended at `end_time` (its
/// end time too if it was running); returns its error text, for more to be added. A
/// running task that failed an attempt (pausing before a retry, or retrying) keeps what
/// that attempt failed with.
pub(super) fn cancel(record: &mut TaskRecord, end_time: SystemTime) -> &mut String {
    let mut text = "the run was cancelled".to_owned();
    if record.status == TaskStatus::Running {
        record.end_time = Some(end_time);
        if let Some(failed) = record.error.take() {
            text = format!("{text}; its last failed attempt ended with: {failed}");
        }
    }
    record.status = TaskStatus::Cancelled;
    record.error.insert(text)
}
