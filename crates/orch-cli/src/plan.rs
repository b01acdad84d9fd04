//! `orch plan`: the order tasks run in and their levels, as a table or JSON.

use serde_json::{Value, json};

use crate::columns::{pad, width};
use crate::dag::Dag;

/// The plan as a table: one row per task in the order they run in.
pub(crate) fn table(dag: &Dag) -> String {
    let id_width = width(dag.nodes.iter().map(|n| n.id.as_str()), 4);
    let type_width = width(dag.nodes.iter().map(|n| n.task_type.as_str()), 4);
    let widest = dag.levels().iter().map(Vec::len).max().unwrap_or(0);
    let mut text = format!(
        "workflow `{}`: {} tasks in {} levels (at most {} side by side)\n",
        dag.workflow_id,
        dag.nodes.len(),
        dag.depth(),
        widest
    );
    text.push_str(&format!(
        "{:>5}  {:>5}  {}  {}  dependencies\n",
        "order",
        "level",
        pad("task", id_width),
        pad("type", type_width)
    ));
    for (position, &i) in dag.order.iter().enumerate() {
        let node = &dag.nodes[i];
        let dependencies: Vec<&str> = node
            .dependencies
            .iter()
            .map(|&d| dag.nodes[d].id.as_str())
            .collect();
        let dependencies = if dependencies.is_empty() {
            "-".to_owned()
        } else {
            dependencies.join(", ")
        };
        text.push_str(&format!(
            "{:>5}  {:>5}  {}  {}  {dependencies}\n",
            position + 1,
            node.level,
            pad(&node.id, id_width),
            pad(&node.task_type, type_width)
        ));
    }
    text
}

/// The plan as JSON: `order` (ids), `levels` (ids per level) and `tasks` (each with its
/// type, level, position in the order and dependencies), tasks in the file's order.
pub(crate) fn json(dag: &Dag) -> Value {
    let id = |i: usize| dag.nodes[i].id.as_str();
    let mut position = vec![0; dag.nodes.len()];
    for (p, &i) in dag.order.iter().enumerate() {
        position[i] = p;
    }
    let tasks: Vec<Value> = dag
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            json!({
                "id": node.id,
                "name": node.name,
                "type": node.task_type,
                "level": node.level,
                "position": position[i],
                "dependencies": node.dependencies.iter().map(|&d| id(d)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "workflow_id": dag.workflow_id,
        "name": dag.name,
        "order": dag.order.iter().map(|&i| id(i)).collect::<Vec<_>>(),
        "levels": dag.levels().iter().map(|l| l.iter().map(|&i| id(i)).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "tasks": tasks,
    })
}
