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
    /// the positions `i` of its instances in `by_id`.
    instances: HashMap<TaskId, HashSet<usize>>,
}

impl InForce {
    pub(crate) fn get(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub(crate) fn insert(&mut self, id: TaskId, index: usize) {
        if let Some((task, item)) = MapSpec::parse_instance_id(&id) {
            // The map task's id is made only for its first instance.
            if let Some(items) = self.instances.get_mut(task) {
                items.insert(item);
            } else {
                self.instances.insert(task.into(), HashSet::from([item]));
            }
        }
        self.by_id.insert(id, index);
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<usize> {
        let index = self.by_id.remove(id)?;
        if let Some((task, item)) = MapSpec::parse_instance_id(id)
            && let Some(items) = self.instances.get_mut(task)
        {
            items.remove(&item);
            if items.is_empty() {
                self.instances.remove(task);
            }
        }
        Some(index)
    }

    /// Takes task `task`'s record, and its instances', out of force, but for those
    /// `keep` names.
    pub(crate) fn remove_task(&mut self, task: &str, keep: impl Fn(&str) -> bool) {
        let items = self.instances.get(task).into_iter().flatten();
        let instances = items.map(|&item| MapSpec::instance_id(task, item));
        let gone: Vec<TaskId> = std::iter::once(TaskId::from(task))
            .chain(instances)
            .filter(|id| !keep(id))
            .collect();
        for id in gone {
            self.remove(&id);
        }
    }

    /// Takes the records of map task `task`'s instances numbered `from` on out of force,
    /// but for those `keep` names.
    pub(crate) fn remove_instances(
        &mut self,
        task: &str,
        from: usize,
        keep: impl Fn(&str) -> bool,
    ) {
        let items = self.instances.get(task).into_iter().flatten();
        let gone: Vec<TaskId> = (items.filter(|&&item| item >= from))
            .map(|&item| MapSpec::instance_id(task, item))
            .filter(|id| !keep(id))
            .collect();
        for id in gone {
            self.remove(&id);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TaskId, usize)> {
        self.by_id.iter().map(|(id, &index)| (id, index))
    }
}
