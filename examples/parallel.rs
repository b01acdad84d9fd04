//! The original module's parallel processing example: `prep → task_a, task_b, task_c →
//! merge`, run with one slot and with three; prints both wall times.
//!
//! `prep` makes the numbers 1..=n; each branch waits `delay` (a stand-in for I/O such as
//! a remote call) and then sums the squares of its third of them; `merge` adds the three
//! partial sums. With one slot the branches take turns (about 0.9 s); with three they
//! overlap (about 0.3 s).
//!
//! `cargo run --example parallel`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orch::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

#[path = "support/mod.rs"]
mod support;

use support::{BoxError, task_output};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let delay = Duration::from_millis(300);
    let n = 3_000;
    let sequential = run(1, n, delay).await?;
    let concurrent = run(3, n, delay).await?;
    for outcome in [&sequential, &concurrent] {
        println!(
            "max_concurrent {}: wall time {:>7.1?}, peak {} branches at once, sum of squares 1..={n} = {}",
            outcome.result.max_concurrent,
            outcome.wall_time,
            outcome.peak_concurrency,
            outcome.sum_of_squares
        );
    }
    println!(
        "speed-up: {:.2}x",
        sequential.wall_time.as_secs_f64() / concurrent.wall_time.as_secs_f64().max(1e-9)
    );
    let metrics = concurrent.result.metrics();
    println!(
        "max_concurrent 3: parallel efficiency {:.2}, critical path {:?}",
        metrics.parallel_efficiency.unwrap_or(0.0),
        metrics.critical_path
    );
    Ok(())
}

/// The branches between `prep` and `merge`.
pub(crate) const BRANCHES: [&str; 3] = ["task_a", "task_b", "task_c"];

/// What one run computed.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The run's records and metrics.
    pub(crate) result: WorkflowResult,
    /// Wall time of the run, on tokio's clock (so a paused test clock measures it too).
    pub(crate) wall_time: Duration,
    /// The most branches that were waiting at the same time.
    pub(crate) peak_concurrency: usize,
    /// The sum of squares of 1..=n that `merge` computed.
    pub(crate) sum_of_squares: u64,
}

/// The five-task workflow over 1..=`n`, each branch waiting `delay`.
pub(crate) fn workflow(n: u64, delay: Duration) -> Workflow {
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
pub(crate) async fn run(
    max_concurrent: usize,
    n: u64,
    delay: Duration,
) -> Result<Outcome, BoxError> {
    let gauge = Arc::new(Gauge::default());
    let engine = WorkflowEngine::builder()
        .max_concurrent(max_concurrent)
        .state(Arc::clone(&gauge))
        .build()?;
    engine.register_handler("prep", |ctx: TaskContext| async move {
        let n = ctx.config()["n"]
            .as_u64()
            .ok_or_else(|| TaskError::permanent("`n` must be a whole number"))?;
        Ok::<_, TaskError>(json!({"numbers": (1..=n).collect::<Vec<u64>>()}))
    });
    engine.register_handler("square_sum", |ctx: TaskContext| async move {
        let gauge = ctx.state::<Arc<Gauge>>()?;
        gauge.enter();
        let outcome = square_sum(&ctx).await;
        gauge.leave();
        outcome
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
