//! The records in force of a run being read: for each task and map instance, which of
//! its records stands. Instances are also found by their map task, so that a task that
//! leaves the workflow takes its instances' records out of force without a look at
//! every record in force (a run read with many definitions and many instances would
//! take time in the product of the two).

use std::collections::{HashMap, HashSet};

use orch_core::{MapSpec, TaskId};

#[derive(Clone, Debug, Default)]
pub(crate) struct InForce {
    /// For each task or instance, the index of its record in force.
    by_id: HashMap<TaskId, usize>,
    /// For each map task (any id `task[i]` in `by_id` is read as one of its instances),
    /// its instances in `by_id`.
    instances: HashMap<TaskId, HashSet<TaskId>>,
}

impl InForce {
    pub(crate) fn get(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub(crate) fn insert(&mut self, id: TaskId, index: usize) {
        if let Some((task, _)) = MapSpec::parse_instance_id(&id) {
            let instances = self.instances.entry(TaskId::from(task)).or_default();
            instances.insert(id.clone());
        }
        self.by_id.insert(id, index);
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<usize> {
        let index = self.by_id.remove(id)?;
        if let Some((task, _)) = MapSpec::parse_instance_id(id)
            && let Some(instances) = self.instances.get_mut(task)
        {
            instances.remove(id);
            if instances.is_empty() {
                self.instances.remove(task);
            }
        }
        Some(index)
    }

    /// Takes task `task`'s record, and its instances', out of force, but for those
    /// `keep` names.
    pub(crate) fn remove_task(&mut self, task: &str, keep: impl Fn(&str) -> bool) {
        let instances = self.instances.get(task).into_iter().flatten();
        let gone: Vec<TaskId> = std::iter::once(&TaskId::from(task))
            .chain(instances)
            .filter(|id| !keep(id))
            .cloned()
            .collect();
        for id in gone {
            self.remove(&id);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TaskId, usize)> {
        self.by_id.iter().map(|(id, &index)| (id, index))
    }
}
