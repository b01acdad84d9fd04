//! [`TaskRecords`]: every task's record in a run, looked up by id without a second table.

use std::fmt;
use std::ops::Index;
use std::sync::Arc;

use indexmap::IndexSet;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::load::cautious_capacity;
use crate::{TaskId, TaskRecord, Workflow};

/// The records of a run, one per task, in the workflow's insertion order, followed by
/// the records of map instances (`task[0]`, `task[1]`, ...; see
/// [`MapSpec`](crate::MapSpec)) when the run had any.
///
/// A run's records share the id index of the workflow they ran, so assembling them costs
/// no hashing. Records read from a file (or collected from pairs) carry their own index.
/// Serialised as a map from task id to record.
///
/// ```
/// use orch_core::{TaskRecord, TaskRecords, TaskStatus};
///
/// let records: TaskRecords = [
///     ("load".into(), TaskRecord { status: TaskStatus::Completed, ..TaskRecord::default() }),
///     ("clean".into(), TaskRecord::default()),
/// ]
/// .into_iter()
/// .collect();
/// assert_eq!(records.len(), 2);
/// assert_eq!(records["load"].status, TaskStatus::Completed);
/// assert_eq!(records.get("clean").map(|r| r.status), Some(TaskStatus::Pending));
/// assert_eq!(records.ids().collect::<Vec<_>>(), ["load", "clean"]);
/// ```
#[derive(Clone)]
pub struct TaskRecords {
    ids: Ids,
    records: Vec<TaskRecord>,
}

#[derive(Clone)]
enum Ids {
    Workflow(Workflow),
    Own(Arc<IndexSet<TaskId, foldhash::fast::RandomState>>),
    /// The workflow's tasks, then records of other ids (map instances) after them.
    Extended(Workflow, Arc<IndexSet<TaskId, foldhash::fast::RandomState>>),
}

impl Ids {
    fn index_of(&self, id: &str) -> Option<usize> {
        match self {
            Ids::Workflow(workflow) => workflow.index_of(id),
            Ids::Own(ids) => ids.get_index_of(id),
            Ids::Extended(workflow, extra) => workflow
                .index_of(id)
                .or_else(|| Some(workflow.len() + extra.get_index_of(id)?)),
        }
    }

    fn id(&self, index: usize) -> Option<&TaskId> {
        match self {
            Ids::Workflow(workflow) => workflow.task_map().get_index(index).map(|(id, _)| id),
            Ids::Own(ids) => ids.get_index(index),
            Ids::Extended(workflow, extra) => match index.checked_sub(workflow.len()) {
                Some(beyond) => extra.get_index(beyond),
                None => workflow.task_map().get_index(index).map(|(id, _)| id),
            },
        }
    }
}

impl TaskRecords {
    /// Records for the tasks of `workflow`, given in its insertion order. `None` when the
    /// number of records differs from the number of tasks.
    pub fn for_workflow(workflow: &Workflow, records: Vec<TaskRecord>) -> Option<Self> {
        (records.len() == workflow.len()).then(|| Self {
            ids: Ids::Workflow(workflow.clone()),
            records,
        })
    }

    /// A run's records: `records` one per task of `workflow`, in its insertion order,
    /// then `extra` records under ids of their own (a map task's instances, `task[i]`).
    /// `None` if the count of `records` is not the workflow's. An extra record under a
    /// task's id is left out: the task's own record stands (two records of one id could
    /// not be read back).
    pub fn for_workflow_with_extra(
        workflow: &Workflow,
        mut records: Vec<TaskRecord>,
        extra: impl IntoIterator<Item = (TaskId, TaskRecord)>,
    ) -> Option<Self> {
        if records.len() != workflow.len() {
            return None;
        }
        let mut ids: IndexSet<TaskId, foldhash::fast::RandomState> = IndexSet::default();
        for (id, record) in extra {
            if workflow.index_of(&id).is_some() {
                continue;
            }
            let (index, new) = ids.insert_full(id);
            if new {
                records.push(record);
            } else {
                records[workflow.len() + index] = record;
            }
        }
        let ids = match ids.is_empty() {
            true => Ids::Workflow(workflow.clone()),
            false => Ids::Extended(workflow.clone(), Arc::new(ids)),
        };
        Some(Self { ids, records })
    }

    /// The workflow these records belong to, when they came from running it (records read
    /// from a file know only their ids).
    pub fn workflow(&self) -> Option<&Workflow> {
        match &self.ids {
            Ids::Workflow(workflow) | Ids::Extended(workflow, _) => Some(workflow),
            Ids::Own(_) => None,
        }
    }

    /// How many tasks have records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record of task `id`.
    pub fn get(&self, id: &str) -> Option<&TaskRecord> {
        self.records.get(self.ids.index_of(id)?)
    }

    /// The id and record at position `index` (insertion order).
    pub fn get_index(&self, index: usize) -> Option<(&TaskId, &TaskRecord)> {
        Some((self.ids.id(index)?, self.records.get(index)?))
    }

    /// The position of task `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.ids.index_of(id)
    }

    /// Every (id, record) pair in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&TaskId, &TaskRecord)> + '_ {
        self.records
            .iter()
            .enumerate()
            .map(|(i, record)| match self.ids.id(i) {
                Some(id) => (id, record),
                None => unreachable!("every record has an id"),
            })
    }

    /// The task ids in insertion order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &TaskId> + '_ {
        self.iter().map(|(id, _)| id)
    }

    /// The records in insertion order.
    pub fn records(&self) -> &[TaskRecord] {
        &self.records
    }
}

impl Index<&str> for TaskRecords {
    type Output = TaskRecord;

    /// The record of task `id`; panics when there is none (use [`TaskRecords::get`]).
    fn index(&self, id: &str) -> &TaskRecord {
        match self.get(id) {
            Some(record) => record,
            None => panic!("no record for task `{id}`"),
        }
    }
}

impl Index<usize> for TaskRecords {
    type Output = TaskRecord;

    fn index(&self, index: usize) -> &TaskRecord {
        &self.records[index]
    }
}

impl FromIterator<(TaskId, TaskRecord)> for TaskRecords {
    /// Collects pairs; a repeated id keeps its first position and its last record.
    fn from_iter<I: IntoIterator<Item = (TaskId, TaskRecord)>>(pairs: I) -> Self {
        let mut ids: IndexSet<TaskId, foldhash::fast::RandomState> = IndexSet::default();
        let mut records: Vec<TaskRecord> = Vec::new();
        for (id, record) in pairs {
            let (index, new) = ids.insert_full(id);
            if new {
                records.push(record);
            } else {
                records[index] = record;
            }
        }
        Self {
            ids: Ids::Own(Arc::new(ids)),
            records,
        }
    }
}

impl PartialEq for TaskRecords {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for TaskRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for TaskRecords {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (id, record) in self.iter() {
            map.serialize_entry(id, record)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TaskRecords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordsVisitor;

        impl<'de> Visitor<'de> for RecordsVisitor {
            type Value = TaskRecords;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from task id to task record")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TaskRecords, A::Error> {
                let mut pairs =
                    Vec::with_capacity(cautious_capacity::<(TaskId, TaskRecord)>(map.size_hint()));
                let mut seen = std::collections::HashSet::with_capacity(pairs.capacity());
                while let Some((id, record)) = map.next_entry::<TaskId, TaskRecord>()? {
                    // A second record would replace the first without a word.
                    if !seen.insert(id.clone()) {
                        return Err(serde::de::Error::custom(format_args!(
                            "task `{}` has two records",
                            crate::error::quoted(id.as_str())
                        )));
                    }
                    pairs.push((id, record));
                }
                Ok(pairs.into_iter().collect())
            }
        }

        deserializer.deserialize_map(RecordsVisitor)
    }
}
