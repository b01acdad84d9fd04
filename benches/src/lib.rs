//! The standard workflow shapes that orch's benchmarks run on.
//!
//! Every shape names its tasks `t0`, `t1`, ... in insertion order and gives them the task
//! type `noop`, so one no-op handler runs them all.
//!
//! ```
//! use benches::Shape;
//!
//! let workflow = Shape::Wavefront.build(9);
//! assert_eq!(workflow.len(), 9);
//! assert_eq!(workflow.validate().unwrap().level("t8"), Some(4));
//! ```

pub mod engine_case;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use orch::core::Plan;
use orch::prelude::*;
use orch_engine::{TaskContext, TaskError, WorkflowEngine, inline};
use serde_json::Value;

/// A tokio runtime with two worker threads, as the benchmarks' figures assume.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A handler that returns at once.
async fn noop(_ctx: TaskContext) -> Result<Value, TaskError> {
    Ok(Value::Null)
}

/// An engine whose `noop` handler returns at once, registered `inline`: the scheduling
/// benchmarks measure the engine's own cost per task, which a tokio spawn per attempt
/// would hide (that cost has a row of its own, `engine_run/handler_placement`).
pub fn noop_engine(max_concurrent: usize) -> WorkflowEngine {
    let engine = WorkflowEngine::with_max_concurrent(max_concurrent).expect("non-zero");
    engine.register_handler("noop", inline(noop));
    engine
}

/// An engine whose `noop` handler returns at once, registered as it is: on a
/// multi-threaded runtime each attempt is spawned as a tokio task of its own.
pub fn spawning_noop_engine(max_concurrent: usize) -> WorkflowEngine {
    let engine = WorkflowEngine::with_max_concurrent(max_concurrent).expect("non-zero");
    engine.register_handler("noop", noop);
    engine
}

/// The floor for scheduling no-op tasks: Kahn's algorithm over the plan, creating and
/// polling each task's boxed no-op future inline, keeping each result. Returns how many
/// tasks ran.
pub fn inline_floor(plan: &Plan) -> usize {
    type NoOp = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
    let n = plan.len();
    let mut waiting: Vec<u32> = (0..n).map(|i| plan.dependencies(i).len() as u32).collect();
    let mut ready: VecDeque<u32> = (0..n as u32)
        .filter(|&i| waiting[i as usize] == 0)
        .collect();
    let mut results: Vec<Option<Value>> = vec![None; n];
    let mut cx = Context::from_waker(Waker::noop());
    let mut ran = 0;
    while let Some(i) = ready.pop_front() {
        let mut future: NoOp = Box::pin(async { Ok(Value::Null) });
        if let Poll::Ready(Ok(value)) = future.as_mut().poll(&mut cx) {
            results[i as usize] = Some(value);
            ran += 1;
            for &d in plan.dependents(i as usize) {
                waiting[d as usize] -= 1;
                if waiting[d as usize] == 0 {
                    ready.push_back(d);
                }
            }
        }
    }
    ran
}

/// A family of DAGs, each buildable at any size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Each task depends on the one before it.
    Chain,
    /// One root, `n - 2` tasks that depend on it, one sink that depends on them all.
    FanOutFanIn,
    /// Task `i` depends on task `(i - 1) / 2`.
    BinaryTree,
    /// A `k x k` grid (`k = floor(sqrt(n))`); each cell depends on the cells above and to
    /// its left.
    Wavefront,
    /// Each task depends on up to three distinct earlier tasks, chosen at random from a
    /// fixed seed.
    Random,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 5] = [
        Shape::Chain,
        Shape::FanOutFanIn,
        Shape::BinaryTree,
        Shape::Wavefront,
        Shape::Random,
    ];

    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::FanOutFanIn => "fan_out_in",
            Shape::BinaryTree => "binary_tree",
            Shape::Wavefront => "wavefront",
            Shape::Random => "random",
        }
    }

    /// The dependencies of every task, by index, for a workflow of about `n` tasks
    /// (a wavefront rounds down to a square).
    pub fn dependencies(self, n: usize) -> Vec<Vec<usize>> {
        match self {
            Shape::Chain => (0..n)
                .map(|i| i.checked_sub(1).into_iter().collect())
                .collect(),
            Shape::FanOutFanIn => (0..n)
                .map(|i| match i {
                    0 => vec![],
                    _ if i + 1 == n && n > 2 => (1..n - 1).collect(),
                    _ => vec![0],
                })
                .collect(),
            Shape::BinaryTree => (0..n)
                .map(|i| i.checked_sub(1).map(|p| p / 2).into_iter().collect())
                .collect(),
            Shape::Wavefront => {
                let k = (n as f64).sqrt() as usize;
                (0..k * k)
                    .map(|i| {
                        let (row, col) = (i / k, i % k);
                        let mut deps = Vec::with_capacity(2);
                        if row > 0 {
                            deps.push(i - k);
                        }
                        if col > 0 {
                            deps.push(i - 1);
                        }
                        deps
                    })
                    .collect()
            }
            Shape::Random => {
                let mut rng = SplitMix64(0x5EED_0F0A);
                (0..n)
                    .map(|i| {
                        let wanted = (rng.next_u64() % 4) as usize;
                        let mut deps: Vec<usize> = Vec::with_capacity(wanted);
                        while deps.len() < wanted.min(i) {
                            let d = (rng.next_u64() % i as u64) as usize;
                            if !deps.contains(&d) {
                                deps.push(d);
                            }
                        }
                        deps
                    })
                    .collect()
            }
        }
    }

    /// Builds the workflow of about `n` tasks.
    pub fn build(self, n: usize) -> Workflow {
        let deps = self.dependencies(n);
        let tasks = deps.iter().enumerate().map(|(i, deps)| {
            Task::new(format!("t{i}"), "noop").depends_on(deps.iter().map(|d| format!("t{d}")))
        });
        Workflow::from_tasks(self.name(), self.name(), tasks)
    }
}

/// The pools of [`with_pools_and_priorities`]; an engine running its workflows declares
/// them (limit 2 each in the benches).
pub const POOLS: [&str; 4] = ["p0", "p1", "p2", "p3"];

/// `workflow` with task `i` in pool `POOLS[i % 4]` (with `pools`) and priority
/// `i % 7 - 3` (with `priorities`).
pub fn with_pools_and_priorities(workflow: &Workflow, pools: bool, priorities: bool) -> Workflow {
    let tasks = workflow.tasks().enumerate().map(|(i, task)| {
        let mut task = task.clone();
        if pools {
            task = task.pool(POOLS[i % POOLS.len()]);
        }
        if priorities {
            task = task.priority((i % 7) as i32 - 3);
        }
        task
    });
    Workflow::from_tasks(workflow.workflow_id(), workflow.name(), tasks)
}

/// `workflow` with task `i` at priority `(i / block) % 7 - 3`: the seven priorities of
/// [`with_pools_and_priorities`], each given to runs of `block` neighbouring tasks (as
/// when priorities follow task types or stages), so that tasks of one priority lie
/// together in memory.
pub fn with_priority_blocks(workflow: &Workflow, block: usize) -> Workflow {
    let block = block.max(1);
    let tasks = workflow
        .tasks()
        .enumerate()
        .map(|(i, task)| task.clone().priority(((i / block) % 7) as i32 - 3));
    Workflow::from_tasks(workflow.workflow_id(), workflow.name(), tasks)
}

/// A small, fast, seedable generator (SplitMix64), so shapes are the same on every run.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
