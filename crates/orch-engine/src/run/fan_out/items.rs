//! The elements a map task runs over, from the output of the task it maps over.

use orch_core::MapSpec;
use serde_json::Value;

use crate::TaskContext;
use crate::output::Stored;

/// The elements of the list `task` maps over, or why there are none to run.
pub(super) fn map_items(
    ctx: &TaskContext,
    spec: &MapSpec,
    limit: u32,
) -> Result<Vec<Value>, String> {
    if let Some(Stored::Shared(shared)) = ctx.dependency_output(&spec.over) {
        return Err(format!(
            "task `{}` maps over the output of `{}`, a shared `{}`, which is not JSON (only \
             its summary is): return the list itself",
            ctx.task_id(),
            spec.over,
            shared.type_name
        ));
    }
    let list = ctx.input_json(&spec.over).map_err(|e| e.to_string())?;
    match spec.items(ctx.task_id(), list, limit) {
        Ok(items) => Ok(items.to_vec()),
        Err(error) => Err(error.to_string()),
    }
}
