//! Map tasks across resumes: each instance is journaled as it completes, so a map that a
//! cancellation or a failure cut short keeps its completed instances when the run goes
//! on, and runs only the rest; instances computed on inputs that have since changed run
//! again.

#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use orch_core::{RunId, Task, TaskStatus, TriggerRule, Workflow, WorkflowResult, WorkflowStatus};
use orch_engine::{Durability, FileJournal, Journal, TaskContext, TaskError, WorkflowEngine};
use serde_json::{Value, json};

/// What the instances of map `m` do, and how often each item ran.
#[derive(Default)]
struct Script {
    /// Per item, how many times its handler was called.
    calls: HashMap<u64, usize>,
    /// The item whose handler cancels the run (and returns an error) when called.
    cancel_at: Option<u64>,
    /// The item whose handler never returns (the run is then dropped, as a crash
    /// would stop it), and what it tells when it is called.
    hang_at: Option<u64>,
    hung: Arc<tokio::sync::Notify>,
    /// The item whose handler fails for good.
    fail_at: Option<u64>,
    /// Whether the `work` task fails.
    work_fails: bool,
}

type Shared = Arc<Mutex<Script>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An engine journaling in `dir` (a new one each time, as a restarted process would
/// make), one task at a time, so that instances run in order. `list` returns the items
/// 0..6; each instance of `m` returns its item squared, and whether `work` completed.
fn engine(dir: &Path, script: &Shared) -> WorkflowEngine {
    let journal = FileJournal::new(dir).unwrap();
    let engine = WorkflowEngine::builder()
        .max_concurrent(1)
        .journal(journal, Durability::Process)
        .build()
        .unwrap();
    engine.register_handler("list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(json!([0, 1, 2, 3, 4, 5]))
    });
    let s = Arc::clone(script);
    engine.register_handler("work", move |_ctx: TaskContext| {
        let fails = s.lock().unwrap().work_fails;
        async move {
            match fails {
                true => Err(TaskError::permanent("work failed")),
                false => Ok(json!("worked")),
            }
        }
    });
    let s = Arc::clone(script);
    engine.register_handler("square", move |ctx: TaskContext| {
        let item = ctx.map_item::<u64>();
        let worked = ctx.input_json("work").is_ok();
        let s = Arc::clone(&s);
        async move {
            let item = item?;
            let hangs = {
                let mut script = s.lock().unwrap();
                *script.calls.entry(item).or_default() += 1;
                script.hang_at == Some(item)
            };
            if hangs {
                s.lock().unwrap().hung.notify_one();
                std::future::pending::<()>().await;
            }
            let script = s.lock().unwrap();
            if script.cancel_at == Some(item) {
                ctx.cancellation().cancel();
                return Err(TaskError::new("stopped"));
            }
            if script.fail_at == Some(item) {
                return Err(TaskError::permanent("bad item"));
            }
            Ok(json!([item * item, worked]))
        }
    });
    engine
}

fn map_workflow() -> Workflow {
    Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(Task::new("m", "square").map_over("list"))
}

fn run(dir: &Path, script: &Shared, workflow: &Workflow, run_id: &RunId) -> WorkflowResult {
    runtime()
        .block_on(engine(dir, script).run_durable(workflow, run_id.clone()))
        .unwrap()
}

/// Starts the run and drops it, with no end recorded, once it reached the instance that
/// hangs (in the same poll, the run committed what ended before it).
fn crash(dir: &Path, script: &Shared, workflow: &Workflow, run_id: &RunId) {
    let handle = engine(dir, script).run_durable(workflow, run_id.clone());
    let hung = Arc::clone(&script.lock().unwrap().hung);
    runtime().block_on(async {
        tokio::select! {
            biased;
            ended = handle => panic!("the run ended before it hung: {ended:?}"),
            () = hung.notified() => {}
        }
    });
}

/// The run as the journal in `dir` holds it.
fn recorded(dir: &Path, workflow: &Workflow, run_id: &RunId) -> WorkflowResult {
    let journal = FileJournal::new(dir).unwrap();
    let loaded = runtime().block_on(journal.load(run_id)).unwrap().unwrap();
    loaded.to_result(workflow).unwrap()
}

/// Per item 0..6, how many times its handler was called so far.
fn calls(script: &Shared) -> Vec<usize> {
    let script = script.lock().unwrap();
    (0..6)
        .map(|i| script.calls.get(&i).copied().unwrap_or(0))
        .collect()
}

/// The statuses of `m`'s instances in `result`, `None` for one it has no record of.
fn instance_statuses(result: &WorkflowResult) -> Vec<Option<TaskStatus>> {
    (0..6)
        .map(|i| result.task(&format!("m[{i}]")).map(|r| r.status))
        .collect()
}

/// The list `m` completes with when every instance ran with `work` `worked`.
fn squares(worked: bool) -> Value {
    json!(
        (0..6u64)
            .map(|i| json!([i * i, worked]))
            .collect::<Vec<_>>()
    )
}

#[test]
fn a_cancelled_map_keeps_its_completed_instances_when_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let run_id = RunId::parse("cancelled-map").unwrap();
    let script = Shared::default();
    script.lock().unwrap().cancel_at = Some(3);
    let workflow = map_workflow();
    let first = run(dir.path(), &script, &workflow, &run_id);
    assert_eq!(first.status, WorkflowStatus::Cancelled);
    assert_eq!(calls(&script), [1, 1, 1, 1, 0, 0]);

    // The journal holds the instances that completed, though their map did not.
    let recorded = recorded(dir.path(), &workflow, &run_id);
    use TaskStatus::Completed;
    let completed = Some(Completed);
    assert_eq!(
        instance_statuses(&recorded),
        [completed, completed, completed, None, None, None]
    );

    script.lock().unwrap().cancel_at = None;
    let second = run(dir.path(), &script, &workflow, &run_id);
    assert_eq!(second.status, WorkflowStatus::Completed);
    assert_eq!(calls(&script), [1, 1, 1, 2, 1, 1], "only the rest ran");
    assert_eq!(second.task("m").unwrap().result, Some(squares(false)));
    assert_eq!(instance_statuses(&second), [completed; 6]);
    let restored = second.task("m[0]").unwrap();
    assert_eq!(
        restored,
        first.task("m[0]").unwrap(),
        "restored as recorded"
    );

    // Once the map completed, a resume restores it whole.
    let third = run(dir.path(), &script, &workflow, &run_id);
    assert_eq!(calls(&script), [1, 1, 1, 2, 1, 1]);
    assert_eq!(third.task("m").unwrap().result, Some(squares(false)));
    assert_eq!(instance_statuses(&third), [completed; 6]);
}

#[test]
fn a_failed_map_runs_again_only_its_instances_that_did_not_complete() {
    let dir = tempfile::tempdir().unwrap();
    let run_id = RunId::parse("failed-map").unwrap();
    let script = Shared::default();
    script.lock().unwrap().fail_at = Some(2);
    let workflow = map_workflow();
    let first = run(dir.path(), &script, &workflow, &run_id);
    assert_eq!(first.status, WorkflowStatus::Failed);
    use TaskStatus::{Completed, Failed, Skipped};
    let statuses = [Completed, Completed, Failed, Skipped, Skipped, Skipped].map(Some);
    assert_eq!(instance_statuses(&first), statuses);
    assert_eq!(calls(&script), [1, 1, 1, 0, 0, 0]);

    // A resume from the run's result, without the journal, keeps them too.
    script.lock().unwrap().fail_at = None;
    let engine = engine(tempfile::tempdir().unwrap().path(), &script);
    let resumed = runtime()
        .block_on(engine.resume(&workflow, &first))
        .unwrap();
    assert_eq!(resumed.task("m").unwrap().result, Some(squares(false)));
    assert_eq!(calls(&script), [1, 1, 2, 1, 1, 1]);

    let durable = run(dir.path(), &script, &workflow, &run_id);
    assert_eq!(durable.status, WorkflowStatus::Completed);
    assert_eq!(durable.task("m").unwrap().result, Some(squares(false)));
    assert_eq!(
        calls(&script),
        [1, 1, 3, 2, 2, 2],
        "0 and 1 did not run again"
    );
}

/// `m` also reads `work`, which failed when its first instances completed: once `work`
/// runs again, those instances' records no longer stand, in this resume or in any later
/// one, even when this one stops before `m` runs them again.
#[test]
fn instances_that_read_an_input_made_again_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let run_id = RunId::parse("input-again").unwrap();
    let script = Shared::default();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("work", "work"))
        .task(Task::new("list", "list"))
        .task(
            Task::new("m", "square")
                .map_over("list")
                .depends_on(["work"])
                .trigger_rule(TriggerRule::AllDone),
        );
    {
        let mut script = script.lock().unwrap();
        script.work_fails = true;
        script.hang_at = Some(2);
    }
    crash(dir.path(), &script, &workflow, &run_id);
    assert_eq!(calls(&script), [1, 1, 1, 0, 0, 0]);
    let recorded = recorded(dir.path(), &workflow, &run_id);
    let result = |id: &str| recorded.task(id).and_then(|r| r.result.clone());
    assert_eq!(
        [result("m[0]"), result("m[1]"), result("m[2]")],
        [Some(json!([0, false])), Some(json!([1, false])), None],
        "the instances that completed before the crash are in the journal"
    );

    // `work` completes now, and the process stops again at `m`'s first instance.
    {
        let mut script = script.lock().unwrap();
        script.work_fails = false;
        script.hang_at = Some(0);
    }
    crash(dir.path(), &script, &workflow, &run_id);
    assert_eq!(calls(&script), [2, 1, 1, 0, 0, 0]);

    script.lock().unwrap().hang_at = None;
    let third = run(dir.path(), &script, &workflow, &run_id);
    assert_eq!(third.status, WorkflowStatus::Completed);
    assert_eq!(third.task("m").unwrap().result, Some(squares(true)));
    assert_eq!(calls(&script), [3, 2, 2, 1, 1, 1]);
}

/// A map whose definition changed since its instances completed runs every instance
/// again: what they completed on may no longer be what it asks for.
#[test]
fn a_changed_map_runs_every_instance_again() {
    let dir = tempfile::tempdir().unwrap();
    let run_id = RunId::parse("changed-map").unwrap();
    let script = Shared::default();
    script.lock().unwrap().cancel_at = Some(3);
    let first = run(dir.path(), &script, &map_workflow(), &run_id);
    assert_eq!(first.status, WorkflowStatus::Cancelled);
    assert_eq!(calls(&script), [1, 1, 1, 1, 0, 0]);

    script.lock().unwrap().cancel_at = None;
    let changed = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(
            Task::new("m", "square")
                .map_over("list")
                .config(json!({ "v": 2 })),
        );
    let second = run(dir.path(), &script, &changed, &run_id);
    assert_eq!(second.status, WorkflowStatus::Completed);
    assert_eq!(
        calls(&script),
        [2, 2, 2, 2, 1, 1],
        "every instance ran again"
    );
}
