//! One engine benchmark case, as the `orch_bench` binaries run it (each case in its own
//! process, so that its peak memory is its own).

use std::any::Any;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use orch::core::{EngineEvent, RunId};
use orch_engine::{EngineBuilder, TaskContext, TaskError, inline};
use orch_events::EventBus;
use tokio::runtime::Runtime;

use crate::{POOLS, Shape, runtime};

/// How many times a case runs; it reports the median.
pub const RUNS: usize = 5;

/// Gives an engine the journal of a `journal=KIND` option, with what must outlive the
/// runs; an error for a kind the binary does not offer.
pub type Journals<'a> =
    dyn Fn(&str, EngineBuilder, &Runtime) -> Result<(EngineBuilder, Box<dyn Any>), String> + 'a;

/// Prints a case's line (or, as `binary`, its error) and gives the process's exit code.
pub fn report(binary: &str, outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{binary}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The run id of a durable case's `run`th run (fresh for each process).
fn durable_run_id(run: usize) -> Result<RunId, String> {
    RunId::parse(&format!("bench-{}-{run}", std::process::id())).map_err(|e| e.to_string())
}

/// Runs `orch_bench engine SHAPE TASKS MAX_CONCURRENT [OPTIONS]` (see the binary's docs)
/// and returns the line it prints. `journals` gives the engine the journal a
/// `journal=KIND` option names, with what must outlive the runs (a directory, a server).
pub fn engine_case(
    shape: &str,
    tasks: &str,
    max_concurrent: &str,
    options: &[&str],
    journals: &Journals<'_>,
) -> Result<String, String> {
    let mut with_bus = false;
    let mut work = Duration::ZERO;
    let mut journal = None;
    let (mut pools, mut priorities, mut timeouts) = (false, false, false);
    let mut priority_blocks = None;
    for option in options {
        match option.split_once('=') {
            None if *option == "bus" => with_bus = true,
            None if *option == "pools4" => pools = true,
            None if *option == "priorities" => priorities = true,
            None if *option == "timeouts" => timeouts = true,
            Some(("journal", kind)) => journal = Some(kind.to_owned()),
            Some(("priority_blocks", block)) => {
                let block: usize = block.parse().map_err(|e| format!("priority_blocks: {e}"))?;
                priority_blocks = Some(block);
            }
            Some(("work", ns)) => {
                work = Duration::from_nanos(ns.parse().map_err(|e| format!("work: {e}"))?)
            }
            _ => return Err(format!("unknown option `{option}`")),
        }
    }
    let shape = Shape::ALL
        .into_iter()
        .find(|s| s.name() == shape)
        .ok_or_else(|| format!("unknown shape `{shape}`"))?;
    let tasks: usize = tasks.parse().map_err(|e| format!("TASKS: {e}"))?;
    let max_concurrent: usize = max_concurrent
        .parse()
        .map_err(|e| format!("MAX_CONCURRENT: {e}"))?;
    let runtime = runtime();
    let mut builder = orch_engine::WorkflowEngine::builder().max_concurrent(max_concurrent);
    if pools {
        for pool in POOLS {
            builder = builder.pool(pool, 2);
        }
    }
    let mut drain = None;
    if with_bus {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let mut everything = bus.subscribe("workflow.>").map_err(|e| e.to_string())?;
        drain = Some(runtime.spawn(async move {
            let mut seen = 0u64;
            while everything.recv().await.is_some() {
                seen += 1;
            }
            seen
        }));
        builder = builder.event_bus(bus);
    }
    let durable = match journal.as_deref() {
        Some(kind) => {
            let (with_journal, keep) = journals(kind, builder, &runtime)?;
            builder = with_journal;
            Some(keep)
        }
        None => None,
    };
    let engine = builder.build().map_err(|e| e.to_string())?;
    // `inline`: these cases measure the engine's own cost per task, not a tokio spawn's.
    if work.is_zero() {
        engine.register_handler(
            "noop",
            inline(|_ctx: TaskContext| async move { Ok::<_, TaskError>(serde_json::Value::Null) }),
        );
    } else {
        engine.register_handler(
            "noop",
            inline(move |_ctx: TaskContext| async move {
                let start = Instant::now();
                while start.elapsed() < work {
                    std::hint::spin_loop();
                }
                Ok::<_, TaskError>(serde_json::Value::Null)
            }),
        );
    }
    let mut workflow = shape.build(tasks);
    if pools || priorities {
        workflow = crate::with_pools_and_priorities(&workflow, pools, priorities);
    }
    if let Some(block) = priority_blocks {
        workflow = crate::with_priority_blocks(&workflow, block);
    }
    if timeouts {
        // A limit no task reaches: what a timeout costs a task that ends at once.
        let tasks = (workflow.tasks()).map(|task| task.clone().timeout(Duration::from_secs(60)));
        workflow = orch::core::Workflow::from_tasks(workflow.workflow_id(), workflow.name(), tasks);
    }
    workflow.validate().map_err(|e| e.to_string())?;
    let mut per_task = Vec::with_capacity(RUNS);
    let cpu_before = cpu_time();
    for run in 0..RUNS {
        let start = Instant::now();
        let result = match &durable {
            Some(_) => runtime.block_on(engine.run_durable(&workflow, durable_run_id(run)?)),
            None => runtime.block_on(engine.execute_workflow(&workflow)),
        }
        .map_err(|e| e.to_string())?;
        per_task.push(start.elapsed().as_nanos() as f64 / result.tasks.len() as f64);
    }
    let cpu_ns = match (cpu_before, cpu_time()) {
        (Some(before), Some(after)) => {
            (after - before).as_nanos() as f64 / (RUNS * workflow.len()) as f64
        }
        _ => 0.0,
    };
    per_task.sort_by(f64::total_cmp);
    let ns = per_task[RUNS / 2];
    if let (Some(bus), Some(drain)) = (engine.event_bus(), drain) {
        runtime.block_on(bus.close());
        let seen = runtime.block_on(drain).map_err(|e| e.to_string())?;
        let expected = (RUNS * (2 * workflow.len() + 2)) as u64;
        if seen != expected {
            return Err(format!("the subscriber saw {seen} events, not {expected}"));
        }
    }
    let mut suffix = String::new();
    if !work.is_zero() {
        suffix.push_str(&format!("+work{}ns", work.as_nanos()));
    }
    if with_bus {
        suffix.push_str("+bus");
    }
    if pools {
        suffix.push_str("+pools4");
    }
    if priorities {
        suffix.push_str("+priorities");
    }
    if timeouts {
        suffix.push_str("+timeouts");
    }
    if let Some(block) = priority_blocks {
        suffix.push_str(&format!("+priority_blocks{block}"));
    }
    if let Some(kind) = &journal {
        suffix.push_str(&format!("+journal-{kind}"));
    }
    drop(durable);
    Ok(format!(
        "{{\"case\": \"engine/{}/c{max_concurrent}{suffix}\", \"tasks\": {}, \"ns_per_task\": {ns:.1}, \"tasks_per_s\": {:.0}, \"peak_rss_bytes\": {}, \"cpu_ns_per_task\": {cpu_ns:.1}}}",
        shape.name(),
        workflow.len(),
        1e9 / ns,
        peak_rss_bytes().unwrap_or(0)
    ))
}

/// The CPU time the process used so far (user and system, all threads), from
/// `/proc/self/stat` in clock ticks of 10 ms: meaningful over runs of a second or more.
pub(crate) fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at `) `.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The process's peak resident set (`VmHWM`), where the system reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
