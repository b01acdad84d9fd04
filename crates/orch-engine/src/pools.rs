//! Pools: named limits on how many tasks of a kind run at once, beside the engine's global
//! limit, and [`Queue`], the ready tasks of a run in the order they start.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use orch_core::{Plan, TaskId, Workflow};

use crate::ready::ReadySet;

/// The ready tasks of a run, by start rank (smallest first).
pub(crate) enum Queue {
    /// No task names a pool: only the global limit applies.
    Single(ReadySet),
    /// Some tasks name pools: each pool has its own count of started tasks and limit.
    Pooled(Pooled),
}

/// Ready tasks in one set, whatever their pool, except those found waiting for room in a
/// full pool, which wait in their pool's own set until one of its tasks finishes.
///
/// Inserting needs no lookup of the task's pool, and taking the next task looks at one
/// set instead of one per pool; a task is moved aside at most once per time its pool is
/// found full, and moved back when one of the pool's tasks finishes.
pub(crate) struct Pooled {
    /// Per task (plan index), its group: 0 for tasks in no pool.
    group_of: Vec<u32>,
    /// Per start rank, its task's group (see [`Queue::rank`]).
    group_of_rank: Vec<u32>,
    groups: Vec<Group>,
    /// Ready tasks by rank, but for those in `Group::held`.
    open: ReadySet,
}

struct Group {
    limit: usize,
    /// Tasks of the group started and not yet finished.
    active: usize,
    /// Ready tasks of the group that came up for a start while it was full. Each task of
    /// the group that finishes moves the smallest one back to `open`, so a held task
    /// waits only while tasks of its own group ranked before it fill the group's room
    /// (the pools proptest checks pops against a list model). A heap of the ranks held,
    /// smallest on top: its memory follows the tasks held, where a set over every rank
    /// per group would take memory of pools times tasks.
    held: BinaryHeap<Reverse<u32>>,
}

/// The task and pool name of every task that names a pool the engine does not declare.
pub(crate) type UnknownPools = Vec<(TaskId, String)>;

impl Queue {
    /// An empty queue for `n` tasks of which none names a pool.
    pub(crate) fn single(n: usize) -> Self {
        Queue::Single(ReadySet::new(n))
    }

    /// An empty queue for the tasks of `workflow`, whose plan is `plan`, with the
    /// engine's pools (name to limit); an error lists the tasks naming an undeclared pool.
    pub(crate) fn new(
        workflow: &Workflow,
        plan: &Plan,
        pools: &HashMap<String, usize>,
    ) -> Result<Self, UnknownPools> {
        let n = plan.len();
        if plan.pools().is_empty() {
            return Ok(Queue::single(n));
        }
        // Group 0 holds the tasks in no pool; group `p + 1` the tasks of the plan's pool `p`.
        let mut groups = vec![Group {
            limit: usize::MAX,
            active: 0,
            held: BinaryHeap::new(),
        }];
        let mut undeclared = Vec::new();
        for (p, name) in plan.pools().iter().enumerate() {
            match pools.get(name) {
                Some(&limit) => groups.push(Group {
                    limit,
                    active: 0,
                    held: BinaryHeap::new(),
                }),
                None => undeclared.push(p),
            }
        }
        if !undeclared.is_empty() {
            let unknown = workflow.tasks().enumerate().filter_map(|(i, task)| {
                let p = plan.pool_of(i)?;
                // In ascending order: a search, where a scan per task would cost tasks
                // times undeclared pools.
                (undeclared.binary_search(&p).is_ok())
                    .then(|| (task.task_id.clone(), plan.pools()[p].clone()))
            });
            return Err(unknown.collect());
        }
        let group_of: Vec<u32> = (0..n)
            .map(|i| plan.pool_of(i).map_or(0, |p| p as u32 + 1))
            .collect();
        Ok(Queue::Pooled(Pooled {
            group_of_rank: plan.order().iter().map(|&i| group_of[i as usize]).collect(),
            group_of,
            groups,
            open: ReadySet::new(n),
        }))
    }

    /// Sets which task each start rank stands for (`order[rank]` is a task index), when
    /// ranks are not plan positions (priorities, or the critical-path policy).
    pub(crate) fn rank(&mut self, order: &[u32]) {
        if let Queue::Pooled(pooled) = self {
            for (group, &index) in pooled.group_of_rank.iter_mut().zip(order) {
                *group = pooled.group_of[index as usize];
            }
        }
    }

    /// Adds the ready task of start rank `rank`.
    #[inline]
    pub(crate) fn insert(&mut self, rank: u32) {
        match self {
            Queue::Single(ready) => ready.insert(rank),
            Queue::Pooled(pooled) => pooled.open.insert(rank),
        }
    }

    /// Removes and returns the smallest rank among the tasks whose pool has room, and
    /// counts that task as started in its pool.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<u32> {
        match self {
            Queue::Single(ready) => ready.pop_min(),
            Queue::Pooled(pooled) => pooled.pop(),
        }
    }

    /// The smallest rank among the ready tasks not held for a full pool, left in the queue
    /// (its own pool may be full).
    #[inline]
    pub(crate) fn peek(&mut self) -> Option<u32> {
        match self {
            Queue::Single(ready) => ready.peek_min(),
            Queue::Pooled(pooled) => pooled.open.peek_min(),
        }
    }

    /// The smallest rank above `rank` among the ready tasks not held for a full pool, left
    /// in the queue; `rank` must be one of the run's ranks.
    #[inline]
    pub(crate) fn peek_after(&self, rank: u32) -> Option<u32> {
        match self {
            Queue::Single(ready) => ready.peek_after(rank),
            Queue::Pooled(pooled) => pooled.open.peek_after(rank),
        }
    }

    /// Asks for the pool entries of task `index`, of start rank `rank`, to come into cache.
    #[inline]
    pub(crate) fn prefetch(&self, rank: u32, index: usize) {
        if let Queue::Pooled(pooled) = self {
            prefetch_index::prefetch_index(&pooled.group_of_rank, rank as usize);
            prefetch_index::prefetch_index(&pooled.group_of, index);
        }
    }

    /// Frees the pool slot of task `index`, which finished.
    #[inline]
    pub(crate) fn release(&mut self, index: usize) {
        if let Queue::Pooled(pooled) = self {
            let group = &mut pooled.groups[pooled.group_of[index] as usize];
            group.active -= 1;
            if let Some(Reverse(rank)) = group.held.pop() {
                pooled.open.insert(rank);
            }
        }
    }

    /// Whether some ready task's pool has room.
    pub(crate) fn has_startable(&mut self) -> bool {
        match self {
            Queue::Single(ready) => !ready.is_empty(),
            Queue::Pooled(pooled) => pooled.first_with_room().is_some(),
        }
    }

    /// Empties the queue (pool counts stay).
    pub(crate) fn clear(&mut self) {
        match self {
            Queue::Single(ready) => ready.clear(),
            Queue::Pooled(pooled) => {
                pooled.open.clear();
                pooled.groups.iter_mut().for_each(|g| g.held.clear());
            }
        }
    }
}

impl Pooled {
    fn pop(&mut self) -> Option<u32> {
        let (rank, group) = self.first_with_room()?;
        self.open.pop_min();
        self.groups[group].active += 1;
        Some(rank)
    }

    /// The smallest ready rank whose pool has room, and its group; ready tasks ranked
    /// before it, whose pools are full, are moved aside to wait for room.
    fn first_with_room(&mut self) -> Option<(u32, usize)> {
        loop {
            let rank = self.open.peek_min()?;
            let group = self.group_of_rank[rank as usize] as usize;
            let pool = &mut self.groups[group];
            if pool.active < pool.limit {
                return Some((rank, group));
            }
            self.open.pop_min();
            pool.held.push(Reverse(rank));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use orch_core::{Task, Workflow};
    use proptest::prelude::*;

    use super::Queue;

    proptest! {
        /// Against a list model: a pop gives the smallest rank whose pool has room, and no
        /// pool ever holds more started tasks than its limit, whether ranks follow the plan
        /// or a shuffled order (priorities).
        #[test]
        fn pops_the_smallest_rank_with_room(
            pools_of in proptest::collection::vec(0usize..4, 1..40),
            limits in proptest::collection::vec(1usize..4, 3),
            shuffle in proptest::option::of(any::<u64>()),
            steps in proptest::collection::vec((0u8..8, any::<prop::sample::Index>()), 0..200),
        ) {
            let n = pools_of.len();
            let names = ["a", "b", "c"];
            let mut workflow = Workflow::new("w", "");
            for (i, &p) in pools_of.iter().enumerate() {
                let mut task = Task::new(format!("t{i}"), "t");
                if p > 0 {
                    task = task.pool(names[p - 1]);
                }
                workflow = workflow.task(task);
            }
            let declared: HashMap<String, usize> =
                names.iter().zip(&limits).map(|(n, &l)| (n.to_string(), l)).collect();
            let plan = workflow.validate().expect("valid").plan().clone();
            let mut queue = Queue::new(&workflow, &plan, &declared).expect("declared pools");
            // Without a shuffle, rank i is task i (the plan's order here).
            let mut order: Vec<u32> = (0..n as u32).collect();
            if let Some(seed) = shuffle {
                let mut state = seed;
                for i in (1..n).rev() {
                    state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    order.swap(i, (state >> 33) as usize % (i + 1));
                }
                queue.rank(&order);
            }
            let mut rank_of = vec![0u32; n];
            for (rank, &task) in order.iter().enumerate() {
                rank_of[task as usize] = rank as u32;
            }
            // The model keeps ready and running tasks.
            let mut ready: Vec<bool> = vec![false; n];
            let mut running: Vec<usize> = Vec::new();
            let limit = |p: usize| if p == 0 { usize::MAX } else { limits[p - 1] };
            for (op, at) in steps {
                match op {
                    0 => {
                        let i = at.index(n);
                        if !ready[i] && !running.contains(&i) {
                            ready[i] = true;
                            queue.insert(rank_of[i]);
                        }
                    }
                    1 => {
                        let busy = |running: &[usize], p: usize| {
                            running.iter().filter(|&&r| pools_of[r] == p).count()
                        };
                        let expected = (0..n)
                            .filter(|&i| ready[i] && busy(&running, pools_of[i]) < limit(pools_of[i]))
                            .min_by_key(|&i| rank_of[i]);
                        prop_assert_eq!(queue.has_startable(), expected.is_some());
                        prop_assert_eq!(queue.pop(), expected.map(|i| rank_of[i]));
                        if let Some(i) = expected {
                            ready[i] = false;
                            running.push(i);
                            prop_assert!(busy(&running, pools_of[i]) <= limit(pools_of[i]));
                        }
                    }
                    2 | 3 if !running.is_empty() => {
                        let i = running.swap_remove(at.index(running.len()));
                        queue.release(i);
                    }
                    6 if at.index(8) == 0 => {
                        queue.clear();
                        ready.fill(false);
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn an_undeclared_pool_is_reported_with_its_task() {
        let workflow = Workflow::new("w", "")
            .task(Task::new("a", "t").pool("gpu"))
            .task(Task::new("b", "t").pool("gpus"));
        let declared = HashMap::from([("gpu".to_owned(), 2)]);
        let plan = workflow.validate().expect("valid").plan().clone();
        let unknown = Queue::new(&workflow, &plan, &declared)
            .err()
            .expect("gpus is unknown");
        assert_eq!(unknown, [("b".into(), "gpus".to_owned())]);
    }
}
