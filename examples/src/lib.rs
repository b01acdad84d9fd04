//! The logic behind orch's runnable examples (`cargo run --example NAME`).
//!
//! Each module ports one scenario of the original orchestration module's README: it
//! registers deterministic handlers that do real (small) work, builds the workflow and
//! runs it, returning what it computed so that the tests in `tests/` can check it. The
//! binaries beside this crate (`examples/*.rs`) only call these functions and print.
//!
//! | example | module |
//! | --- | --- |
//! | `pipeline_rules` | [`pipeline_rules`]: trigger rules, a branch, a pool and priorities |
//! | `fan_out_cache` | [`fan_out_cache`]: a map over a run-time list, then cached results |
//! | `show_plan` | prints a workflow file's execution order and levels |

use std::path::{Path, PathBuf};

use orch::prelude::WorkflowResult;
use serde_json::Value;

pub mod fan_out_cache;
pub mod pipeline_rules;

/// The error the examples' `run` functions return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What task `id` returned, or an error saying why it has no result (its status and
/// error, or that the workflow has no such task).
pub fn task_output<'r>(result: &'r WorkflowResult, id: &str) -> Result<&'r Value, BoxError> {
    let record = result
        .task(id)
        .ok_or_else(|| format!("the workflow has no `{id}` task"))?;
    record.result.as_ref().ok_or_else(|| {
        let error = record.error.as_deref().unwrap_or("no error recorded");
        format!("`{id}` did not complete ({}): {error}", record.status).into()
    })
}

/// The `examples/` directory of the source tree, where `data/` and `workflows/` live.
pub fn examples_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file shipped in `examples/data/`.
pub fn data_file(name: &str) -> PathBuf {
    examples_dir().join("data").join(name)
}

/// A file shipped in `examples/workflows/`.
pub fn workflow_file(name: &str) -> PathBuf {
    examples_dir().join("workflows").join(name)
}
