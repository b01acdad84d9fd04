//! How many task records a journal takes per second, in batches of 8 (what a scheduler
//! running 8 tasks at once hands it per pass):
//!
//! - `file_process`: the file journal, each batch written before the next;
//! - `file_power_wait`: each batch synced before the next (a chain of tasks, each
//!   released only once its dependency is on disk);
//! - `file_power_pipelined`: up to 64 batches waiting for their sync while later ones
//!   are written (independent tasks going on while earlier completions sync);
//! - `postgres`: a throwaway PostgreSQL server on loopback, when one is installed: each
//!   batch one insert awaited before the next, then synced (power) or not (process), in
//!   batches of 8 and of 64;
//! - `engine`: durable runs through the engine (`run_durable`), 10^5 no-op tasks of the
//!   random shape, 8 at a time: no journal, a file journal at `Process` and at `Power`
//!   durability (each completion committed before its dependents start);
//! - `map`: durable runs of one map task of 20,000 no-op instances, 8 at a time: no
//!   journal, a file journal at `Process` and at `Power` (each instance recorded as it
//!   completes, nothing waiting on it).
//!
//! `cargo bench -p benches --bench journal`

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use benches::runtime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orch::core::{RunId, Task, TaskId, TaskRecord, TaskStatus, Workflow};
use orch_journal::postgres::TempServer;
use orch_journal::{Durability, FileJournal, Journal, JournalFuture, PgJournal, RunWriter};
use tokio::runtime::Runtime;

/// Tasks per measured run.
const TASKS: usize = 4096;

fn workflow() -> Workflow {
    (0..TASKS).fold(Workflow::new("bench", "Journal bench"), |w, i| {
        w.task(Task::new(format!("t{i}"), "noop"))
    })
}

/// What a no-op task's completion looks like.
fn records() -> Vec<(TaskId, TaskRecord)> {
    let now = SystemTime::now();
    (0..TASKS)
        .map(|i| {
            let record = TaskRecord {
                status: TaskStatus::Completed,
                result: Some(serde_json::Value::Null),
                start_time: Some(now),
                end_time: Some(now),
                attempts: 1,
                ..TaskRecord::default()
            };
            (TaskId::from(format!("t{i}")), record)
        })
        .collect()
}

fn fresh_run() -> RunId {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    RunId::parse(&format!("bench-{}-{n}", std::process::id())).expect("a valid id")
}

#[derive(Clone, Copy)]
enum Mode {
    /// Each batch committed at this durability before the next is appended.
    Wait(Durability),
    /// Up to this many batches' syncs outstanding while later batches are appended.
    Pipelined(usize),
}

/// Appends every record in batches of `batch`; returns the time the appends took
/// (opening the run is not counted).
fn time_run(
    rt: &Runtime,
    journal: &dyn Journal,
    records: &[(TaskId, TaskRecord)],
    batch: usize,
    mode: Mode,
) -> Duration {
    let workflow = workflow();
    rt.block_on(async {
        let opened = journal
            .open(&fresh_run(), &workflow)
            .await
            .expect("open a run");
        let writer: &dyn RunWriter = &*opened.writer;
        let start = Instant::now();
        let mut waiting: VecDeque<JournalFuture> = VecDeque::new();
        for chunk in records.chunks(batch) {
            let pairs: Vec<(&TaskId, &TaskRecord)> = chunk.iter().map(|(i, r)| (i, r)).collect();
            match mode {
                Mode::Wait(durability) => writer.commit(&pairs, durability).await.expect("commit"),
                Mode::Pipelined(depth) => {
                    writer.append(&pairs).await.expect("append");
                    waiting.push_back(writer.sync());
                    if waiting.len() >= depth {
                        waiting.pop_front().expect("a sync").await.expect("sync");
                    }
                }
            }
        }
        for sync in waiting {
            sync.await.expect("sync");
        }
        start.elapsed()
    })
}

fn bench_journal(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    journal: &dyn Journal,
    cases: &[(&str, usize, Mode)],
) {
    let records = records();
    let mut group = c.benchmark_group(format!("journal/{name}"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(TASKS as u64));
    for &(case, batch, mode) in cases {
        group.bench_function(BenchmarkId::new(case, TASKS), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| time_run(rt, journal, &records, batch, mode))
                    .sum()
            });
        });
    }
    group.finish();
}

fn file(c: &mut Criterion) {
    // Under the target directory: a real disk, where a sync costs what it costs.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    let journal = FileJournal::new(dir.path()).expect("a journal");
    bench_journal(
        c,
        &runtime(),
        "file",
        &journal,
        &[
            ("process_batch8", 8, Mode::Wait(Durability::Process)),
            ("power_wait_batch8", 8, Mode::Wait(Durability::Power)),
            ("power_pipelined_batch8", 8, Mode::Pipelined(64)),
        ],
    );
}

fn postgres(c: &mut Criterion) {
    let server = match TempServer::start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("journal/postgres skipped: {e}");
            return;
        }
    };
    let rt = runtime();
    let journal = rt
        .block_on(PgJournal::connect(&server.connection_string()))
        .expect("connect to the throwaway server");
    bench_journal(
        c,
        &rt,
        "postgres",
        &journal,
        &[
            ("process_batch8", 8, Mode::Wait(Durability::Process)),
            ("power_wait_batch8", 8, Mode::Wait(Durability::Power)),
            ("power_wait_batch64", 64, Mode::Wait(Durability::Power)),
        ],
    );
    drop(journal);
    drop(rt);
}

fn engine(c: &mut Criterion) {
    const ENGINE_TASKS: usize = 100_000;
    let workflow = benches::Shape::Random.build(ENGINE_TASKS);
    durable_runs(c, "journal/engine", &workflow, ENGINE_TASKS, |_| {});
}

fn map(c: &mut Criterion) {
    const INSTANCES: usize = 20_000;
    let workflow = Workflow::new("map", "Map")
        .task(Task::new("list", "list"))
        .task(Task::new("m", "noop").map_over("list"));
    durable_runs(c, "journal/map", &workflow, INSTANCES, |engine| {
        engine.register_handler(
            "list",
            orch_engine::inline(|_ctx: orch_engine::TaskContext| async move {
                Ok::<_, orch_engine::TaskError>((0..INSTANCES).collect::<Vec<_>>())
            }),
        );
    });
}

/// Runs of `workflow` (`count` no-op tasks or instances, 8 at a time; `register` adds
/// handlers beside `noop`) without a journal, and durable in a file journal at each
/// durability.
fn durable_runs(
    c: &mut Criterion,
    name: &str,
    workflow: &Workflow,
    count: usize,
    register: impl Fn(&orch_engine::WorkflowEngine),
) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(count as u64));
    let cases = [
        ("none", None),
        ("process", Some(Durability::Process)),
        ("power", Some(Durability::Power)),
    ];
    for (case, durability) in cases {
        let mut builder = orch_engine::WorkflowEngine::builder()
            .max_concurrent(8)
            .max_map_instances(count as u32);
        if let Some(durability) = durability {
            let journal = FileJournal::new(dir.path().join(case)).expect("a journal");
            builder = builder.journal(journal, durability);
        }
        let engine = builder.build().expect("an engine");
        engine.register_handler(
            "noop",
            orch_engine::inline(|_ctx: orch_engine::TaskContext| async move {
                Ok::<_, orch_engine::TaskError>(serde_json::Value::Null)
            }),
        );
        register(&engine);
        group.bench_function(BenchmarkId::new(case, count), |b| {
            b.iter(|| {
                let result = match durability {
                    Some(_) => rt.block_on(engine.run_durable(workflow, fresh_run())),
                    None => rt.block_on(engine.execute_workflow(workflow)),
                };
                result.expect("a run")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, file, postgres, engine, map);
criterion_main!(benches);
