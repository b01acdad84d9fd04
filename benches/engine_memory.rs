//! Peak heap bytes per task for building a workflow and running it with no-op handlers:
//! everything a run holds at its peak (definition, plan, run state, result), divided by
//! the number of tasks. Printed, not timed.
//!
//! `cargo bench -p benches --bench engine_memory` (`ORCH_BENCH_MAX=100000` to skip 10^6)

use std::process::ExitCode;

use benches::{Shape, noop_engine, runtime};
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

fn main() -> ExitCode {
    let max: usize = std::env::var("ORCH_BENCH_MAX")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = runtime();
    let engine = noop_engine(8);
    println!("{:<12} {:>9} {:>15}", "shape", "tasks", "peak bytes/task");
    for size in [10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= max)
    {
        for shape in Shape::ALL {
            let before = ALLOCATOR.current_usage();
            ALLOCATOR.reset_peak_usage();
            let workflow = shape.build(size);
            let Ok(result) = runtime.block_on(engine.execute_workflow(&workflow)) else {
                eprintln!("{} is not a valid workflow", shape.name());
                return ExitCode::FAILURE;
            };
            let peak = ALLOCATOR.peak_usage().saturating_sub(before);
            println!(
                "{:<12} {:>9} {:>15}",
                shape.name(),
                result.tasks.len(),
                peak / result.tasks.len().max(1)
            );
        }
    }
    ExitCode::SUCCESS
}
