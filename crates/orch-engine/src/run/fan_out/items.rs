//! The elements a map task runs over, from the output of the task it maps over.

use orch_core::{MapItemsError, MapSpec};
use serde_json::Value;

use crate::TaskContext;
use crate::output::Stored;

/// The elements of the list `task` maps over, or why there are none to run.
pub(super) fn map_items(
    ctx: &TaskContext,
    spec: &MapSpec,
    limit: u32,
) -> Result<Vec<Value>, String> {
    let list = ctx.input_json(&spec.over).map_err(|e| e.to_string())?;
    match spec.items(ctx.task_id(), list, limit) {
        Ok(items) => Ok(items.to_vec()),
        // A shared value goes by its summary, here no list: said so, since the handler
        // returned a value of its own type, not the summary's.
        Err(error @ MapItemsError::NotAList { .. }) => match ctx.dependency_output(&spec.over) {
            Some(Stored::Shared(shared)) => Err(format!(
                "task `{}` maps over the output of `{}`, a shared `{}` whose summary is not \
                 a list: return the list as JSON, or give it as the summary",
                ctx.task_id(),
                spec.over,
                shared.type_name
            )),
            _ => Err(error.to_string()),
        },
        Err(error) => Err(error.to_string()),
    }
}
