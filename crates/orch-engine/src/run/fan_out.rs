//! Map tasks in a run.
//!
//! A map task, once its dependencies completed, reads the list its `map.over` dependency
//! returned and runs one *instance* per element. Instances are numbered after the
//! workflow's tasks (instance `k` of the run is index `n + k`, `n` tasks in the plan), so
//! their attempts and retry pauses travel through the scheduler's in-flight set like any
//! task's. Each instance takes a slot of the global limit while it runs, and a slot of
//! its task's pool when the task names one. The map task gives its own slots to its first
//! instance and keeps them for its instances to the end (an instance that ends hands them
//! to the next one), so a map always goes on; while instances are left to start, the map
//! task also waits in the ready queue at its start rank, and each time it comes up there
//! (a global slot free, and room in its pool, before any task ranked after it) one more
//! instance starts on slots of its own, which go back to the queue when it ends. So a map
//! widens as slots free up, and never keeps a slot from a task ranked before it beyond
//! the one it started with. Starting an instance goes through the in-flight set (as a
//! retry with no pause), so a long list of instances that finish at once never recurses.
//!
//! When an instance fails after its retries, no further instance of its map starts, and
//! those waiting to retry end their pause at once and fail as they last did; once the
//! running ones ended, those never started are skipped and the map task fails with the
//! first failure. Its dependents then follow their trigger rules on that failure, and
//! those that run (`all_done`, `one_failed`, ...) read the list of the instances' results
//! all the same, with `null` for each instance that did not complete. An instance its
//! handler skipped leaves `null` in the list too.

use std::sync::Arc;
use std::task::Context;

use orch_core::{EngineEventKind, MapSpec, TaskRecord, TaskStatus};
use serde_json::Value;

use super::Scheduler;
use crate::Output;
use crate::TaskError;
use crate::attempt::Attempt;
use crate::context::MapItem;
use crate::in_flight::InFlight;
use crate::output::Stored;
use items::map_items;

mod events;
mod items;

/// A map task whose instances run.
pub(super) struct MapRun {
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) started: usize,
    pub(super) ended: usize,
    /// The first failure (or cancellation) of an instance, as the map's error.
    pub(super) failed: Option<String>,
    pub(super) results: Vec<Value>,
    /// Why the first instance output marked [`Output::not_journaled`] was: the map's list
    /// is then not journaled either.
    pub(super) not_journaled: Option<String>,
    /// Whether a handler skipped an instance: the map's list is then not cached (its
    /// `null` would stand for that element in later runs; a skipped task runs again).
    pub(super) skipped: bool,
    /// Slots of the map task's pool its instances hold beside the map task's own.
    pool_slots: usize,
}

pub(super) struct Instance {
    pub(super) map: u32,
    pub(super) item: Arc<MapItem>,
    pub(super) record: TaskRecord,
    /// Why its output is not journaled, if the handler marked it so.
    pub(super) not_journaled: Option<String>,
    /// Whether the journal holds its record (ended): a map's completion does not record
    /// it again.
    pub(super) journaled: bool,
}

impl Scheduler<'_> {
    pub(super) fn start_map(&mut self, index: usize, spec: &MapSpec) {
        // A map task's attempt number is its instances' highest; they go on from the
        // highest of the runs this one continues.
        let base = self.attempt_base(index);
        self.records[index].attempts = base + 1;
        // A rule that runs a map without its list skips it instead (see `decide`).
        debug_assert!(
            self.no_list(spec).is_none(),
            "a map started without its list"
        );
        let limit = self.extras().max_instances;
        let ctx = self.context(index, base + 1, None);
        let n = self.records.len();
        let first = self.extras().instances.len();
        let items = map_items(&ctx, spec, limit).and_then(|items| {
            let fits = (n + first)
                .checked_add(items.len())
                .is_some_and(|end| end <= u32::MAX as usize);
            match fits {
                true => Ok(items),
                false => Err(format!(
                    "task `{}`: the run has more map instances than it can number",
                    ctx.task_id()
                )),
            }
        });
        let items = match items {
            Ok(items) if items.is_empty() => {
                return self.attempt_over(index, Ok(Value::Array(Vec::new()).into()));
            }
            Ok(items) => items,
            Err(message) => return self.attempt_over(index, Err(TaskError::permanent(message))),
        };
        let count = items.len();
        let mut results = vec![Value::Null; count];
        let extras = self.extras();
        // The instances that completed in the run this one resumes, on the same list.
        let mut reused = extras.reused.remove(&(index as u32)).unwrap_or_default();
        extras
            .instances
            .extend(items.into_iter().enumerate().map(|(i, value)| {
                let record = reused.remove(&i);
                // A restored output is in the list from the start: a sibling that fails
                // before the instance's turn leaves it there for the dependents.
                if let Some(output) = record.as_ref().and_then(|r| r.result.clone()) {
                    results[i] = output;
                }
                Instance {
                    map: index as u32,
                    item: Arc::new(MapItem { index: i, value }),
                    journaled: record.is_some(),
                    record: record.unwrap_or_default(),
                    not_journaled: None,
                }
            }));
        extras.maps.insert(
            index as u32,
            MapRun {
                first,
                count,
                started: 0,
                ended: 0,
                failed: None,
                results,
                not_journaled: None,
                skipped: false,
                pool_slots: 0,
            },
        );
        // The map's slots go to its first instance; each further one takes its own when
        // the map comes up in the ready queue.
        self.active -= 1;
        if self.start_next_instance(index, false) {
            self.queue_instances(index);
        }
    }

    /// Starts one more instance of map task `index`, whose rank came up in the ready
    /// queue (a global slot free, and a slot of its pool taken); whether `index` waited
    /// there for that (else it is a task to start).
    pub(super) fn more_instances(&mut self, index: usize) -> bool {
        if !self.extras().unqueue_map(index) {
            return false;
        }
        if self.start_next_instance(index, true) {
            self.queue_instances(index);
        } else {
            self.ready.release(index);
        }
        true
    }

    /// Puts map task `map` in the ready queue for one more instance, if it has one left
    /// to start and is not there yet.
    fn queue_instances(&mut self, map: usize) {
        let stopping = self.stopping;
        let extras = self.extras();
        let Some(run) = extras.maps.get(&(map as u32)) else {
            return;
        };
        if stopping || run.failed.is_some() || run.started == run.count {
            return;
        }
        if extras.queue_map(map) {
            self.make_ready(map);
        }
    }

    /// Takes a slot for the next instance of `map` and queues its start, if one is left
    /// and may start; `pool_slot`: the instance also took a slot of the map's pool.
    fn start_next_instance(&mut self, map: usize, pool_slot: bool) -> bool {
        let n = self.records.len();
        let stopping = self.stopping;
        let Some(run) = self.extras().maps.get_mut(&(map as u32)) else {
            return false;
        };
        if stopping || run.failed.is_some() || run.started == run.count {
            return false;
        }
        let k = run.first + run.started;
        run.started += 1;
        run.pool_slots += usize::from(pool_slot);
        self.active += 1;
        self.in_flight.push(InFlight::Backoff {
            index: (n + k) as u32,
            sleep: None,
        });
        true
    }

    /// Starts the map instances held back while the publisher was behind, once it is not
    /// (or the run stops: they then end at once).
    pub(super) fn start_held_instances(&mut self, cx: &mut Context<'_>) {
        if self.held.is_empty() || (self.publisher_behind() && !self.stopping) {
            return;
        }
        for index in std::mem::take(&mut self.held) {
            // One started before it may have cancelled the run (then this one ends).
            self.cancelled_mid_pass();
            self.start_attempt(index as usize, cx);
        }
    }

    pub(super) fn start_instance(&mut self, k: usize, cx: &mut Context<'_>) {
        let at = self.clock.last();
        let map = self.extras().instances[k].map as usize;
        let base = self.attempt_base(map);
        let extras = self.extras();
        let instance = &mut extras.instances[k];
        if instance.record.status == TaskStatus::Completed {
            // Restored from the run this one resumes (its output is in the list already).
            self.announce_instance(EngineEventKind::TaskRestored, k);
            return self.instance_ended(map);
        }
        let map_failed = (extras.maps.get(&(map as u32))).is_some_and(|r| r.failed.is_some());
        if map_failed && instance.record.attempts == 0 {
            // A sibling failed while this one waited for its turn.
            return self.instance_ended(map);
        }
        if map_failed {
            // A sibling failed while this one waited to try again: it fails as it last did.
            instance.record.status = TaskStatus::Failed;
            instance.record.end_time = Some(at);
            if let Some(error) = &mut instance.record.error {
                error.push_str(" (not tried again: a sibling failed the map)");
            }
            self.announce_instance(EngineEventKind::TaskFailed, k);
            return self.instance_ended(map);
        }
        // Its record counts the attempts it makes in this run (the list was made anew:
        // it may stand for another item than an earlier run's instance of its id); their
        // numbers go on after the map's earlier attempts.
        let first = instance.record.attempts == 0;
        instance.record.attempts += 1;
        let attempt = base + instance.record.attempts;
        let item = Arc::clone(&instance.item);
        let record = &mut self.records[map];
        record.attempts = record.attempts.max(attempt);
        let instance = &mut self.extras().instances[k];
        if first {
            instance.record.status = TaskStatus::Running;
            instance.record.start_time = Some(at);
            self.announce_instance(EngineEventKind::TaskStarted, k);
        }
        let ctx = self.context(map, attempt, Some(Arc::clone(&item)));
        let task = self.task(map);
        let span = tracing::debug_span!("task", task_id = %task.task_id, item = item.index, task_type = %task.task_type);
        let task_type = self.plan.type_of(map);
        let handler = &self.handlers.by_type[task_type];
        let spawn = self.handlers.spawn[task_type];
        let mut polled = std::task::Poll::Pending;
        match Attempt::start(handler, ctx, task.timeout, span, spawn, cx, &mut polled) {
            Some(mut attempt) => {
                if !spawn {
                    // Its first poll ran here, for however long: what starts next reads
                    // the clock again.
                    self.clock.now();
                }
                // The in-flight set knows an instance by its place after the plan's tasks.
                attempt.index = (self.records.len() + k) as u32;
                let attempt = attempt.watched_by(&self.shared.cancel);
                self.in_flight.push(InFlight::Attempt(attempt));
            }
            None => {
                if let std::task::Poll::Ready(outcome) = polled {
                    self.instance_over(k, outcome);
                }
            }
        }
    }

    pub(super) fn instance_over(&mut self, k: usize, outcome: Result<Output, TaskError>) {
        let now = self.clock.now();
        let map = self.extras().instances[k].map as usize;
        let base = self.attempt_base(map);
        let stopping = self.stopping;
        let durable = self.journal.is_some();
        let n = self.records.len();
        let shared = Arc::clone(&self.shared);
        let extras = self.extras();
        let instance = &mut extras.instances[k];
        let map = instance.map as usize;
        let record = &mut instance.record;
        let kind = match outcome {
            Ok(output) => {
                instance.not_journaled = match &output.0 {
                    Stored::Unjournaled(kept) => Some(kept.1.clone()),
                    Stored::Json(_) | Stored::Shared(_) => None,
                };
                let (value, shared) = output.0.into_record();
                if let Some(run) = extras.maps.get_mut(&instance.map) {
                    run.results[instance.item.index] = value.clone();
                    if run.not_journaled.is_none() {
                        run.not_journaled.clone_from(&instance.not_journaled);
                    }
                }
                record.result = Some(value);
                record.shared_output = shared;
                record.error = None;
                TaskStatus::Completed
            }
            Err(error) if error.is_skip() => {
                record.error = Some(error.record_text());
                if let Some(run) = extras.maps.get_mut(&instance.map) {
                    run.skipped = true;
                }
                TaskStatus::Skipped
            }
            Err(error) if stopping => {
                record.error = Some(format!(
                    "the run was cancelled; the handler ended with: {}",
                    error.record_text()
                ));
                TaskStatus::Cancelled
            }
            Err(error) => {
                let task = shared.task(map);
                let tries = record.attempts;
                // Not once the run is cancelled (see `Scheduler::failed`).
                let cancelled = shared.cancel.is_cancelled();
                let retryable = !error.is_permanent() && tries <= task.retries && !cancelled;
                record.error = Some(error.record_text());
                // A sibling failed the map while this one ran: it is not tried again.
                let map_failed =
                    (extras.maps.get(&instance.map)).is_some_and(|r| r.failed.is_some());
                if retryable && !map_failed {
                    let delay = task
                        .backoff
                        .delay(tries, super::settle::jitter_unit(n + k, base + tries));
                    // The instance's id is written only when the log is enabled.
                    tracing::debug!(task_id = %MapSpec::instance_id(&task.task_id, instance.item.index), task_type = %task.task_type, attempt = base + tries, error = %record.error.as_deref().unwrap_or(""), ?delay, "retrying");
                    self.announce_instance_with(EngineEventKind::TaskRetrying, k, Some(delay));
                    let sleep = (!delay.is_zero()).then(|| Box::pin(tokio::time::sleep(delay)));
                    self.in_flight.push(InFlight::Backoff {
                        index: (n + k) as u32,
                        sleep,
                    });
                    return;
                }
                if let Some(error) = record.error.as_mut().filter(|_| retryable) {
                    error.push_str(" (not tried again: a sibling failed the map)");
                }
                TaskStatus::Failed
            }
        };
        record.status = kind;
        record.end_time = Some(now);
        if kind == TaskStatus::Completed && durable {
            extras.completed_to_journal.push(k);
        }
        if matches!(kind, TaskStatus::Failed | TaskStatus::Cancelled) {
            let id = MapSpec::instance_id(&shared.task(map).task_id, instance.item.index);
            let why = record.error.as_deref().unwrap_or_default();
            let first_failure = match extras.maps.get_mut(&instance.map) {
                Some(run) if run.failed.is_none() => {
                    run.failed = Some(format!("instance `{id}` {kind}: {why}"));
                    Some((n + run.first)..(n + run.first + run.count))
                }
                _ => None,
            };
            if let Some(siblings) = first_failure {
                self.end_pauses(siblings);
            }
        }
        let event = match kind {
            TaskStatus::Completed => EngineEventKind::TaskCompleted,
            TaskStatus::Skipped => EngineEventKind::TaskSkipped,
            TaskStatus::Cancelled => EngineEventKind::TaskCancelled,
            _ => EngineEventKind::TaskFailed,
        };
        self.announce_instance(event, k);
        self.instance_ended(map);
    }

    /// Ends now the pauses before a retry of the instances numbered `indices` (in the
    /// in-flight set), whose map failed: they are not tried again (see
    /// [`Scheduler::start_instance`]), and the map need not wait for the pauses to end.
    fn end_pauses(&mut self, indices: std::ops::Range<usize>) {
        let in_flight = self.in_flight.take();
        for mut waiting in in_flight {
            if let InFlight::Backoff { index, sleep } = &mut waiting
                && indices.contains(&(*index as usize))
            {
                *sleep = None;
            }
            self.in_flight.push(waiting);
        }
    }

    /// Frees an ended instance's slots: those of one taken in the ready queue go back
    /// there, the map task's own go to its next instance; ends the map once all its
    /// started instances ended.
    fn instance_ended(&mut self, map: usize) {
        self.active -= 1;
        let Some(run) = self.extras().maps.get_mut(&(map as u32)) else {
            return;
        };
        run.ended += 1;
        // Every running instance but one holds a pool slot beside the map task's own.
        let give_back = run.pool_slots > 0;
        run.pool_slots -= usize::from(give_back);
        if give_back {
            self.ready.release(map);
        } else if self.start_next_instance(map, false) {
            return;
        }
        let stopping = self.stopping;
        let extras = self.extras();
        let Some(run) = extras.maps.get_mut(&(map as u32)) else {
            return;
        };
        // In a cancelled run, instances that did not start never will, and the map ends
        // cancelled with the run; one whose instances all started settles as they end.
        if stopping && run.started < run.count {
            return;
        }
        let all_ended = run.ended == run.started;
        let done = all_ended && (run.failed.is_some() || run.started == run.count);
        let run = match done {
            true => extras.maps.remove(&(map as u32)),
            false => None,
        };
        let Some(run) = run else {
            return;
        };
        // The map task takes a slot back to settle in.
        self.active += 1;
        match run.failed {
            None => {
                if self.journal.is_some() {
                    (self.extras().to_journal).insert(map as u32, (run.first, run.count));
                }
                if run.skipped {
                    self.extras().store_no_result(map);
                }
                let list = Output::from(Value::Array(run.results));
                let list = match run.not_journaled {
                    Some(reason) => list.not_journaled(reason),
                    None => list,
                };
                self.attempt_over(map, Ok(list))
            }
            Some(message) => {
                for k in run.first..run.first + run.count {
                    let record = &mut self.extras().instances[k].record;
                    if record.status == TaskStatus::Pending {
                        record.status = TaskStatus::Skipped;
                        record.error = Some(format!("map stopped: {message}"));
                        self.announce_instance(EngineEventKind::TaskSkipped, k);
                    }
                }
                // The dependents that run past the failure (by their trigger rules) read
                // the instances' results so far, `null` where none completed.
                let _ = self.shared.results[map].set(Stored::Json(Value::Array(run.results)));
                self.attempt_over(map, Err(TaskError::permanent(message)));
            }
        }
    }
}
