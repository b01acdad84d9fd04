//! [`TaskTable`]: a workflow's tasks in insertion order, found by id.

use std::fmt;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use serde::{Serialize, Serializer};

use crate::{Task, TaskId};

/// A workflow's tasks in insertion order, each found by its key (its id).
///
/// The index holds positions only and reads each key from its task: the tasks are most of
/// a workflow's memory, and a map that kept each key and hash beside its task would add
/// 24 bytes to every one (`engine_memory` and the RSS column of `cargo xtask bench`).
#[derive(Clone, Default)]
pub(crate) struct TaskTable {
    tasks: Vec<Task>,
    index: HashTable<u32>,
    hasher: RandomState,
    /// Keys that differ from their task's id, by position, in ascending order: only a
    /// file in map form that says so, which validation reports.
    renamed: Vec<(u32, TaskId)>,
}

/// The key of the task at `position`: its id, unless the file named it otherwise.
fn key_at<'t>(tasks: &'t [Task], renamed: &'t [(u32, TaskId)], position: usize) -> &'t TaskId {
    if !renamed.is_empty()
        && let Ok(found) = renamed.binary_search_by_key(&position, |(p, _)| *p as usize)
    {
        return &renamed[found].1;
    }
    &tasks[position].task_id
}

impl TaskTable {
    /// The number of tasks.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no tasks.
    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The position of the task with key `id`.
    pub(crate) fn get_index_of(&self, id: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        let (tasks, renamed) = (&self.tasks, &self.renamed);
        let found = self.index.find(hash, |&position| {
            key_at(tasks, renamed, position as usize).as_str() == id
        });
        found.map(|&position| position as usize)
    }

    /// Whether a task has key `id`.
    pub(crate) fn contains_key(&self, id: &str) -> bool {
        self.get_index_of(id).is_some()
    }

    /// The task with key `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&Task> {
        self.get_index_of(id).map(|position| &self.tasks[position])
    }

    /// The key and task with key `id`.
    pub(crate) fn get_key_value(&self, id: &str) -> Option<(&TaskId, &Task)> {
        self.get_index_of(id)
            .and_then(|position| self.get_index(position))
    }

    /// The key and task at `position`.
    pub(crate) fn get_index(&self, position: usize) -> Option<(&TaskId, &Task)> {
        let task = self.tasks.get(position)?;
        Some((key_at(&self.tasks, &self.renamed, position), task))
    }

    /// The keys, in insertion order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &TaskId> + '_ {
        (0..self.tasks.len()).map(|position| key_at(&self.tasks, &self.renamed, position))
    }

    /// The keys and tasks, in insertion order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TaskId, &Task)> + '_ {
        self.keys().zip(self.values())
    }

    /// The tasks, in insertion order.
    pub(crate) fn values(&self) -> std::slice::Iter<'_, Task> {
        self.tasks.iter()
    }

    /// Adds `task` under `key`, which no task has yet (the caller checks).
    pub(crate) fn insert_new(&mut self, key: TaskId, task: Task) {
        let position = self.tasks.len();
        let Ok(slot) = u32::try_from(position) else {
            panic!("a workflow holds at most {} tasks", u32::MAX);
        };
        let hash = self.hasher.hash_one(key.as_str());
        if key != task.task_id {
            self.renamed.push((slot, key));
        }
        self.tasks.push(task);
        let (tasks, renamed, hasher) = (&self.tasks, &self.renamed, &self.hasher);
        self.index.insert_unique(hash, slot, |&position| {
            hasher.hash_one(key_at(tasks, renamed, position as usize).as_str())
        });
    }

    /// Makes room for `additional` more tasks; the list of tasks exactly.
    pub(crate) fn reserve_exact(&mut self, additional: usize) {
        self.tasks.reserve_exact(additional);
        let (tasks, renamed, hasher) = (&self.tasks, &self.renamed, &self.hasher);
        self.index.reserve(additional, |&position| {
            hasher.hash_one(key_at(tasks, renamed, position as usize).as_str())
        });
    }
}

impl PartialEq for TaskTable {
    /// The same keys with equal tasks, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(key, task)| other.get(key.as_str()) == Some(task))
    }
}

impl fmt::Debug for TaskTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for TaskTable {
    /// A map from key to task, in insertion order.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(keys_and_ids: &[(&str, &str)]) -> TaskTable {
        let mut table = TaskTable::default();
        for (key, id) in keys_and_ids {
            table.insert_new(TaskId::from(*key), Task::new(*id, "t"));
        }
        table
    }

    #[test]
    fn finds_every_task_by_key_across_growth() {
        let ids: Vec<String> = (0..1000).map(|i| format!("task{i}")).collect();
        let mut table = TaskTable::default();
        for id in &ids {
            table.insert_new(TaskId::from(id.as_str()), Task::new(id.as_str(), "t"));
        }
        for (position, id) in ids.iter().enumerate() {
            assert_eq!(table.get_index_of(id), Some(position));
            assert_eq!(table.get(id).map(|t| t.task_id.as_str()), Some(id.as_str()));
        }
        assert_eq!(table.get_index_of("task1000"), None);
        assert!(
            table
                .keys()
                .map(TaskId::as_str)
                .eq(ids.iter().map(String::as_str))
        );
    }

    #[test]
    fn a_key_that_differs_from_its_task_id_finds_the_task_and_the_id_does_not() {
        let table = table(&[("a", "a"), ("b", "renamed"), ("c", "c")]);
        assert_eq!(table.get_index_of("b"), Some(1));
        assert_eq!(table.get_index_of("renamed"), None);
        let found = table
            .get_index(1)
            .map(|(k, t)| (k.as_str(), t.task_id.as_str()));
        assert_eq!(found, Some(("b", "renamed")));
        assert!(table.keys().map(TaskId::as_str).eq(["a", "b", "c"]));
        assert_eq!(table.get_key_value("c").map(|(k, _)| k.as_str()), Some("c"));
    }

    #[test]
    fn equality_ignores_order_and_sees_keys_and_tasks() {
        assert_eq!(
            table(&[("a", "a"), ("b", "b")]),
            table(&[("b", "b"), ("a", "a")])
        );
        assert_ne!(table(&[("a", "a"), ("b", "b")]), table(&[("a", "a")]));
        assert_ne!(
            table(&[("a", "a"), ("b", "b")]),
            table(&[("a", "a"), ("b", "x")])
        );
    }
}
