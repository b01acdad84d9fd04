//! The JetStream journal against a real nats-server: a run recorded by one coordinator
//! is continued by another (a new connection, as after a crash) from what it committed,
//! with the same refusals as the file journal, and runs are listed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::NatsServer;
use orch_core::{RunId, Task, TaskRecord, TaskStatus, Workflow, WorkflowStatus};
use orch_engine::{Durability, TaskContext, TaskError, WorkflowEngine};
use orch_journal::{Journal, JournalError, RunFilter, RunStatus};
use orch_nats::{Layout, NatsJournal};

async fn journal(server: &NatsServer) -> NatsJournal {
    NatsJournal::connect(&server.config(), &Layout::default())
        .await
        .expect("connects")
}

fn workflow() -> Workflow {
    Workflow::new("etl", "ETL")
        .task(Task::new("extract", "step"))
        .task(Task::new("transform", "step").depends_on(["extract"]))
        .task(Task::new("load", "fails_once").depends_on(["transform"]))
}

/// An engine with the journal whose `fails_once` tasks fail on the first call of the
/// process and `step` tasks count their calls.
fn engine(journal: NatsJournal, calls: &Arc<AtomicU32>) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .journal(journal, Durability::Power)
        .build()
        .expect("valid");
    let counted = Arc::clone(calls);
    engine.register_handler("step", move |ctx: TaskContext| {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, TaskError>(format!("{} done", ctx.task_id()))
        }
    });
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_continued_by_another_coordinator_from_what_it_committed() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("nightly-1").expect("a run id");
    let calls = Arc::new(AtomicU32::new(0));

    // The first coordinator: `load` fails, the run fails.
    let first = engine(journal(&server).await, &calls);
    first.register_handler("fails_once", |_ctx: TaskContext| async move {
        Err::<(), _>(TaskError::new("the warehouse is down"))
    });
    let result = first
        .run_durable(&workflow(), run.clone())
        .await
        .expect("runs");
    assert_eq!(result.status, WorkflowStatus::Failed);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    drop(first);

    // Another coordinator, on its own connection, continues it: only `load` runs.
    let second = engine(journal(&server).await, &calls);
    second.register_handler("fails_once", |ctx: TaskContext| async move {
        let transformed: String = ctx.input("transform")?;
        Ok::<_, TaskError>(format!("loaded {transformed}"))
    });
    let result = second
        .run_durable(&workflow(), run.clone())
        .await
        .expect("runs");
    assert_eq!(result.status, WorkflowStatus::Completed, "{result:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "extract and transform ran once"
    );
    assert_eq!(
        result.task("load").and_then(|t| t.result.clone()),
        Some(serde_json::json!("loaded transform done"))
    );

    let journal = journal(&server).await;
    let loaded = journal.load(&run).await.expect("reads").expect("the run");
    assert_eq!(loaded.status(), RunStatus::Completed);
    assert_eq!(
        loaded.task("extract").map(|r| r.status),
        Some(TaskStatus::Completed)
    );
    let listed = journal.list(&RunFilter::default()).await.expect("lists");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].run_id.as_str(), listed[0].completed_tasks),
        ("nightly-1", 3)
    );
    let missing = RunId::parse("never-ran").expect("a run id");
    assert!(journal.load(&missing).await.expect("reads").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reopened_with_a_changed_completed_task_is_refused() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("r-2").expect("a run id");
    let journal = journal(&server).await;
    let opened = journal.open(&run, &workflow()).await.expect("opens");
    assert!(opened.previous.is_none());
    let done = TaskRecord {
        status: TaskStatus::Completed,
        attempts: 1,
        result: Some(serde_json::json!(1)),
        ..TaskRecord::default()
    };
    opened
        .writer
        .commit(&[(&"extract".into(), &done)], Durability::Process)
        .await
        .expect("commits");
    drop(opened);

    let changed = Workflow::new("etl", "ETL")
        .task(Task::new("extract", "other_type"))
        .task(Task::new("transform", "step").depends_on(["extract"]));
    let refused = journal.open(&run, &changed).await.expect_err("refused");
    assert!(
        matches!(&refused, JournalError::WorkflowChanged { stale, .. } if stale.len() == 1),
        "{refused}"
    );
    // The unchanged workflow continues it, `extract` restored.
    let reopened = journal.open(&run, &workflow()).await.expect("opens");
    let previous = reopened.previous.expect("recorded before");
    assert_eq!(
        previous.task("extract").map(|t| t.status),
        Some(TaskStatus::Completed)
    );
    assert_eq!(
        previous.task("load").map(|t| t.status),
        Some(TaskStatus::Pending)
    );
}
