//! Runs a workflow read from a file: by default `examples/workflows/ml_pipeline.yaml`,
//! the original module's ML pipeline, with the [`crate::ml_pipeline`] stages registered for its
//! task types. Relative data paths in the file are read from the file's directory.

use std::path::Path;

use orch::prelude::*;

use crate::BoxError;
use crate::ml_pipeline::{self, Outcome};

/// Loads the workflow at `path` and runs it with the ML pipeline's handlers.
pub async fn run(path: &Path) -> Result<Outcome, BoxError> {
    let workflow = Workflow::from_path(path)?;
    let engine = WorkflowEngine::new();
    let base_dir = path.parent().unwrap_or(Path::new("."));
    ml_pipeline::register_handlers(&engine, base_dir);
    let result = engine.execute_workflow(&workflow).await?;
    ml_pipeline::outcome(result)
}
