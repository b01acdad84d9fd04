//! Attempt numbers across resumes: a task that runs again goes on from the attempts the
//! earlier runs made, so no new attempt ever has the number of one that already ended
//! (a system the attempts were handed to, such as a work queue that de-duplicates by
//! attempt, would take the old outcome for the new attempt). Retries are granted anew in
//! each run.

#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test

use std::sync::{Arc, Mutex};

use orch_core::{RunId, Task, TaskStatus, TriggerRule, Workflow, WorkflowResult, WorkflowStatus};
use orch_engine::{
    Durability, FileJournal, Journal, RunHandle, TaskContext, TaskError, WorkflowEngine,
};
use serde_json::json;
use tokio::sync::Notify;

/// What each attempt saw: task id, map item, attempt number, and whether it was resumed.
type Seen = Arc<Mutex<Vec<(String, Option<usize>, u32, bool)>>>;

mod common;
// On a paused clock: retry pauses pass at once.
use common::paused_runtime as runtime;

fn note(seen: &Seen, ctx: &TaskContext) {
    seen.lock().unwrap().push((
        ctx.task_id().to_string(),
        ctx.item_index(),
        ctx.attempt(),
        ctx.resumed(),
    ));
}

/// The attempts of task `id` seen so far, as (number, resumed).
fn attempts_of(seen: &Seen, id: &str) -> Vec<(u32, bool)> {
    (seen.lock().unwrap().iter())
        .filter(|(task, ..)| task == id)
        .map(|&(_, _, attempt, resumed)| (attempt, resumed))
        .collect()
}

/// Registers a `flaky` handler that fails while `fail` holds and otherwise succeeds on
/// attempt 4 or later, and a `wait` handler; both note what they see. With `block`,
/// `flaky` instead signals `started` and waits for the run's cancellation.
fn register(engine: &WorkflowEngine, seen: &Seen, fail: bool, block: Option<&Arc<Notify>>) {
    let noted = Arc::clone(seen);
    let started = block.cloned();
    engine.register_handler("flaky", move |ctx: TaskContext| {
        note(&noted, &ctx);
        let started = started.clone();
        async move {
            if let Some(started) = started {
                started.notify_one();
                ctx.cancellation().cancelled().await;
                return Err(TaskError::new("stopped"));
            }
            match fail || ctx.attempt() < 4 {
                true => Err(TaskError::new("down")),
                false => Ok(ctx.attempt()),
            }
        }
    });
    let noted = Arc::clone(seen);
    engine.register_handler("wait", move |ctx: TaskContext| {
        note(&noted, &ctx);
        async move { Ok::<_, TaskError>(ctx.attempt()) }
    });
}

/// A run of one `flaky` task `a` with one retry, which fails both its attempts.
fn failed_twice(seen: &Seen) -> (Workflow, WorkflowResult) {
    let workflow = Workflow::new("w", "W").task(Task::new("a", "flaky").retries(1));
    let engine = WorkflowEngine::new();
    register(&engine, seen, true, None);
    let first = runtime()
        .block_on(engine.execute_workflow(&workflow))
        .unwrap();
    (workflow, first)
}

#[test]
fn a_failed_task_run_again_goes_on_from_its_attempts_with_its_retries_anew() {
    let seen = Seen::default();
    let (workflow, first) = failed_twice(&seen);
    let a = first.task("a").unwrap();
    assert_eq!((a.status, a.attempts), (TaskStatus::Failed, 2));
    let engine = WorkflowEngine::new();
    register(&engine, &seen, false, None);
    let resumed = runtime()
        .block_on(engine.resume(&workflow, &first))
        .unwrap();
    let a = resumed.task("a").unwrap();
    // Attempt 3 fails and its retry, attempt 4, completes: one retry, as in each run.
    assert_eq!((a.status, a.attempts), (TaskStatus::Completed, 4));
    assert_eq!(a.result, Some(json!(4)));
    assert_eq!(
        attempts_of(&seen, "a"),
        [(1, false), (2, false), (3, false), (4, false)]
    );
}

fn workflow() -> Workflow {
    Workflow::new("w", "W")
        .task(Task::new("x", "flaky").retries(2))
        .task(
            Task::new("y", "wait")
                .depends_on(["x"])
                .trigger_rule(TriggerRule::AllDone),
        )
}

/// Runs `workflow()` three times, each run continuing the one before through `start`
/// (given the engine and the earlier run's result): `x` fails and `y`, which runs on any
/// outcome of `x`, runs after it. In the second run `x` runs again and the run is
/// cancelled while it does, before `y` starts again. The third gives both numbers after
/// the ones used before, `y` after its first run's: the count survived the run that did
/// not start it.
fn cancelled_then_resumed(
    engine: impl Fn() -> WorkflowEngine,
    start: impl Fn(&WorkflowEngine, Option<&WorkflowResult>) -> RunHandle,
) {
    let seen = Seen::default();
    let second = first_two_runs(&engine, &start, &seen);
    let (x, y) = (second.task("x").unwrap(), second.task("y").unwrap());
    assert_eq!((x.status, x.attempts), (TaskStatus::Cancelled, 4));
    // `y` never started in that run, and keeps the count of the run before.
    assert_eq!(
        (y.status, y.attempts, y.start_time),
        (TaskStatus::Cancelled, 1, None)
    );

    let third_engine = engine();
    register(&third_engine, &seen, false, None);
    let third = runtime()
        .block_on(start(&third_engine, Some(&second)))
        .unwrap();
    assert_eq!(third.status, WorkflowStatus::Completed);
    let (x, y) = (third.task("x").unwrap(), third.task("y").unwrap());
    assert_eq!((x.status, x.attempts), (TaskStatus::Completed, 5));
    assert_eq!((y.status, y.attempts), (TaskStatus::Completed, 2));
    assert_eq!(
        attempts_of(&seen, "x"),
        [(1, false), (2, false), (3, false), (4, false), (5, false)]
    );
    assert_eq!(attempts_of(&seen, "y"), [(1, false), (2, false)]);
}

/// The first two runs of [`cancelled_then_resumed`]: the second's result.
fn first_two_runs(
    engine: &impl Fn() -> WorkflowEngine,
    start: &impl Fn(&WorkflowEngine, Option<&WorkflowResult>) -> RunHandle,
    seen: &Seen,
) -> WorkflowResult {
    let first_engine = engine();
    register(&first_engine, seen, true, None);
    let first = runtime().block_on(start(&first_engine, None)).unwrap();
    assert_eq!(first.task("y").unwrap().attempts, 1);
    let blocking = engine();
    let started = Arc::new(Notify::new());
    register(&blocking, seen, true, Some(&started));
    let second = runtime().block_on(async {
        let run = start(&blocking, Some(&first));
        let token = run.cancellation_token();
        let cancel = async {
            started.notified().await;
            token.cancel();
        };
        let (second, ()) = tokio::join!(run, cancel);
        second.unwrap()
    });
    assert_eq!(second.status, WorkflowStatus::Cancelled);
    second
}

#[test]
fn resuming_from_results_numbers_attempts_after_the_earlier_runs() {
    cancelled_then_resumed(WorkflowEngine::new, |engine, previous| match previous {
        None => engine.run(&workflow()),
        Some(previous) => engine.resume(&workflow(), previous),
    });
}

/// An engine journaling in `dir`, as a process started anew would have.
fn journaled(dir: &std::path::Path) -> WorkflowEngine {
    let journal = FileJournal::new(dir).unwrap();
    (WorkflowEngine::builder().journal(journal, Durability::Process))
        .build()
        .unwrap()
}

/// A run cancelled while `x` ran: `y`, which waits for `x`, never started, so a resume
/// that runs `x` again gives `y` its first attempt, number 1, and not as one that may
/// have run before (nor as one that read an output of `x` made before): nothing could
/// have started it.
#[test]
fn a_task_that_could_not_have_started_keeps_its_first_number_when_its_dependency_runs_again() {
    let seen = Seen::default();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("x", "flaky").retries(5))
        .task(Task::new("y", "wait").depends_on(["x"]));
    let blocking = WorkflowEngine::new();
    let started = Arc::new(Notify::new());
    register(&blocking, &seen, false, Some(&started));
    let first = runtime().block_on(async {
        let run = blocking.run(&workflow);
        let token = run.cancellation_token();
        let cancel = async {
            started.notified().await;
            token.cancel();
        };
        let (first, ()) = tokio::join!(run, cancel);
        first.unwrap()
    });
    let y = first.task("y").unwrap();
    assert_eq!((y.status, y.attempts), (TaskStatus::Cancelled, 0));
    let engine = WorkflowEngine::new();
    register(&engine, &seen, false, None);
    let resumed = runtime()
        .block_on(engine.resume(&workflow, &first))
        .unwrap();
    assert_eq!(resumed.status, WorkflowStatus::Completed);
    assert_eq!(attempts_of(&seen, "y"), [(1, false)]);
}

/// The runs' events name the attempts too: a resumed task's start names its number, and
/// a task that did not start in its run (`y`, cancelled in the second) names none.
#[test]
fn events_name_the_attempts_of_resumed_runs() {
    use futures_util::FutureExt;
    use orch_core::{EngineEvent, EngineEventKind};

    let bus: orch_events::EventBus<EngineEvent> = orch_events::EventBus::new();
    let mut events = bus.subscribe("workflow.>").unwrap();
    let engine = || {
        (WorkflowEngine::builder().event_bus(bus.clone()))
            .build()
            .unwrap()
    };
    cancelled_then_resumed(engine, |engine, previous| match previous {
        None => engine.run(&workflow()),
        Some(previous) => engine.resume(&workflow(), previous),
    });
    let mut seen = Vec::new();
    while let Some(Some(event)) = events.recv_event().now_or_never() {
        let event = event.payload();
        if let Some(task) = &event.task_id
            && matches!(
                event.kind,
                EngineEventKind::TaskStarted | EngineEventKind::TaskCancelled
            )
        {
            seen.push((task.to_string(), event.kind, event.attempt));
        }
    }
    use EngineEventKind::{TaskCancelled, TaskStarted};
    let of = |id: &str| -> Vec<(EngineEventKind, u32)> {
        (seen.iter())
            .filter(|(task, ..)| task == id)
            .map(|&(_, kind, attempt)| (kind, attempt))
            .collect()
    };
    assert_eq!(
        of("x"),
        [
            (TaskStarted, 1),
            (TaskStarted, 4),
            (TaskCancelled, 4),
            (TaskStarted, 5)
        ]
    );
    assert_eq!(
        of("y"),
        [(TaskStarted, 1), (TaskCancelled, 0), (TaskStarted, 2)]
    );
}

#[test]
fn a_journal_keeps_the_attempt_count_of_tasks_it_resets() {
    let dir = tempfile::tempdir().unwrap();
    let run_id = RunId::parse("numbers").unwrap();
    let engine = || journaled(dir.path());
    cancelled_then_resumed(engine, |engine, _| {
        engine.run_durable(&workflow(), run_id.clone())
    });
    // The journal holds the third run's outcome, with the counts that went on.
    let loaded = runtime()
        .block_on(FileJournal::new(dir.path()).unwrap().load(&run_id))
        .unwrap()
        .unwrap();
    assert_eq!(loaded.task("y").unwrap().attempts, 2);
    assert_eq!(loaded.task("x").unwrap().attempts, 5);
    // Each resume reset the outcomes it did not keep (`y`'s completion, then its
    // cancellation; `x`'s failure, then its cancellation) with pending records that keep
    // their counts, which a resume after a crash (no record after them) would go on from.
    let text = std::fs::read_to_string(dir.path().join("numbers.jsonl")).unwrap();
    let resets = |id: &str| -> Vec<serde_json::Value> {
        (text.lines())
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|line| line["task_id"] == id && line["status"] == "pending")
            .map(|line| line["attempt"].clone())
            .collect()
    };
    assert_eq!(resets("y"), [1, 1], "{text}");
    assert_eq!(resets("x"), [3, 4], "{text}");
}

/// A run that resets a task's completion and then stops before recording anything else
/// (its journal cut after the reset, as a crash would leave it): the next resume goes on
/// from the count the reset kept. The cut run may have started the task's next attempt,
/// on an outcome of `x` it did not record; `x` runs again, so that attempt's number is
/// left to it and the task's attempt is a new one, not resumed.
#[test]
fn a_resume_after_a_crash_goes_on_from_the_count_a_reset_kept() {
    let dir = tempfile::tempdir().unwrap();
    let run_id = RunId::parse("crashed").unwrap();
    let engine = || journaled(dir.path());
    let seen = Seen::default();
    let start = |engine: &WorkflowEngine, _: Option<&WorkflowResult>| {
        engine.run_durable(&workflow(), run_id.clone())
    };
    first_two_runs(&engine, &start, &seen);
    let path = dir.path().join("crashed.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let reset = (text.lines())
        .position(|line| {
            line.contains(r#""task_id":"y""#) && line.contains(r#""status":"pending""#)
        })
        .unwrap();
    let cut: String = text
        .lines()
        .take(reset + 1)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, cut).unwrap();

    let third_engine = engine();
    register(&third_engine, &seen, false, None);
    let third = runtime()
        .block_on(third_engine.run_durable(&workflow(), run_id.clone()))
        .unwrap();
    assert_eq!(third.status, WorkflowStatus::Completed);
    assert_eq!(attempts_of(&seen, "y"), [(1, false), (3, false)]);
    assert_eq!(third.task("y").unwrap().attempts, 3);
}

/// Task `t` after `d`, which runs on any outcome of `c`, a `flaky` task that fails: a
/// resume makes `d` again. Runs durably in a directory of its own, as run `id`.
struct AfterAFailure {
    dir: tempfile::TempDir,
    run_id: RunId,
    workflow: Workflow,
    seen: Seen,
}

impl AfterAFailure {
    fn new(id: &str, t: Task) -> Self {
        let workflow = Workflow::new("w", "W")
            .task(Task::new("c", "flaky"))
            .task(
                Task::new("d", "wait")
                    .depends_on(["c"])
                    .trigger_rule(TriggerRule::AllDone),
            )
            .task(t.depends_on(["d"]));
        Self {
            dir: tempfile::tempdir().unwrap(),
            run_id: RunId::parse(id).unwrap(),
            workflow,
            seen: Seen::default(),
        }
    }

    /// Runs (or resumes) the run to its end, as a process started anew: `t`'s status.
    fn run(&self) -> TaskStatus {
        let engine = journaled(self.dir.path());
        register(&engine, &self.seen, true, None);
        let run = engine.run_durable(&self.workflow, self.run_id.clone());
        runtime().block_on(run).unwrap().task("t").unwrap().status
    }

    /// Cuts the journal after its last line for which `keep_to` holds, as a crash
    /// there would leave it.
    fn cut_after(&self, keep_to: impl Fn(&serde_json::Value) -> bool) {
        let path = self.dir.path().join(format!("{}.jsonl", self.run_id));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let last = (lines.iter())
            .rposition(|line| keep_to(&serde_json::from_str(line).unwrap()))
            .unwrap();
        let cut: String = lines[..=last].iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(path, cut).unwrap();
    }
}

/// Two crashes in a row. The first run stops while `t` runs on `d`'s output (no record
/// of `t`); the first resume makes `d` again (it ran on the failure of `c`), so it
/// numbers `t` past that attempt, and stops right after writing its resets. The second
/// resume must not take up `t`'s first attempt, which read the `d` of the first run.
#[test]
fn a_second_resume_does_not_take_up_an_attempt_the_first_numbered_past() {
    let run = AfterAFailure::new("twice", Task::new("t", "wait"));
    assert_eq!(run.run(), TaskStatus::Completed);
    run.cut_after(|line| line["task_id"] == "d");
    assert_eq!(run.run(), TaskStatus::Completed);
    run.cut_after(|line| line["task_id"] == "d" && line["status"] == "pending");
    assert_eq!(run.run(), TaskStatus::Completed);
    let t = attempts_of(&run.seen, "t");
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(t[..2], [(1, false), (2, false)]);
    assert!(t[2].0 >= 2, "the first run's attempt taken up: {t:?}");
}

/// Two crashes in a row, `t` failed before: the first resume runs `t` again on a `d`
/// made again, and stops during that attempt (its failure before still the record in
/// force, unless the resume noted its count); the second resume, making `d` again once
/// more, must number `t` past that attempt too.
#[test]
fn a_second_resume_numbers_a_failed_task_past_the_first_resumes_attempt() {
    let run = AfterAFailure::new("failed", Task::new("t", "flaky"));
    assert_eq!(run.run(), TaskStatus::Failed);
    assert_eq!(run.run(), TaskStatus::Failed);
    run.cut_after(|line| line["task_id"] == "d");
    assert_eq!(run.run(), TaskStatus::Failed);
    assert_eq!(
        attempts_of(&run.seen, "t"),
        [(1, false), (2, false), (3, false)]
    );
}

/// A run stops while `t` runs (no record of it); the resume runs `t` with its
/// configuration changed, so the attempt that was under way, on the old one, is not
/// taken up: `t`'s attempt is a new one, numbered past every attempt the run may have
/// made. A task the resume adds has no attempt to take up either. `u`, changed too but
/// waiting for `t`, cannot have started: its first attempt is number 1.
#[test]
fn a_task_whose_definition_changed_does_not_take_up_the_attempt_under_way() {
    let task = |id: &str, version: u32| {
        Task::new(id, "wait")
            .retries(1)
            .config(json!({ "v": version }))
    };
    let workflow = |version: u32| {
        Workflow::new("w", "W")
            .task(task("t", version))
            .task(task("u", version).depends_on(["t"]))
    };
    let mut run = AfterAFailure::new("redefined", task("t", 1));
    run.workflow = workflow(1);
    assert_eq!(run.run(), TaskStatus::Completed);
    run.cut_after(|line| line["kind"] == "head");
    run.workflow = workflow(2).task(Task::new("n", "wait"));
    assert_eq!(run.run(), TaskStatus::Completed);
    assert_eq!(attempts_of(&run.seen, "t"), [(1, false), (3, false)]);
    assert_eq!(attempts_of(&run.seen, "u"), [(1, false), (1, false)]);
    assert_eq!(attempts_of(&run.seen, "n"), [(1, false)]);
}

/// A run stops while `a` runs (no record of it): `a`'s attempt may have been under way
/// and is taken up, but `t`, which waits for `a`, cannot have started, so its attempt is
/// not resumed.
#[test]
fn a_task_that_could_not_have_started_is_not_resumed() {
    let mut run = AfterAFailure::new("not-started", Task::new("t", "wait"));
    run.workflow = Workflow::new("w", "W")
        .task(Task::new("a", "wait"))
        .task(Task::new("t", "wait").depends_on(["a"]));
    assert_eq!(run.run(), TaskStatus::Completed);
    run.cut_after(|line| line["kind"] == "head");
    assert_eq!(run.run(), TaskStatus::Completed);
    assert_eq!(attempts_of(&run.seen, "a"), [(1, false), (1, true)]);
    assert_eq!(attempts_of(&run.seen, "t"), [(1, false), (1, false)]);
}

/// A run stops while `t` retries on `d`'s output (retries are not recorded); the resume
/// makes `d` again, so `t`'s attempts are new ones, numbered past every attempt the
/// run may have made, not only past its first.
#[test]
fn a_task_whose_input_is_made_again_is_numbered_past_its_unrecorded_retries() {
    let run = AfterAFailure::new("retried", Task::new("t", "flaky").retries(2));
    assert_eq!(run.run(), TaskStatus::Failed);
    run.cut_after(|line| line["task_id"] == "d");
    assert_eq!(run.run(), TaskStatus::Failed);
    assert_eq!(
        attempts_of(&run.seen, "t"),
        [
            (1, false),
            (2, false),
            (3, false),
            (4, false),
            (5, false),
            (6, false)
        ]
    );
}

#[test]
fn a_map_run_again_numbers_its_instances_after_its_earlier_attempts() {
    let seen = Seen::default();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(Task::new("m", "item").map_over("list").retries(2));
    // Instance 1 fails its attempts below `until` (all of them in the first run).
    let engine = |until: u32| {
        let engine = WorkflowEngine::new();
        engine.register_handler("list", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(json!([10, 20]))
        });
        let noted = Arc::clone(&seen);
        engine.register_handler("item", move |ctx: TaskContext| {
            note(&noted, &ctx);
            async move {
                match ctx.item_index() == Some(1) && ctx.attempt() < until {
                    true => Err(TaskError::new("down")),
                    false => ctx.map_item::<u32>(),
                }
            }
        });
        engine
    };
    let first = runtime()
        .block_on(engine(u32::MAX).execute_workflow(&workflow))
        .unwrap();
    let m = first.task("m").unwrap();
    assert_eq!((m.status, m.attempts), (TaskStatus::Failed, 3));
    // Instance 1 goes on from the highest, 3, fails once more and its retry completes:
    // its retries are granted anew. Instance 0 completed on the same list: it is
    // restored, not run again.
    let second = runtime()
        .block_on(engine(5).resume(&workflow, &first))
        .unwrap();
    let m = second.task("m").unwrap();
    assert_eq!((m.status, m.attempts), (TaskStatus::Completed, 5));
    // An instance's record counts the attempts it made in the run that ended it.
    let made = |id: &str| second.task(id).map(|r| (r.status, r.attempts));
    assert_eq!(made("m[0]"), Some((TaskStatus::Completed, 1)));
    assert_eq!(made("m[1]"), Some((TaskStatus::Completed, 2)));
    assert_eq!(m.result, Some(json!([10, 20])));
    let mut instances: Vec<(Option<usize>, u32)> = (seen.lock().unwrap().iter())
        .map(|&(_, item, attempt, _)| (item, attempt))
        .collect();
    instances.sort();
    assert_eq!(
        instances,
        [
            (Some(0), 1),
            (Some(1), 1),
            (Some(1), 2),
            (Some(1), 3),
            (Some(1), 4),
            (Some(1), 5)
        ]
    );
}

/// A run cancelled while a task waits to retry: the failed attempt is over, so the
/// resumed run's first attempt has the next number, not the failed one's.
#[test]
fn a_task_cancelled_between_attempts_goes_on_after_the_failed_one() {
    let seen = Seen::default();
    let workflow = Workflow::new("w", "W").task(Task::new("a", "flaky").retries(1).backoff(
        orch_core::Backoff {
            initial: std::time::Duration::from_secs(60),
            multiplier: 1.0,
            max: std::time::Duration::from_secs(60),
            jitter: false,
        },
    ));
    let engine = WorkflowEngine::new();
    register(&engine, &seen, true, None);
    let runtime = runtime();
    let first = runtime.block_on(async {
        let run = engine.run(&workflow);
        let token = run.cancellation_token();
        let cancel = async {
            // Within the minute's pause after attempt 1 failed.
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            token.cancel();
        };
        let (first, ()) = tokio::join!(run, cancel);
        first.unwrap()
    });
    let a = first.task("a").unwrap();
    assert_eq!((a.status, a.attempts), (TaskStatus::Cancelled, 1));
    let engine = WorkflowEngine::new();
    register(&engine, &seen, true, None);
    let resumed = runtime.block_on(engine.resume(&workflow, &first)).unwrap();
    assert_eq!(resumed.task("a").unwrap().attempts, 3);
    assert_eq!(
        attempts_of(&seen, "a"),
        [(1, false), (2, false), (3, false)]
    );
}

/// A result to resume from may say anything: a count of attempts no run reaches does not
/// overflow the numbers after it (the count is cut to half the range).
#[test]
fn an_absurd_attempt_count_to_resume_from_does_not_overflow() {
    let seen = Seen::default();
    let (workflow, first) = failed_twice(&seen);
    let engine = WorkflowEngine::new();
    register(&engine, &seen, true, None);
    let mut record = first.task("a").unwrap().clone();
    record.attempts = u32::MAX;
    let first = WorkflowResult {
        tasks: orch_core::TaskRecords::for_workflow(&workflow, vec![record]).unwrap(),
        ..first
    };
    let resumed = runtime()
        .block_on(engine.resume(&workflow, &first))
        .unwrap();
    let a = resumed.task("a").unwrap();
    assert_eq!(
        (a.status, a.attempts),
        (TaskStatus::Failed, u32::MAX / 2 + 2)
    );
}

/// What the handlers of a run saw: per task, each attempt's number.
type Calls = Arc<Mutex<Vec<(usize, u32)>>>;

/// A random workflow (each task depends on up to three earlier ones, and has up to two
/// retries) whose attempt `a` of task `i` fails when `fails(i, a)`; run once, then
/// resumed `resumes` times, each from the result before.
#[derive(Clone, Debug)]
struct Rounds {
    deps: Vec<Vec<usize>>,
    retries: Vec<u32>,
    /// Seeds for which attempts fail.
    seed: u64,
    resumes: usize,
}

fn rounds() -> impl proptest::strategy::Strategy<Value = Rounds> {
    use proptest::prelude::*;
    (1usize..12)
        .prop_flat_map(|n| {
            let deps = (0..n)
                .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3)))
                .collect::<Vec<_>>();
            let retries = proptest::collection::vec(0u32..3, n);
            (deps, retries, any::<u64>(), 1usize..4)
        })
        .prop_map(|(deps, retries, seed, resumes)| Rounds {
            deps,
            retries,
            seed,
            resumes,
        })
}

/// Whether attempt `attempt` of task `i` fails: about half of them, fixed by `seed`.
fn fails(seed: u64, i: usize, attempt: u32) -> bool {
    let mut z = seed ^ ((i as u64) << 32) ^ u64::from(attempt);
    z = (z ^ (z >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (z >> 40).is_multiple_of(2)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Across a run and its resumes, no attempt number of a task is used twice, and each
    /// task's record counts every attempt its handler made in all the rounds.
    #[test]
    fn attempt_numbers_are_never_given_twice_across_resumes(case in rounds()) {
        let workflow = (0..case.deps.len()).fold(Workflow::new("w", "W"), |w, i| {
            let deps = case.deps[i].iter().map(|d| format!("t{d}"));
            w.task(Task::new(format!("t{i}"), "step").depends_on(deps).retries(case.retries[i]))
        });
        let calls = Calls::default();
        let engine = WorkflowEngine::new();
        let (noted, seed) = (Arc::clone(&calls), case.seed);
        engine.register_handler("step", move |ctx: TaskContext| {
            let i: usize = ctx.task_id().as_str()[1..].parse().unwrap();
            noted.lock().unwrap().push((i, ctx.attempt()));
            async move {
                match fails(seed, i, ctx.attempt()) {
                    true => Err(TaskError::new("down")),
                    false => Ok(ctx.attempt()),
                }
            }
        });
        let runtime = runtime();
        let mut result = runtime.block_on(engine.execute_workflow(&workflow)).unwrap();
        for _ in 0..case.resumes {
            result = runtime.block_on(engine.resume(&workflow, &result)).unwrap();
        }
        let calls = calls.lock().unwrap();
        let mut seen = std::collections::HashSet::new();
        for &(i, attempt) in calls.iter() {
            proptest::prop_assert!(seen.insert((i, attempt)), "t{i} attempt {attempt} twice: {calls:?}");
        }
        for i in 0..case.deps.len() {
            let made = calls.iter().filter(|(t, _)| *t == i).count() as u32;
            let record = result.task(&format!("t{i}")).unwrap();
            proptest::prop_assert_eq!(record.attempts, made, "t{}", i);
        }
    }
}
