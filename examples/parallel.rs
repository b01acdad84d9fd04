//! Runs `prep → task_a, task_b, task_c → merge` with one slot and with three, and prints
//! both wall times: each branch waits 300 ms, so the run takes about 0.9 s with one slot
//! and about 0.3 s with three.
//!
//! `cargo run --example parallel`

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let delay = Duration::from_millis(300);
    let n = 3_000;
    let sequential = examples::parallel::run(1, n, delay).await?;
    let concurrent = examples::parallel::run(3, n, delay).await?;
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
