//! What a run keeps for its map tasks and cached tasks, and where the scheduler hands
//! them over. A workflow with neither has no [`Extras`], and its scheduler takes no step
//! of this file or of `fan_out`: one check of an empty `Option` per attempt.
//!
//! A cached task is looked up before its first attempt: a hit completes it with the
//! stored result (its record says `cached`, with no attempt of its own); a miss notes
//! its key, and a JSON result it completes with is stored under that key. Map tasks are
//! in `fan_out`.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::Context;

use orch_core::{Features, MapSpec, Task, TaskRecord, TaskStatus, Workflow};

use super::Scheduler;
use super::fan_out::{Instance, MapRun};
use crate::cache::{CacheKey, CacheSettings};
use crate::context::MapItem;
use crate::handler::panic_text;
use crate::journaling::InstanceRecords;
use crate::output::Stored;
use crate::{Output, TaskContext, TaskError};

/// What a run keeps for its map and cached tasks.
pub(super) struct Extras {
    /// Per task: whether it is a map task or asks for caching.
    special: Vec<bool>,
    pub(super) max_instances: u32,
    cache: CacheSettings,
    /// The keys of cached tasks that run, to store their results under.
    keys: HashMap<u32, CacheKey>,
    pub(super) maps: HashMap<u32, MapRun>,
    /// The map tasks waiting in the ready queue to start one more instance.
    queued_maps: QueuedMaps,
    pub(super) instances: Vec<Instance>,
    /// In a durable run, the map tasks that completed and whose instances' records are
    /// still to be committed with them: their first instance and how many.
    pub(super) to_journal: HashMap<u32, (usize, usize)>,
    /// In a durable run, the instances that completed since the last commit: each is
    /// recorded at once, so that a resume keeps it even when its map does not complete.
    pub(super) completed_to_journal: Vec<usize>,
    /// In a resumed run, per map task that runs again on the same list, the instances
    /// that completed in the earlier run: they are restored, not run again.
    pub(super) reused: HashMap<u32, HashMap<usize, TaskRecord>>,
}

/// The map tasks waiting in the ready queue to start one more instance, by task index.
struct QueuedMaps {
    by_task: Vec<bool>,
    count: usize,
}

impl Extras {
    /// Whether some map task waits in the ready queue to start one more instance.
    pub(super) fn maps_queued(&self) -> bool {
        self.queued_maps.count > 0
    }

    /// Notes that map task `index` waits in the ready queue; whether it did not yet.
    pub(super) fn queue_map(&mut self, index: usize) -> bool {
        let queued = &mut self.queued_maps;
        let newly = !std::mem::replace(&mut queued.by_task[index], true);
        queued.count += usize::from(newly);
        newly
    }

    /// Takes map task `index` out of the ready queue's waiting maps; whether it was one.
    pub(super) fn unqueue_map(&mut self, index: usize) -> bool {
        let queued = &mut self.queued_maps;
        let was = queued
            .by_task
            .get_mut(index)
            .is_some_and(|q| std::mem::replace(q, false));
        queued.count -= usize::from(was);
        was
    }

    /// Keeps cached task `index`'s result of this run out of the store.
    pub(super) fn store_no_result(&mut self, index: usize) {
        self.keys.remove(&(index as u32));
    }

    /// The extras of a run of `workflow`, or `None` if no task maps or caches (its
    /// plan's `features` say whether one does).
    pub(super) fn new(
        workflow: &Workflow,
        features: Features,
        max_instances: u32,
        cache: &CacheSettings,
    ) -> Option<Box<Self>> {
        let special = |task: &Task| task.map.is_some() || task.cache;
        (features.maps || features.caching).then(|| {
            let special: Vec<bool> = workflow.tasks().map(special).collect();
            let queued_maps = QueuedMaps {
                by_task: vec![false; special.len()],
                count: 0,
            };
            Box::new(Self {
                special,
                max_instances,
                cache: cache.clone(),
                keys: HashMap::new(),
                maps: HashMap::new(),
                queued_maps,
                instances: Vec::new(),
                to_journal: HashMap::new(),
                completed_to_journal: Vec::new(),
                reused: HashMap::new(),
            })
        })
    }

    /// Whether index `index` is a map task, a cached task or an instance.
    pub(super) fn claims(&self, index: usize) -> bool {
        self.special.get(index).copied().unwrap_or(true)
    }

    /// The instance records the journal's next commit holds: those of instances that
    /// completed since the last commit, and for each map task of the commit that
    /// completed, those of its instances not recorded yet.
    pub(super) fn instances_to_journal(
        &mut self,
        journal: &crate::journaling::RunJournal,
        workflow: &Workflow,
    ) -> InstanceRecords {
        let mut out = InstanceRecords::default();
        if self.to_journal.is_empty() && self.completed_to_journal.is_empty() {
            return out;
        }
        for &map in journal.batch() {
            let Some((first, count)) = self.to_journal.remove(&map) else {
                continue;
            };
            let unrecorded: Vec<usize> = (first..first + count)
                .filter(|&k| !self.instances[k].journaled)
                .collect();
            let records = (unrecorded.into_iter())
                .filter_map(|k| self.record_to_journal(k, workflow))
                .collect();
            out.of_maps.push((map, records));
        }
        for k in std::mem::take(&mut self.completed_to_journal) {
            if !self.instances[k].journaled {
                out.completed.extend(self.record_to_journal(k, workflow));
            }
        }
        out
    }

    /// Instance `k`'s record as the journal takes it, under its id; marks it recorded.
    fn record_to_journal(
        &mut self,
        k: usize,
        workflow: &Workflow,
    ) -> Option<(orch_core::TaskId, TaskRecord)> {
        let instance = &mut self.instances[k];
        instance.journaled = true;
        let task = workflow.get_index(instance.map as usize)?;
        let id = MapSpec::instance_id(&task.task_id, instance.item.index);
        let mut record = instance.record.clone();
        // As a task's own output marked so: the reason in its place.
        if let Some(reason) = &instance.not_journaled
            && record.status == orch_core::TaskStatus::Completed
        {
            record.result = Some(serde_json::json!({ "not_journaled": reason }));
            record.shared_output = true;
        }
        Some((id, record))
    }

    /// The instances' records, under their ids, in the order they were created (the run
    /// cancelled those that had not ended: `cancel_instances`).
    /// Those restored for a map that never started (the run stopped first) follow, so
    /// that a resume from the result still has them.
    pub(super) fn into_records(self, workflow: &Workflow) -> Vec<(orch_core::TaskId, TaskRecord)> {
        let started = self
            .instances
            .into_iter()
            .map(|i| (i.map, i.item.index, i.record));
        let mut waiting: Vec<(u32, usize, TaskRecord)> = (self.reused.into_iter())
            .flat_map(|(map, items)| items.into_iter().map(move |(i, r)| (map, i, r)))
            .collect();
        waiting.sort_unstable_by_key(|&(map, item, _)| (map, item));
        (started.chain(waiting))
            .filter_map(|(map, item, record)| {
                let task = workflow.get_index(map as usize)?;
                Some((MapSpec::instance_id(&task.task_id, item), record))
            })
            .collect()
    }
}

impl Scheduler<'_> {
    /// The run's extras, which a run that claims a task has.
    pub(super) fn extras(&mut self) -> &mut Extras {
        match self.extras.as_deref_mut() {
            Some(extras) => extras,
            None => unreachable!("only a run with extras claims tasks"),
        }
    }

    /// Starts what [`Extras::claims`]: returns whether it took the attempt over (an
    /// instance, a cache hit, a map task); `false` lets the handler run as usual. A task's
    /// first start is announced here when `announce_start`, once the cache has said
    /// whether an attempt runs.
    pub(super) fn start_special(
        &mut self,
        index: usize,
        announce_start: bool,
        cx: &mut Context<'_>,
    ) -> bool {
        let n = self.records.len();
        if index >= n {
            self.start_instance(index - n, cx);
            return true;
        }
        // A retry runs the handler; only a first attempt looks in the cache or maps.
        let base = self.attempt_base(index);
        let first = self.records[index].attempts <= base;
        let shared = Arc::clone(&self.shared);
        let task = shared.task(index);
        let cached = match first && task.cache {
            true => self.look_up(index, task),
            false => None,
        };
        // A task served from the cache (or failed by its key function) starts no attempt.
        if announce_start {
            self.announce_started(index, base + u32::from(cached.is_none()));
        }
        if let Some(outcome) = cached {
            self.attempt_over(index, outcome);
            return true;
        }
        match (&task.map, first) {
            (Some(spec), true) => {
                self.start_map(index, spec);
                true
            }
            _ => false,
        }
    }

    /// Why a map task has no list, when a rule such as `all_done` runs it although the
    /// task it maps over did not complete.
    pub(super) fn no_list(&self, spec: &MapSpec) -> Option<String> {
        let over = self.shared.workflow.index_of(&spec.over)?;
        let status = self.records[over].status;
        (status != TaskStatus::Completed).then(|| {
            format!(
                "no list to map over: `{}` did not complete ({})",
                spec.over,
                status.as_str()
            )
        })
    }

    /// The outcome of a cached task from the store, if it has its result (or the failure
    /// of the task's key function); else notes its key.
    fn look_up(&mut self, index: usize, task: &Task) -> Option<Result<Output, TaskError>> {
        let key = match self.key_now(index) {
            Ok(Some(key)) => key,
            Ok(None) => return None,
            Err(panic) => {
                let message = format!(
                    "the cache key function of task type `{}` panicked: {}",
                    task.task_type,
                    panic_text(panic)
                );
                return Some(Err(TaskError::permanent(message)));
            }
        };
        let extras = self.extras();
        let store = &extras.cache.store;
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.get(&key)));
        let found = found.unwrap_or_else(|panic| {
            tracing::warn!(task = %task.task_id,
                "the cache store panicked when asked for a result (taken as none): {}",
                panic_text(panic));
            None
        });
        match found {
            Some(result) => {
                self.records[index].cached = true;
                Some(Ok(result.into()))
            }
            None => {
                extras.keys.insert(index as u32, key);
                None
            }
        }
    }

    /// Handles what [`Extras::claims`] ended: an instance's attempt is taken over
    /// (`None`); a cached task's JSON result is stored, and the outcome handed back.
    pub(super) fn special_over(
        &mut self,
        index: usize,
        outcome: Result<Output, TaskError>,
    ) -> Option<Result<Output, TaskError>> {
        let n = self.records.len();
        if index >= n {
            self.instance_over(index - n, outcome);
            return None;
        }
        // A handler stopping early for a cancellation may return what it had so far.
        let cancelled = self.shared.cancel.is_cancelled();
        if let (Ok(Output(Stored::Json(result))), false) = (&outcome, cancelled) {
            // A hit gives back the result only: a branch choice would be lost with it.
            let attempt = self.records[index].attempts;
            let chose = self.shared.branches.chose(index as u32, attempt);
            let extras = self.extras();
            let key = extras.keys.remove(&(index as u32)).filter(|_| !chose);
            if let Some(key) = key.filter(|&key| self.inputs_as_keyed(index, key)) {
                let store = &self.extras().cache.store;
                let put = || store.put(key, result.clone());
                if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(put)) {
                    tracing::warn!(
                        task = %self.shared.task(index).task_id,
                        "the cache store panicked when given a result (not stored): {}",
                        panic_text(panic)
                    );
                }
            }
        }
        Some(outcome)
    }

    /// Whether the inputs of cached task `index` are still those its `key` was made
    /// from. A task whose trigger rule starts it before all of its dependencies end may
    /// have read one that ended later: its result is not theirs alone, and not stored.
    fn inputs_as_keyed(&mut self, index: usize, key: CacheKey) -> bool {
        if self.shared.task(index).trigger_rule.waits_for_all() {
            return true;
        }
        match self.key_now(index) {
            Ok(now) => now == Some(key),
            Err(panic) => {
                tracing::warn!(
                    task = %self.shared.task(index).task_id,
                    "the cache key function panicked as the task completed (its result is not stored): {}",
                    panic_text(panic)
                );
                false
            }
        }
    }

    /// The key of cached task `index` from what it can read now (`None` if it reads a
    /// shared value); `Err` if its key function panicked.
    fn key_now(&mut self, index: usize) -> std::thread::Result<Option<CacheKey>> {
        let ctx = self.context(index, 0, None);
        let extras = self.extras();
        let (keys, max_instances) = (&extras.cache.keys, extras.max_instances);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::cache::key_of(&ctx, keys, max_instances)
        }))
    }

    pub(super) fn context(
        &self,
        index: usize,
        attempt: u32,
        item: Option<Arc<MapItem>>,
    ) -> TaskContext {
        TaskContext {
            run: Arc::clone(&self.shared),
            index: index as u32,
            attempt,
            item,
            attempt_cancel: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use orch_core::{Features, Task, Workflow};

    use super::Extras;
    use crate::cache::CacheChoice;

    fn features(workflow: &Workflow) -> Features {
        workflow.validate().expect("valid").plan().features()
    }

    /// The default path: a workflow with neither maps nor caching gets no extras, so its
    /// scheduler never enters this file.
    #[test]
    fn only_workflows_that_map_or_cache_get_extras() {
        let cache = CacheChoice::default().settings();
        let plain = Workflow::new("w", "W")
            .task(Task::new("a", "t"))
            .task(Task::new("b", "t").depends_on(["a"]));
        assert!(Extras::new(&plain, features(&plain), 10, &cache).is_none());
        let mapped = plain.clone().task(Task::new("c", "t").map_over("a"));
        let extras = Extras::new(&mapped, features(&mapped), 10, &cache).expect("extras");
        assert_eq!(
            (0..4).map(|i| extras.claims(i)).collect::<Vec<_>>(),
            [false, false, true, true],
            "the map task, and indices past the plan (instances)"
        );
        let cached = plain.task(Task::new("c", "t").cache(true));
        assert!(Extras::new(&cached, features(&cached), 10, &cache).is_some());
    }
}
