//! Helpers the examples share that are not about orch: the error type their functions
//! return, reading one task's output with a clear error, and where the data files are.
//! Each example includes this file as `mod support;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use orch::prelude::WorkflowResult;
use serde_json::Value;

/// The error the examples' functions return.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What task `id` returned, or an error saying why it has no result (its status and
/// error, or that the workflow has no such task).
pub(crate) fn task_output<'r>(result: &'r WorkflowResult, id: &str) -> Result<&'r Value, BoxError> {
    let record = result
        .task(id)
        .ok_or_else(|| format!("the workflow has no `{id}` task"))?;
    record.result.as_ref().ok_or_else(|| {
        let error = record.error.as_deref().unwrap_or("no error recorded");
        format!("`{id}` did not complete ({}): {error}", record.status).into()
    })
}

/// A file shipped in `examples/data/`.
pub(crate) fn data_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// A file shipped in `examples/workflows/`.
pub(crate) fn workflow_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("workflows")
        .join(name)
}
