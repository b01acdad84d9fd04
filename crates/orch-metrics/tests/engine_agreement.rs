//! What the engine really publishes and what its results say give a `Recorder` the same
//! figures, for random workflows with failures, retries and maps.

use std::time::Duration;

use orch_core::{Backoff, EngineEvent, Task, TaskStatus, Workflow};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_events::{EventBus, SubscribeOptions};
use orch_metrics::Recorder;
use proptest::prelude::*;
use serde_json::{Value, json};

/// What a task does: 0 completes (with a list of two items), 1 fails, 2 fails its first
/// attempt only; and whether it is a map over its first dependency.
#[derive(Clone, Debug)]
struct Spec {
    dependencies: Vec<usize>,
    kind: u8,
    retries: u32,
    map: bool,
    task_type: usize,
}

fn specs() -> impl Strategy<Value = Vec<Spec>> {
    (1usize..12).prop_flat_map(|n| {
        (0..n)
            .map(|i| {
                let dependencies =
                    proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(2));
                (
                    dependencies,
                    0u8..3,
                    0u32..3,
                    proptest::bool::weighted(0.3),
                    0usize..3,
                )
                    .prop_map(|(dependencies, kind, retries, map, task_type)| {
                        Spec {
                            dependencies,
                            kind,
                            retries,
                            map,
                            task_type,
                        }
                    })
            })
            .collect::<Vec<_>>()
    })
}

fn workflow(specs: &[Spec]) -> Workflow {
    let short_pause = Backoff {
        initial: Duration::from_millis(3),
        ..Backoff::default()
    };
    Workflow::from_tasks(
        "w",
        "W",
        specs.iter().enumerate().map(|(i, spec)| {
            let mut task = Task::new(format!("t{i}"), format!("type{}", spec.task_type))
                .config(json!({ "kind": spec.kind }))
                .depends_on(spec.dependencies.iter().map(|d| format!("t{d}")))
                .retries(spec.retries)
                .backoff(short_pause);
            if let (true, Some(over)) = (spec.map, spec.dependencies.first()) {
                task = task.map_over(format!("t{over}"));
            }
            task
        }),
    )
}

/// Each attempt takes a time of its own (the clock is paused, so no real wait), so that
/// the figures tell apart a whole task's duration from its last attempt's.
async fn work(ctx: TaskContext) -> Result<Value, TaskError> {
    let kind = ctx.config()["kind"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(7 * u64::from(ctx.attempt()) + kind)).await;
    match ctx.config()["kind"].as_u64() {
        Some(1) => Err(TaskError::new("fails")),
        Some(2) if ctx.attempt() == 1 => Err(TaskError::new("fails once")),
        _ => Ok(json!([1, 2])),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn events_and_results_give_the_same_figures(specs in specs()) {
        let workflow = workflow(&specs);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let (from_events, from_result, tally) = runtime.block_on(async {
            let bus: EventBus<EngineEvent> = EventBus::new();
            let mut subscription = bus
                .subscribe_with("workflow.>", SubscribeOptions::new().capacity(1 << 16))
                .expect("a valid pattern");
            let engine = WorkflowEngine::builder()
                .event_bus(bus.clone())
                .build()
                .expect("valid");
            for task_type in 0..3 {
                engine.register_handler(format!("type{task_type}"), work);
            }
            let result = engine.execute_workflow(&workflow).await.expect("valid");
            bus.close().await;
            let from_events = Recorder::new();
            while let Some(event) = subscription.recv_event().await {
                from_events.observe(event.payload());
            }
            let from_result = Recorder::new();
            from_result.record_result(&result);
            // Each record's status, tallied here: the figures count every task and
            // map instance once, by how it ended.
            let mut tally = [0u64; 3];
            for (_, record) in result.tasks.iter() {
                match record.status {
                    TaskStatus::Completed => tally[0] += 1,
                    TaskStatus::Failed => tally[1] += 1,
                    TaskStatus::Skipped => tally[2] += 1,
                    _ => {}
                }
            }
            (from_events.snapshot(), from_result.snapshot(), tally)
        });
        let counted = from_result.values().fold([0u64; 3], |sums, stats| {
            [sums[0] + stats.completed, sums[1] + stats.failed, sums[2] + stats.skipped]
        });
        prop_assert_eq!(counted, tally);
        prop_assert_eq!(from_events, from_result);
    }
}
