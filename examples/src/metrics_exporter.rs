//! Metrics across runs, exported for Prometheus: a [`Recorder`] fed from the bus reports
//! through the `metrics` crate, and the Prometheus exporter renders its text format.
//!
//! The data pipeline runs a few times (grouping by region and by product); the output is
//! what a Prometheus server would scrape: `orch_tasks_total{task_type, outcome}` counters
//! and `orch_task_duration_seconds{task_type}` summaries.

use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use orch::prelude::*;

use crate::BoxError;

/// What the example produced.
#[derive(Debug)]
pub struct Outcome {
    /// The Prometheus text exposition.
    pub prometheus_text: String,
    /// The recorder's own view, per task type.
    pub recorder: Arc<Recorder>,
    /// How many runs there were.
    pub runs: usize,
}

/// Installs the Prometheus exporter as this process's `metrics` recorder (once per
/// process) and returns the handle that renders its text.
pub fn install_exporter() -> Result<PrometheusHandle, BoxError> {
    let exporter = PrometheusBuilder::new().build_recorder();
    let handle = exporter.handle();
    metrics::set_global_recorder(exporter)?;
    Ok(handle)
}

/// Runs the data pipeline `runs` times and renders the metrics through `exporter`.
pub async fn run(exporter: &PrometheusHandle, runs: usize) -> Result<Outcome, BoxError> {
    let bus: EventBus<EngineEvent> = EventBus::new();
    let recorder = Arc::new(Recorder::new());
    let mut feed = orch::record_events(&bus, Arc::clone(&recorder))?;
    let engine = WorkflowEngine::builder().event_bus(bus.clone()).build()?;
    crate::data_pipeline::register_handlers(&engine);
    for run in 0..runs {
        let by = if run % 2 == 0 { "region" } else { "product" };
        let workflow = crate::data_pipeline::workflow(&crate::data_file("sales.csv"), by);
        engine.execute_workflow(&workflow).await?;
    }
    bus.close().await;
    feed.finished().await;
    Ok(Outcome {
        prometheus_text: exporter.render(),
        recorder,
        runs,
    })
}
