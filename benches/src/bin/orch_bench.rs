//! One quick benchmark case per process, so that each case's peak memory is its own.
//! `cargo xtask bench` runs every case and tabulates the lines this prints.
//!
//! - `orch_bench engine SHAPE TASKS MAX_CONCURRENT [bus] [work=NS]`: no-op tasks; with
//!   `bus`, the engine publishes its lifecycle events to a bus with one lossless
//!   subscriber on `workflow.>` that drains them; with `work=NS`, each handler computes
//!   (spins) for NS nanoseconds before it returns.
//!   With `pools4`, task `i` joins pool `i % 4` (limit 2 each); with `priorities`, task
//!   `i` has priority `i % 7 - 3` (the settings of `engine_run/pools_priorities`); with
//!   `priority_blocks=B`, priority `(i / B) % 7 - 3` (neighbouring tasks share one);
//!   with `timeouts`, every task has a timeout of 60 s (which none reaches).
//!   With `journal=process|power`, each run is a durable run (`run_durable`, a fresh run
//!   id each time) recorded in a file journal under the temporary directory at that
//!   durability (`orch_bench_postgres` runs the same cases in a throwaway PostgreSQL
//!   server).
//! - `orch_bench fanout SUBSCRIBERS EVENTS`: one publisher, lossless subscribers that each
//!   read every event; "tasks" are deliveries.
//!
//! Each prints one JSON object: `{"case", "tasks", "ns_per_task", "tasks_per_s",
//! "peak_rss_bytes"}`, where the time is the median of several runs; engine cases add
//! `"cpu_ns_per_task"`, the CPU time of all the runs per task (every thread, user and
//! system), which a machine shared with other work does not inflate.

use std::any::Any;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use benches::engine_case::{RUNS, engine_case, peak_rss_bytes, report};
use benches::runtime;
use orch_engine::{Durability, EngineBuilder, FileJournal};
use orch_events::{EventBus, Subject};
use tokio::runtime::Runtime;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["engine", shape, tasks, max_concurrent, options @ ..] => {
            engine_case(shape, tasks, max_concurrent, options, &file_journals)
        }
        ["fanout", subscribers, events] => fanout_case(subscribers, events),
        _ => Err(
            "usage: orch_bench engine SHAPE TASKS MAX_CONCURRENT [bus] [work=NS] [pools4] [priorities] [timeouts] [priority_blocks=B] [journal=process|power] | orch_bench fanout SUBSCRIBERS EVENTS"
                .to_owned(),
        ),
    };
    report("orch_bench", outcome)
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

/// The journals of the `journal=` option: a file journal under the temporary directory.
/// (`journal=postgres` is the `orch_bench_postgres` binary's, so that this one, which
/// runs the engine's rows, carries no PostgreSQL client.)
fn file_journals(
    kind: &str,
    builder: EngineBuilder,
    _runtime: &Runtime,
) -> Result<(EngineBuilder, Box<dyn Any>), String> {
    let durability = match kind {
        "process" => Durability::Process,
        "power" => Durability::Power,
        "postgres" => return Err("`journal=postgres` is a case of `orch_bench_postgres`".into()),
        other => return Err(format!("unknown journal `{other}`")),
    };
    let dir = TempDir::new()?;
    let journal = FileJournal::new(&dir.0).map_err(|e| e.to_string())?;
    Ok((builder.journal(journal, durability), Box::new(dir)))
}

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("orch-bench-journal-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
