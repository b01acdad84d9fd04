//! Reads a workflow file (default: the original module's ML pipeline), validates it and prints its
//! execution order and task levels.
//!
//! `cargo run --example show_plan [-- path/to/workflow.{json,yaml,toml}]`

use std::fmt::Write as _;
use std::process::ExitCode;

use orch::prelude::*;

fn main() -> ExitCode {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/ml_pipeline.yaml").to_owned()
    });
    match plan_text(&path) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// The workflow file at `path` as text: its name, execution order and levels; or why it
/// cannot be read or run.
pub(crate) fn plan_text(path: &str) -> Result<String, String> {
    let workflow = Workflow::from_path(path).map_err(|error| error.to_string())?;
    let valid = workflow.validate().map_err(|errors| {
        format!(
            "{} is not a valid workflow:\n{errors}",
            workflow.workflow_id()
        )
    })?;
    let mut text = format!(
        "{} ({} tasks)\nexecution order:\n",
        workflow.name(),
        workflow.len()
    );
    for (step, id) in valid.execution_order().into_iter().enumerate() {
        let Some(task) = workflow.get(id) else {
            continue;
        };
        let _ = writeln!(
            text,
            "  {:>2}. {id} [{}] {}",
            step + 1,
            task.task_type,
            task.display_name()
        );
    }
    text.push_str("levels:\n");
    for (id, level) in valid.task_levels() {
        let _ = writeln!(text, "  {level}  {id}");
    }
    Ok(text)
}
