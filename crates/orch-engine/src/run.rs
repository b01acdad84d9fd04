//! One run of a workflow: the scheduler that starts ready tasks, polls their handlers and
//! records what happens.

use std::collections::HashSet;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_util::stream::StreamExt;
use orch_core::{Plan, RunId, Task, TaskRecord, Workflow, WorkflowResult};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::announce::Announcer;
use crate::attempt::Attempt;
use crate::clock::Clock;
use crate::context::RunShared;
use crate::in_flight::{InFlight, InFlightSet, Landed};
use crate::journaling::{self, RunJournal};
use crate::pools::Queue;
use crate::timer::Deadline;
use crate::{Handler, RunError, TaskContext};
use settle::Begun;

mod announcing;
mod extras;
mod fan_out;
mod finish;
mod journal;
mod prefetch;
mod resume;
mod rules;
mod settings;
mod settle;

pub(crate) use settings::RunSettings;

/// Tasks started in a row without waiting before the run yields to the runtime.
const YIELD_EVERY: u32 = 256;

/// Validates, then runs `workflow` as run `run_id`; with `previous`, tasks that completed
/// there keep their records and results and are not run again. Dropped before it returns
/// (whatever it waits for then), it cancels `cancel`, which handlers may have left
/// helpers watching.
pub(crate) async fn execute(
    engine: RunSettings,
    workflow: Workflow,
    previous: Option<WorkflowResult>,
    run_id: RunId,
    cancel: CancellationToken,
) -> Result<WorkflowResult, RunError> {
    let dropped = cancel.clone().drop_guard();
    let result = run_workflow(engine, workflow, previous, run_id, cancel).await;
    dropped.disarm();
    result
}

/// [`execute`], but for telling a drop.
async fn run_workflow(
    engine: RunSettings,
    workflow: Workflow,
    previous: Option<WorkflowResult>,
    run_id: RunId,
    cancel: CancellationToken,
) -> Result<WorkflowResult, RunError> {
    let handlers = &engine.handlers;
    let valid = workflow.validate()?;
    let missing = valid.missing_handlers(handlers.keys().map(String::as_str));
    if !missing.is_empty() {
        return Err(RunError::MissingHandlers {
            task_types: missing,
        });
    }
    let plan = valid.plan();
    // What no task uses needs no pass over the tasks here.
    let features = plan.features();
    let queue = Queue::new(&workflow, plan, &engine.pools)
        .map_err(|tasks| RunError::UnknownPools { tasks })?;
    let opened = journal::open_for(&engine, &workflow, plan, previous, &run_id, &cancel);
    let (previous, redefined, journal) = opened.await?;
    resume::refuse_foreign(previous.as_ref(), &workflow)?;
    let continued = resume::continued(&workflow, plan, previous.as_ref(), &redefined);
    let by_type: Vec<Arc<dyn Handler>> = plan
        .task_types()
        .iter()
        .filter_map(|t| handlers.get(t).cloned())
        .collect();
    // Attempts run as tokio tasks of their own where that can use more threads.
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let spawn: Vec<bool> = by_type
        .iter()
        .map(|h| multi_threaded && !crate::handler::runs_inline(h.as_ref()))
        .collect();
    let span = tracing::info_span!("workflow_run", workflow_id = %workflow.workflow_id(), %run_id, tasks = plan.len());
    let announcer = (engine.events.clone())
        .and_then(|target| Announcer::start(target, &workflow, plan, &run_id, &span));
    let shared = Arc::new(RunShared {
        run_id: run_id.clone(),
        workflow: workflow.clone(),
        partial: false,
        ended_before: continued.ended_before,
        results: (0..plan.len()).map(|_| OnceLock::new()).collect(),
        states: Arc::clone(&engine.states),
        cancel: cancel.clone(),
        branches: Default::default(),
        #[cfg(feature = "events")]
        bus: engine.events.as_ref().map(|target| target.bus.clone()),
    });
    let handlers = RunHandlers {
        by_type: &by_type,
        spawn: &spawn,
    };
    let limits = Limits {
        max_concurrent: engine.max_concurrent,
        queue,
        critical_path_first: engine.critical_path_first,
    };
    let mut run = Scheduler::new(shared, plan, handlers, limits, announcer);
    run.journal = journal;
    run.attempt_bases = continued.attempt_bases;
    run.carry_attempts();
    run.extras = extras::Extras::new(&workflow, features, engine.max_instances, &engine.cache);
    let restored = match (previous, &continued.kept, &continued.reusing) {
        (Some(previous), Some(kept), Some(reusing)) => {
            let stale = run.restore_instances(&previous, kept, reusing);
            run.restore_kept(previous, kept, &stale)
        }
        _ => 0,
    };
    if let Some(journal) = &mut run.journal {
        let resets = journal.commit_resets(&run.shared);
        let (grace, action) = (
            engine.grace_period,
            "record the resets of the continued run",
        );
        journaling::unless_silent_once_cancelled(resets, &cancel, grace, action, false).await?;
    }
    run.announce_start(restored);
    if continued.kept.is_some() {
        run.skip_after_kept_skips();
    }
    run.begin();
    let mut cancelled = pin!(cancel.clone().cancelled_owned());
    // Set once the run is cancelled: when it stops waiting for running handlers and for
    // its events to be published.
    let mut grace: Option<Deadline> = None;
    poll_fn(|cx| {
        if grace.is_none() && cancelled.as_mut().poll(cx).is_ready() {
            run.stop_starting();
            grace = Some(Deadline::after(engine.grace_period));
        }
        let progress = run.poll_progress(cx);
        if progress.is_pending() && grace.as_mut().is_some_and(|g| g.poll_passed(cx)) {
            return Poll::Ready(());
        }
        progress
    })
    .instrument(span)
    .await;
    let journal = run.journal.take();
    let (result, announcer) = run.finish(run_id);
    let grace_period = engine.grace_period;
    finish::record_and_announce(&result, journal, announcer, &cancel, grace_period, grace).await?;
    Ok(result)
}

/// A task's count of unfinished dependencies, beside its start rank (its plan position
/// unless priorities reorder it): both are read when a dependency completes, so they
/// share a cache line. The count is `u32::MAX` for a task kept from an earlier run, so
/// that it is never released again.
#[derive(Clone, Copy)]
struct Waiting {
    dependencies: u32,
    position: u32,
}

/// How many tasks may run at once, in all and per pool, and in what order ready ones start.
struct Limits {
    max_concurrent: usize,
    /// The empty queue of ready tasks, with the run's pools.
    queue: Queue,
    critical_path_first: bool,
}

enum Progress {
    /// Nothing is left to start or to wait for.
    Done,
    /// Waiting for running handlers (their wakers are registered), or for the publisher
    /// to catch up before ready tasks can start (see [`Scheduler::poll_progress`]).
    Waiting,
    /// Enough done in one go; poll again soon.
    Yield,
}

/// The handler of each task type in the plan, and whether its attempts are spawned.
#[derive(Clone, Copy)]
struct RunHandlers<'p> {
    by_type: &'p [Arc<dyn Handler>],
    spawn: &'p [bool],
}

struct Scheduler<'p> {
    plan: &'p Plan,
    shared: Arc<RunShared>,
    handlers: RunHandlers<'p>,
    records: Vec<TaskRecord>,
    /// Per task, how many dependencies have not completed yet, and its plan position.
    waiting: Vec<Waiting>,
    /// Ready tasks by their start rank, so they start in that order (within their pools).
    ready: Queue,
    /// Task indices by start rank.
    start_order: &'p [u32],
    /// Per-task trigger rules, when some task has a rule other than the default.
    rules: Option<rules::Rules>,
    in_flight: InFlightSet<'p>,
    /// Tasks started and not yet finished (running, or a map instance pausing before a
    /// retry; a task of the plan gives its slots back for the pause).
    active: usize,
    /// Tasks back in the ready set after a retry's pause: they start their next attempt.
    retrying: HashSet<u32>,
    /// Map instances due to start while the publisher was behind (each holds its slot).
    held: Vec<u32>,
    /// Tasks skipped and not yet announced (see `announce_skips`).
    skips: Vec<u32>,
    max_concurrent: usize,
    stopping: bool,
    /// Whether some task has a timeout.
    timeouts: bool,
    clock: Clock,
    /// Whether tasks start out of plan order, so that memory is fetched ahead (`prefetch`).
    prefetch: bool,
    /// Lifecycle events for the engine's bus, when it has one.
    announcer: Option<Announcer>,
    /// The journal of a durable run.
    journal: Option<RunJournal>,
    /// In a run that continues another, per task, the attempts made there that this
    /// run's attempt numbers go on from (none when all are 0).
    attempt_bases: Option<Box<[u32]>>,
    /// Map and cached tasks, when the workflow has any (see `extras`).
    extras: Option<Box<extras::Extras>>,
}

impl<'p> Scheduler<'p> {
    fn new(
        shared: Arc<RunShared>,
        plan: &'p Plan,
        handlers: RunHandlers<'p>,
        limits: Limits,
        announcer: Option<Announcer>,
    ) -> Self {
        let n = plan.len();
        let in_flight = InFlightSet::new();
        let features = plan.features();
        // Without priorities or the critical-path policy, tasks start in plan order.
        let cpf = limits.critical_path_first;
        let ranked = features.priorities || cpf;
        let ranks = ranked.then(|| plan.start_ranks(cpf));
        let waiting: Vec<Waiting> = (0..n)
            .map(|i| Waiting {
                dependencies: plan.dependencies(i).len() as u32,
                position: match ranks {
                    Some(ranks) => ranks[i],
                    None => plan.position(i) as u32,
                },
            })
            .collect();
        let totals = waiting.iter().map(|w| w.dependencies);
        let rules = rules::Rules::of(&shared.workflow, features, totals);
        let mut ready = limits.queue;
        if ranked {
            ready.rank(plan.start_order(cpf));
        }
        if rules.is_none() {
            for w in &waiting {
                if w.dependencies == 0 {
                    ready.insert(w.position);
                }
            }
        }
        let max_concurrent = limits.max_concurrent;
        let start_order = match ranked {
            true => plan.start_order(cpf),
            false => plan.order(),
        };
        Self {
            plan,
            shared,
            handlers,
            records: std::iter::repeat_with(TaskRecord::default)
                .take(n)
                .collect(),
            waiting,
            ready,
            start_order,
            rules,
            in_flight,
            active: 0,
            retrying: HashSet::new(),
            held: Vec::new(),
            skips: Vec::new(),
            max_concurrent,
            stopping: false,
            timeouts: features.timeouts,
            clock: Clock::start(),
            prefetch: ranked,
            announcer,
            journal: None,
            attempt_bases: None,
            extras: None,
        }
    }

    fn task(&self, index: usize) -> &Task {
        self.shared.task(index)
    }

    /// Runs what can run: ready once nothing is left to start or to wait for.
    ///
    /// Each pass hands what it announced to the publisher. While the publisher is behind,
    /// no task starts (the announcer's backpressure rule); ready tasks then wait for the
    /// flush that finds room again, which either happens here (and the run goes on at
    /// once) or wakes the run later.
    fn poll_progress(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let progress = self.advance(cx);
            let flushed = self.flush(cx);
            return match progress {
                Progress::Done => Poll::Ready(()),
                Progress::Waiting if flushed.is_ready() && self.may_start() => continue,
                Progress::Waiting => Poll::Pending,
                Progress::Yield => {
                    self.commit();
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            };
        }
    }

    /// Whether a ready task (or a held map instance) could start now but for the publisher.
    fn may_start(&mut self) -> bool {
        let ready = self.active < self.max_concurrent && self.ready.has_startable();
        !self.stopping && (ready || !self.held.is_empty())
    }

    /// Starts what may start and handles what finished, until nothing more can happen
    /// without waiting.
    fn advance(&mut self, cx: &mut Context<'_>) -> Progress {
        self.clock.now();
        let mut budget = YIELD_EVERY;
        loop {
            self.start_held_instances(cx);
            while self.active < self.max_concurrent && !self.stopping && !self.publisher_behind() {
                if self.cancelled_mid_pass() {
                    break;
                }
                let Some(rank) = self.ready.pop() else {
                    break;
                };
                let index = self.start_order[rank as usize] as usize;
                if self.prefetch {
                    self.prefetch_next(index);
                }
                let maps_queued = self.extras.as_ref().is_some_and(|e| e.maps_queued());
                if maps_queued && self.more_instances(index) {
                    // A map task's rank: one more of its instances started.
                } else if !self.retrying.is_empty() && self.retrying.remove(&(index as u32)) {
                    self.active += 1;
                    self.start_attempt(index, cx);
                } else {
                    self.start(index, cx);
                }
                budget -= 1;
                if budget == 0 {
                    return Progress::Yield;
                }
            }
            if self.in_flight.is_empty() && !self.commit() {
                // Nothing runs, so the starts above stopped for want of ready tasks, because
                // the run stops (which empties the ready set), or because of the publisher.
                return if self.may_start() {
                    Progress::Waiting
                } else {
                    Progress::Done
                };
            }
            match self.in_flight.poll_next_unpin(cx) {
                Poll::Ready(Some(Landed::Attempt(ended))) => self.attempt_landed(ended),
                Poll::Ready(Some(Landed::BackoffOver(index))) => {
                    self.backoff_over(index as usize, cx);
                    // Retries with no pause spend the budget too, so that a handler that
                    // fails at once, again and again, still lets the runtime run others.
                    budget -= 1;
                    if budget == 0 {
                        return Progress::Yield;
                    }
                }
                Poll::Ready(Some(Landed::Committed(commit))) => self.committed(commit),
                Poll::Ready(None) => unreachable!("the in-flight set is not empty"),
                // Tasks that completed in this pass are committed together; a commit
                // that resolves at once releases their dependents in the same pass.
                Poll::Pending if self.commit() => {}
                Poll::Pending => return Progress::Waiting,
            }
        }
    }

    fn start(&mut self, index: usize, cx: &mut Context<'_>) {
        // Taken first: the reference count's atomic increment waits for the processor's
        // pending writes.
        let run = Arc::clone(&self.shared);
        self.active += 1;
        // A task the cache or a map may claim is announced once that is decided.
        if !self.extras.as_ref().is_some_and(|e| e.claims(index)) {
            self.announce_started(index, self.attempt_base(index) + 1);
        }
        let started = self.clock.last();
        self.start_attempt_with(index, Some(started), run, cx);
    }

    /// [`Self::start_attempt`], with the run's shared state for the task's context; the
    /// first attempt when `first_start` says when the task started, else the one after
    /// the record's last.
    ///
    /// The task's record says the attempt began only after the handler's first poll (see
    /// [`Begun`]); nothing reads it in between.
    fn start_attempt_with(
        &mut self,
        index: usize,
        first_start: Option<SystemTime>,
        run: Arc<RunShared>,
        cx: &mut Context<'_>,
    ) {
        if self.stopping {
            self.active -= 1;
            // An instance of a map task (numbered after the plan's tasks): the slots it
            // holds are its map's, and stay counted; nothing starts any more in this run.
            if index < self.records.len() {
                self.ready.release(index);
            }
            return;
        }
        if self.extras.as_ref().is_some_and(|e| e.claims(index)) {
            if let Some(at) = first_start {
                self.mark_running(index, at);
            }
            if self.start_special(index, first_start.is_some(), cx) {
                return;
            }
        }
        let attempt = match first_start {
            Some(_) => self.attempt_base(index) + 1,
            None => self.records[index].attempts + 1,
        };
        let ctx = TaskContext {
            run,
            index: index as u32,
            attempt,
            item: None,
            attempt_cancel: None,
        };
        let task = self.task(index);
        let span =
            tracing::debug_span!("task", task_id = %task.task_id, task_type = %task.task_type);
        // A workflow without timeouts needs nothing of the task's definition here.
        let timeout = if self.timeouts { task.timeout } else { None };
        let task_type = self.plan.type_of(index);
        let handler: &'p Arc<dyn Handler> = &self.handlers.by_type[task_type];
        let spawn = self.handlers.spawn[task_type];
        let mut polled = Poll::Pending;
        let running = Attempt::start(handler, ctx, timeout, span, spawn, cx, &mut polled);
        let begun = Begun {
            attempt,
            first_start,
        };
        match running {
            Some(running) => {
                if !spawn {
                    // Its first poll ran here, for however long: what starts next reads
                    // the clock again.
                    self.clock.now();
                }
                self.note_begun(index, Some(begun));
                let watched = running.watched_by(&self.shared.cancel);
                self.in_flight.push(InFlight::Attempt(watched));
            }
            None => {
                if let Poll::Ready(outcome) = polled {
                    self.attempt_ended(index, Some(begun), outcome);
                }
            }
        }
    }
}
