//! Validation plus execution order (building the cached plan) for the standard shapes.
//!
//! `cargo bench -p benches --bench core_plan`

use std::time::Duration;

use benches::Shape;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orch::prelude::Workflow;

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

criterion_group!(benches, validate_and_order);
criterion_main!(benches);
