//! A durable run that is interrupted and resumed: a slow six-step pipeline records each
//! completed step in a file journal; stopped halfway (after a number of steps, or by
//! Ctrl-C), it is started again under the same run id and runs only the
//! steps that had not completed, reporting the others as restored from the journal.
//!
//! ```text
//! cargo run --example durable -- --abort-after 3   # stops after 3 of 6 steps
//! cargo run --example durable                      # restores 3, runs the other 3
//! ```
//!
//! Options: `--journal DIR` (default: `orch-durable-example` in the temporary
//! directory), `--run ID` (default `pipeline-1`), `--step-ms MS` (default 500),
//! `--abort-after N` (1 to 5). Once a run has completed, running it again restores every
//! step: to see the demonstration again, give another `--run` id (or remove the
//! journal directory).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use orch::prelude::*;
use serde_json::json;

#[path = "support/mod.rs"]
mod support;

use support::BoxError;

fn options() -> Result<Options, BoxError> {
    let mut options = Options {
        journal_dir: std::env::temp_dir().join("orch-durable-example"),
        run_id: RunId::parse("pipeline-1")?,
        step: Duration::from_millis(500),
        abort_after: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let known = ["--abort-after", "--journal", "--run", "--step-ms"];
        if !known.contains(&flag.as_str()) {
            return Err(
                format!("unknown option {flag} (the options: {})", known.join(", ")).into(),
            );
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |value: &str| {
            (value.parse::<u64>())
                .map_err(|e| format!("{flag} takes a whole number, not {value:?}: {e}"))
        };
        match flag.as_str() {
            "--abort-after" => {
                let after = number(&value)?;
                // Stopping after 0 or all 6 steps would leave nothing to resume.
                if !(1..=5).contains(&after) {
                    return Err(format!("--abort-after takes 1 to 5 steps, not {after}").into());
                }
                options.abort_after = Some(after as usize);
            }
            "--journal" => options.journal_dir = value.into(),
            "--run" => {
                options.run_id = RunId::parse(&value).map_err(|e| format!("--run: {e}"))?;
            }
            _ => options.step = Duration::from_millis(number(&value)?),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let stop = CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    println!(
        "run `{}`, journal in {}",
        options.run_id,
        options.journal_dir.display()
    );
    let outcome = run(&options, stop).await?;
    let list = |ids: &[TaskId]| {
        let ids: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        if ids.is_empty() {
            "none".to_owned()
        } else {
            ids.join(", ")
        }
    };
    println!("restored from the journal: {}", list(&outcome.restored));
    println!("ran now:                   {}", list(&outcome.ran));
    println!("run status:                {}", outcome.result.status);
    if outcome.result.status == WorkflowStatus::Cancelled {
        println!("interrupted: run the same command again (without --abort-after) to resume");
    }
    Ok(())
}

/// How to run the pipeline.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// The journal's directory.
    pub(crate) journal_dir: PathBuf,
    /// The run to start or continue.
    pub(crate) run_id: RunId,
    /// How long each step takes.
    pub(crate) step: Duration,
    /// Stop the run once this many steps completed in this process.
    pub(crate) abort_after: Option<usize>,
}

/// What one start of the pipeline did.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The run's result: `cancelled` when it was stopped, `completed` once every step is.
    pub(crate) result: WorkflowResult,
    /// The steps restored from the journal (their `TaskRestored` events), in order.
    pub(crate) restored: Vec<TaskId>,
    /// The steps that ran and completed in this start, in order.
    pub(crate) ran: Vec<TaskId>,
}

/// The pipeline: download, parse, then clean and index side by side, a report on both,
/// and publishing the report.
pub(crate) fn workflow() -> Workflow {
    Workflow::new("durable_pipeline", "Slow pipeline")
        .task(Task::new("download", "step"))
        .task(Task::new("parse", "step").depends_on(["download"]))
        .task(Task::new("clean", "step").depends_on(["parse"]))
        .task(Task::new("index", "step").depends_on(["parse"]))
        .task(Task::new("report", "step").depends_on(["clean", "index"]))
        .task(Task::new("publish", "step").depends_on(["report"]))
}

/// Starts or continues the run; `stop` cancels it (`main` cancels it on Ctrl-C).
pub(crate) async fn run(options: &Options, stop: CancellationToken) -> Result<Outcome, BoxError> {
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
    let steps = Arc::new(Steps {
        step: options.step,
        abort_after: options.abort_after,
        stop: stop.clone(),
        ran: Mutex::default(),
        completed: AtomicUsize::new(0),
    });
    let engine = WorkflowEngine::builder()
        .journal(journal, Durability::Process)
        .event_bus(bus.clone())
        .state(Arc::clone(&steps))
        .build()?;
    engine.register_handler("step", step);

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
        ran: take(&steps.ran),
    })
}

/// What the `step` handler shares, as the engine's state: how long a step takes, after
/// how many completed steps the run stops (and the token that stops it), and the steps
/// that ran.
pub(crate) struct Steps {
    step: Duration,
    abort_after: Option<usize>,
    stop: CancellationToken,
    ran: Mutex<Vec<TaskId>>,
    completed: AtomicUsize,
}

/// A step waits `Steps::step` (or until the run is cancelled), then outputs one more
/// than the largest output of its dependencies, so the last step's output shows that
/// restored outputs reached the steps that ran after them.
async fn step(ctx: TaskContext) -> Result<serde_json::Value, TaskError> {
    let steps = ctx.state::<Arc<Steps>>()?;
    tokio::select! {
        () = tokio::time::sleep(steps.step) => {}
        () = ctx.cancellation().cancelled() => return Err(TaskError::new("interrupted")),
    }
    let depth = ctx
        .dependency_results()
        .filter_map(|(_, output)| output["depth"].as_u64())
        .max()
        .map_or(1, |d| d + 1);
    steps
        .ran
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(ctx.task_id().clone());
    let done = steps.completed.fetch_add(1, Ordering::SeqCst) + 1;
    if steps.abort_after == Some(done) {
        steps.stop.cancel();
    }
    Ok(json!({ "depth": depth }))
}
