//! What a journal keeps of a workflow's definition ([`Definition`]), and how two
//! definitions differ ([`WorkflowChanges`]).

use std::fmt;

use indexmap::IndexMap;
use orch_core::{MapSpec, Task, TaskId, TaskRecord, TriggerRule, Workflow};
use serde_json::Value;

use crate::JournalError;

/// A workflow's id, name and one fingerprint per task, in the workflow's order.
///
/// A task's fingerprint covers what decides its result: its type, its configuration, its
/// dependencies (in any order), its trigger rule and, for a map task, what it maps over
/// and its limit on instances. Its name, retries, backoff, timeout, pool, priority and
/// caching are left out: changing them does not make a recorded result wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Definition {
    pub(crate) workflow_id: String,
    pub(crate) name: String,
    pub(crate) tasks: IndexMap<TaskId, String>,
}

impl Definition {
    pub(crate) fn of(workflow: &Workflow) -> Self {
        Self {
            workflow_id: workflow.workflow_id().to_owned(),
            name: workflow.name().to_owned(),
            tasks: workflow
                .tasks()
                .map(|task| (task.task_id.clone(), format!("{:016x}", fingerprint(task))))
                .collect(),
        }
    }

    /// Whether a record of `id` belongs to the run: a task of this definition, or an
    /// instance (`task[i]`) of one of them (a map task's).
    pub(crate) fn has_record_for(&self, id: &str) -> bool {
        is_record_of(id, |task| self.tasks.contains_key(task))
    }

    /// Refuses `records` if one is of no task of this definition (see
    /// [`refuse_foreign_records`]).
    pub(crate) fn refuse_foreign(
        &self,
        records: &[(&TaskId, &TaskRecord)],
    ) -> Result<(), JournalError> {
        refuse_foreign_records(records, |task| self.tasks.contains_key(task))
    }

    /// How `current` differs from this (recorded) definition.
    pub(crate) fn changes_to(&self, current: &Definition) -> WorkflowChanges {
        let mut changes = WorkflowChanges::default();
        for (id, print) in &current.tasks {
            match self.tasks.get(id) {
                None => changes.added.push(id.clone()),
                Some(old) if old != print => changes.changed.push(id.clone()),
                Some(_) => {}
            }
        }
        changes.removed = self
            .tasks
            .keys()
            .filter(|id| !current.tasks.contains_key(*id))
            .cloned()
            .collect();
        changes
    }
}

/// Whether a record of `id` belongs to a run whose workflow has the tasks `has_task`
/// accepts: one of them, or an instance (`task[i]`) of one.
fn is_record_of(id: &str, has_task: impl Fn(&str) -> bool) -> bool {
    has_task(id) || MapSpec::parse_instance_id(id).is_some_and(|(task, _)| has_task(task))
}

/// Refuses `records` if one of them belongs to no task `has_task` accepts: a journal
/// could write it, but would refuse the run when it reads it back.
pub(crate) fn refuse_foreign_records(
    records: &[(&TaskId, &TaskRecord)],
    has_task: impl Fn(&str) -> bool,
) -> Result<(), JournalError> {
    match records.iter().find(|(id, _)| !is_record_of(id, &has_task)) {
        Some((id, _)) => Err(JournalError::InvalidRecord {
            task: (*id).clone(),
            field: "its task id",
            reason: "the run's workflow has no task of that id, nor a task it is an \
                     instance (`task[i]`) of"
                .into(),
        }),
        None => Ok(()),
    }
}

/// How a workflow's tasks differ from the definition a run was recorded with.
///
/// A task counts as changed when its type, its configuration, its dependencies, its
/// trigger rule or its map (what it maps over, its limit on instances) differ; its name,
/// retries, backoff, timeout, pool, priority and caching do not count.
///
/// ```
/// use orch_journal::WorkflowChanges;
///
/// let changes = WorkflowChanges {
///     added: vec!["report".into()],
///     changed: vec!["clean".into()],
///     ..WorkflowChanges::default()
/// };
/// assert_eq!(changes.to_string(), "added `report`; changed `clean`");
/// assert!(!changes.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkflowChanges {
    /// Tasks the workflow has now and the recorded definition had not.
    pub added: Vec<TaskId>,
    /// Tasks the recorded definition had and the workflow has no longer.
    pub removed: Vec<TaskId>,
    /// Tasks in both whose type, configuration, dependencies, trigger rule or map differ.
    pub changed: Vec<TaskId>,
}

impl WorkflowChanges {
    /// Whether the definitions agree.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl fmt::Display for WorkflowChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for (label, ids) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if ids.is_empty() {
                continue;
            }
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            f.write_str(label)?;
            for (i, id) in ids.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                write!(f, "{sep}`{id}`")?;
            }
        }
        Ok(())
    }
}

/// FNV-1a, 64 bits: small, and stable across builds and platforms (unlike std's hasher).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// A length-prefixed string, so that ("ab", "c") and ("a", "bc") differ.
    fn text(&mut self, text: &str) {
        self.bytes(&(text.len() as u64).to_le_bytes());
        self.bytes(text.as_bytes());
    }
}

fn fingerprint(task: &Task) -> u64 {
    let mut h = Fnv::new();
    h.text(&task.task_type);
    value(&mut h, &task.config);
    let mut dependencies: Vec<&str> = task.dependencies.iter().map(TaskId::as_str).collect();
    dependencies.sort_unstable();
    h.bytes(&(dependencies.len() as u64).to_le_bytes());
    for d in dependencies {
        h.text(d);
    }
    // Only when set, so that a task without them keeps the fingerprint earlier builds
    // wrote. (A journal written by a build before this one, whose completed task has a
    // rule or a map, reads as changed on resume.)
    if task.trigger_rule != TriggerRule::default() {
        h.bytes(b"r");
        h.text(task.trigger_rule.as_str());
    }
    if let Some(map) = &task.map {
        h.bytes(b"m");
        h.text(map.over.as_str());
        h.bytes(
            &map.max_instances
                .map_or(0, |m| u64::from(m) + 1)
                .to_le_bytes(),
        );
    }
    h.0
}

/// Feeds `v` to the hasher with object keys in sorted order, so that key order does not
/// count as a change.
fn value(h: &mut Fnv, v: &Value) {
    match v {
        Value::Null => h.bytes(b"n"),
        Value::Bool(b) => h.bytes(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            h.bytes(b"#");
            h.text(&n.to_string());
        }
        Value::String(s) => {
            h.bytes(b"s");
            h.text(s);
        }
        Value::Array(items) => {
            h.bytes(b"[");
            h.bytes(&(items.len() as u64).to_le_bytes());
            for item in items {
                value(h, item);
            }
        }
        Value::Object(map) => {
            h.bytes(b"{");
            h.bytes(&(map.len() as u64).to_le_bytes());
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, item) in entries {
                h.text(key);
                value(h, item);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn print(task: Task) -> u64 {
        fingerprint(&task)
    }

    #[test]
    fn fingerprints_follow_what_decides_a_result() {
        let base = || {
            Task::new("a", "t")
                .config(json!({"x": 1, "y": [true, null]}))
                .depends_on(["p", "q"])
        };
        let b = print(base());
        // The values journals hold: a change here makes every completed task of an
        // existing journal read as changed, and its resume refused.
        assert_eq!(b, 0xc338_6288_e66f_bf63);
        let all_done = print(base().trigger_rule(TriggerRule::AllDone));
        assert_eq!(all_done, 0x2168_c9dc_7e97_b38f);
        let limited = print(base().map_over("p").max_instances(10));
        assert_eq!(limited, 0x2997_0275_29df_97ea);
        assert_ne!(b, print(base().config(json!({"x": 2, "y": [true, null]}))));
        assert_ne!(
            b,
            print(
                Task::new("a", "u")
                    .config(json!({"x": 1, "y": [true, null]}))
                    .depends_on(["p", "q"])
            )
        );
        assert_ne!(b, print(base().depends_on(["r"])));
        let reordered = Task::new("a", "t")
            .config(json!({"y": [true, null], "x": 1}))
            .depends_on(["q", "p"]);
        assert_eq!(b, print(reordered));
        assert_eq!(
            b,
            print(
                base()
                    .name("A")
                    .retries(3)
                    .timeout(Duration::from_secs(1))
                    .pool("gpu")
                    .priority(5)
                    .cache(true)
            )
        );
        // A task without a rule or a map keeps the fingerprint earlier builds wrote.
        assert_eq!(b, print(base().trigger_rule(TriggerRule::AllSuccess)));
        let rule = print(base().trigger_rule(TriggerRule::AllDone));
        assert_ne!(b, rule);
        assert_ne!(rule, print(base().trigger_rule(TriggerRule::OneFailed)));
        let map = print(base().map_over("p"));
        assert_ne!(b, map);
        assert_ne!(map, print(base().map_over("q")));
        assert_ne!(map, print(base().map_over("p").max_instances(10)));
    }

    #[test]
    fn changes_name_added_removed_and_changed_tasks() {
        let old = Workflow::new("w", "W")
            .task(Task::new("a", "t"))
            .task(Task::new("b", "t"))
            .task(Task::new("c", "t"));
        let new = Workflow::new("w", "W")
            .task(Task::new("a", "t"))
            .task(Task::new("c", "t").config(json!({"k": 1})))
            .task(Task::new("d", "t"));
        let changes = Definition::of(&old).changes_to(&Definition::of(&new));
        assert_eq!(changes.added, ["d"]);
        assert_eq!(changes.removed, ["b"]);
        assert_eq!(changes.changed, ["c"]);
        assert_eq!(changes.to_string(), "added `d`; removed `b`; changed `c`");
        assert!(
            Definition::of(&old)
                .changes_to(&Definition::of(&old))
                .is_empty()
        );
    }
}
