//! Validation plus execution order (building the cached plan) for the standard shapes,
//! for a very wide task followed by many tasks of a few dependencies each, and for a
//! workflow of three tasks (the size a remote worker builds around each task it runs).
//!
//! `cargo bench -p benches --bench core_plan`

use std::time::Duration;

use benches::Shape;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orch::prelude::{Task, Workflow};

fn validate_and_order(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_and_order");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for size in [10_000, 100_000, 1_000_000] {
        for shape in Shape::ALL {
            let workflow = shape.build(size);
            group.throughput(Throughput::Elements(workflow.len() as u64));
            group.bench_with_input(BenchmarkId::new(shape.name(), size), &workflow, |b, w| {
                b.iter_batched(
                    // A fresh definition: clones share the cached validation.
                    || Workflow::from_tasks(w.workflow_id(), w.name(), w.tasks().cloned()),
                    |fresh| {
                        let ordered = fresh.validate().map(|v| v.plan().order().len());
                        assert_eq!(ordered, Ok(fresh.len()));
                        fresh
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

/// One task depending on 200,000 others, then 50,000 tasks of 17 dependencies each (past
/// the count where validation checks a task's list for repeats with a set): what the
/// set's reuse from one task to the next costs after a very wide one.
fn wide_then_many(c: &mut Criterion) {
    const WIDE: usize = 200_000;
    const NARROW: usize = 50_000;
    let ids: Vec<String> = (0..WIDE).map(|i| format!("s{i}")).collect();
    let sources = ids.iter().map(|id| Task::new(id.as_str(), "t"));
    let hub = Task::new("hub", "t").depends_on(ids.iter().map(String::as_str));
    let narrow = (0..NARROW).map(|i| {
        let dependencies = (0..17).map(|d| ids[(i * 17 + d) % WIDE].as_str());
        Task::new(format!("n{i}"), "t").depends_on(dependencies)
    });
    let workflow = Workflow::from_tasks("w", "W", sources.chain([hub]).chain(narrow));
    let mut group = c.benchmark_group("validate_and_order");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(workflow.len() as u64));
    group.bench_function(BenchmarkId::new("wide_then_many_17", workflow.len()), |b| {
        b.iter_batched(
            || Workflow::from_tasks("w", "W", workflow.tasks().cloned()),
            |fresh| {
                assert!(fresh.validate().is_ok());
                fresh
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// A task with two dependencies: what validation costs per run of a small workflow, and
/// per task on a remote worker.
fn small(c: &mut Criterion) {
    let tasks = [
        Task::new("a", "t"),
        Task::new("b", "t"),
        Task::new("c", "t").depends_on(["a", "b"]),
    ];
    let mut group = c.benchmark_group("validate_and_order");
    group.throughput(Throughput::Elements(tasks.len() as u64));
    group.bench_function(BenchmarkId::new("small", tasks.len()), |b| {
        b.iter_batched(
            || Workflow::from_tasks("w", "W", tasks.iter().cloned()),
            |fresh| {
                assert!(fresh.validate().is_ok());
                fresh
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, validate_and_order, wide_then_many, small);
criterion_main!(benches);
