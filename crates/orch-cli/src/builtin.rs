//! The handlers of the built-in task types, registered on an engine. This module and
//! `run.rs` are the only ones that call into the engine's handler API.

use std::path::PathBuf;
use std::sync::Arc;

use orch::engine::{TaskContext, TaskError, WorkflowEngine};
use serde_json::Value;

use crate::inputs::InputsRoot;
use crate::process::{self, Launch};
use crate::spec::{self, Builtin};

/// What every handler of one run shares.
struct Shared {
    /// The workflow file's directory: relative `cwd`s start there.
    base_dir: PathBuf,
    inputs: InputsRoot,
}

/// Registers `command`, `sleep` and `echo` on `engine`. Dependency results are written
/// under `inputs` for the commands that have dependencies.
pub(crate) fn register(engine: &WorkflowEngine, base_dir: PathBuf, inputs: InputsRoot) {
    let shared = Arc::new(Shared { base_dir, inputs });
    for task_type in spec::TYPES {
        let shared = Arc::clone(&shared);
        // The engine runs each attempt as its own tokio task (its default on a
        // multi-threaded runtime), so process starts happen on every worker thread.
        engine.register_handler(task_type, move |ctx: TaskContext| {
            let shared = Arc::clone(&shared);
            async move { call(&shared, ctx).await }
        });
    }
}

async fn call(shared: &Shared, ctx: TaskContext) -> Result<Value, TaskError> {
    let task = ctx.task_definition();
    let builtin = match spec::parse(&task.task_type, ctx.config()) {
        Some(Ok(builtin)) => builtin,
        Some(Err(problems)) => {
            let text: Vec<String> = problems.into_iter().map(|p| p.message).collect();
            return Err(TaskError::permanent(text.join("; ")));
        }
        None => {
            return Err(TaskError::permanent(format!(
                "unknown task type `{}`",
                task.task_type
            )));
        }
    };
    match builtin {
        Builtin::Echo(value) => Ok(value),
        Builtin::Sleep(duration) => {
            tokio::select! {
                () = tokio::time::sleep(duration) => Ok(Value::Null),
                () = ctx.cancellation().cancelled() => Err(TaskError::permanent("the run was cancelled")),
            }
        }
        Builtin::Command(spec) => {
            let inputs: Vec<(String, &Value)> = ctx
                .dependency_results()
                .map(|(id, value)| (id.to_string(), value))
                .collect();
            let inputs_dir = if inputs.is_empty() {
                None
            } else {
                let dir = shared.inputs.write(ctx.task_id(), &inputs).map_err(|e| {
                    TaskError::permanent(format!("cannot write the dependencies' results: {e}"))
                })?;
                Some(dir)
            };
            let launch = Launch {
                spec: &spec,
                task_id: ctx.task_id(),
                workflow_id: ctx.workflow().workflow_id(),
                attempt: ctx.attempt(),
                base_dir: &shared.base_dir,
                inputs_dir,
            };
            process::run(launch, ctx.cancellation().cancelled())
                .await
                .map_err(|e| {
                    if e.is_permanent() {
                        TaskError::permanent(e.to_string())
                    } else {
                        TaskError::new(e.to_string())
                    }
                })
        }
    }
}
