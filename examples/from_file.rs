//! Runs a workflow read from a file: by default `examples/workflows/ml_pipeline.yaml`,
//! the original module's ML pipeline, with the handlers of the `ml_pipeline` example
//! registered for its task types. A relative data path in a `load` task is read from the
//! workflow file's directory. Prints what each stage did.
//!
//! `cargo run --example from_file [-- path/to/workflow.yaml]`

use std::path::{Path, PathBuf};

use orch::prelude::*;
use serde_json::Value;

/// The `ml_pipeline` example's handlers, `outcome` and `print`.
#[path = "ml_pipeline.rs"]
#[allow(dead_code)]
pub(crate) mod ml_pipeline;

use ml_pipeline::support::{self, BoxError};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| support::workflow_file("ml_pipeline.yaml"));
    println!("workflow file: {}", path.display());
    let outcome = run(&path).await?;
    ml_pipeline::print(&outcome);
    Ok(())
}

/// Loads the workflow at `path` (YAML, TOML or JSON, by its extension) and runs it with
/// the ML pipeline's handlers.
pub(crate) async fn run(path: &Path) -> Result<ml_pipeline::Outcome, BoxError> {
    let workflow = Workflow::from_path(path)?;
    // Checked as read: the copy made below keeps one task of each id.
    workflow
        .validate()
        .map_err(|errors| format!("{}: {errors}", path.display()))?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let tasks = workflow.tasks().cloned().map(|mut task| {
        if let (true, Some(Value::String(data))) =
            (task.task_type == "load", task.config.get_mut("path"))
        {
            *data = base_dir.join(&*data).display().to_string();
        }
        task
    });
    let workflow = Workflow::from_tasks(workflow.workflow_id(), workflow.name(), tasks);
    let engine = WorkflowEngine::new();
    ml_pipeline::register_handlers(&engine);
    ml_pipeline::outcome(engine.execute_workflow(&workflow).await?)
}
