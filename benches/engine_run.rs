//! The engine's scheduling cost: no-op handlers over the standard shapes, next to the
//! floor (Kahn's algorithm polling the same no-op futures inline), plus the efficiency of
//! sleeping handlers on a wide fan-out, what a result's metrics cost when they are asked
//! for, a task reading 20,000 inputs one by one, and storing results in a full
//! `MemoryCache` of 10^3 to 10^5 results (the cost per result should not grow with the
//! capacity: it forgets an eighth at a time). Memory: `engine_memory`.
//!
//! `cargo bench -p benches --bench engine_run`
//! (`-- engine_run/noop_c8` for one group; set `ORCH_BENCH_MAX=100000` to skip 10^6.)

use std::time::Duration;

use benches::{
    POOLS, Shape, inline_floor, noop_engine, runtime, spawning_noop_engine,
    with_pools_and_priorities,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orch::prelude::*;

fn sizes() -> Vec<usize> {
    let max: usize = std::env::var("ORCH_BENCH_MAX")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(1_000_000);
    [10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect()
}

fn noop(c: &mut Criterion) {
    let runtime = runtime();
    for (group_name, max_concurrent) in [("noop_c8", 8), ("noop_c1", 1)] {
        let mut group = short_group(c, format!("engine_run/{group_name}"));
        let engine = noop_engine(max_concurrent);
        for size in sizes() {
            for shape in Shape::ALL {
                let workflow = shape.build(size);
                let _ = workflow.validate().expect("benchmark shapes are DAGs");
                group.throughput(Throughput::Elements(workflow.len() as u64));
                group.bench_with_input(BenchmarkId::new(shape.name(), size), &workflow, |b, w| {
                    b.iter(|| {
                        runtime
                            .block_on(engine.execute_workflow(w))
                            .map(|r| r.tasks.len())
                    })
                });
            }
        }
        group.finish();
    }
}

fn floor(c: &mut Criterion) {
    let mut group = short_group(c, "engine_run/inline_floor");
    for size in sizes() {
        for shape in Shape::ALL {
            let workflow = shape.build(size);
            let plan = workflow
                .validate()
                .expect("benchmark shapes are DAGs")
                .plan();
            group.throughput(Throughput::Elements(workflow.len() as u64));
            group.bench_with_input(BenchmarkId::new(shape.name(), size), plan, |b, plan| {
                b.iter(|| inline_floor(plan))
            });
        }
    }
    group.finish();
}

/// Computing a run's metrics (which a result does when asked for them).
fn metrics_on_request(c: &mut Criterion) {
    let runtime = runtime();
    let engine = noop_engine(8);
    let mut group = short_group(c, "engine_run/metrics_on_request");
    for size in sizes() {
        for shape in [Shape::Chain, Shape::Random] {
            let workflow = shape.build(size);
            let result = runtime
                .block_on(engine.execute_workflow(&workflow))
                .expect("benchmark shapes are DAGs");
            group.throughput(Throughput::Elements(workflow.len() as u64));
            group.bench_with_input(BenchmarkId::new(shape.name(), size), &result, |b, r| {
                b.iter(|| r.metrics())
            });
        }
    }
    group.finish();
}

/// 1,000 handlers sleeping 10 ms each, 100 at a time: ideally 100 ms.
fn sleeping_fan_out(c: &mut Criterion) {
    let runtime = runtime();
    let engine = WorkflowEngine::with_max_concurrent(100).expect("non-zero");
    // `inline`, as a handler that only awaits is best registered.
    let sleep = |_ctx: TaskContext| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok::<_, TaskError>(())
    };
    engine.register_handler("sleep", inline(sleep));
    let workflow = Workflow::from_tasks(
        "fan_out",
        "Fan-out",
        (0..1000).map(|i| Task::new(format!("t{i}"), "sleep")),
    );
    let mut group = c.benchmark_group("engine_run/sleep_10ms_x1000_c100");
    group.sample_size(20);
    group.bench_function("engine", |b| {
        b.iter(|| {
            runtime
                .block_on(engine.execute_workflow(&workflow))
                .map(|r| r.tasks.len())
        })
    });
    // The same sleeps through a hand-rolled JoinSet and semaphore: what tokio's
    // millisecond timer allows, with no scheduler of ours in the way.
    group.bench_function("tokio_joinset", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(100));
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..1000 {
                    let permit = std::sync::Arc::clone(&slots).acquire_owned().await;
                    set.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        drop(permit);
                    });
                }
                set.join_all().await.len()
            })
        })
    });
    group.finish();
}

/// What running each attempt as a tokio task of its own (the default on a multi-threaded
/// runtime) costs per task against running it `inline` on the run's task: no-op handlers,
/// 10^4 tasks of the random shape, 8 at a time.
fn handler_placement(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = short_group(c, "engine_run/handler_placement");
    let workflow = Shape::Random.build(10_000);
    group.throughput(Throughput::Elements(workflow.len() as u64));
    for (name, engine) in [
        ("inline", noop_engine(8)),
        ("spawned", spawning_noop_engine(8)),
    ] {
        group.bench_with_input(BenchmarkId::new(name, workflow.len()), &workflow, |b, w| {
            b.iter(|| {
                runtime
                    .block_on(engine.execute_workflow(w))
                    .map(|r| r.tasks.len())
            })
        });
    }
    group.finish();
}

/// What four pools and priorities cost against the default on the same shape: 10^5
/// tasks of the random shape, 8 at a time; with the options on, task `i` joins pool
/// `i % 4` (limit 2 each) and has priority `i % 7 - 3`; each option alone has a row too.
fn pools_and_priorities(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = short_group(c, "engine_run/pools_priorities");
    let size = 100_000.min(sizes().into_iter().max().unwrap_or(10_000));
    let plain = Shape::Random.build(size);
    let mut builder = WorkflowEngine::builder().max_concurrent(8);
    for pool in POOLS {
        builder = builder.pool(pool, 2);
    }
    let pooled_engine = builder.build().expect("valid limits");
    pooled_engine.register_handler(
        "noop",
        inline(|_ctx: TaskContext| async move { Ok::<_, TaskError>(serde_json::Value::Null) }),
    );
    let with = |pools, priorities| with_pools_and_priorities(&plain, pools, priorities);
    let pooled = with(true, true);
    let pools_only = with(true, false);
    let priorities_only = with(false, true);
    group.throughput(Throughput::Elements(size as u64));
    for (name, engine, workflow) in [
        ("default", noop_engine(8), &plain),
        ("pools4_priorities", pooled_engine.clone(), &pooled),
        ("pools4", pooled_engine.clone(), &pools_only),
        ("priorities", noop_engine(8), &priorities_only),
    ] {
        group.bench_with_input(BenchmarkId::new(name, size), workflow, |b, w| {
            b.iter(|| {
                runtime
                    .block_on(engine.execute_workflow(w))
                    .map(|r| r.tasks.len())
            })
        });
    }
    group.finish();
}

/// A task that reads, one by one with `TaskContext::input`, the outputs of 20,000
/// dependencies: what finding out that each is a dependency costs.
fn wide_fan_in_inputs(c: &mut Criterion) {
    const SOURCES: usize = 20_000;
    let runtime = runtime();
    let engine = WorkflowEngine::new();
    // Inline, so that the reads are most of the run.
    engine.register_handler(
        "source",
        inline(|_ctx: TaskContext| async move { Ok::<_, TaskError>(1) }),
    );
    engine.register_handler(
        "merge",
        inline(|ctx: TaskContext| async move {
            let mut sum = 0i64;
            for id in &ctx.task_definition().dependencies {
                sum += ctx.input::<i64>(id)?;
            }
            Ok::<_, TaskError>(sum)
        }),
    );
    let ids: Vec<String> = (0..SOURCES).map(|i| format!("s{i}")).collect();
    let workflow = Workflow::from_tasks(
        "fan_in",
        "Fan-in",
        (ids.iter().map(|id| Task::new(id.as_str(), "source")))
            .chain([Task::new("merge", "merge").depends_on(ids.iter().map(String::as_str))]),
    );
    let mut group = short_group(c, "engine_run/wide_fan_in_inputs");
    group.throughput(Throughput::Elements(SOURCES as u64));
    group.bench_function(BenchmarkId::new("input_each", SOURCES), |b| {
        b.iter(|| {
            let result = runtime.block_on(engine.execute_workflow(&workflow));
            result.map(|r| r.tasks["merge"].result.clone())
        })
    });
    group.finish();
}

/// A task waiting for all of 5,000 dependencies, each of which skipped: what making its
/// cache key from the outputs it cannot read costs (`cache_key`), and what reading each
/// of them with `TaskContext::input`, an error each, costs (`input_each`).
fn wide_fan_in_after_skips(c: &mut Criterion) {
    const SOURCES: usize = 5_000;
    let runtime = runtime();
    let engine = WorkflowEngine::new();
    engine.register_handler(
        "source",
        inline(|_ctx: TaskContext| async move { Err::<(), _>(TaskError::skip("nothing new")) }),
    );
    engine.register_handler(
        "report",
        inline(|_ctx: TaskContext| async move { Ok::<_, TaskError>(0) }),
    );
    engine.register_handler(
        "count",
        inline(|ctx: TaskContext| async move {
            let dependencies = &ctx.task_definition().dependencies;
            let missing = dependencies
                .iter()
                .filter(|id| ctx.input::<i64>(id).is_err());
            Ok::<_, TaskError>(missing.count())
        }),
    );
    let ids: Vec<String> = (0..SOURCES).map(|i| format!("s{i}")).collect();
    let workflow = |last: Task| {
        let last = last
            .depends_on(ids.iter().map(String::as_str))
            .trigger_rule(TriggerRule::AllDone);
        Workflow::from_tasks(
            "fan_in",
            "Fan-in",
            (ids.iter().map(|id| Task::new(id.as_str(), "source"))).chain([last]),
        )
    };
    let mut group = short_group(c, "engine_run/wide_fan_in_after_skips");
    group.throughput(Throughput::Elements(SOURCES as u64));
    for (name, last) in [
        ("cache_key", Task::new("last", "report").cache(true)),
        ("input_each", Task::new("last", "count")),
    ] {
        let workflow = workflow(last);
        group.bench_function(BenchmarkId::new(name, SOURCES), |b| {
            b.iter(|| {
                let result = runtime.block_on(engine.execute_workflow(&workflow));
                result.map(|r| r.tasks["last"].result.clone())
            })
        });
    }
    group.finish();
}

/// A branch task choosing half of its 20,000 dependents (`live`), and the run resumed
/// from its result, which keeps the choice (`resume`).
fn wide_branch(c: &mut Criterion) {
    const DEPENDENTS: usize = 20_000;
    let runtime = runtime();
    let engine = WorkflowEngine::new();
    let ids: Vec<String> = (0..DEPENDENTS).map(|i| format!("d{i}")).collect();
    let chosen: std::sync::Arc<Vec<String>> =
        std::sync::Arc::new(ids.iter().step_by(2).cloned().collect());
    engine.register_handler(
        "route",
        inline(move |ctx: TaskContext| {
            let chosen = std::sync::Arc::clone(&chosen);
            async move {
                ctx.choose_branches(chosen.iter())?;
                Ok::<_, TaskError>(())
            }
        }),
    );
    engine.register_handler(
        "work",
        inline(|_ctx: TaskContext| async move { Ok::<_, TaskError>(()) }),
    );
    let workflow = Workflow::from_tasks(
        "branch",
        "Branch",
        [Task::new("route", "route")].into_iter().chain(
            ids.iter()
                .map(|id| Task::new(id.as_str(), "work").depends_on(["route"])),
        ),
    );
    let first = runtime
        .block_on(engine.execute_workflow(&workflow))
        .expect("runs");
    let mut group = short_group(c, "engine_run/wide_branch");
    group.throughput(Throughput::Elements(DEPENDENTS as u64));
    group.bench_function(BenchmarkId::new("live", DEPENDENTS), |b| {
        b.iter(|| {
            runtime
                .block_on(engine.execute_workflow(&workflow))
                .map(|r| r.status)
        })
    });
    group.bench_function(BenchmarkId::new("resume", DEPENDENTS), |b| {
        b.iter(|| {
            runtime
                .block_on(engine.resume(&workflow, &first))
                .map(|r| r.status)
        })
    });
    group.finish();
}

/// Storing new results in a full `MemoryCache`: each pass that forgets the least
/// recently used reads every result, so it forgets an eighth of them at once; the cost
/// per stored result stays flat as the capacity grows.
fn memory_cache_when_full(c: &mut Criterion) {
    use orch::engine::{CacheKey, CacheStore, MemoryCache};

    let mut group = c.benchmark_group("memory_cache");
    group.sample_size(20);
    const PUTS: u64 = 100_000;
    group.throughput(Throughput::Elements(PUTS));
    for capacity in [1_000, 10_000, 100_000] {
        let store = MemoryCache::with_capacity(capacity);
        let mut next = 0u128;
        for _ in 0..capacity {
            store.put(CacheKey(next), serde_json::Value::Null);
            next += 1;
        }
        group.bench_function(BenchmarkId::new("put_when_full", capacity), |b| {
            b.iter(|| {
                for _ in 0..PUTS {
                    store.put(CacheKey(next), serde_json::Value::Null);
                    next += 1;
                }
                store.len()
            })
        });
    }
    group.finish();
}

/// A group of ten samples measured over three seconds, after half a second of warming
/// up.
fn short_group(
    c: &mut Criterion,
    name: impl Into<String>,
) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group
}

criterion_group!(
    benches,
    noop,
    floor,
    sleeping_fan_out,
    metrics_on_request,
    handler_placement,
    pools_and_priorities,
    wide_fan_in_inputs,
    wide_fan_in_after_skips,
    wide_branch,
    memory_cache_when_full
);
criterion_main!(benches);
