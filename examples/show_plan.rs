//! Reads a workflow file (default: the original module's ML pipeline), validates it and prints its
//! execution order and task levels.
//!
//! `cargo run --example show_plan [-- path/to/workflow.{json,yaml,toml}]`

use std::process::ExitCode;

use orch::prelude::*;

fn main() -> ExitCode {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/ml_pipeline.yaml").to_owned()
    });
    let workflow = match Workflow::from_path(&path) {
        Ok(workflow) => workflow,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let valid = match workflow.validate() {
        Ok(valid) => valid,
        Err(errors) => {
            eprintln!(
                "{} is not a valid workflow:\n{errors}",
                workflow.workflow_id()
            );
            return ExitCode::FAILURE;
        }
    };
    println!("{} ({} tasks)", workflow.name(), workflow.len());
    println!("execution order:");
    for (step, id) in valid.execution_order().into_iter().enumerate() {
        let Some(task) = workflow.get(id) else {
            continue;
        };
        println!(
            "  {:>2}. {id} [{}] {}",
            step + 1,
            task.task_type,
            task.display_name()
        );
    }
    println!("levels:");
    for (id, level) in valid.task_levels() {
        println!("  {level}  {id}");
    }
    ExitCode::SUCCESS
}
