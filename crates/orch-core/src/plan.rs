//! [`Plan`]: a workflow's DAG compiled once into dense indices, and the checks that build it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use daggy::{Dag, NodeIndex, Walker};
use serde_json::Value;

use crate::{TaskId, ValidationError, ValidationErrors, Workflow};

/// A validated workflow's dependency graph, compiled once and reused by every query and run.
///
/// Tasks are named by their dense index: their position in
/// [`Workflow::tasks`](crate::Workflow::tasks), i.e. insertion order. The graph is a
/// [`daggy::Dag`] whose edges point from a dependency to its dependent. Every query is
/// iterative, so a chain of a million tasks needs no deep stack.
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
/// assert_eq!(plan.dependents(1).collect::<Vec<_>>(), [0]);
/// # Ok::<(), orch_core::ValidationErrors>(())
/// ```
#[derive(Clone, Debug)]
pub struct Plan {
    dag: Dag<(), (), u32>,
    order: Vec<u32>,
    position: Vec<u32>,
    levels: Vec<u32>,
    dependency_counts: Vec<u32>,
    task_types: Vec<String>,
    type_of: Vec<u32>,
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
        self.levels[index] as usize
    }

    /// The number of direct dependencies of task `index`.
    pub fn dependency_count(&self, index: usize) -> usize {
        self.dependency_counts[index] as usize
    }

    /// The tasks that depend directly on task `index`.
    pub fn dependents(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.dag
            .children(NodeIndex::new(index))
            .iter(&self.dag)
            .map(|(_, node)| node.index())
    }

    /// The direct dependencies of task `index`.
    pub fn dependencies(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.dag
            .parents(NodeIndex::new(index))
            .iter(&self.dag)
            .map(|(_, node)| node.index())
    }

    /// Every task reachable from `index` through dependents, in execution order.
    pub fn descendants(&self, index: usize) -> Vec<usize> {
        self.reach(index, |plan, i, out| out.extend(plan.dependents(i)))
    }

    /// Every task that `index` transitively depends on, in execution order.
    pub fn ancestors(&self, index: usize) -> Vec<usize> {
        self.reach(index, |plan, i, out| out.extend(plan.dependencies(i)))
    }

    /// The distinct task types, in order of first use.
    pub fn task_types(&self) -> &[String] {
        &self.task_types
    }

    /// The index into [`Plan::task_types`] of task `index`'s type.
    pub fn type_of(&self, index: usize) -> usize {
        self.type_of[index] as usize
    }

    /// The underlying graph, for petgraph's algorithms. Node `i` is task `i`; edges point
    /// from a dependency to its dependent.
    pub fn dag(&self) -> &Dag<(), (), u32> {
        &self.dag
    }

    fn reach(&self, start: usize, step: impl Fn(&Self, usize, &mut Vec<usize>)) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut found = Vec::new();
        let mut stack = Vec::new();
        step(self, start, &mut stack);
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                found.push(i);
                step(self, i, &mut stack);
            }
        }
        found.sort_unstable_by_key(|&i| self.position[i]);
        found
    }
}

/// Checks `workflow` and compiles its plan; reports every problem found.
pub(crate) fn compile(workflow: &Workflow) -> Result<Plan, ValidationErrors> {
    let tasks = workflow.tasks();
    let n = tasks.len();
    let mut errors = Vec::new();
    if n == 0 {
        errors.push(ValidationError::EmptyWorkflow);
    }
    errors.extend(
        workflow
            .duplicate_ids()
            .iter()
            .map(|id| ValidationError::DuplicateTaskId { task: id.clone() }),
    );

    // Resolve every dependency to an index; `deps` holds them back to back, task by task.
    let mut dep_starts = Vec::with_capacity(n + 1);
    let mut deps: Vec<u32> = Vec::with_capacity(n * 2);
    let mut listed_by = vec![u32::MAX; n];
    let mut type_ids: HashMap<&str, u32> = HashMap::new();
    let mut task_types = Vec::new();
    let mut type_of = Vec::with_capacity(n);
    for (i, (key, task)) in tasks.iter().enumerate() {
        dep_starts.push(deps.len() as u32);
        if key != &task.task_id {
            errors.push(ValidationError::KeyMismatch {
                key: key.clone(),
                task_id: task.task_id.clone(),
            });
        }
        check_options(key, task, &mut errors);
        let next_type = type_ids.len() as u32;
        let type_id = *type_ids.entry(&task.task_type).or_insert_with(|| {
            task_types.push(task.task_type.clone());
            next_type
        });
        type_of.push(type_id);
        for dep in &task.dependencies {
            match tasks.get_index_of(dep) {
                Some(d) if d == i => {
                    errors.push(ValidationError::SelfDependency { task: key.clone() })
                }
                Some(d) if listed_by[d] == i as u32 => {
                    errors.push(ValidationError::DuplicateDependency {
                        task: key.clone(),
                        dependency: dep.clone(),
                    })
                }
                Some(d) => {
                    listed_by[d] = i as u32;
                    deps.push(d as u32);
                }
                None => errors.push(ValidationError::UnknownDependency {
                    task: key.clone(),
                    dependency: dep.clone(),
                }),
            }
        }
    }
    dep_starts.push(deps.len() as u32);
    drop(listed_by);
    let deps_of = |i: usize| &deps[dep_starts[i] as usize..dep_starts[i + 1] as usize];

    // Dependents, as a compressed adjacency list, for Kahn's algorithm.
    let mut out_starts = vec![0u32; n + 1];
    for &d in &deps {
        out_starts[d as usize + 1] += 1;
    }
    for i in 0..n {
        out_starts[i + 1] += out_starts[i];
    }
    let mut fill = out_starts.clone();
    let mut dependents = vec![0u32; deps.len()];
    for i in 0..n {
        for &d in deps_of(i) {
            dependents[fill[d as usize] as usize] = i as u32;
            fill[d as usize] += 1;
        }
    }
    drop(fill);

    let dependency_counts: Vec<u32> = (0..n).map(|i| deps_of(i).len() as u32).collect();
    let mut waiting = dependency_counts.clone();
    let mut ready: BinaryHeap<Reverse<u32>> = (0..n as u32)
        .filter(|&i| waiting[i as usize] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        let i = i as usize;
        for &c in &dependents[out_starts[i] as usize..out_starts[i + 1] as usize] {
            waiting[c as usize] -= 1;
            if waiting[c as usize] == 0 {
                ready.push(Reverse(c));
            }
        }
    }
    drop(dependents);
    drop(out_starts);
    if order.len() < n {
        find_cycles(workflow, &waiting, &deps_of, &mut errors);
    }
    if let Some(errors) = ValidationErrors::from_vec(errors) {
        return Err(errors);
    }

    let mut position = vec![0u32; n];
    let mut levels = vec![0u32; n];
    for (pos, &i) in order.iter().enumerate() {
        let i = i as usize;
        position[i] = pos as u32;
        levels[i] = deps_of(i)
            .iter()
            .map(|&d| levels[d as usize] + 1)
            .max()
            .unwrap_or(0);
    }

    let mut dag = Dag::with_capacity(n, deps.len());
    for _ in 0..n {
        dag.add_node(());
    }
    // Edges go in in execution order of their dependent: a node never has children when
    // an edge into it is added, so daggy has no cycle to look for, and none exists.
    let edges = order.iter().flat_map(|&i| {
        deps_of(i as usize)
            .iter()
            .map(move |&d| (NodeIndex::new(d as usize), NodeIndex::new(i as usize), ()))
    });
    dag.add_edges(edges)
        .expect("edges added in topological order cannot form a cycle");

    Ok(Plan {
        dag,
        order,
        position,
        levels,
        dependency_counts,
        task_types,
        type_of,
    })
}

fn check_options(key: &TaskId, task: &crate::Task, errors: &mut Vec<ValidationError>) {
    let mut invalid = |option: &'static str, reason: String| {
        errors.push(ValidationError::InvalidOption {
            task: key.clone(),
            option,
            reason,
        })
    };
    if task.timeout.is_some_and(|t| t.is_zero()) {
        invalid("timeout", "must be greater than zero".into());
    }
    let backoff = &task.backoff;
    if !backoff.multiplier.is_finite() || backoff.multiplier < 1.0 {
        invalid(
            "backoff.multiplier",
            format!(
                "must be a finite number of at least 1, not {}",
                backoff.multiplier
            ),
        );
    }
    if backoff.initial > backoff.max {
        invalid(
            "backoff.initial",
            format!(
                "{:?} is longer than backoff.max ({:?})",
                backoff.initial, backoff.max
            ),
        );
    }
    if !task.config.is_object() {
        invalid(
            "config",
            format!("must be a JSON object, not {}", json_kind(&task.config)),
        );
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reports the cycles among the tasks Kahn's algorithm could not order.
///
/// Every such task still waits on some dependency that is also unordered, so walking from
/// one to an unordered dependency, again and again, must come back to a task already on the
/// walk: that stretch is a cycle. Walks that run into an earlier walk stop there, so each
/// reported cycle is new.
fn find_cycles<'d>(
    workflow: &Workflow,
    waiting: &[u32],
    deps_of: &impl Fn(usize) -> &'d [u32],
    errors: &mut Vec<ValidationError>,
) {
    const UNSEEN: u32 = u32::MAX;
    let ids: Vec<&TaskId> = workflow.tasks().keys().collect();
    let mut walk_of = vec![UNSEEN; waiting.len()];
    let mut path: Vec<usize> = Vec::new();
    for (walk, start) in (0..waiting.len()).filter(|&i| waiting[i] > 0).enumerate() {
        if walk_of[start] != UNSEEN {
            continue;
        }
        path.clear();
        let mut current = start;
        loop {
            walk_of[current] = walk as u32;
            path.push(current);
            let Some(&next) = deps_of(current).iter().find(|&&d| waiting[d as usize] > 0) else {
                break; // cannot happen for an unordered task; stop rather than loop
            };
            let next = next as usize;
            if walk_of[next] == walk as u32 {
                let from = path.iter().position(|&p| p == next).unwrap_or(0);
                let cycle = &path[from..];
                let lowest = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                let mut ids_on_cycle: Vec<TaskId> = cycle[lowest..]
                    .iter()
                    .chain(&cycle[..lowest])
                    .map(|&k| ids[k].clone())
                    .collect();
                ids_on_cycle.push(ids_on_cycle[0].clone());
                errors.push(ValidationError::Cycle { path: ids_on_cycle });
                break;
            }
            if walk_of[next] != UNSEEN {
                break;
            }
            current = next;
        }
    }
}
