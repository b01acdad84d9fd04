//! How an attempt ends: a retry after its backoff, or a final status that frees its slot
//! and tells the task's dependents.

use std::sync::Arc;
use std::task::Context;
use std::time::{Duration, SystemTime};

use orch_core::{EngineEventKind, TaskStatus};

use super::Scheduler;
use crate::Output;
use crate::TaskError;
use crate::in_flight::{AttemptEnded, InFlight};
use crate::note::Detail;

/// What a task's record is missing about an attempt that began: its number, and for a
/// first attempt when the task started.
///
/// An attempt that ends on its handler's first poll writes this only when its outcome is
/// handled (for a completed one, once its output is stored), not when it starts: storing
/// the output waits for the processor's pending writes, and a record written out of plan
/// order (with priorities) is rarely in its cache, so writing it first would hold up
/// both. (In a run with map or cached tasks it is written before those are looked at.)
#[derive(Clone, Copy)]
pub(super) struct Begun {
    pub(super) attempt: u32,
    pub(super) first_start: Option<SystemTime>,
}

impl Scheduler<'_> {
    /// Handles the outcome of an attempt of task `index` whose record says it began.
    pub(super) fn attempt_over(&mut self, index: usize, outcome: Result<Output, TaskError>) {
        self.attempt_ended(index, None, outcome);
    }

    /// Handles the outcome of an attempt the run waited for; one that ended after the run
    /// was cancelled ends as the run's other unfinished tasks do.
    pub(super) fn attempt_landed(&mut self, ended: AttemptEnded) {
        if ended.cancelled_before {
            self.cancelled_mid_pass();
        }
        self.attempt_over(ended.index as usize, ended.outcome);
    }

    /// Writes `begun` (if any) to task `index`'s record.
    pub(super) fn note_begun(&mut self, index: usize, begun: Option<Begun>) {
        let Some(begun) = begun else { return };
        if let Some(at) = begun.first_start {
            self.mark_running(index, at);
        }
        self.records[index].attempts = begun.attempt;
    }

    /// Marks task `index` running since `at`.
    pub(super) fn mark_running(&mut self, index: usize, at: SystemTime) {
        let record = &mut self.records[index];
        record.status = TaskStatus::Running;
        record.start_time = Some(at);
    }

    /// Handles the outcome of an attempt of task `index`; `begun` is what its record does
    /// not say yet, for an attempt that ended on its handler's first poll.
    pub(super) fn attempt_ended(
        &mut self,
        index: usize,
        mut begun: Option<Begun>,
        mut outcome: Result<Output, TaskError>,
    ) {
        if self.extras.is_some() {
            self.note_begun(index, begun.take());
            match self.special_over(index, outcome) {
                Some(passed_on) => outcome = passed_on,
                None => return,
            }
        }
        match outcome {
            Ok(output) => {
                let _ = self.shared.results[index].set(output.0);
                self.note_begun(index, begun);
                if self.shared.branches.any() {
                    self.note_choice(index);
                }
                self.settle(index, TaskStatus::Completed, None);
                self.ended_durably(index, TaskStatus::Completed);
            }
            Err(error) => {
                self.note_begun(index, begun);
                self.failed(index, error);
            }
        }
    }

    /// Runs the next attempt; a handler that finishes on its first poll never enters the
    /// in-flight set.
    pub(super) fn start_attempt(&mut self, index: usize, cx: &mut Context<'_>) {
        let run = Arc::clone(&self.shared);
        self.start_attempt_with(index, None, run, cx);
    }

    /// A retry's pause ended: a task of the plan queues for its slots again (it gave them
    /// back for the pause); a map instance, which kept its slot, starts at once, or once
    /// the publisher caught up (an instance's first start comes this way too).
    pub(super) fn backoff_over(&mut self, index: usize, cx: &mut Context<'_>) {
        if index >= self.records.len() {
            if self.publisher_behind() && !self.stopping {
                return self.held.push(index as u32);
            }
            // A sibling's first poll may have cancelled the run in this pass (the start
            // loop's check does not run while every slot is taken).
            self.cancelled_mid_pass();
            return self.start_attempt(index, cx);
        }
        if !self.stopping {
            self.retrying.insert(index as u32);
            self.make_ready(index);
        }
    }

    /// An attempt that returned an error: skipped, cancelled, retried or failed.
    fn failed(&mut self, index: usize, error: TaskError) {
        match error {
            error if error.is_skip() => {
                self.settle(index, TaskStatus::Skipped, Some(error.record_text()));
                self.ended_durably(index, TaskStatus::Skipped);
            }
            error if self.stopping => {
                let message = format!(
                    "the run was cancelled; the handler ended with: {}",
                    error.record_text()
                );
                self.settle(index, TaskStatus::Cancelled, Some(message));
            }
            error => {
                // The attempt may have ended in a first poll on the run's own task, for
                // however long: what starts next reads the clock again. (A final outcome
                // reads it when it is settled.)
                if !error.is_permanent() {
                    self.clock.now();
                }
                let task = self.task(index);
                let attempts = self.records[index].attempts;
                // Retries are counted in this run: a resumed run grants them anew.
                let tries = attempts - self.attempt_base(index);
                // Not once the run is cancelled (its handler, polled here, cancelled it
                // as it failed): the run would only drop the pause.
                let cancelled = self.shared.cancel.is_cancelled();
                if !error.is_permanent() && tries <= task.retries && !cancelled {
                    let delay = task.backoff.delay(tries, jitter_unit(index, attempts));
                    let message = error.record_text();
                    tracing::debug!(task_id = %task.task_id, task_type = %task.task_type, attempt = attempts, error = %message, ?delay, "retrying");
                    self.announce_task(EngineEventKind::TaskRetrying, index, |note| {
                        note.attempt = attempts;
                        note.detail = Some(Box::new(Detail::Error(message.clone())));
                        note.duration = Some(delay);
                    });
                    self.records[index].error = Some(message);
                    // The pause holds no slot, global or of the task's pool: other tasks
                    // run meanwhile, and the task queues for its slots when it ends.
                    self.active -= 1;
                    self.ready.release(index);
                    // No timer for no pause: a runtime without one can retry at once.
                    let sleep = (!delay.is_zero()).then(|| Box::pin(tokio::time::sleep(delay)));
                    self.in_flight.push(InFlight::Backoff {
                        index: index as u32,
                        sleep,
                    });
                    return;
                }
                self.settle(index, TaskStatus::Failed, Some(error.record_text()));
                self.ended_durably(index, TaskStatus::Failed);
            }
        }
    }

    /// Records a final status for a started task and frees its slot.
    // Forced inline: on every task's path, where the optimiser kept a call.
    #[inline(always)]
    pub(super) fn settle(&mut self, index: usize, status: TaskStatus, error: Option<String>) {
        self.active -= 1;
        self.ready.release(index);
        let record = &mut self.records[index];
        record.status = status;
        record.error = error;
        record.end_time = Some(self.clock.now());
        let kind = match status {
            TaskStatus::Completed => EngineEventKind::TaskCompleted,
            TaskStatus::Failed => EngineEventKind::TaskFailed,
            TaskStatus::Cancelled => EngineEventKind::TaskCancelled,
            TaskStatus::Skipped => EngineEventKind::TaskSkipped,
            TaskStatus::Pending | TaskStatus::Running => {
                unreachable!("a started task settles with a final status")
            }
        };
        if status != TaskStatus::Completed {
            self.log_ended(index);
        }
        self.announce_ended(kind, index);
    }

    /// Marks every task that depends on `ended` (which failed or was skipped, as `how`
    /// says), directly or not, as skipped, to be announced by [`Self::announce_skips`].
    pub(super) fn skip_descendants(&mut self, ended: usize, how: &str) {
        let reason = format!("dependency `{}` {how}", self.task(ended).task_id);
        let mut stack: Vec<u32> = self.plan.dependents(ended).to_vec();
        while let Some(d) = stack.pop() {
            let record = &mut self.records[d as usize];
            if record.status == TaskStatus::Pending {
                record.status = TaskStatus::Skipped;
                record.error = Some(reason.clone());
                stack.extend_from_slice(self.plan.dependents(d as usize));
                self.skips.push(d);
            }
        }
    }

    /// Logs and announces the tasks skipped since the last call in plan order, so that
    /// none is announced before a dependency skipped with it.
    pub(super) fn announce_skips(&mut self) {
        if self.skips.is_empty() {
            return;
        }
        let mut skips = std::mem::take(&mut self.skips);
        skips.sort_unstable_by_key(|&task| self.plan.position(task as usize));
        for &task in &skips {
            self.log_ended(task as usize);
            self.announce_ended(EngineEventKind::TaskSkipped, task as usize);
        }
        skips.clear();
        self.skips = skips;
    }
}

/// A number in `[0, 1)` for retry jitter, different per task and attempt.
pub(super) fn jitter_unit(index: usize, attempt: u32) -> f64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_nanos() as u64;
    let mut z = nanos ^ ((index as u64) << 20) ^ u64::from(attempt);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
