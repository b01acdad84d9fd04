//! Durable runs: `run_durable` records a run in a journal and continues it by its id,
//! running only what did not complete; a changed workflow is refused; dependents start
//! only once what they depend on is committed; outputs left out of the journal run again.

#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use orch_core::{
    EngineEvent, EngineEventKind, RunId, Task, TaskId, TaskRecord, TaskStatus, Workflow,
    WorkflowResult, WorkflowStatus,
};
use orch_engine::journal::{JournalError, JournalFuture, RunFilter, RunWriter};
use orch_engine::{
    Durability, FileJournal, Journal, Output, RunError, Shared, TaskContext, TaskError,
    WorkflowEngine,
};
use orch_events::EventBus;
use serde_json::json;

mod common;

/// How many times each task's handler ran.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<String, usize>>>);

impl Calls {
    fn note(&self, ctx: &TaskContext) {
        *self
            .0
            .lock()
            .unwrap()
            .entry(ctx.task_id().to_string())
            .or_default() += 1;
    }

    fn of(&self, id: &str) -> usize {
        self.0.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An engine journaling in `dir` (a fresh journal each time, as a restarted process
/// would have), whose `step` handlers count their calls, whose `flaky` handler fails
/// unless `flaky_succeeds` and whose `route` branch task chooses `small`.
fn engine(
    dir: &Path,
    calls: &Calls,
    flaky_succeeds: bool,
    bus: Option<EventBus<EngineEvent>>,
) -> WorkflowEngine {
    let journal = FileJournal::new(dir).unwrap();
    let mut builder = WorkflowEngine::builder()
        .max_concurrent(2)
        .journal(journal, Durability::Power);
    if let Some(bus) = bus {
        builder = builder.event_bus(bus);
    }
    let engine = builder.build().unwrap();
    let c = calls.clone();
    engine.register_handler("step", move |ctx: TaskContext| {
        c.note(&ctx);
        let sum: i64 = ctx
            .dependency_results()
            .filter_map(|(_, v)| v.as_i64())
            .sum();
        async move { Ok::<_, TaskError>(sum + 1) }
    });
    let c = calls.clone();
    engine.register_handler("flaky", move |ctx: TaskContext| {
        c.note(&ctx);
        async move {
            if flaky_succeeds {
                Ok(json!("finally"))
            } else {
                Err(TaskError::permanent("not yet"))
            }
        }
    });
    // A branch task that chooses its dependent `small` only.
    let c = calls.clone();
    engine.register_handler("route", move |ctx: TaskContext| {
        c.note(&ctx);
        async move {
            ctx.choose_branches(["small"])?;
            Ok::<_, TaskError>(json!("small"))
        }
    });
    engine
}

fn pipeline() -> Workflow {
    Workflow::new("w", "W")
        .task(Task::new("a", "step"))
        .task(Task::new("b", "step").depends_on(["a"]))
        .task(Task::new("c", "flaky").depends_on(["b"]))
        .task(Task::new("d", "step"))
}

#[test]
fn a_durable_run_continues_where_its_journal_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("nightly").unwrap();
    let workflow = pipeline();
    let first = runtime()
        .block_on(engine(dir.path(), &calls, false, None).run_durable(&workflow, run_id.clone()))
        .unwrap();
    assert_eq!(first.status, WorkflowStatus::Failed);

    let (second, events) = runtime().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let mut subscription = bus.subscribe("workflow.>").unwrap();
        let engine = engine(dir.path(), &calls, true, Some(bus.clone()));
        let result = engine.run_durable(&workflow, run_id.clone()).await.unwrap();
        bus.close().await;
        let mut events = Vec::new();
        while let Some(event) = subscription.recv_event().await {
            events.push((event.payload().task_id.clone(), event.payload().kind));
        }
        (result, events)
    });
    assert_eq!(second.status, WorkflowStatus::Completed);
    assert_eq!(second.run_id, run_id);
    for (id, runs) in [("a", 1), ("b", 1), ("c", 2), ("d", 1)] {
        assert_eq!(calls.of(id), runs, "runs of `{id}`");
    }
    // The restored results are the ones recorded, and dependents read them.
    assert_eq!(second.task("b").unwrap().result, Some(json!(2)));
    assert_eq!(second.task("c").unwrap().result, Some(json!("finally")));
    let restored: Vec<_> = events
        .iter()
        .filter(|(_, kind)| *kind == EngineEventKind::TaskRestored)
        .filter_map(|(id, _)| id.as_ref().map(|id| id.to_string()))
        .collect();
    assert_eq!(restored, ["a", "b", "d"]);

    // The journal now holds the completed run; a third start runs nothing.
    let loaded = journal_of(dir.path(), &run_id);
    assert_eq!(loaded.status(), orch_engine::journal::RunStatus::Completed);
    let third = runtime()
        .block_on(engine(dir.path(), &calls, true, None).run_durable(&workflow, run_id))
        .unwrap();
    assert_eq!(third.status, WorkflowStatus::Completed);
    assert_eq!(calls.of("c"), 2);
}

/// A journal holding run `r` of [`pipeline`], which failed at `c`, and its calls.
fn pipeline_failed_at_c() -> (tempfile::TempDir, Calls, RunId) {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("r").unwrap();
    runtime()
        .block_on(engine(dir.path(), &calls, false, None).run_durable(&pipeline(), run_id.clone()))
        .unwrap();
    (dir, calls, run_id)
}

#[test]
fn a_workflow_changed_in_completed_tasks_is_refused_saying_what_changed() {
    let (dir, calls, run_id) = pipeline_failed_at_c();
    let changed = Workflow::new("w", "W")
        .task(Task::new("a", "step").config(json!({"rows": 10})))
        .task(Task::new("b", "step").depends_on(["a"]))
        .task(Task::new("c", "flaky").depends_on(["b"]))
        .task(Task::new("d", "step"));
    let error = runtime()
        .block_on(engine(dir.path(), &calls, true, None).run_durable(&changed, run_id))
        .unwrap_err();
    let RunError::Journal(failure) = &error else {
        panic!("a journal refusal, not {error:?}");
    };
    assert!(
        matches!(failure.error(), JournalError::WorkflowChanged { .. }),
        "{error}"
    );
    assert!(!failure.while_running(), "refused when opened");
    assert!(
        error.to_string().contains("have changed since (`a`)"),
        "{error}"
    );
    assert_eq!(calls.of("a"), 1, "nothing ran");
    assert_eq!(calls.of("c"), 1, "nothing ran");
}

/// A completed task's trigger rule decides whether it runs at all, so a journal recorded
/// under another rule no longer stands for it; its priority does not count.
#[test]
fn a_changed_trigger_rule_of_a_completed_task_is_refused_but_a_new_priority_is_not() {
    let (dir, calls, run_id) = pipeline_failed_at_c();
    let ruled = Workflow::new("w", "W")
        .task(Task::new("a", "step"))
        .task(
            Task::new("b", "step")
                .depends_on(["a"])
                .trigger_rule(orch_core::TriggerRule::AllDone),
        )
        .task(Task::new("c", "flaky").depends_on(["b"]))
        .task(Task::new("d", "step"));
    let error = runtime()
        .block_on(engine(dir.path(), &calls, true, None).run_durable(&ruled, run_id.clone()))
        .unwrap_err();
    assert!(
        error.to_string().contains("have changed since (`b`)"),
        "{error}"
    );
    assert_eq!(calls.of("c"), 1, "nothing ran");
    let prioritised = Workflow::new("w", "W")
        .task(Task::new("a", "step").priority(3))
        .task(Task::new("b", "step").depends_on(["a"]))
        .task(Task::new("c", "flaky").depends_on(["b"]))
        .task(Task::new("d", "step"));
    let result = runtime()
        .block_on(engine(dir.path(), &calls, true, None).run_durable(&prioritised, run_id))
        .unwrap();
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(calls.of("a"), 1, "a stays restored");
    assert_eq!(calls.of("c"), 2, "c runs again");
}

#[test]
fn run_durable_without_a_journal_is_refused() {
    let engine = WorkflowEngine::new();
    let error = runtime()
        .block_on(engine.run_durable(&pipeline(), RunId::parse("r").unwrap()))
        .unwrap_err();
    assert_eq!(error, RunError::NoJournal);
}

/// What a gated journal's commits wait for and note: they resolve only once the test
/// lets them, and note each task id they were given, beside the starts the handlers note.
#[derive(Debug, Clone)]
struct Gated {
    gate: Arc<tokio::sync::Semaphore>,
    log: Arc<Mutex<Vec<String>>>,
    appended: Arc<tokio::sync::Notify>,
}

impl Gated {
    /// A gate that holds every commit until the test adds permits.
    fn closed() -> Self {
        Self {
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            log: Arc::default(),
            appended: Arc::default(),
        }
    }

    /// A file journal in `dir` whose commits this gate holds.
    fn journal(&self, dir: &Path) -> common::WrappedJournal {
        let gated = self.clone();
        common::WrappedJournal::new(FileJournal::new(dir).unwrap(), move |inner| {
            Box::new(GatedWriter {
                inner,
                journal: gated.clone(),
            })
        })
    }
}

#[derive(Debug)]
struct GatedWriter {
    inner: Box<dyn RunWriter>,
    journal: Gated,
}

impl RunWriter for GatedWriter {
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture {
        let written = self.inner.append(records);
        let log = Arc::clone(&self.journal.log);
        let ids: Vec<String> = records
            .iter()
            .map(|(id, _)| format!("recorded {id}"))
            .collect();
        let gate = Arc::clone(&self.journal.gate);
        let appended = Arc::clone(&self.journal.appended);
        Box::pin(async move {
            written.await?;
            appended.notify_one();
            gate.acquire().await.unwrap().forget();
            log.lock().unwrap().extend(ids);
            Ok(())
        })
    }

    fn sync(&self) -> JournalFuture {
        self.inner.sync()
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        self.inner.finish(status)
    }
}

#[test]
fn dependents_start_only_once_what_they_depend_on_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Gated::closed();
    let engine = WorkflowEngine::builder()
        .max_concurrent(4)
        .journal(journal.journal(dir.path()), Durability::Process)
        .build()
        .unwrap();
    let log = Arc::clone(&journal.log);
    engine.register_handler("step", move |ctx: TaskContext| {
        log.lock()
            .unwrap()
            .push(format!("started {}", ctx.task_id()));
        async move { Ok::<_, TaskError>(()) }
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "step"))
        .task(Task::new("b", "step").depends_on(["a"]));
    let result = runtime().block_on(async {
        let run = tokio::spawn(engine.run_durable(&workflow, RunId::parse("r").unwrap()));
        journal.appended.notified().await;
        // The run has nothing to do but wait for the commit of `a`.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            *journal.log.lock().unwrap(),
            ["started a"],
            "`b` waits for `a`'s commit"
        );
        journal.gate.add_permits(100);
        run.await.unwrap().unwrap()
    });
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(
        *journal.log.lock().unwrap(),
        ["started a", "recorded a", "started b", "recorded b"]
    );
}

/// Registers for `task_type` a handler that counts its calls and returns 64 bytes marked
/// not to be journaled ("too large").
fn too_large(engine: &WorkflowEngine, task_type: &str, calls: &Calls) {
    let c = calls.clone();
    engine.register_handler(task_type, move |ctx: TaskContext| {
        c.note(&ctx);
        async move { Ok::<_, TaskError>(Output::new(vec![7u8; 64])?.not_journaled("too large")) }
    });
}

/// What the file journal in `dir` holds of run `run_id`.
fn journal_of(dir: &Path, run_id: &RunId) -> orch_engine::journal::LoadedRun {
    runtime()
        .block_on(FileJournal::new(dir).unwrap().load(run_id))
        .unwrap()
        .unwrap()
}

#[test]
fn outputs_left_out_of_the_journal_run_again_when_a_resumed_task_needs_them() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("r").unwrap();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("big", "big"))
        .task(Task::new("table", "table"))
        .task(Task::new("leaf", "big"))
        .task(Task::new("use", "flaky").depends_on(["big", "table"]));
    let start = |flaky_succeeds: bool| {
        let engine = engine(dir.path(), &calls, flaky_succeeds, None);
        too_large(&engine, "big", &calls);
        let c = calls.clone();
        engine.register_handler("table", move |ctx: TaskContext| {
            c.note(&ctx);
            async move { Ok::<_, TaskError>(Shared::new(vec![1.0f64]).summary(json!({"rows": 1}))) }
        });
        engine
    };
    let first = runtime()
        .block_on(start(false).run_durable(&workflow, run_id.clone()))
        .unwrap();
    assert_eq!(first.status, WorkflowStatus::Failed);
    // The run's own result keeps the output; the journal keeps the reason instead.
    assert_eq!(
        first.task("big").unwrap().result,
        Some(json!(vec![7u8; 64]))
    );
    let loaded = journal_of(dir.path(), &run_id);
    let big = loaded.task("big").unwrap();
    assert_eq!(big.result, Some(json!({"not_journaled": "too large"})));
    assert!(big.shared_output);
    assert!(loaded.task("table").unwrap().shared_output);

    let second = runtime()
        .block_on(start(true).run_durable(&workflow, run_id))
        .unwrap();
    assert_eq!(second.status, WorkflowStatus::Completed);
    // `use` runs again and needs `big` and `table`: both run again. `leaf` is needed by
    // nothing that runs, so it is restored (with the reason in place of its output).
    assert_eq!(
        (calls.of("big"), calls.of("table"), calls.of("use")),
        (2, 2, 2)
    );
    assert_eq!(calls.of("leaf"), 1);
    assert_eq!(
        second.task("big").unwrap().result,
        Some(json!(vec![7u8; 64]))
    );
}

#[test]
fn map_instance_outputs_left_out_of_the_journal_leave_the_map_list_out_too() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("m").unwrap();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(Task::new("render", "render").map_over("list"))
        .task(Task::new("use", "flaky").depends_on(["render"]));
    let start = |flaky_succeeds: bool| {
        let engine = engine(dir.path(), &calls, flaky_succeeds, None);
        engine.register_handler("list", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(json!([1, 2]))
        });
        too_large(&engine, "render", &calls);
        engine
    };
    let first = runtime()
        .block_on(start(false).run_durable(&workflow, run_id.clone()))
        .unwrap();
    assert_eq!(first.status, WorkflowStatus::Failed);
    assert_eq!(
        first.task("render").unwrap().result,
        Some(json!([vec![7u8; 64], vec![7u8; 64]]))
    );
    let loaded = journal_of(dir.path(), &run_id);
    for id in ["render[0]", "render[1]", "render"] {
        let record = loaded.task(id).unwrap();
        assert_eq!(
            (&record.result, record.shared_output),
            (&Some(json!({"not_journaled": "too large"})), true),
            "{id}"
        );
    }

    let second = runtime()
        .block_on(start(true).run_durable(&workflow, run_id))
        .unwrap();
    assert_eq!(second.status, WorkflowStatus::Completed);
    // `use` runs again and needs the list: the map runs again, each element.
    assert_eq!((calls.of("render"), calls.of("use")), (4, 2));
}

#[test]
fn a_skipped_task_whose_rule_changed_is_decided_again_on_resume() {
    use orch_core::TriggerRule;
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("rule").unwrap();
    let workflow = |rule: TriggerRule| {
        Workflow::new("w", "W")
            .task(Task::new("a", "step"))
            .task(Task::new("x", "step").depends_on(["a"]).trigger_rule(rule))
            .task(Task::new("after_x", "step").depends_on(["x"]))
    };
    let engine = || engine(dir.path(), &calls, true, None);
    let first = runtime()
        .block_on(engine().run_durable(&workflow(TriggerRule::AllFailed), run_id.clone()))
        .unwrap();
    assert_eq!(first.task("x").unwrap().status, TaskStatus::Skipped);
    assert_eq!(first.task("after_x").unwrap().status, TaskStatus::Skipped);

    let changed = workflow(TriggerRule::AllSuccess);
    let second = runtime()
        .block_on(engine().run_durable(&changed, run_id.clone()))
        .unwrap();
    assert_eq!(second.status, WorkflowStatus::Completed);
    // `a` is kept; `x`, under its new rule, runs, and so does what its skip had skipped.
    assert_eq!(
        (calls.of("a"), calls.of("x"), calls.of("after_x")),
        (1, 1, 1)
    );
    // The journal holds the new outcome: a later resume keeps it.
    let third = runtime()
        .block_on(engine().run_durable(&changed, run_id))
        .unwrap();
    assert_eq!(third.task("x").unwrap().status, TaskStatus::Completed);
    assert_eq!(calls.of("x"), 1);
}

/// The journal takes a changed definition as the run's own when the run is opened: a
/// changed task's old outcome must be reset before anything else happens, or a run that
/// stops before its first commit leaves the old skip in force under the new definition,
/// and the next resume, seeing no change, keeps it.
#[test]
fn a_changed_tasks_reset_is_journaled_before_anything_runs() {
    use orch_core::TriggerRule;
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("reset-first").unwrap();
    let workflow = |rule: TriggerRule, x_type: &str| {
        Workflow::new("w", "W")
            .task(Task::new("a", "step"))
            .task(Task::new("x", x_type).depends_on(["a"]).trigger_rule(rule))
            .task(Task::new("after_x", "step").depends_on(["x"]))
    };
    let engine = || engine(dir.path(), &calls, true, None);
    let first = runtime()
        .block_on(engine().run_durable(&workflow(TriggerRule::AllFailed, "step"), run_id.clone()))
        .unwrap();
    assert_eq!(first.task("x").unwrap().status, TaskStatus::Skipped);

    // Resumed with `x` changed, the run stops (as a process dies) while `x` runs.
    let changed = workflow(TriggerRule::AllSuccess, "wait");
    let stopped = engine();
    let started = Arc::new(tokio::sync::Notify::new());
    let starts = Arc::clone(&started);
    stopped.register_handler("wait", move |_ctx: TaskContext| {
        starts.notify_one();
        async move {
            std::future::pending::<()>().await;
            Ok::<_, TaskError>(())
        }
    });
    runtime().block_on(stopped_once(
        stopped.run_durable(&changed, run_id.clone()),
        &started,
    ));

    let again = engine();
    let c = calls.clone();
    again.register_handler("wait", move |ctx: TaskContext| {
        c.note(&ctx);
        async move { Ok::<_, TaskError>(()) }
    });
    let third = runtime()
        .block_on(again.run_durable(&changed, run_id))
        .unwrap();
    assert_eq!(third.status, WorkflowStatus::Completed, "{third:?}");
    assert_eq!((calls.of("x"), calls.of("after_x")), (1, 1));
}

#[test]
fn a_run_result_read_back_matches_what_ran() {
    // Listing finds the run with its counts, and to_result gives what resume takes.
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("listed").unwrap();
    let workflow = pipeline();
    let ran: WorkflowResult = runtime()
        .block_on(engine(dir.path(), &calls, false, None).run_durable(&workflow, run_id.clone()))
        .unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let runs = runtime()
        .block_on(journal.list(&RunFilter::default()))
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].run_id.clone(),
            runs[0].recorded_tasks,
            runs[0].completed_tasks
        ),
        (run_id.clone(), 4, 3)
    );
    let loaded = runtime().block_on(journal.load(&run_id)).unwrap().unwrap();
    let back = loaded.to_result(&workflow).unwrap();
    for (id, record) in ran.tasks.iter() {
        let read = back.task(id).unwrap();
        assert_eq!(
            (read.status, &read.result, read.attempts),
            (record.status, &record.result, record.attempts),
            "task `{id}`"
        );
        if record.status == TaskStatus::Completed {
            assert_eq!(read.end_time, record.end_time, "task `{id}`");
        }
    }
}

/// The task ids of the journal file of run `run_id` in `dir`, in the order recorded.
fn journaled_ids(dir: &Path, run_id: &str) -> Vec<String> {
    journaled(dir, run_id, "task_id")
}

/// The status of each task record in run `run_id`'s journal file, in order.
fn journaled_statuses(dir: &Path, run_id: &str) -> Vec<String> {
    journaled(dir, run_id, "status")
}

/// Field `field` of each task record in run `run_id`'s journal file, in order.
fn journaled(dir: &Path, run_id: &str, field: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(format!("{run_id}.jsonl"))).unwrap();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["kind"] == "task")
        .filter_map(|line| line[field].as_str().map(str::to_owned))
        .collect()
}

/// `after` is skipped by its rule when `work` fails; `cleanup` and `report` run anyway.
fn cleanup_workflow() -> Workflow {
    use orch_core::TriggerRule::AllDone;
    Workflow::new("w", "W")
        .task(Task::new("work", "flaky"))
        .task(
            Task::new("cleanup", "step")
                .depends_on(["work"])
                .trigger_rule(AllDone),
        )
        .task(Task::new("after", "step").depends_on(["work"]))
        .task(
            Task::new("report", "step")
                .depends_on(["after"])
                .trigger_rule(AllDone),
        )
        .task(Task::new("other", "step"))
}

#[test]
fn a_failure_and_a_rule_skip_are_journaled_before_the_dependents_they_released() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("cleanup").unwrap();
    let workflow = cleanup_workflow();
    let first = runtime()
        .block_on(engine(dir.path(), &calls, false, None).run_durable(&workflow, run_id.clone()))
        .unwrap();
    assert_eq!(first.status, WorkflowStatus::Failed);
    assert_eq!(first.task("after").unwrap().status, TaskStatus::Skipped);
    assert_eq!(first.task("report").unwrap().status, TaskStatus::Completed);
    let ids = journaled_ids(dir.path(), "cleanup");
    let at = |id: &str| ids.iter().position(|i| i == id).unwrap();
    assert!(at("work") < at("cleanup"), "{ids:?}");
    assert!(at("after") < at("report"), "{ids:?}");
    assert_eq!(ids.len(), 5, "each task once: {ids:?}");

    // A resume runs the failed task again, and what ran on its failure after it; the
    // skip is decided again from the new outcome. `other` stays restored.
    let second = runtime()
        .block_on(engine(dir.path(), &calls, true, None).run_durable(&workflow, run_id.clone()))
        .unwrap();
    assert_eq!(second.status, WorkflowStatus::Completed);
    let runs: Vec<usize> = ["work", "cleanup", "after", "report", "other"]
        .map(|id| calls.of(id))
        .to_vec();
    assert_eq!(runs, [2, 2, 1, 2, 1]);
    assert_eq!(second.task("after").unwrap().status, TaskStatus::Completed);
    // The outcomes decided on `work`'s failure were reset ahead of `work`'s new record,
    // so that a resume cut short after it would not keep them; dependents first (see
    // the next test).
    let ids = journaled_ids(dir.path(), "cleanup");
    assert_eq!(ids[5..9], ["report", "after", "cleanup", "work"], "{ids:?}");
    let statuses = journaled_statuses(dir.path(), "cleanup");
    assert_eq!(statuses[5..8], ["pending"; 3], "{statuses:?}");
    // `report` read a skip the first time and `after`'s output the second: the journal
    // holds the second completion, and a later resume keeps that one.
    assert_eq!(second.task("report").unwrap().result, Some(json!(2)));
    let loaded = journal_of(dir.path(), &run_id);
    for id in ["work", "cleanup", "after", "report", "other"] {
        let (read, ran) = (loaded.task(id).unwrap(), second.task(id).unwrap());
        assert_eq!(
            (read.status, &read.result, read.end_time),
            (ran.status, &ran.result, ran.end_time),
            "task `{id}`"
        );
    }
    let third = runtime()
        .block_on(engine(dir.path(), &calls, true, None).run_durable(&workflow, run_id))
        .unwrap();
    assert_eq!(third.task("report").unwrap().result, Some(json!(2)));
    let runs: Vec<usize> = ["work", "cleanup", "after", "report", "other"]
        .map(|id| calls.of(id))
        .to_vec();
    assert_eq!(runs, [2, 2, 1, 2, 1], "nothing runs a third time");
}

/// A resume's resets cut short (the process died while writing them, or the machine
/// lost power before they reached the disk) keep no outcome decided on one that was
/// reset: here `report`, which ran on `after`'s skip, is not kept once `after` is reset.
#[test]
fn resets_cut_short_keep_no_outcome_decided_on_a_reset_one() {
    let dir = tempfile::tempdir().unwrap();
    let run_id = RunId::parse("cleanup").unwrap();
    let workflow = cleanup_workflow();
    let run = |dir: &Path, calls: &Calls, flaky_succeeds: bool| {
        let engine = engine(dir, calls, flaky_succeeds, None);
        runtime()
            .block_on(engine.run_durable(&workflow, run_id.clone()))
            .unwrap()
    };
    run(dir.path(), &Calls::default(), false);
    run(dir.path(), &Calls::default(), true);
    let text = std::fs::read_to_string(dir.path().join("cleanup.jsonl")).unwrap();
    let is_task = |line: &&str| {
        serde_json::from_str::<serde_json::Value>(line).is_ok_and(|line| line["kind"] == "task")
    };
    // The first run's lines, and the first `resets` of the three the resume wrote.
    for resets in 1..=3 {
        let mut tasks = 0;
        let cut: Vec<&str> = (text.lines())
            .take_while(|line| {
                tasks += usize::from(is_task(line));
                tasks <= 5 + resets
            })
            .collect();
        let cut_dir = tempfile::tempdir().unwrap();
        std::fs::write(cut_dir.path().join("cleanup.jsonl"), cut.join("\n") + "\n").unwrap();
        let calls = Calls::default();
        let resumed = run(cut_dir.path(), &calls, true);
        let report = resumed.task("report").unwrap();
        assert_eq!(
            (calls.of("report"), &report.result),
            (1, &Some(json!(2))),
            "with {resets} of the resets: `report` runs on `after`'s new output"
        );
    }
}

#[test]
fn a_failed_map_journals_no_result_though_its_all_done_dependents_read_its_list() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("map").unwrap();
    let engine = engine(dir.path(), &calls, false, None);
    engine.register_handler("list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(json!([1, 2]))
    });
    engine.register_handler("second_fails", |ctx: TaskContext| async move {
        match ctx.map_item::<i64>()? {
            2 => Err(TaskError::permanent("no")),
            x => Ok(x),
        }
    });
    engine.register_handler("read", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.input_json("m")?.clone())
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(Task::new("m", "second_fails").map_over("list"))
        .task(
            Task::new("read", "read")
                .depends_on(["m"])
                .trigger_rule(orch_core::TriggerRule::AllDone),
        );
    let result = runtime()
        .block_on(engine.run_durable(&workflow, run_id.clone()))
        .unwrap();
    assert_eq!(result.task("read").unwrap().result, Some(json!([1, null])));
    let loaded = journal_of(dir.path(), &run_id);
    let m = loaded.task("m").unwrap();
    assert_eq!((m.status, &m.result), (TaskStatus::Failed, &None));
    assert_eq!(loaded.task("read").unwrap().result, Some(json!([1, null])));
}

/// A map's instance records are journaled (as they complete, the rest with the map's
/// end): a durable resume
/// restores them as a resume from the run's result does (statuses, results, attempts),
/// and no instance runs again.
#[test]
fn a_resumed_durable_map_keeps_its_instance_records_and_runs_no_instance_again() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("map-resume").unwrap();
    let squared = Arc::new(Mutex::new(Vec::new()));
    let engine_with = |flaky_succeeds: bool| {
        let engine = engine(dir.path(), &calls, flaky_succeeds, None);
        engine.register_handler("list", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(json!([1, 2, 3]))
        });
        let squared = Arc::clone(&squared);
        engine.register_handler("square", move |ctx: TaskContext| {
            let squared = Arc::clone(&squared);
            async move {
                let x = ctx.map_item::<i64>()?;
                squared.lock().unwrap().push(x);
                match x {
                    2 => Err(TaskError::skip("two is skipped")),
                    x => Ok(x * x),
                }
            }
        });
        engine
    };
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(Task::new("m", "square").map_over("list"))
        .task(Task::new("c", "flaky").depends_on(["m"]));
    let first = runtime()
        .block_on(engine_with(false).run_durable(&workflow, run_id.clone()))
        .unwrap();
    assert_eq!(first.status, WorkflowStatus::Failed);
    assert_eq!(first.task("m").unwrap().result, Some(json!([1, null, 9])));
    let instances = ["m[0]", "m[1]", "m[2]"];
    let statuses = instances.map(|id| first.task(id).unwrap().status);
    use TaskStatus::{Completed, Skipped};
    assert_eq!(statuses, [Completed, Skipped, Completed]);

    // What a resume from the run's own result keeps, for comparison.
    let from_result = runtime()
        .block_on(engine_with(true).resume(&workflow, &first))
        .unwrap();
    let durable = runtime()
        .block_on(engine_with(true).run_durable(&workflow, run_id.clone()))
        .unwrap();
    assert_eq!(durable.status, WorkflowStatus::Completed);
    assert_eq!(
        *squared.lock().unwrap(),
        [1, 2, 3],
        "no instance ran again, in either resume"
    );
    for id in instances {
        let (before, kept) = (first.task(id).unwrap(), durable.task(id));
        let kept = kept.unwrap_or_else(|| panic!("the durable resume lost `{id}`"));
        let fields = |r: &TaskRecord| (r.status, r.result.clone(), r.error.clone(), r.attempts);
        assert_eq!(fields(kept), fields(before), "`{id}`");
        assert_eq!(fields(kept), fields(&from_result.tasks[id]), "`{id}`");
    }
    assert_eq!(durable.tasks.len(), from_result.tasks.len());

    // Listing counts the workflow's tasks, not the instances.
    let journal = FileJournal::new(dir.path()).unwrap();
    let runs = runtime()
        .block_on(journal.list(&RunFilter::default()))
        .unwrap();
    let counts = (runs[0].recorded_tasks, runs[0].completed_tasks);
    assert_eq!(counts, (3, 3));
}

/// A map that runs again in a resumed run (its `all_done` rule ran it after a failure
/// that the resume retries) while the journal holds its first completion: its new
/// completion replaces the first, with the instance records that came with it, so a
/// later resume restores the second list and instance results that agree with it.
#[test]
fn a_map_run_again_replaces_its_first_completion_and_instances_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("map-again").unwrap();
    let runs = Arc::new(Mutex::new(0i64));
    let engine_with = |flaky_succeeds: bool| {
        let engine = engine(dir.path(), &calls, flaky_succeeds, None);
        engine.register_handler("list", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(json!([1, 2]))
        });
        // Each call returns a new number: a run again gives other results.
        let runs = Arc::clone(&runs);
        engine.register_handler("count", move |_ctx: TaskContext| {
            let mut runs = runs.lock().unwrap();
            *runs += 1;
            let n = *runs;
            async move { Ok::<_, TaskError>(n) }
        });
        engine
    };
    let workflow = Workflow::new("w", "W")
        .task(Task::new("work", "flaky"))
        .task(Task::new("list", "list"))
        .task(
            Task::new("m", "count")
                .map_over("list")
                .depends_on(["work"])
                .trigger_rule(orch_core::TriggerRule::AllDone),
        );
    let run = |flaky_succeeds| {
        runtime()
            .block_on(engine_with(flaky_succeeds).run_durable(&workflow, run_id.clone()))
            .unwrap()
    };
    let first = run(false);
    assert_eq!(first.task("m").unwrap().result, Some(json!([1, 2])));
    let second = run(true);
    assert_eq!(
        second.task("m").unwrap().result,
        Some(json!([3, 4])),
        "ran again"
    );
    let third = run(true);
    assert_eq!(*runs.lock().unwrap(), 4, "the third run ran no instance");
    let list = third.task("m").unwrap().result.clone();
    let instances = ["m[0]", "m[1]"].map(|id| third.task(id).and_then(|r| r.result.clone()));
    assert_eq!(list, Some(json!([3, 4])), "the second completion stands");
    assert_eq!(instances, [Some(json!(3)), Some(json!(4))]);
}

/// The journal keeps a branch task's choice with its record: a run cut short right after
/// the branch task's commit (before its unchosen dependent's skip was written) resumes
/// with that dependent skipped, though its other dependency now completes.
#[test]
fn a_branch_choice_is_journaled_and_holds_when_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("branchy").unwrap();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("route", "route"))
        .task(Task::new("fetch", "flaky"))
        .task(Task::new("small", "step").depends_on(["route"]))
        .task(Task::new("large", "step").depends_on(["route", "fetch"]));
    let first = runtime()
        .block_on(engine(dir.path(), &calls, false, None).run_durable(&workflow, run_id.clone()))
        .unwrap();
    assert_eq!(first.task("large").unwrap().status, TaskStatus::Skipped);
    // Cut the journal right after the branch task's line.
    let path = FileJournal::new(dir.path()).unwrap().path_of(&run_id);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let route = (lines.iter())
        .position(|line| line.contains(r#""task_id":"route""#))
        .expect("the branch task's line");
    assert!(
        lines[route].contains(r#""chosen_branches":["small"]"#),
        "{}",
        lines[route]
    );
    assert!(
        route + 1 < lines.len(),
        "lines to cut after the branch task's"
    );
    let kept: String = lines[..=route]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&path, kept).unwrap();

    let resumed = runtime()
        .block_on(engine(dir.path(), &calls, true, None).run_durable(&workflow, run_id))
        .unwrap();
    assert_eq!(calls.of("route"), 1, "the branch task is not asked again");
    assert_eq!(resumed.task("fetch").unwrap().status, TaskStatus::Completed);
    let large = resumed.task("large").unwrap();
    assert_eq!(large.status, TaskStatus::Skipped);
    assert_eq!(
        large.error.as_deref(),
        Some("not chosen by branch task `route`")
    );
    assert_eq!(calls.of("large"), 0);
    assert_eq!(resumed.status, WorkflowStatus::Completed);
}

/// A dependent that a kept branch task did not choose, and that is skipped again as the
/// run resumes (its first skip followed a failure, which runs again), is journaled as
/// skipped before the dependents its skip lets run end: the journal never holds an
/// outcome without the outcomes it was decided on.
#[test]
fn a_branch_skip_made_again_on_resume_is_journaled_before_what_it_lets_run() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("branch-again").unwrap();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("route", "route"))
        .task(Task::new("fetch", "flaky"))
        .task(Task::new("small", "step").depends_on(["route"]))
        .task(Task::new("large", "step").depends_on(["route", "fetch"]))
        .task(
            Task::new("report", "step")
                .depends_on(["large"])
                .trigger_rule(orch_core::TriggerRule::AllDone),
        );
    let first = runtime()
        .block_on(engine(dir.path(), &calls, false, None).run_durable(&workflow, run_id.clone()));
    assert_eq!(
        first.unwrap().task("fetch").unwrap().status,
        TaskStatus::Failed
    );
    let before = journaled_ids(dir.path(), "branch-again").len();

    let resumed = runtime()
        .block_on(engine(dir.path(), &calls, true, None).run_durable(&workflow, run_id))
        .unwrap();
    let large = resumed.task("large").unwrap();
    assert_eq!(large.status, TaskStatus::Skipped);
    assert_eq!(calls.of("report"), 2, "ran again after the skip made again");
    let lines: Vec<(String, String)> = journaled_ids(dir.path(), "branch-again")
        .into_iter()
        .zip(journaled_statuses(dir.path(), "branch-again"))
        .skip(before)
        .collect();
    let at = |id: &str, status: &str| {
        (lines.iter())
            .rposition(|(i, s)| i == id && s == status)
            .unwrap_or_else(|| panic!("no {status} line of `{id}` in {lines:?}"))
    };
    assert!(
        at("large", "skipped") < at("report", "completed"),
        "{lines:?}"
    );
}

/// Without trigger rules too, a dependent a branch task did not choose is journaled as
/// skipped at once, before tasks that start later end; its descendants' skips come with
/// the run's end, as those after a failure do. It used to be written at the run's end
/// only: a crash before then left no record of it.
#[test]
fn a_branch_skip_is_journaled_at_once_without_trigger_rules() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("route", "route"))
        .task(Task::new("small", "step").depends_on(["route"]))
        .task(Task::new("large", "step").depends_on(["route"]))
        .task(Task::new("below_large", "step").depends_on(["large"]))
        .task(Task::new("last", "step").depends_on(["small"]));
    let engine = engine(dir.path(), &calls, true, None);
    let result = runtime()
        .block_on(engine.run_durable(&workflow, RunId::parse("branch").unwrap()))
        .unwrap();
    assert_eq!(result.status, WorkflowStatus::Completed);
    let below = result.task("below_large").unwrap();
    assert_eq!(
        (below.status, below.error.as_deref()),
        (TaskStatus::Skipped, Some("dependency `large` was skipped"))
    );
    assert_eq!(
        journaled_ids(dir.path(), "branch"),
        ["route", "large", "small", "last", "below_large"]
    );
}

/// An engine journaling into `dir`, whose `slow` handler, given `started`, tells it and
/// never ends (else gives its attempt number and whether it was resumed), with a `quick`
/// handler and a `list` one whose list the journal does not keep.
fn crash_engine(dir: &Path, started: Option<Arc<tokio::sync::Notify>>) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .journal(FileJournal::new(dir).unwrap(), Durability::Process)
        .build()
        .unwrap();
    engine.register_handler("quick", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(())
    });
    engine.register_handler("list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Output::new(json!([1]))?.not_journaled("made again"))
    });
    engine.register_handler("slow", move |ctx: TaskContext| {
        let started = started.clone();
        async move {
            if let Some(started) = started {
                started.notify_one();
                std::future::pending::<()>().await;
            }
            Ok::<_, TaskError>(json!([ctx.attempt(), ctx.resumed()]))
        }
    });
    engine
}

/// Runs `workflow` as `run_id` on a [`crash_engine`] whose `slow` tasks never end, and
/// stops it (its future dropped, as in a crash) once one runs.
fn stopped_while_slow(dir: &Path, workflow: &Workflow, run_id: &RunId) {
    let started = Arc::new(tokio::sync::Notify::new());
    let first = crash_engine(dir, Some(Arc::clone(&started)));
    runtime().block_on(stopped_once(
        first.run_durable(workflow, run_id.clone()),
        &started,
    ));
}

/// Drops `run` (as a process dies) once `started` is told, which it must be first.
async fn stopped_once<T: std::fmt::Debug>(
    run: impl std::future::Future<Output = T>,
    started: &tokio::sync::Notify,
) {
    tokio::select! {
        ended = run => panic!("the run ended by itself: {ended:?}"),
        () = started.notified() => {}
    }
}

/// A run stopped during `b`'s first attempt (nothing recorded of it), then resumed and
/// cancelled before `b` started: the attempt may still have been under way, so the
/// next resume takes it up as resumed, under the same number.
#[test]
fn an_attempt_under_way_at_a_crash_stays_resumed_through_a_cancelled_resume() {
    let dir = tempfile::tempdir().unwrap();
    let run_id = RunId::parse("r").unwrap();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "quick"))
        .task(Task::new("b", "slow").depends_on(["a"]));
    stopped_while_slow(dir.path(), &workflow, &run_id);
    // The second is cancelled before `b` starts.
    let second = crash_engine(dir.path(), None).run_durable(&workflow, run_id.clone());
    second.cancel();
    let cancelled = runtime().block_on(second).unwrap();
    let b = cancelled.task("b").unwrap();
    assert_eq!((b.status, b.attempts), (TaskStatus::Cancelled, 0));
    let third = runtime()
        .block_on(crash_engine(dir.path(), None).run_durable(&workflow, run_id))
        .unwrap();
    assert_eq!(third.task("b").unwrap().result, Some(json!([1, true])));
}

/// A run stopped during `b`'s first attempt, where `b` read `a`'s output (or maps over
/// it) and the journal did not keep that output: the resume makes `a` again, so `b`'s
/// attempt is not the one under way at the crash, which read the old output. It is not
/// resumed and takes a new number, so that a system that keeps the first outcome per
/// attempt (orch-nats) does not give it the old attempt's.
#[test]
fn an_attempt_whose_input_is_made_again_is_not_resumed() {
    for map in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let run_id = RunId::parse("r").unwrap();
        let b = match map {
            true => Task::new("b", "slow").map_over("a"),
            false => Task::new("b", "slow").depends_on(["a"]),
        };
        let workflow = Workflow::new("w", "W").task(Task::new("a", "list")).task(b);
        stopped_while_slow(dir.path(), &workflow, &run_id);
        let resumed = runtime()
            .block_on(crash_engine(dir.path(), None).run_durable(&workflow, run_id))
            .unwrap();
        let expected = match map {
            true => json!([[2, false]]),
            false => json!([2, false]),
        };
        assert_eq!(
            resumed.task("b").unwrap().result,
            Some(expected),
            "map: {map}"
        );
    }
}

/// A value nested `depth` arrays deep.
fn nested(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

/// Whether `value` names, as an output left out of the journal, the journal's reason.
fn left_out_by_the_journal(record: &TaskRecord) -> bool {
    let reason = (record.result.as_ref())
        .and_then(|r| r["not_journaled"].as_str())
        .unwrap_or_default();
    record.shared_output
        && reason.starts_with("the journal cannot hold this output: ")
        && reason.contains("nest")
}

#[test]
fn an_output_the_journal_cannot_hold_stays_in_the_run_and_the_journal_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run_id = RunId::parse("deep").unwrap();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("deep", "deep"))
        .task(Task::new("depth", "depth").depends_on(["deep"]))
        .task(Task::new("small", "step"))
        .task(Task::new("list", "list"))
        .task(Task::new("each", "deep").map_over("list"));
    let start = || {
        let engine = engine(dir.path(), &calls, true, None);
        let c = calls.clone();
        engine.register_handler("deep", move |ctx: TaskContext| {
            c.note(&ctx);
            async move { Ok::<_, TaskError>(nested(200)) }
        });
        engine.register_handler("depth", |ctx: TaskContext| {
            let mut depth = 0;
            let mut value: serde_json::Value = ctx.input("deep").unwrap_or_default();
            while let Some(inner) = value.get(0).cloned() {
                (depth, value) = (depth + 1, inner);
            }
            async move { Ok::<_, TaskError>(depth) }
        });
        engine.register_handler("list", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(json!([1, 2]))
        });
        engine
    };
    let result = runtime()
        .block_on(start().run_durable(&workflow, run_id.clone()))
        .unwrap();
    // The run goes on with the output: its dependents read it whole.
    assert_eq!(result.status, WorkflowStatus::Completed, "{result:?}");
    assert_eq!(result.task("deep").unwrap().result, Some(nested(200)));
    assert_eq!(result.task("depth").unwrap().result, Some(json!(200)));
    let loaded = journal_of(dir.path(), &run_id);
    let deep = loaded.task("deep").unwrap();
    assert!(left_out_by_the_journal(deep), "{:?}", deep.result);
    // The others of the same commits are journaled as they are.
    assert_eq!(loaded.task("small").unwrap().result, Some(json!(1)));
    assert_eq!(loaded.task("depth").unwrap().result, Some(json!(200)));
    // A map's instances, and then its list, are left out the same way.
    let each = loaded.task("each").unwrap();
    assert!(left_out_by_the_journal(each), "{:?}", each.result);

    // Resumed, the run is over: nothing runs again.
    let again = runtime()
        .block_on(start().run_durable(&workflow, run_id))
        .unwrap();
    assert_eq!(again.status, WorkflowStatus::Completed);
    assert_eq!((calls.of("deep"), calls.of("small")), (1, 1));
}

/// A file journal in `dir` whose writers note how many events `watching` held when the
/// run's end was recorded.
fn noting_events_at_the_end(
    dir: &std::path::Path,
    watching: &Arc<Mutex<orch_events::Subscription<EngineEvent>>>,
    held_at_end: &Arc<AtomicUsize>,
) -> common::WrappedJournal {
    let (watching, held_at_end) = (Arc::clone(watching), Arc::clone(held_at_end));
    common::WrappedJournal::new(FileJournal::new(dir).unwrap(), move |inner| {
        Box::new(NotingEventsAtTheEnd {
            inner,
            watching: Arc::clone(&watching),
            held_at_end: Arc::clone(&held_at_end),
        })
    })
}

#[derive(Debug)]
struct NotingEventsAtTheEnd {
    inner: Box<dyn RunWriter>,
    watching: Arc<Mutex<orch_events::Subscription<EngineEvent>>>,
    held_at_end: Arc<AtomicUsize>,
}

impl RunWriter for NotingEventsAtTheEnd {
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture {
        self.inner.append(records)
    }

    fn sync(&self) -> JournalFuture {
        self.inner.sync()
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        let held = self.watching.lock().unwrap().stats().queued;
        self.held_at_end.store(held, Ordering::SeqCst);
        self.inner.finish(status)
    }
}

/// A subscriber that reads the journal on hearing that a run finished finds its end
/// recorded there: `WorkflowFinished` is published after the record.
#[test]
fn workflow_finished_is_published_once_the_runs_end_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new();
    let watching = Arc::new(Mutex::new(bus.subscribe("workflow.*.finished").unwrap()));
    let held_at_end = Arc::new(AtomicUsize::new(usize::MAX));
    let journal = noting_events_at_the_end(dir.path(), &watching, &held_at_end);
    let engine = WorkflowEngine::builder()
        .journal(journal, Durability::Process)
        .event_bus(bus)
        .build()
        .unwrap();
    engine.register_handler("step", |_ctx: TaskContext| async { Ok::<_, TaskError>(1) });
    let workflow = Workflow::new("w", "W").task(Task::new("a", "step"));
    let run = RunId::parse("r").unwrap();
    let result = common::current_thread()
        .block_on(engine.run_durable(&workflow, run))
        .unwrap();
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(held_at_end.load(Ordering::SeqCst), 0, "published before");
    assert_eq!(
        watching.lock().unwrap().stats().queued,
        1,
        "published after"
    );
}

/// While a cancelled run waits for its journal to record its end, the events of the
/// tasks it cancelled are published: only `WorkflowFinished` waits for the record.
#[test]
fn cancelled_tasks_are_announced_while_the_runs_end_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let asked = Arc::new(tokio::sync::Notify::new());
    let bus = EventBus::new();
    let mut watching = bus.subscribe("workflow.>").unwrap();
    let engine = WorkflowEngine::builder()
        .journal(
            common::silent_at_the_end(dir.path(), &asked),
            Durability::Process,
        )
        .event_bus(bus)
        .cancel_grace_period(std::time::Duration::from_millis(100))
        .build()
        .unwrap();
    // Deaf to its cancellation: the run cancels it as it ends.
    engine.register_handler("hang", |_ctx: TaskContext| async {
        std::future::pending::<Result<i64, TaskError>>().await
    });
    let workflow = Workflow::new("w", "W").task(Task::new("a", "hang"));
    common::current_thread().block_on(async {
        let run = engine.run_durable(&workflow, RunId::parse("r").unwrap());
        let cancel = run.cancellation_token();
        let mut run = std::pin::pin!(run);
        let started = async {
            while watching.recv_event().await.unwrap().payload().kind
                != EngineEventKind::TaskStarted
            {}
        };
        tokio::select! {
            _ = &mut run => panic!("the run ended before its task started"),
            () = started => {}
        }
        cancel.cancel();
        tokio::select! {
            _ = &mut run => panic!("the run ended before its end was asked to be recorded"),
            () = asked.notified() => {}
        }
        // The journal keeps the run waiting for 5 s more; the events come meanwhile.
        let next = async { watching.recv_event().await.unwrap().payload().kind };
        tokio::select! {
            _ = &mut run => panic!("the run ended before its cancelled task was announced"),
            kind = next => assert_eq!(kind, EngineEventKind::TaskCancelled),
        }
    });
}
