//! The end of a run: cancel what is unfinished, assemble the result.

use std::sync::Arc;

use orch_core::{EngineEventKind, TaskRecords, TaskStatus, WorkflowResult, WorkflowStatus};

use super::Scheduler;
use crate::announce::Announcer;

impl Scheduler<'_> {
    /// Cancels what is unfinished and assembles the result.
    pub(super) fn finish(mut self) -> (WorkflowResult, Option<Announcer>) {
        let end_time = self.clock.now();
        // Dropping the in-flight set drops every handler future still running.
        drop(std::mem::take(&mut self.in_flight));
        let mut failed = false;
        let mut cancelled = false;
        for index in 0..self.records.len() {
            let record = &mut self.records[index];
            match record.status {
                TaskStatus::Pending | TaskStatus::Running => {
                    if record.status == TaskStatus::Running {
                        record.end_time = Some(end_time);
                    }
                    record.status = TaskStatus::Cancelled;
                    record.error = Some("the run was cancelled".to_owned());
                    cancelled = true;
                    self.announce_ended(EngineEventKind::TaskCancelled, index);
                }
                TaskStatus::Failed => failed = true,
                TaskStatus::Cancelled => cancelled = true,
                TaskStatus::Completed | TaskStatus::Skipped => {}
            }
        }
        let status = if cancelled || self.stopping {
            WorkflowStatus::Cancelled
        } else if failed {
            WorkflowStatus::Failed
        } else {
            WorkflowStatus::Completed
        };
        self.announce_workflow(EngineEventKind::WorkflowFinished, Some(status));
        let workflow = self.shared.workflow.clone();
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => {
                for (record, result) in self.records.iter_mut().zip(shared.results) {
                    if record.status == TaskStatus::Completed {
                        record.result = result.into_inner();
                    }
                }
            }
            Err(shared) => {
                for (record, result) in self.records.iter_mut().zip(&shared.results) {
                    if record.status == TaskStatus::Completed {
                        record.result = result.get().cloned();
                    }
                }
            }
        }
        let tasks = match TaskRecords::for_workflow(&workflow, self.records) {
            Some(tasks) => tasks,
            None => unreachable!("one record per task"),
        };
        let result = WorkflowResult {
            workflow_id: workflow.workflow_id().to_owned(),
            name: workflow.name().to_owned(),
            status,
            start_time: self.clock.wall,
            end_time,
            max_concurrent: self.max_concurrent,
            tasks,
        };
        (result, self.announcer)
    }
}
