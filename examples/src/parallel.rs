//! The original module's parallel processing example: `prep → task_a, task_b, task_c → merge`.
//!
//! `prep` makes the numbers 1..=n; each branch waits `delay` (a stand-in for I/O such
//! as a remote call, the one place in these examples where a sleep is the point) and
//! then sums the squares of its third of them; `merge` adds the three partial sums. Run
//! with one slot the branches take turns; with three they overlap, and the wall time
//! drops to about a third of the branches' total.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orch::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{BoxError, task_output};

/// The branches between `prep` and `merge`.
pub const BRANCHES: [&str; 3] = ["task_a", "task_b", "task_c"];

/// What one run computed.
#[derive(Debug)]
pub struct Outcome {
    /// The run's records and metrics.
    pub result: WorkflowResult,
    /// Wall time of the run, on tokio's clock (so a paused test clock measures it too).
    pub wall_time: Duration,
    /// The most branches that were waiting at the same time.
    pub peak_concurrency: usize,
    /// The sum of squares of 1..=n that `merge` computed.
    pub sum_of_squares: u64,
}

/// The five-task workflow over 1..=`n`, each branch waiting `delay`.
pub fn workflow(n: u64, delay: Duration) -> Workflow {
    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let mut workflow = Workflow::new("parallel", "Parallel Processing")
        .task(Task::new("prep", "prep").config(json!({"n": n})));
    for (part, id) in BRANCHES.iter().enumerate() {
        workflow = workflow.task(
            Task::new(*id, "square_sum")
                .config(json!({"part": part, "parts": BRANCHES.len(), "delay_ms": millis}))
                .depends_on(["prep"]),
        );
    }
    workflow.task(Task::new("merge", "merge").depends_on(BRANCHES))
}

/// Counts how many calls are inside a section, and the most at once.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the workflow over 1..=`n` on an engine with `max_concurrent` slots.
pub async fn run(max_concurrent: usize, n: u64, delay: Duration) -> Result<Outcome, BoxError> {
    let engine = WorkflowEngine::with_max_concurrent(max_concurrent)?;
    let gauge = Arc::new(Gauge::default());
    engine.register_handler("prep", |ctx: TaskContext| async move {
        let n = ctx.config()["n"]
            .as_u64()
            .ok_or_else(|| TaskError::permanent("`n` must be a whole number"))?;
        Ok::<_, TaskError>(json!({"numbers": (1..=n).collect::<Vec<u64>>()}))
    });
    let branch_gauge = Arc::clone(&gauge);
    engine.register_handler("square_sum", move |ctx: TaskContext| {
        let gauge = Arc::clone(&branch_gauge);
        async move {
            gauge.enter();
            let outcome = square_sum(&ctx).await;
            gauge.leave();
            outcome
        }
    });
    engine.register_handler("merge", |ctx: TaskContext| async move {
        let mut total = 0u64;
        for (id, value) in ctx.dependency_results() {
            let part = value["sum"]
                .as_u64()
                .ok_or_else(|| TaskError::permanent(format!("`{id}` gave no sum")))?;
            total = total
                .checked_add(part)
                .ok_or_else(|| TaskError::permanent("the sum overflows"))?;
        }
        Ok::<_, TaskError>(json!({"sum_of_squares": total}))
    });

    let start = tokio::time::Instant::now();
    let result = engine.execute_workflow(&workflow(n, delay)).await?;
    let wall_time = start.elapsed();
    let sum_of_squares = task_output(&result, "merge")?["sum_of_squares"]
        .as_u64()
        .ok_or("`merge` gave no sum of squares")?;
    Ok(Outcome {
        result,
        wall_time,
        peak_concurrency: gauge.peak.load(Ordering::SeqCst),
        sum_of_squares,
    })
}

async fn square_sum(ctx: &TaskContext) -> Result<Value, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        part: usize,
        parts: usize,
        delay_ms: u64,
    }
    #[derive(Deserialize)]
    struct Prepared {
        numbers: Vec<u64>,
    }
    let config: Config = ctx.config_as()?;
    if config.parts == 0 || config.part >= config.parts {
        return Err(TaskError::permanent("`part` must be below `parts`"));
    }
    tokio::time::sleep(Duration::from_millis(config.delay_ms)).await;
    let numbers = ctx.input::<Prepared>("prep")?.numbers;
    let chunk = numbers.len().div_ceil(config.parts);
    let mine = numbers.chunks(chunk.max(1)).nth(config.part).unwrap_or(&[]);
    let mut sum = 0u64;
    for &x in mine {
        sum = x
            .checked_mul(x)
            .and_then(|square| sum.checked_add(square))
            .ok_or_else(|| TaskError::permanent("the sum overflows"))?;
    }
    Ok(json!({"count": mine.len(), "sum": sum}))
}
