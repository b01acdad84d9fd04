//! A helper process for the crash test (not a tool for users): runs, durably, a
//! 1,000-task workflow, and beside it a map task of 200 instances, whose handlers take a
//! millisecond or two and append `TRIAL TASK_ID` (`m[i]` for an instance) to a side
//! file (opened with `O_APPEND`, one write per line) when they complete; every 97th task
//! fails. Started again on the same run id, it continues the run. At the end it prints
//! each task's and instance's id and status, one per line.
//!
//! Usage: `orch-engine-crash-run file DIR RUN_ID TRIAL SIDE_FILE` or, built with the
//! `postgres` feature, `orch-engine-crash-run postgres CONNECTION RUN_ID TRIAL SIDE_FILE`.
//! Odd trials use `Power` durability, even ones `Process`.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orch_core::{RunId, Task, Workflow};
use orch_engine::{Durability, FileJournal, TaskContext, TaskError, WorkflowEngine};

/// The crash test's workflow: task `i` depends on `i - 8` (unless `i` is a multiple of
/// 5) and on `i / 3`; tasks numbered 50 modulo 97 fail. Map task `m` runs an instance
/// for each of the 200 items `list` returns.
fn workflow() -> Workflow {
    let map = Workflow::new("crash", "Crash test")
        .task(Task::new("list", "list"))
        .task(Task::new("m", "item").map_over("list"));
    (0..1000usize).fold(map, |w, i| {
        let mut deps = Vec::new();
        if i >= 8 && i % 5 != 0 {
            deps.push(format!("t{:04}", i - 8));
        }
        if i >= 3 && i / 3 + 8 != i {
            deps.push(format!("t{:04}", i / 3));
        }
        let kind = if i % 97 == 50 { "fail" } else { "work" };
        w.task(Task::new(format!("t{i:04}"), kind).depends_on(deps))
    })
}

/// Appends `TRIAL ID` to the side file, in one write.
fn note(side: &Mutex<std::fs::File>, trial: u32, id: &str) -> Result<(), TaskError> {
    let line = format!("{trial} {id}\n");
    let mut file = side
        .lock()
        .map_err(|_| TaskError::new("side file lock poisoned"))?;
    (file.write_all(line.as_bytes())).map_err(|e| TaskError::new(format!("side file: {e}")))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, target, run, trial, side] = args.as_slice() else {
        return Err(
            "usage: orch-engine-crash-run file|postgres TARGET RUN_ID TRIAL SIDE_FILE".into(),
        );
    };
    let trial: u32 = trial.parse()?;
    let durability = if trial % 2 == 1 {
        Durability::Power
    } else {
        Durability::Process
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let builder = WorkflowEngine::builder().max_concurrent(8);
    let builder = match backend.as_str() {
        "file" => builder.journal(FileJournal::new(target)?, durability),
        #[cfg(feature = "postgres")]
        "postgres" => {
            let journal = runtime.block_on(orch_engine::journal::PgJournal::connect(target))?;
            builder.journal(journal, durability)
        }
        other => return Err(format!("unknown backend {other:?}").into()),
    };
    let engine = builder.build()?;
    let side = Arc::new(Mutex::new(
        OpenOptions::new().create(true).append(true).open(side)?,
    ));
    let noted = Arc::clone(&side);
    engine.register_handler("work", move |ctx: TaskContext| {
        let side = Arc::clone(&noted);
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            note(&side, trial, ctx.task_id())?;
            Ok::<_, TaskError>(ctx.task_id().len())
        }
    });
    let noted = Arc::clone(&side);
    engine.register_handler("list", move |ctx: TaskContext| {
        let side = Arc::clone(&noted);
        async move {
            note(&side, trial, ctx.task_id())?;
            Ok::<_, TaskError>((0..200).collect::<Vec<u32>>())
        }
    });
    engine.register_handler("item", move |ctx: TaskContext| {
        let side = Arc::clone(&side);
        async move {
            let item: u32 = ctx.map_item()?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            note(&side, trial, &format!("{}[{item}]", ctx.task_id()))?;
            Ok::<_, TaskError>(item)
        }
    });
    engine.register_handler("fail", |_ctx: TaskContext| async move {
        Err::<(), _>(TaskError::permanent("fails on purpose"))
    });
    let result = runtime.block_on(engine.run_durable(&workflow(), RunId::parse(run)?))?;
    let mut out = std::io::stdout().lock();
    for (id, record) in result.tasks.iter() {
        writeln!(out, "{id} {}", record.status)?;
    }
    Ok(())
}
