//! Trigger rules, a branch, pools and priorities on one nightly reporting run:
//!
//! - Three sources load sales figures; `source_eu` is offline and fails.
//! - `merge` has the rule `one_success`: it sums whichever sources arrived.
//! - `alert` has the rule `one_failed`: it runs because a source failed, and as a
//!   completed failure handler it keeps the run from ending `failed`.
//! - `route` is a branch: it chooses `full_report` for large totals and `quick_report`
//!   otherwise; the other report is skipped, naming `route`.
//! - `publish` (`none_failed_min_one_success`) runs after whichever report ran.
//! - Three embedding jobs share the `gpu` pool (limit 1): they run one at a time, the
//!   highest priority first, while the sources use the global slots.
//! - `cleanup` (`all_done`) runs last, whatever happened before it.
//!
//! `main` runs the report twice:
//! with small figures (the quick report runs) and large ones (the full report runs), and
//! prints each task's status, with the reason of every skip, and the order tasks started.
//!
//! `cargo run --example pipeline_rules`

use std::sync::{Arc, Mutex};

use orch::prelude::*;
use serde_json::{Value, json};

#[path = "support/mod.rs"]
mod support;

use support::BoxError;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    for scale in [1, 100] {
        let outcome = run(scale).await?;
        println!("figures x{scale}: workflow {}", outcome.result.status);
        for (id, record) in outcome.result.tasks.iter() {
            let why = record.error.as_deref().unwrap_or("");
            println!("  {id:<14} {:<10} {why}", record.status.to_string());
        }
        println!("  started: {}", outcome.starts.join(", "));
    }
    Ok(())
}

/// Above this total, `route` chooses the full report.
pub(crate) const FULL_REPORT_FROM: u64 = 1_000;

/// Task ids in the order their handlers started.
#[derive(Default)]
pub(crate) struct Starts(pub(crate) Mutex<Vec<String>>);

/// What a run of the pipeline gives back.
pub(crate) struct Outcome {
    /// The run's result.
    pub(crate) result: WorkflowResult,
    /// Task ids in the order they started.
    pub(crate) starts: Vec<String>,
}

/// The workflow; `scale` multiplies every source's figures (so it picks the branch).
pub(crate) fn workflow(scale: u64) -> Workflow {
    let figures = |values: [u64; 3]| json!({"values": values.map(|v| v * scale)});
    let embed = |id: &str, priority: i32| {
        Task::new(id, "embed")
            .pool("gpu")
            .priority(priority)
            .config(json!({"dims": 8}))
    };
    Workflow::new("pipeline_rules", "Nightly Sales Report")
        .task(Task::new("source_us", "source").config(figures([10, 20, 30])))
        .task(Task::new("source_asia", "source").config(figures([5, 5, 5])))
        .task(Task::new("source_eu", "source").config(json!({"offline": true})))
        .task(
            Task::new("merge", "merge")
                .depends_on(["source_us", "source_asia", "source_eu"])
                .trigger_rule(TriggerRule::OneSuccess),
        )
        .task(
            Task::new("alert", "alert")
                .depends_on(["source_us", "source_asia", "source_eu"])
                .trigger_rule(TriggerRule::OneFailed),
        )
        .task(Task::new("route", "route").depends_on(["merge"]))
        .task(Task::new("quick_report", "report").depends_on(["route"]))
        .task(Task::new("full_report", "report").depends_on(["route"]))
        .task(
            Task::new("publish", "publish")
                .depends_on(["quick_report", "full_report"])
                .trigger_rule(TriggerRule::NoneFailedMinOneSuccess),
        )
        .task(embed("embed_archive", -1))
        .task(embed("embed_today", 10))
        .task(embed("embed_week", 5))
        .task(
            Task::new("cleanup", "cleanup")
                .depends_on(["publish", "embed_archive", "embed_today", "embed_week"])
                .trigger_rule(TriggerRule::AllDone),
        )
}

/// An engine with four global slots and a `gpu` pool of one, whose handlers record their
/// starts in `starts`.
pub(crate) fn engine(starts: Arc<Starts>) -> Result<WorkflowEngine, BoxError> {
    let engine = WorkflowEngine::builder()
        .max_concurrent(4)
        .pool("gpu", 1)
        .state(starts)
        .build()?;
    register_handlers(&engine);
    Ok(engine)
}

fn started(ctx: &TaskContext) -> Result<(), TaskError> {
    let starts = ctx.state::<Arc<Starts>>()?;
    let mut starts = starts.0.lock().unwrap_or_else(|e| e.into_inner());
    starts.push(ctx.task_id().to_string());
    Ok(())
}

fn total_of(ctx: &TaskContext) -> u64 {
    ctx.dependency_results()
        .filter_map(|(_, value)| value["total"].as_u64())
        .sum()
}

/// Registers the handlers for the workflow's task types.
pub(crate) fn register_handlers(engine: &WorkflowEngine) {
    engine.register_handler("source", |ctx: TaskContext| async move {
        started(&ctx)?;
        if ctx.config()["offline"] == json!(true) {
            return Err(TaskError::permanent(format!(
                "{} is offline",
                ctx.task_id()
            )));
        }
        let values: Vec<u64> =
            serde_json::from_value(ctx.config()["values"].clone()).map_err(TaskError::permanent)?;
        Ok::<_, TaskError>(json!({"total": values.iter().sum::<u64>()}))
    });
    engine.register_handler("merge", |ctx: TaskContext| async move {
        started(&ctx)?;
        let arrived: Vec<&str> = ctx
            .dependency_results()
            .map(|(id, _)| id.as_str())
            .collect();
        Ok::<_, TaskError>(json!({"total": total_of(&ctx), "sources": arrived}))
    });
    engine.register_handler("alert", |ctx: TaskContext| async move {
        started(&ctx)?;
        let arrived = ctx.dependency_results().count();
        let missing = ctx.task_definition().dependencies.len() - arrived;
        Ok::<_, TaskError>(format!("{missing} source(s) missing"))
    });
    engine.register_handler("route", |ctx: TaskContext| async move {
        started(&ctx)?;
        let total = total_of(&ctx);
        let report = if total >= FULL_REPORT_FROM {
            "full_report"
        } else {
            "quick_report"
        };
        ctx.choose_branches([report])?;
        Ok::<_, TaskError>(json!({"total": total, "report": report}))
    });
    engine.register_handler("report", |ctx: TaskContext| async move {
        started(&ctx)?;
        let total = total_of(&ctx);
        Ok::<_, TaskError>(json!({"total": total, "text": format!("{}: {total}", ctx.task_id())}))
    });
    engine.register_handler("publish", |ctx: TaskContext| async move {
        started(&ctx)?;
        let (report, value) = ctx
            .dependency_results()
            .next()
            .ok_or_else(|| TaskError::permanent("no report to publish"))?;
        Ok::<_, TaskError>(json!({"published": report.as_str(), "text": value["text"]}))
    });
    engine.register_handler("embed", |ctx: TaskContext| async move {
        started(&ctx)?;
        let dims = ctx.config()["dims"].as_u64().unwrap_or(1);
        let vector: Vec<Value> = (0..dims).map(|i| json!(i * i)).collect();
        Ok::<_, TaskError>(Value::Array(vector))
    });
    engine.register_handler("cleanup", |ctx: TaskContext| async move {
        started(&ctx)?;
        Ok::<_, TaskError>(json!({"after": ctx.dependency_results().count()}))
    });
}

/// Runs the pipeline with every source's figures multiplied by `scale`.
pub(crate) async fn run(scale: u64) -> Result<Outcome, BoxError> {
    let starts = Arc::new(Starts::default());
    let engine = engine(Arc::clone(&starts))?;
    let result = engine.execute_workflow(&workflow(scale)).await?;
    let starts = std::mem::take(&mut *starts.0.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Outcome { result, starts })
}
