//! What orch-nats costs over JetStream itself, on a nats-server this bench starts:
//! 10,000 no-op tasks through 4 workers, and a 1,000-task chain (per-hop latency), each
//! next to a raw async-nats work queue doing the same round trips (publish, pull, ack,
//! reply) in the same run. Workers run in this process, each on its own connection.
//!
//! A third harness, `raw_stored_reply`, is the raw one with the reply going through a
//! JetStream results stream (published under a message id, awaited before the ack) as
//! orch-nats' results do: what storing each result costs on its own. A fourth,
//! `raw_protocol`, asks the server for everything orch-nats' protocol asks of it and no
//! more: task messages under message ids, pulled through a consumer filtered to their
//! type, and results read from the results stream through a consumer (not heard as
//! published): the least any client of that protocol could cost.
//!
//! `cargo bench -p orch-nats --bench round_trip` (needs `nats-server` on the PATH). The
//! chains' per-hop p50/p99 are printed after the criterion groups.
//!
//! `... --bench round_trip -- --rows` (what `cargo xtask bench` runs) alternates the four
//! harnesses for a few rounds instead and prints one JSON row per figure: each harness's
//! median throughput over 10,000 tasks (with the CPU per task of this process and
//! nats-server together, and of this process alone), and each harness's per-hop p50 and
//! p99 over the rounds' chains; and the time per task of durable runs of 5,000 no-op
//! tasks on `NatsJournal` beside the same runs without a journal.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "round_trip/durable.rs"]
mod durable;
#[path = "round_trip/raw.rs"]
mod raw;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::NatsServer;
use criterion::{Criterion, Throughput, criterion_group};
use orch_core::{Task, Workflow, WorkflowResult, WorkflowStatus};
use orch_engine::{TaskContext, TaskError, WorkflowEngine, inline};
use orch_nats::{RemoteHandler, Worker};
use raw::{Raw, Reply};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const TASKS: usize = 10_000;
const CHAIN: usize = 1_000;
const WORKERS: usize = 4;
/// Tasks each orch-nats worker may run at once, and the pull batch of every worker. (The
/// raw harnesses are not held to it: see `raw.rs` and BENCHMARKS.md.)
const PER_WORKER: usize = 64;

/// An engine whose `noop` tasks run on 4 orch-nats workers.
async fn orch(server: &NatsServer, stop: &CancellationToken) -> WorkflowEngine {
    let remote = RemoteHandler::connect(&server.config())
        .await
        .expect("connects");
    for n in 0..WORKERS {
        let worker = Worker::builder()
            .name(format!("bench-{n}"))
            .concurrency(PER_WORKER)
            .handler(
                "noop",
                inline(|_ctx: TaskContext| async move { Ok::<_, TaskError>(()) }),
            )
            .connect(&server.config())
            .await
            .expect("connects");
        tokio::spawn(worker.run(stop.clone()));
    }
    let engine = WorkflowEngine::with_max_concurrent(WORKERS * PER_WORKER).expect("valid");
    engine.register_handler("noop", remote);
    engine
}

fn independent(n: usize) -> Workflow {
    Workflow::from_tasks(
        "burst",
        "Burst",
        (0..n).map(|i| Task::new(format!("t{i}"), "noop")),
    )
}

/// The time between consecutive tasks' ends in a chain's result.
fn hops(result: &WorkflowResult) -> Vec<Duration> {
    let ends: Vec<SystemTime> = result
        .tasks
        .records()
        .iter()
        .filter_map(|t| t.end_time)
        .collect();
    ends.windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap_or_default())
        .collect()
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort_unstable();
    let index = ((times.len() as f64 - 1.0) * p).round() as usize;
    times.get(index).copied().unwrap_or_default()
}

struct Setup {
    runtime: Runtime,
    /// The raw harness, with stored replies, and with what orch-nats' protocol asks.
    raw: [(&'static str, Arc<Raw>); 3],
    engine: WorkflowEngine,
    server: NatsServer,
    _stop: CancellationToken,
}

fn setup() -> Option<Setup> {
    let server = NatsServer::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let stop = CancellationToken::new();
    let (raw, stored, protocol, engine) = runtime.block_on(async {
        (
            Arc::new(Raw::start(&server, &stop, Reply::Core).await),
            Arc::new(Raw::start(&server, &stop, Reply::Stored).await),
            Arc::new(Raw::start(&server, &stop, Reply::Protocol).await),
            orch(&server, &stop).await,
        )
    });
    Some(Setup {
        runtime,
        raw: [
            ("raw_jetstream", raw),
            ("raw_stored_reply", stored),
            ("raw_protocol", protocol),
        ],
        engine,
        server,
        _stop: stop,
    })
}

impl Setup {
    fn burst(&self, raw: &Raw) {
        self.runtime.block_on(raw.burst(TASKS));
    }

    fn run(&self, workflow: &Workflow) -> WorkflowResult {
        let result = self
            .runtime
            .block_on(self.engine.execute_workflow(workflow))
            .expect("valid");
        assert_eq!(result.status, WorkflowStatus::Completed);
        result
    }
}

fn round_trips(c: &mut Criterion) {
    let Some(setup) = setup() else { return };
    let burst = independent(TASKS);
    let line = common::chain(CHAIN, "noop");

    let groups = [
        ("nats/noop_10k_4_workers", TASKS, &burst, false),
        ("nats/chain_1000", CHAIN, &line, true),
    ];
    for (name, size, workflow, one_by_one) in groups {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(10));
        group.throughput(Throughput::Elements(size as u64));
        for (harness, raw) in &setup.raw {
            group.bench_function(*harness, |b| {
                b.iter(|| {
                    if one_by_one {
                        setup.runtime.block_on(raw.chain(size));
                    } else {
                        setup.burst(raw);
                    }
                })
            });
        }
        group.bench_function("orch_nats", |b| b.iter(|| setup.run(workflow)));
        group.finish();
    }
    for (harness, raw) in &setup.raw {
        let mut times = setup.runtime.block_on(raw.chain(CHAIN));
        print_hops(harness, &mut times);
    }
    print_hops("orch_nats", &mut hops(&setup.run(&line)));
}

fn print_hops(harness: &str, times: &mut [Duration]) {
    let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
    println!("nats/chain_1000 per hop, {harness}: p50 {p50:?}, p99 {p99:?}");
}

/// Rounds of the `--rows` mode.
const ROUNDS: usize = 5;

/// The `--rows` mode: the harnesses alternated, one JSON row per figure.
fn rows() {
    let Some(setup) = setup() else { return };
    let burst = independent(TASKS);
    let line = common::chain(CHAIN, "noop");
    let names = [
        "raw_jetstream",
        "raw_stored_reply",
        "raw_protocol",
        "orch_nats",
    ];
    let server_pid = setup.server.pid();
    let mut walls: [Vec<Duration>; 4] = Default::default();
    let mut cpu = [Duration::ZERO; 4];
    let mut own_cpu = [Duration::ZERO; 4];
    let mut hop_times: [Vec<Duration>; 4] = Default::default();
    // One warm-up round, not counted.
    for round in 0..=ROUNDS {
        for (n, wall) in walls.iter_mut().enumerate() {
            let (cpu_before, start) = (cpu_time(server_pid), Instant::now());
            let own_before = cpu_time(0);
            match setup.raw.get(n) {
                Some((_, raw)) => setup.burst(raw),
                None => {
                    setup.run(&burst);
                }
            }
            if round > 0 {
                wall.push(start.elapsed());
                cpu[n] += cpu_time(server_pid).saturating_sub(cpu_before);
                own_cpu[n] += cpu_time(0).saturating_sub(own_before);
            }
        }
        for (n, times) in hop_times.iter_mut().enumerate() {
            let hops_now = match setup.raw.get(n) {
                Some((_, raw)) => setup.runtime.block_on(raw.chain(CHAIN)),
                None => hops(&setup.run(&line)),
            };
            if round > 0 {
                times.extend(hops_now);
            }
        }
    }
    let peak = peak_rss_bytes();
    for (n, name) in names.iter().enumerate() {
        let wall = percentile(&mut walls[n], 0.5).as_secs_f64() * 1e9;
        let per_task = |cpu: Duration| cpu.as_secs_f64() * 1e9 / (TASKS * ROUNDS) as f64;
        print_row(
            &format!("nats/noop_10k_4_workers/{name}"),
            TASKS,
            wall / TASKS as f64,
            peak,
            Some((per_task(cpu[n]), per_task(own_cpu[n]))),
        );
    }
    durable::journal_rows(&setup);
    for (n, name) in names.iter().enumerate() {
        for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
            let hop = percentile(&mut hop_times[n], p).as_secs_f64() * 1e9;
            print_row(
                &format!("nats/chain_1000/{name}/hop_{label}"),
                CHAIN,
                hop,
                peak,
                None,
            );
        }
    }
}

/// `cpu`: the CPU per task of this process and nats-server, and of this process alone.
fn print_row(case: &str, tasks: usize, ns_per_task: f64, peak: u64, cpu: Option<(f64, f64)>) {
    let cpu = cpu.map_or(String::new(), |(all, own)| {
        format!(", \"cpu_ns_per_task\": {all:.1}, \"process_cpu_ns_per_task\": {own:.1}")
    });
    println!(
        "{{\"case\": \"{case}\", \"tasks\": {tasks}, \"ns_per_task\": {ns_per_task:.1}, \"tasks_per_s\": {:.0}, \"peak_rss_bytes\": {peak}{cpu}}}",
        1e9 / ns_per_task
    );
}

/// CPU time so far of this process and of process `other` (none if 0; from /proc, zero
/// elsewhere).
fn cpu_time(other: u32) -> Duration {
    let ticks = |pid: &str| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command name: utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        rest.split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|t| t.parse::<u64>().ok())
            .sum()
    };
    // Clock ticks are 1/100 s on Linux.
    let other = if other == 0 {
        0
    } else {
        ticks(&other.to_string())
    };
    Duration::from_millis((ticks("self") + other) * 10)
}

/// This process's peak resident memory (from /proc; zero elsewhere).
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

criterion_group!(benches, round_trips);

fn main() {
    if std::env::args().any(|a| a == "--rows") {
        rows();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
