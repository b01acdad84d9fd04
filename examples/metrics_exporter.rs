//! Per task type metrics across several runs, in Prometheus's text format: a `Recorder`
//! fed from the bus reports through the `metrics` crate to the Prometheus exporter.
//!
//! A small pipeline (`fetch` → `process`) runs a few times; the output is what a
//! Prometheus server would scrape: `orch_tasks_total{task_type, outcome}` counters and
//! `orch_task_duration_seconds{task_type}` summaries.
//!
//! `cargo run --example metrics_exporter`

use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use orch::prelude::*;
use serde::Deserialize;
use serde_json::json;

#[path = "support/mod.rs"]
mod support;

use support::BoxError;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let exporter = install_exporter()?;
    let outcome = run(&exporter, 4).await?;
    println!("# {} runs of the pipeline", outcome.runs);
    for task_type in ["fetch", "process"] {
        if let Some(seen) = outcome.recorder.task_type(task_type) {
            println!("# {task_type}: {} completed", seen.completed);
        }
    }
    println!();
    print!("{}", outcome.prometheus_text);
    Ok(())
}

/// Installs the Prometheus exporter as this process's `metrics` recorder (once per
/// process) and returns the handle that renders its text.
pub(crate) fn install_exporter() -> Result<PrometheusHandle, BoxError> {
    let exporter = PrometheusBuilder::new().build_recorder();
    let handle = exporter.handle();
    metrics::set_global_recorder(exporter)?;
    Ok(handle)
}

/// `fetch` returns the numbers `1..=n`, `process` sums them.
fn workflow(n: u64) -> Workflow {
    Workflow::new("numbers", "Numbers")
        .task(Task::new("fetch", "fetch").config(json!({ "n": n })))
        .task(Task::new("process", "process").depends_on(["fetch"]))
}

#[derive(Deserialize)]
struct FetchConfig {
    n: u64,
}

/// What the example produced.
pub(crate) struct Outcome {
    /// The Prometheus text exposition.
    pub(crate) prometheus_text: String,
    /// The recorder's own view, per task type.
    pub(crate) recorder: Arc<Recorder>,
    /// How many runs there were.
    pub(crate) runs: usize,
}

/// Runs the pipeline `runs` times on one engine and renders the metrics through
/// `exporter`.
pub(crate) async fn run(exporter: &PrometheusHandle, runs: usize) -> Result<Outcome, BoxError> {
    let bus: EventBus<EngineEvent> = EventBus::new();
    let recorder = Arc::new(Recorder::new());
    let mut feed = orch::record_events(&bus, Arc::clone(&recorder))?;
    let engine = WorkflowEngine::builder().event_bus(bus.clone()).build()?;
    engine.register_handler("fetch", |ctx: TaskContext| async move {
        let config: FetchConfig = ctx.config_as()?;
        Ok::<_, TaskError>((1..=config.n).collect::<Vec<u64>>())
    });
    engine.register_handler("process", |ctx: TaskContext| async move {
        let numbers: Vec<u64> = ctx.input("fetch")?;
        Ok::<_, TaskError>(numbers.iter().sum::<u64>())
    });
    for run in 0..runs {
        engine
            .execute_workflow(&workflow(10 * (run as u64 + 1)))
            .await?;
    }
    // Closing the bus ends the feed once it has recorded every event.
    bus.close().await;
    feed.finished().await;
    Ok(Outcome {
        prometheus_text: exporter.render(),
        recorder,
        runs,
    })
}
