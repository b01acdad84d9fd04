//! Pools: named limits on how many tasks of a kind run at once, beside the engine's global
//! limit, and [`Queue`], the ready tasks of a run in the order they start.

use std::collections::HashMap;

use orch_core::{Plan, TaskId, Workflow};

use crate::ready::ReadySet;

/// The ready tasks of a run, by start rank (smallest first).
pub(crate) enum Queue {
    /// No task names a pool: only the global limit applies.
    Single(ReadySet),
    /// Some tasks name pools: each pool has its own ready set and count of started tasks.
    Pooled(Pooled),
}

pub(crate) struct Pooled {
    /// Per task (plan index), its group: 0 for tasks in no pool.
    group_of: Vec<u32>,
    groups: Vec<Group>,
}

struct Group {
    limit: usize,
    /// Tasks of the group started and not yet finished.
    active: usize,
    ready: ReadySet,
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
            ready: ReadySet::new(n),
        }];
        let mut undeclared = Vec::new();
        for (p, name) in plan.pools().iter().enumerate() {
            match pools.get(name) {
                Some(&limit) => groups.push(Group {
                    limit,
                    active: 0,
                    ready: ReadySet::new(n),
                }),
                None => undeclared.push(p),
            }
        }
        if !undeclared.is_empty() {
            let unknown = workflow.tasks().enumerate().filter_map(|(i, task)| {
                let p = plan.pool_of(i)?;
                undeclared
                    .contains(&p)
                    .then(|| (task.task_id.clone(), plan.pools()[p].clone()))
            });
            return Err(unknown.collect());
        }
        let group_of = (0..n)
            .map(|i| plan.pool_of(i).map_or(0, |p| p as u32 + 1))
            .collect();
        Ok(Queue::Pooled(Pooled { group_of, groups }))
    }

    /// Adds task `index`, which starts at rank `rank` among ready tasks.
    #[inline]
    pub(crate) fn insert(&mut self, index: usize, rank: u32) {
        match self {
            Queue::Single(ready) => ready.insert(rank),
            Queue::Pooled(pooled) => {
                let group = pooled.group_of[index] as usize;
                pooled.groups[group].ready.insert(rank);
            }
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

    /// Frees the pool slot of task `index`, which finished.
    #[inline]
    pub(crate) fn release(&mut self, index: usize) {
        if let Queue::Pooled(pooled) = self {
            let group = pooled.group_of[index] as usize;
            pooled.groups[group].active -= 1;
        }
    }

    /// Takes one more slot of task `index`'s pool, for one more instance of that map
    /// task, if the pool has room; [`Queue::release`] gives it back.
    pub(crate) fn take(&mut self, index: usize) -> bool {
        match self {
            Queue::Single(_) => true,
            Queue::Pooled(pooled) => {
                let group = &mut pooled.groups[pooled.group_of[index] as usize];
                let room = group.active < group.limit;
                group.active += usize::from(room);
                room
            }
        }
    }

    /// Whether some ready task's pool has room.
    pub(crate) fn has_startable(&self) -> bool {
        match self {
            Queue::Single(ready) => !ready.is_empty(),
            Queue::Pooled(pooled) => pooled
                .groups
                .iter()
                .any(|g| g.active < g.limit && !g.ready.is_empty()),
        }
    }

    /// Empties the queue (pool counts stay).
    pub(crate) fn clear(&mut self) {
        match self {
            Queue::Single(ready) => ready.clear(),
            Queue::Pooled(pooled) => pooled.groups.iter_mut().for_each(|g| g.ready.clear()),
        }
    }
}

impl Pooled {
    fn pop(&mut self) -> Option<u32> {
        let mut best: Option<(u32, usize)> = None;
        for (g, group) in self.groups.iter_mut().enumerate() {
            if group.active >= group.limit {
                continue;
            }
            if let Some(rank) = group.ready.peek_min() {
                if best.is_none_or(|(r, _)| rank < r) {
                    best = Some((rank, g));
                }
            }
        }
        let (_, g) = best?;
        let group = &mut self.groups[g];
        group.active += 1;
        group.ready.pop_min()
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
        /// pool ever holds more started tasks than its limit.
        #[test]
        fn pops_the_smallest_rank_with_room(
            pools_of in proptest::collection::vec(0usize..4, 1..40),
            limits in proptest::collection::vec(1usize..4, 3),
            steps in proptest::collection::vec((0u8..3, any::<prop::sample::Index>()), 0..200),
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
            // Rank i is task i here; the model keeps ready and running tasks.
            let mut ready: Vec<bool> = vec![false; n];
            let mut running: Vec<usize> = Vec::new();
            let limit = |p: usize| if p == 0 { usize::MAX } else { limits[p - 1] };
            for (op, at) in steps {
                match op {
                    0 => {
                        let i = at.index(n);
                        if !ready[i] && !running.contains(&i) {
                            ready[i] = true;
                            queue.insert(i, i as u32);
                        }
                    }
                    1 => {
                        let busy = |running: &[usize], p: usize| {
                            running.iter().filter(|&&r| pools_of[r] == p).count()
                        };
                        let expected = (0..n).find(|&i| ready[i] && busy(&running, pools_of[i]) < limit(pools_of[i]));
                        prop_assert_eq!(queue.has_startable(), expected.is_some());
                        prop_assert_eq!(queue.pop(), expected.map(|i| i as u32));
                        if let Some(i) = expected {
                            ready[i] = false;
                            running.push(i);
                            prop_assert!(busy(&running, pools_of[i]) <= limit(pools_of[i]));
                        }
                    }
                    _ => {
                        if !running.is_empty() {
                            let i = running.swap_remove(at.index(running.len()));
                            queue.release(i);
                        }
                    }
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
