//! A durable run that is interrupted and resumed: a slow six-step pipeline records each
//! completed step in a file journal; stopped halfway (after a number of steps, or by
//! Ctrl-C in the binary), it is started again under the same run id and runs only the
//! steps that had not completed, reporting the others as restored from the journal.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use orch::prelude::*;
use serde_json::json;

use crate::BoxError;

/// How to run the pipeline.
#[derive(Clone, Debug)]
pub struct Options {
    /// The journal's directory.
    pub journal_dir: PathBuf,
    /// The run to start or continue.
    pub run_id: RunId,
    /// How long each step takes.
    pub step: Duration,
    /// Stop the run once this many steps completed in this process.
    pub abort_after: Option<usize>,
}

/// What one start of the pipeline did.
#[derive(Debug)]
pub struct Outcome {
    /// The run's result: `cancelled` when it was stopped, `completed` once every step is.
    pub result: WorkflowResult,
    /// The steps restored from the journal (their `TaskRestored` events), in order.
    pub restored: Vec<TaskId>,
    /// The steps that ran and completed in this start, in order.
    pub ran: Vec<TaskId>,
}

/// The pipeline: download, parse, then clean and index side by side, a report on both,
/// and publishing the report.
pub fn workflow() -> Workflow {
    Workflow::new("durable_pipeline", "Slow pipeline")
        .task(Task::new("download", "step"))
        .task(Task::new("parse", "step").depends_on(["download"]))
        .task(Task::new("clean", "step").depends_on(["parse"]))
        .task(Task::new("index", "step").depends_on(["parse"]))
        .task(Task::new("report", "step").depends_on(["clean", "index"]))
        .task(Task::new("publish", "step").depends_on(["report"]))
}

/// Starts or continues the run; `stop` cancels it (the binary cancels it on Ctrl-C).
pub async fn run(options: &Options, stop: CancellationToken) -> Result<Outcome, BoxError> {
    let bus: EventBus<EngineEvent> = EventBus::new();
    let restored: Arc<Mutex<Vec<TaskId>>> = Arc::default();
    let log = Arc::clone(&restored);
    let mut restored_events = bus.subscribe_fn(
        "workflow.*.task.*.restored",
        SubscribeOptions::new(),
        move |delivery| {
            if let Some(id) = delivery.event().and_then(|e| e.payload().task_id.clone()) {
                log.lock().unwrap_or_else(PoisonError::into_inner).push(id);
            }
            std::future::ready(())
        },
    )?;
    let journal = FileJournal::new(&options.journal_dir)?;
    let engine = WorkflowEngine::builder()
        .journal(journal, Durability::Process)
        .event_bus(bus.clone())
        .build()?;
    let ran: Arc<Mutex<Vec<TaskId>>> = Arc::default();
    register_step(&engine, options, &stop, &ran);

    let mut handle = engine.run_durable(&workflow(), options.run_id.clone());
    let result = tokio::select! {
        result = &mut handle => result?,
        () = stop.cancelled() => {
            handle.cancel();
            handle.await?
        }
    };
    bus.close().await;
    restored_events.finished().await;
    let take = |list: &Mutex<Vec<TaskId>>| {
        std::mem::take(&mut *list.lock().unwrap_or_else(PoisonError::into_inner))
    };
    Ok(Outcome {
        result,
        restored: take(&restored),
        ran: take(&ran),
    })
}

/// A step waits `options.step` (or until the run is cancelled), then outputs one more
/// than the largest output of its dependencies, so the last step's output shows that
/// restored outputs reached the steps that ran after them.
fn register_step(
    engine: &WorkflowEngine,
    options: &Options,
    stop: &CancellationToken,
    ran: &Arc<Mutex<Vec<TaskId>>>,
) {
    let (step, abort_after) = (options.step, options.abort_after);
    let (stop, ran) = (stop.clone(), Arc::clone(ran));
    let completed = Arc::new(AtomicUsize::new(0));
    engine.register_handler("step", move |ctx: TaskContext| {
        let (stop, ran, completed) = (stop.clone(), Arc::clone(&ran), Arc::clone(&completed));
        async move {
            tokio::select! {
                () = tokio::time::sleep(step) => {}
                () = ctx.cancellation().cancelled() => return Err(TaskError::new("interrupted")),
            }
            let depth = ctx
                .dependency_results()
                .filter_map(|(_, output)| output["depth"].as_u64())
                .max()
                .map_or(1, |d| d + 1);
            ran.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(ctx.task_id().clone());
            let done = completed.fetch_add(1, Ordering::SeqCst) + 1;
            if abort_after == Some(done) {
                stop.cancel();
            }
            Ok::<_, TaskError>(json!({ "depth": depth }))
        }
    });
}
