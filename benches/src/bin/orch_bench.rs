//! One quick benchmark case per process, so that each case's peak memory is its own.
//! `cargo xtask bench` runs every case and tabulates the lines this prints.
//!
//! `orch_bench engine SHAPE TASKS MAX_CONCURRENT` prints one JSON object:
//! `{"case", "tasks", "ns_per_task", "tasks_per_s", "peak_rss_bytes"}`, where the time is
//! the median of several runs of an already validated workflow.

use std::process::ExitCode;
use std::time::Instant;

use benches::{Shape, noop_engine, runtime};

const RUNS: usize = 5;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["engine", shape, tasks, max_concurrent] => engine_case(shape, tasks, max_concurrent),
        _ => Err("usage: orch_bench engine SHAPE TASKS MAX_CONCURRENT".to_owned()),
    };
    match outcome {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("orch_bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn engine_case(shape: &str, tasks: &str, max_concurrent: &str) -> Result<String, String> {
    let shape = Shape::ALL
        .into_iter()
        .find(|s| s.name() == shape)
        .ok_or_else(|| format!("unknown shape `{shape}`"))?;
    let tasks: usize = tasks.parse().map_err(|e| format!("TASKS: {e}"))?;
    let max_concurrent: usize = max_concurrent
        .parse()
        .map_err(|e| format!("MAX_CONCURRENT: {e}"))?;
    let runtime = runtime();
    let engine = noop_engine(max_concurrent);
    let workflow = shape.build(tasks);
    workflow.validate().map_err(|e| e.to_string())?;
    let mut per_task = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let result = runtime
            .block_on(engine.execute_workflow(&workflow))
            .map_err(|e| e.to_string())?;
        per_task.push(start.elapsed().as_nanos() as f64 / result.tasks.len() as f64);
    }
    per_task.sort_by(f64::total_cmp);
    let ns = per_task[RUNS / 2];
    Ok(format!(
        "{{\"case\": \"engine/{}/c{max_concurrent}\", \"tasks\": {}, \"ns_per_task\": {ns:.1}, \"tasks_per_s\": {:.0}, \"peak_rss_bytes\": {}}}",
        shape.name(),
        workflow.len(),
        1e9 / ns,
        peak_rss_bytes().unwrap_or(0)
    ))
}

/// The process's peak resident set (`VmHWM`), where the system reports it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
