//! One quick benchmark case per process, so that each case's peak memory is its own.
//! `cargo xtask bench` runs every case and tabulates the lines this prints.
//!
//! - `orch_bench engine SHAPE TASKS MAX_CONCURRENT [bus] [work=NS]`: no-op tasks; with
//!   `bus`, the engine publishes its lifecycle events to a bus with one lossless
//!   subscriber on `workflow.>` that drains them; with `work=NS`, each handler computes
//!   (spins) for NS nanoseconds before it returns.
//!   With `pools4`, task `i` joins pool `i % 4` (limit 2 each); with `priorities`, task
//!   `i` has priority `i % 7 - 3` (the settings of `engine_run/pools_priorities`); with
//!   `priority_blocks=B`, priority `(i / B) % 7 - 3` (neighbouring tasks share one).
//!   With `journal=process|power|postgres`, each run is a durable run
//!   (`run_durable`, a fresh run id each time) recorded in a file journal under the
//!   temporary directory at that durability, or in a throwaway PostgreSQL server.
//! - `orch_bench fanout SUBSCRIBERS EVENTS`: one publisher, lossless subscribers that each
//!   read every event; "tasks" are deliveries.
//!
//! Each prints one JSON object: `{"case", "tasks", "ns_per_task", "tasks_per_s",
//! "peak_rss_bytes"}`, where the time is the median of several runs; engine cases add
//! `"cpu_ns_per_task"`, the CPU time of all the runs per task (every thread, user and
//! system), which a machine shared with other work does not inflate.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use benches::{POOLS, Shape, runtime};
use orch::core::EngineEvent;
use orch_engine::{TaskContext, TaskError, inline};
use orch_events::{EventBus, Subject};

const RUNS: usize = 5;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["engine", shape, tasks, max_concurrent, options @ ..] => {
            engine_case(shape, tasks, max_concurrent, options)
        }
        ["fanout", subscribers, events] => fanout_case(subscribers, events),
        _ => Err(
            "usage: orch_bench engine SHAPE TASKS MAX_CONCURRENT [bus] [work=NS] [pools4] [priorities] [priority_blocks=B] [journal=process|power|postgres] | orch_bench fanout SUBSCRIBERS EVENTS"
                .to_owned(),
        ),
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

fn engine_case(
    shape: &str,
    tasks: &str,
    max_concurrent: &str,
    options: &[&str],
) -> Result<String, String> {
    let mut with_bus = false;
    let mut work = Duration::ZERO;
    let mut journal = None;
    let (mut pools, mut priorities) = (false, false);
    let mut priority_blocks = None;
    for option in options {
        match option.split_once('=') {
            None if *option == "bus" => with_bus = true,
            None if *option == "pools4" => pools = true,
            None if *option == "priorities" => priorities = true,
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
            let (with_journal, keep) = journaled::builder(builder, kind, &runtime)?;
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
        workflow = benches::with_pools_and_priorities(&workflow, pools, priorities);
    }
    if let Some(block) = priority_blocks {
        workflow = benches::with_priority_blocks(&workflow, block);
    }
    workflow.validate().map_err(|e| e.to_string())?;
    let mut per_task = Vec::with_capacity(RUNS);
    let cpu_before = cpu_time();
    for run in 0..RUNS {
        let start = Instant::now();
        let result = match &durable {
            Some(_) => runtime.block_on(engine.run_durable(&workflow, journaled::run_id(run)?)),
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

fn fanout_case(subscribers: &str, events: &str) -> Result<String, String> {
    let subscribers: usize = subscribers
        .parse()
        .map_err(|e| format!("SUBSCRIBERS: {e}"))?;
    let events: u64 = events.parse().map_err(|e| format!("EVENTS: {e}"))?;
    let runtime = runtime();
    let mut per_delivery = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let bus: EventBus<u64> = EventBus::new();
        let readers: Vec<_> = (0..subscribers)
            .map(|_| {
                let mut subscription = bus.subscribe("bench.>").map_err(|e| e.to_string());
                runtime.spawn(async move {
                    let mut seen = 0u64;
                    if let Ok(subscription) = &mut subscription {
                        while subscription.recv().await.is_some() {
                            seen += 1;
                        }
                    }
                    seen
                })
            })
            .collect();
        let subject = Subject::new("bench.events.tick").map_err(|e| e.to_string())?;
        let start = Instant::now();
        let delivered = runtime.block_on(async {
            for i in 0..events {
                bus.publish(&subject, i).await.map_err(|e| e.to_string())?;
            }
            bus.close().await;
            let mut delivered = 0;
            for reader in readers {
                delivered += reader.await.map_err(|e| e.to_string())?;
            }
            Ok::<u64, String>(delivered)
        })?;
        if delivered != events * subscribers as u64 {
            return Err(format!(
                "{delivered} deliveries, not {}",
                events * subscribers as u64
            ));
        }
        per_delivery.push(start.elapsed().as_nanos() as f64 / delivered as f64);
    }
    per_delivery.sort_by(f64::total_cmp);
    let ns = per_delivery[RUNS / 2];
    Ok(format!(
        "{{\"case\": \"bus/fanout/{subscribers}_subscribers\", \"tasks\": {}, \"ns_per_task\": {ns:.1}, \"tasks_per_s\": {:.0}, \"peak_rss_bytes\": {}}}",
        events * subscribers as u64,
        1e9 / ns,
        peak_rss_bytes().unwrap_or(0)
    ))
}

/// Durable runs for the `journal=` option.
mod journaled {
    use orch::core::RunId;
    use orch_engine::{Durability, EngineBuilder, FileJournal};
    use orch_journal::PgJournal;
    use orch_journal::postgres::TempServer;
    use tokio::runtime::Runtime;

    /// What must outlive the runs: the journal's directory or server.
    pub(crate) enum Keep {
        Dir(#[allow(dead_code)] tempfile_dir::Dir),
        Server(#[allow(dead_code)] TempServer),
    }

    pub(crate) fn run_id(run: usize) -> Result<RunId, String> {
        RunId::parse(&format!("bench-{}-{run}", std::process::id())).map_err(|e| e.to_string())
    }

    pub(crate) fn builder(
        builder: EngineBuilder,
        kind: &str,
        runtime: &Runtime,
    ) -> Result<(EngineBuilder, Keep), String> {
        let file = |durability| {
            let dir = tempfile_dir::Dir::new()?;
            let journal = FileJournal::new(&dir.0).map_err(|e| e.to_string())?;
            Ok::<_, String>((builder.clone().journal(journal, durability), Keep::Dir(dir)))
        };
        match kind {
            "process" => file(Durability::Process),
            "power" => file(Durability::Power),
            "postgres" => {
                let server = TempServer::start().map_err(|e| e.to_string())?;
                let journal = runtime
                    .block_on(PgJournal::connect(&server.connection_string()))
                    .map_err(|e| e.to_string())?;
                Ok((
                    builder.journal(journal, Durability::Process),
                    Keep::Server(server),
                ))
            }
            other => Err(format!("unknown journal `{other}`")),
        }
    }

    /// A directory under the system's temporary directory, removed when dropped.
    mod tempfile_dir {
        use std::path::PathBuf;

        pub(crate) struct Dir(pub(crate) PathBuf);

        impl Dir {
            pub(crate) fn new() -> Result<Self, String> {
                let path =
                    std::env::temp_dir().join(format!("orch-bench-journal-{}", std::process::id()));
                std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Self(path))
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}

/// The CPU time the process used so far (user and system, all threads), from
/// `/proc/self/stat` in clock ticks of 10 ms: meaningful over runs of a second or more.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at `) `.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The process's peak resident set (`VmHWM`), where the system reports it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
