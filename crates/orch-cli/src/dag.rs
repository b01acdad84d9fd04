//! [`Dag`]: a validated workflow as the commands draw and print it (ids, names, types,
//! dependencies, levels and order), read once from the definition.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use orch::core::{MapSpec, Plan, TaskStatus, ValidationErrors, Workflow, WorkflowResult};

/// One task as the commands show it.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) id: String,
    /// The task's name, empty when it has none.
    pub(crate) name: String,
    pub(crate) task_type: String,
    /// Whether it is a map task, whose instances have ids of their own (`id[0]`, ...).
    pub(crate) map: bool,
    /// Indices of the direct dependencies, in the order they are listed.
    pub(crate) dependencies: Vec<usize>,
    /// 0 for a task without dependencies, else one more than its deepest dependency.
    pub(crate) level: usize,
    /// The task's status in a run, when a result was given.
    pub(crate) status: Option<TaskStatus>,
}

/// A validated workflow: nodes in insertion order, and the order they run in.
#[derive(Clone, Debug)]
pub(crate) struct Dag {
    pub(crate) workflow_id: String,
    pub(crate) name: String,
    pub(crate) nodes: Vec<Node>,
    /// Node indices in the order `orch run --max-concurrent 1` starts them when each
    /// completes (see [`run_order`]).
    pub(crate) order: Vec<usize>,
}

/// Task indices in the order a run one task at a time starts them when each completes:
/// each time, of the tasks whose dependencies are all done, the one an engine starts
/// first (higher priority, then the plan's execution order). A trigger rule that starts
/// a task before all its dependencies end (`one_success`) is not followed.
fn run_order(plan: &Plan) -> Vec<usize> {
    let (ranks, by_rank) = (plan.start_ranks(false), plan.start_order(false));
    let mut waiting: Vec<usize> = (0..plan.len())
        .map(|i| plan.dependencies(i).len())
        .collect();
    let mut ready: BinaryHeap<Reverse<u32>> = (0..plan.len())
        .filter(|&i| waiting[i] == 0)
        .map(|i| Reverse(ranks[i]))
        .collect();
    let mut order = Vec::with_capacity(plan.len());
    while let Some(Reverse(rank)) = ready.pop() {
        let task = by_rank[rank as usize] as usize;
        order.push(task);
        for &dependent in plan.dependents(task) {
            let dependent = dependent as usize;
            waiting[dependent] -= 1;
            if waiting[dependent] == 0 {
                ready.push(Reverse(ranks[dependent]));
            }
        }
    }
    order
}

impl Dag {
    /// Validates `workflow` and reads its graph.
    pub(crate) fn new(workflow: &Workflow) -> Result<Self, ValidationErrors> {
        let valid = workflow.validate()?;
        let plan = valid.plan();
        let nodes = workflow
            .tasks()
            .enumerate()
            .map(|(i, task)| Node {
                id: task.task_id.to_string(),
                name: task.name.clone(),
                task_type: task.task_type.clone(),
                map: task.map.is_some(),
                dependencies: plan.dependencies(i).iter().map(|&d| d as usize).collect(),
                level: plan.level(i),
                status: None,
            })
            .collect();
        Ok(Self {
            workflow_id: workflow.workflow_id().to_owned(),
            name: workflow.name().to_owned(),
            nodes,
            order: run_order(plan),
        })
    }

    /// The tasks of `run` this graph does not have: those of its workflow when the
    /// result file holds it, else of its records (a map task's instances aside), in the
    /// order the file lists them.
    pub(crate) fn tasks_not_in<'r>(&self, run: &'r crate::result_file::RunFile) -> Vec<&'r str> {
        let ids: HashSet<&str> = self.nodes.iter().map(|node| node.id.as_str()).collect();
        let maps: HashSet<&str> = (self.nodes.iter().filter(|node| node.map))
            .map(|node| node.id.as_str())
            .collect();
        let is_instance =
            |id: &str| MapSpec::parse_instance_id(id).is_some_and(|(map, _)| maps.contains(map));
        match &run.workflow {
            Some(workflow) => (workflow.tasks())
                .map(|task| task.task_id.as_str())
                .filter(|id| !ids.contains(id))
                .collect(),
            None => (run.result.tasks.ids())
                .map(|id| id.as_str())
                .filter(|id| !ids.contains(id) && !is_instance(id))
                .collect(),
        }
    }

    /// Takes each task's status from a run's result (matched by id).
    pub(crate) fn with_statuses(mut self, result: &WorkflowResult) -> Self {
        for node in &mut self.nodes {
            node.status = result.task(&node.id).map(|r| r.status);
        }
        self
    }

    /// How many levels there are.
    pub(crate) fn depth(&self) -> usize {
        self.nodes.iter().map(|n| n.level + 1).max().unwrap_or(0)
    }

    /// Every edge as (dependency, dependent).
    pub(crate) fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.dependencies.iter().map(move |&d| (d, i)))
    }

    /// Node indices per level, each level in the order they run in.
    pub(crate) fn levels(&self) -> Vec<Vec<usize>> {
        let mut levels = vec![Vec::new(); self.depth()];
        for &i in &self.order {
            levels[self.nodes[i].level].push(i);
        }
        levels
    }
}
