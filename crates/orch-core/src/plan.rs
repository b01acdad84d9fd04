//! [`Plan`]: a workflow's DAG compiled once into dense indices.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::sync::OnceLock;

use daggy::{Dag, NodeIndex};

/// A validated workflow's dependency graph, compiled once and reused by every query and run.
///
/// Tasks are named by their dense index: their position in
/// [`Workflow::tasks`](crate::Workflow::tasks), i.e. insertion order. Dependencies and
/// dependents are stored as compressed adjacency lists, so walking them touches contiguous
/// memory; every query is iterative, so a chain of a million tasks needs no deep stack.
///
/// Most users want the id-based queries on [`ValidWorkflow`](crate::ValidWorkflow); the
/// engine uses this index-based form.
///
/// ```
/// use orch_core::{Task, Workflow};
///
/// let workflow = Workflow::new("w", "W")
///     .task(Task::new("b", "t").depends_on(["a"]))
///     .task(Task::new("a", "t"));
/// let plan = workflow.validate()?.plan();
/// assert_eq!(plan.order(), [1, 0]);
/// assert_eq!(plan.level(0), 1);
/// assert_eq!(plan.dependents(1), [0]);
/// assert_eq!(plan.dag().edge_count(), 1);
/// # Ok::<(), orch_core::ValidationErrors>(())
/// ```
#[derive(Clone, Debug)]
pub struct Plan {
    pub(crate) dependencies: Adjacency,
    pub(crate) dependents: Adjacency,
    pub(crate) order: Vec<u32>,
    pub(crate) position: Vec<u32>,
    /// Computed on first use: a run does not need them.
    pub(crate) levels: OnceLock<Vec<u32>>,
    pub(crate) task_types: Vec<String>,
    pub(crate) type_of: Vec<u32>,
    pub(crate) pools: Vec<String>,
    /// Per task, its index in `pools`, or [`NO_POOL`]; empty when no task names a pool.
    pub(crate) pool_of: Vec<u32>,
    pub(crate) features: Features,
    /// Per task, its priority; empty when every priority is 0.
    pub(crate) priorities: Vec<i32>,
    /// The start orders, without and with the critical-path policy, built on first use.
    pub(crate) start_orders: [OnceLock<StartOrder>; 2],
    pub(crate) dag: OnceLock<Dag<(), (), u32>>,
}

/// Task indices in start order, and each task's place in it.
#[derive(Clone, Debug, Default)]
pub(crate) struct StartOrder {
    by_rank: Vec<u32>,
    rank_of: Vec<u32>,
}

/// The `pool_of` entry of a task in no pool.
pub(crate) const NO_POOL: u32 = u32::MAX;

/// Which optional task settings a workflow uses, on any of its tasks: a runner can skip
/// the work a setting needs when no task uses it.
///
/// ```
/// use orch_core::{Task, Workflow};
///
/// let workflow = Workflow::new("w", "W")
///     .task(Task::new("a", "t").retries(2))
///     .task(Task::new("b", "t").depends_on(["a"]).priority(5));
/// let features = workflow.validate()?.plan().features();
/// assert!(features.retries && features.priorities);
/// assert!(!features.timeouts && !features.pools);
/// # Ok::<(), orch_core::ValidationErrors>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Features {
    /// Some task has a [`timeout`](crate::Task::timeout).
    pub timeouts: bool,
    /// Some task may be retried ([`retries`](crate::Task::retries) above 0).
    pub retries: bool,
    /// Some task has a [`trigger_rule`](crate::Task::trigger_rule) other than the default.
    pub trigger_rules: bool,
    /// Some task names a [`pool`](crate::Task::pool).
    pub pools: bool,
    /// Some task has a [`priority`](crate::Task::priority) other than 0.
    pub priorities: bool,
    /// Some task is a [map](crate::Task::map) over a dependency's output.
    pub maps: bool,
    /// Some task asks for [caching](crate::Task::cache).
    pub caching: bool,
}

impl Features {
    /// Adds what `task` uses.
    pub(crate) fn note(&mut self, task: &crate::Task) {
        self.timeouts |= task.timeout.is_some();
        self.retries |= task.retries > 0;
        self.trigger_rules |= !task.trigger_rule.is_default();
        self.pools |= task.pool.is_some();
        self.priorities |= task.priority != 0;
        self.maps |= task.map.is_some();
        self.caching |= task.cache;
    }

    /// What either uses.
    pub(crate) fn union(self, other: Self) -> Self {
        Self {
            timeouts: self.timeouts | other.timeouts,
            retries: self.retries | other.retries,
            trigger_rules: self.trigger_rules | other.trigger_rules,
            pools: self.pools | other.pools,
            priorities: self.priorities | other.priorities,
            maps: self.maps | other.maps,
            caching: self.caching | other.caching,
        }
    }
}

/// Lists of task indices, one list per task, stored back to back.
#[derive(Clone, Debug, Default)]
pub(crate) struct Adjacency {
    /// `starts[i]..starts[i + 1]` is task `i`'s slice of `items`.
    pub(crate) starts: Vec<u32>,
    pub(crate) items: Vec<u32>,
}

impl Adjacency {
    #[inline]
    pub(crate) fn of(&self, index: usize) -> &[u32] {
        &self.items[self.starts[index] as usize..self.starts[index + 1] as usize]
    }

    /// The reverse lists: `j` is in `reversed.of(i)` when `i` is in `self.of(j)`; each list
    /// in increasing order.
    pub(crate) fn reversed(&self) -> Adjacency {
        let n = self.starts.len() - 1;
        let mut starts = vec![0u32; n + 1];
        for &i in &self.items {
            starts[i as usize + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        let mut fill = starts.clone();
        let mut items = vec![0u32; self.items.len()];
        for j in 0..n {
            for &i in self.of(j) {
                items[fill[i as usize] as usize] = j as u32;
                fill[i as usize] += 1;
            }
        }
        Adjacency { starts, items }
    }
}

impl Plan {
    /// The number of tasks.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the plan has no tasks (never true for a validated workflow).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Task indices in execution order: every task after all its dependencies; among tasks
    /// that could go next, the one inserted first goes first.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// The position of task `index` in [`Plan::order`].
    pub fn position(&self, index: usize) -> usize {
        self.position[index] as usize
    }

    /// The level of task `index`: 0 for a task with no dependencies, otherwise one more than
    /// its deepest dependency.
    pub fn level(&self, index: usize) -> usize {
        let levels = self.levels.get_or_init(|| {
            let mut levels = vec![0u32; self.len()];
            for &i in &self.order {
                let i = i as usize;
                levels[i] = (self.dependencies.of(i).iter())
                    .map(|&d| levels[d as usize] + 1)
                    .max()
                    .unwrap_or(0);
            }
            levels
        });
        levels[index] as usize
    }

    /// The direct dependencies of task `index`, in the order they were listed.
    #[inline]
    pub fn dependencies(&self, index: usize) -> &[u32] {
        self.dependencies.of(index)
    }

    /// The tasks that depend directly on task `index`, in the workflow's order (their
    /// indices ascending).
    #[inline]
    pub fn dependents(&self, index: usize) -> &[u32] {
        self.dependents.of(index)
    }

    /// Every task reachable from `index` through dependents, in execution order.
    pub fn descendants(&self, index: usize) -> Vec<usize> {
        self.reach(index, &self.dependents)
    }

    /// Every task that `index` transitively depends on, in execution order.
    pub fn ancestors(&self, index: usize) -> Vec<usize> {
        self.reach(index, &self.dependencies)
    }

    /// The distinct task types, in order of first use.
    pub fn task_types(&self) -> &[String] {
        &self.task_types
    }

    /// Asks the processor to bring task `index`'s type and dependents' bounds into cache,
    /// with no other effect: when tasks start out of plan order, orch's engine calls it for
    /// tasks it is about to start. Hidden from the docs: not part of the API a user needs.
    #[doc(hidden)]
    #[inline]
    pub fn prefetch(&self, index: usize) {
        prefetch_index::prefetch_index(&self.type_of, index);
        prefetch_index::prefetch_index(&self.dependents.starts, index);
    }

    /// The index into [`Plan::task_types`] of task `index`'s type.
    pub fn type_of(&self, index: usize) -> usize {
        self.type_of[index] as usize
    }

    /// The distinct pool names tasks name, in order of first use.
    pub fn pools(&self) -> &[String] {
        &self.pools
    }

    /// The index into [`Plan::pools`] of task `index`'s pool, if it names one.
    pub fn pool_of(&self, index: usize) -> Option<usize> {
        let pool = self.pool_of.get(index).copied().unwrap_or(NO_POOL);
        (pool != NO_POOL).then_some(pool as usize)
    }

    /// Task `index`'s priority (0 unless the task sets one).
    pub fn priority(&self, index: usize) -> i32 {
        self.priorities.get(index).copied().unwrap_or(0)
    }

    /// Task indices in the order an engine starts the tasks that are ready together:
    /// higher [priority](crate::Task::priority) first; among equal priorities, with
    /// `critical_path_first`, the task with the longer chain of tasks depending on it;
    /// then in [`Plan::order`]. Built on first use, then kept.
    ///
    /// ```
    /// use orch_core::{Task, Workflow};
    ///
    /// let workflow = Workflow::new("w", "W")
    ///     .task(Task::new("a", "t"))
    ///     .task(Task::new("b", "t"))
    ///     .task(Task::new("c", "t").depends_on(["b"]))
    ///     .task(Task::new("d", "t").priority(1));
    /// let plan = workflow.validate()?.plan();
    /// assert_eq!(plan.start_order(false), [3, 0, 1, 2]);
    /// assert_eq!(plan.start_order(true), [3, 1, 0, 2]);
    /// assert_eq!(plan.start_ranks(true), [2, 1, 3, 0]);
    /// # Ok::<(), orch_core::ValidationErrors>(())
    /// ```
    pub fn start_order(&self, critical_path_first: bool) -> &[u32] {
        &self.ranked(critical_path_first).by_rank
    }

    /// Each task's place in [`Plan::start_order`], by task index.
    pub fn start_ranks(&self, critical_path_first: bool) -> &[u32] {
        &self.ranked(critical_path_first).rank_of
    }

    fn ranked(&self, critical_path_first: bool) -> &StartOrder {
        self.start_orders[usize::from(critical_path_first)].get_or_init(|| {
            // Per task, how many tasks the longest chain from it to the end holds.
            let mut chain = vec![0u32; self.len()];
            if critical_path_first {
                for &index in self.order.iter().rev() {
                    let index = index as usize;
                    chain[index] = 1 + self
                        .dependents(index)
                        .iter()
                        .map(|&d| chain[d as usize])
                        .max()
                        .unwrap_or(0);
                }
            }
            let mut by_rank = self.order.clone();
            // A stable sort keeps the plan's order among equals.
            by_rank.sort_by_key(|&index| {
                let index = index as usize;
                (Reverse(self.priority(index)), Reverse(chain[index]))
            });
            let mut rank_of = vec![0u32; self.len()];
            for (rank, &index) in by_rank.iter().enumerate() {
                rank_of[index as usize] = rank as u32;
            }
            StartOrder { by_rank, rank_of }
        })
    }

    /// Which optional task settings the workflow uses.
    pub fn features(&self) -> Features {
        self.features
    }

    /// The graph as a [`daggy::Dag`], for petgraph's algorithms: node `i` is task `i`, and
    /// edges point from a dependency to its dependent. Built on first call, then kept.
    pub fn dag(&self) -> &Dag<(), (), u32> {
        self.dag.get_or_init(|| {
            let mut dag = Dag::with_capacity(self.len(), self.dependencies.items.len());
            for _ in 0..self.len() {
                dag.add_node(());
            }
            // Edges go in in execution order of their dependent: a node never has children
            // when an edge into it is added, so daggy has no cycle to look for.
            let edges = self.order.iter().flat_map(|&i| {
                self.dependencies(i as usize)
                    .iter()
                    .map(move |&d| (NodeIndex::new(d as usize), NodeIndex::new(i as usize), ()))
            });
            if dag.add_edges(edges).is_err() {
                unreachable!("a plan's edges, added in topological order, form no cycle");
            }
            dag
        })
    }

    fn reach(&self, start: usize, edges: &Adjacency) -> Vec<usize> {
        // A set of the tasks found, not a flag per task of the workflow: a task with few
        // ancestors in a wide workflow (asked once per task of a wide fan-out) costs as
        // little as its answer.
        let mut seen: HashSet<u32, foldhash::fast::RandomState> = HashSet::default();
        let mut found = Vec::new();
        let mut stack: Vec<u32> = edges.of(start).to_vec();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                found.push(i as usize);
                stack.extend_from_slice(edges.of(i as usize));
            }
        }
        found.sort_unstable_by_key(|&i| self.position[i]);
        found
    }
}
