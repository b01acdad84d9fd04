//! Helpers the examples share that are not about orch: the error type their functions
//! return, reading one task's output with a clear error, and where the data files are.
//! Each example includes this file as `mod support;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use orch::prelude::WorkflowResult;
use serde_json::Value;

/// The error the examples' functions return: any error, shown by its message. (`main`
/// returns it too, and Rust prints a `main`'s error with `{:?}`: as its message here,
/// not as the error's fields.)
pub(crate) struct BoxError(Box<dyn std::error::Error + Send + Sync>);

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for BoxError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl std::fmt::Display for BoxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::fmt::Debug for BoxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

/// What task `id` returned, or an error saying why it has no result (its status and
/// error, or that the workflow has no such task).
pub(crate) fn task_output<'r>(result: &'r WorkflowResult, id: &str) -> Result<&'r Value, BoxError> {
    let record = result
        .task(id)
        .ok_or_else(|| format!("the workflow has no `{id}` task"))?;
    record.result.as_ref().ok_or_else(|| {
        let error = record.error.as_deref().unwrap_or("no error recorded");
        let mut text = format!("`{id}` did not complete ({}): {error}", record.status);
        // When it did not fail itself, the failure that came first (in time).
        let failed = orch::prelude::TaskStatus::Failed;
        let first = (result.tasks.iter())
            .filter(|(_, task)| task.status == failed)
            .min_by_key(|(_, task)| task.end_time);
        if let Some((first, task)) = first.filter(|_| record.status != failed) {
            let error = task.error.as_deref().unwrap_or("no error recorded");
            text.push_str(&format!("; the run's first failure: `{first}`: {error}"));
        }
        text.into()
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
