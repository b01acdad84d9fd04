//! Map instances across resumes: a map task that runs again keeps the instances that
//! completed in the run it continues, when its list and inputs are the same; otherwise
//! their records are reset in the journal with the map's.

use std::collections::HashMap;
use std::sync::Arc;

use orch_core::{MapSpec, Plan, TaskId, TaskRecord, TaskStatus, Workflow, WorkflowResult};
use serde_json::Value;

use crate::context::MapItem;
use crate::redefined::marked;
use crate::run::Scheduler;
use crate::run::fan_out::Instance;

/// Per task (by plan index), whether it is a map task that runs again and keeps its
/// instances that completed in the earlier run: its definition has not changed since,
/// and every dependency of it is kept (not run again), so that its list, and whatever
/// else its instances read, are those they completed on.
pub(in crate::run) fn reusing(
    workflow: &Workflow,
    plan: &Plan,
    kept: &[bool],
    changed: &[TaskId],
) -> Box<[bool]> {
    let is_changed = marked(workflow, changed);
    (workflow.tasks().enumerate())
        .map(|(index, task)| {
            task.map.is_some()
                && !kept[index]
                && !is_changed[index]
                && (plan.dependencies(index)).iter().all(|&d| kept[d as usize])
        })
        .collect()
}

/// Whether instance record `record` may stand in place of running the instance: it
/// completed, with an output the record holds (not a summary or a reason).
fn reusable(record: &TaskRecord) -> bool {
    record.status == TaskStatus::Completed && !record.shared_output && record.result.is_some()
}

impl Scheduler<'_> {
    /// Takes over, from the run this one resumes, the instance records of the map tasks
    /// that are kept (they do not run again), and, for those `reusing` names, the
    /// records of their instances that completed (they are restored when the map
    /// starts). Returns, per task, whether it is a map task whose instance records in
    /// `previous` this run does not keep: the journal must reset them.
    pub(in crate::run) fn restore_instances(
        &mut self,
        previous: &WorkflowResult,
        kept: &[bool],
        reusing: &[bool],
    ) -> Vec<bool> {
        let shared = Arc::clone(&self.shared);
        let mut stale = vec![false; kept.len()];
        let Some(extras) = self.extras.as_deref_mut() else {
            return stale;
        };
        let mut reused: HashMap<u32, HashMap<usize, TaskRecord>> = HashMap::new();
        for (id, record) in previous.tasks.iter() {
            if shared.workflow.index_of(id).is_some() {
                continue;
            }
            let Some((task, item)) = MapSpec::parse_instance_id(id) else {
                continue;
            };
            let Some(map) = shared.workflow.index_of(task) else {
                continue;
            };
            if shared.task(map).map.is_none() {
                continue;
            }
            if kept[map] {
                extras.instances.push(Instance {
                    map: map as u32,
                    item: Arc::new(MapItem {
                        index: item,
                        value: Value::Null,
                    }),
                    record: record.clone(),
                    not_journaled: None,
                    journaled: true,
                });
            } else if reusing[map] && reusable(record) {
                let of_map = reused.entry(map as u32).or_default();
                of_map.insert(item, record.clone());
            } else {
                stale[map] = true;
            }
        }
        extras.reused = reused;
        stale
    }

    /// The records of the instances of map task `map` that this run restores, under
    /// their ids: written again after the map's reset in the journal, which takes the
    /// earlier ones out of force.
    pub(in crate::run) fn reused_records(&self, map: usize) -> Vec<(TaskId, TaskRecord)> {
        let task = self.shared.task(map);
        let reused = self
            .extras
            .as_deref()
            .and_then(|e| e.reused.get(&(map as u32)));
        let mut items: Vec<(&usize, &TaskRecord)> = reused.into_iter().flatten().collect();
        items.sort_unstable_by_key(|&(&item, _)| item);
        (items.into_iter())
            .map(|(&item, record)| (MapSpec::instance_id(&task.task_id, item), record.clone()))
            .collect()
    }
}
