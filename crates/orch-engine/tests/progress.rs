//! Following runs from outside: run ids that tell concurrent runs apart, events that reach
//! a subscriber whenever it joins, and outputs in events when asked for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use orch_core::{EngineEvent, EngineEventKind, RunId, Task, Workflow, WorkflowStatus};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_events::{EventBus, SubscribeOptions, Subscription};
use serde_json::{Value, json};

mod common;
use common::{current_thread, two_workers};

/// Everything `subscription` receives until the bus closes.
async fn drain(mut subscription: Subscription<EngineEvent>) -> Vec<(String, EngineEvent)> {
    let mut events = Vec::new();
    while let Some(event) = subscription.recv_event().await {
        events.push((event.subject().to_string(), event.payload().clone()));
    }
    events
}

fn chain(n: usize, task_type: &str) -> Workflow {
    Workflow::from_tasks(
        "w",
        "W",
        (0..n).map(|i| {
            let task = Task::new(format!("t{i}"), task_type);
            if i == 0 {
                task
            } else {
                task.depends_on([format!("t{}", i - 1)])
            }
        }),
    )
}

#[test]
fn concurrent_runs_of_one_workflow_are_told_apart_by_their_run_ids() {
    const TASKS: usize = 50;
    two_workers().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let subscription = bus
            .subscribe_with("workflow.>", SubscribeOptions::new().capacity(8))
            .expect("a valid pattern");
        let reader = tokio::spawn(drain(subscription));
        let engine = WorkflowEngine::builder()
            .max_concurrent(2)
            .event_bus(bus.clone())
            .build()
            .expect("valid");
        // Each task yields once, so the two runs' events interleave.
        engine.register_handler("yield", |_ctx: TaskContext| async move {
            tokio::task::yield_now().await;
            Ok::<_, TaskError>(Value::Null)
        });
        let workflow = chain(TASKS, "yield");
        let chosen: RunId = "chosen-by-caller".parse().expect("a valid id");
        let (a, b) = (
            engine.run(&workflow),
            engine.run_with_id(&workflow, chosen.clone()),
        );
        let ids = (a.run_id().clone(), b.run_id().clone());
        assert_eq!(ids.1, chosen);
        assert_ne!(ids.0, ids.1);
        let (a, b) = tokio::join!(tokio::spawn(a), tokio::spawn(b));
        let a = a.expect("no panic").expect("valid");
        let b = b.expect("no panic").expect("valid");
        assert_eq!((&a.run_id, &b.run_id), (&ids.0, &ids.1));
        bus.close().await;
        let events = reader.await.expect("reader finished");

        let mut by_run: BTreeMap<String, Vec<&EngineEvent>> = BTreeMap::new();
        for (_, event) in &events {
            by_run
                .entry(event.run_id.to_string())
                .or_default()
                .push(event);
        }
        assert_eq!(
            by_run.keys().collect::<Vec<_>>(),
            {
                let mut ids = vec![ids.0.to_string(), ids.1.to_string()];
                ids.sort();
                ids
            }
            .iter()
            .collect::<Vec<_>>()
        );
        for run in by_run.values() {
            // Each run's events alone tell its whole story, in order.
            assert_eq!(run.len(), 2 * TASKS + 2);
            assert_eq!(run[0].kind, EngineEventKind::WorkflowStarted);
            assert_eq!(run[0].total_tasks, Some(TASKS as u32));
            for (i, pair) in run[1..=2 * TASKS].chunks(2).enumerate() {
                let kinds = [pair[0].kind, pair[1].kind];
                assert_eq!(
                    kinds,
                    [EngineEventKind::TaskStarted, EngineEventKind::TaskCompleted]
                );
                let id = format!("t{i}");
                assert!(pair.iter().all(|e| e.task_id.as_deref() == Some(&id)));
            }
            assert_eq!(run[2 * TASKS + 1].kind, EngineEventKind::WorkflowFinished);
        }
    });
}

/// A workflow whose first task subscribes to the bus while the run is under way.
fn subscribe_mid_run(
    bus: &EventBus<EngineEvent>,
) -> (
    WorkflowEngine,
    Workflow,
    Arc<Mutex<Option<Subscription<EngineEvent>>>>,
) {
    let engine = WorkflowEngine::builder()
        .event_bus(bus.clone())
        .build()
        .expect("valid");
    let joined: Arc<Mutex<Option<Subscription<EngineEvent>>>> = Arc::default();
    engine.register_handler("subscribe", {
        let (bus, joined) = (bus.clone(), Arc::clone(&joined));
        move |_ctx: TaskContext| {
            let subscription = bus.subscribe("workflow.>").expect("a valid pattern");
            *joined.lock().expect("not poisoned") = Some(subscription);
            async move { Ok::<_, TaskError>(Value::Null) }
        }
    });
    engine.register_handler("t", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("joins", "subscribe"))
        .task(Task::new("after", "t").depends_on(["joins"]));
    (engine, workflow, joined)
}

/// Every event of the run of [`subscribe_mid_run`]'s workflow.
const ALL: [&str; 6] = [
    "workflow.w.started",
    "workflow.w.task.joins.started",
    "workflow.w.task.joins.completed",
    "workflow.w.task.after.started",
    "workflow.w.task.after.completed",
    "workflow.w.finished",
];

/// Checks what a subscriber that joined while `joins` ran received: every event that
/// happened after it joined (from `joins`'s completion on), and, depending on how far the
/// publisher had got, some earlier ones, without a gap.
fn received_all_after_joining(subjects: &[String]) {
    assert!(subjects.len() >= 4, "{subjects:?}");
    assert_eq!(
        subjects,
        &ALL[ALL.len() - subjects.len()..],
        "a suffix of the run"
    );
}

#[test]
fn a_subscriber_that_joins_during_a_run_receives_every_later_event() {
    for runtime in [current_thread(), two_workers()] {
        runtime.block_on(async {
            let bus: EventBus<EngineEvent> = EventBus::new();
            let (engine, workflow, joined) = subscribe_mid_run(&bus);
            let result = engine.execute_workflow(&workflow).await.expect("valid");
            assert_eq!(result.status, WorkflowStatus::Completed);
            bus.close().await;
            let subscription = joined.lock().expect("not poisoned").take();
            let events = drain(subscription.expect("subscribed")).await;
            let subjects: Vec<String> = events.into_iter().map(|(s, _)| s).collect();
            received_all_after_joining(&subjects);
        });
    }
}

#[test]
fn a_run_polled_outside_tokio_reaches_a_subscriber_that_joins_during_it() {
    let bus: EventBus<EngineEvent> = EventBus::new();
    let (engine, workflow, joined) = subscribe_mid_run(&bus);
    let result = engine
        .execute_workflow(&workflow)
        .now_or_never()
        .expect("instant handlers finish in one poll")
        .expect("valid");
    assert_eq!(result.status, WorkflowStatus::Completed);
    let mut subscription = joined
        .lock()
        .expect("not poisoned")
        .take()
        .expect("subscribed");
    let mut subjects = Vec::new();
    while let Some(Some(event)) = subscription.recv_event().now_or_never() {
        subjects.push(event.subject().to_string());
    }
    received_all_after_joining(&subjects);
}

#[test]
fn a_bus_with_history_keeps_a_run_that_nobody_watched_for_replay() {
    two_workers().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::builder().history(64).build();
        let engine = WorkflowEngine::builder()
            .event_bus(bus.clone())
            .build()
            .expect("valid");
        engine.register_handler("t", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(Value::Null)
        });
        let result = engine
            .execute_workflow(&chain(3, "t"))
            .await
            .expect("valid");
        let late = bus
            .subscribe_with("workflow.>", SubscribeOptions::new().replay_from(0))
            .expect("a valid pattern");
        bus.close().await;
        let events = drain(late).await;
        assert_eq!(events.len(), 2 * 3 + 2);
        assert!(events.iter().all(|(_, e)| e.run_id == result.run_id));
    });
}

#[test]
fn completed_events_carry_outputs_only_when_asked() {
    for include in [false, true] {
        let (result, events) = current_thread().block_on(async {
            let bus: EventBus<EngineEvent> = EventBus::new();
            let subscription = bus.subscribe("workflow.>").expect("a valid pattern");
            let engine = WorkflowEngine::builder()
                .event_bus(bus.clone())
                .event_outputs(include)
                .build()
                .expect("valid");
            engine.register_handler("count", |ctx: TaskContext| async move {
                Ok::<_, TaskError>(json!({"rows": ctx.config()["rows"]}))
            });
            let workflow = Workflow::new("w", "W")
                .task(Task::new("a", "count").config(json!({"rows": 3})))
                .task(Task::new("b", "count").config(json!({"rows": 4})));
            let result = engine.execute_workflow(&workflow).await.expect("valid");
            bus.close().await;
            (result, drain(subscription).await)
        });
        let outputs: Vec<(&str, Option<&Value>)> = events
            .iter()
            .filter(|(_, e)| e.kind == EngineEventKind::TaskCompleted)
            .map(|(_, e)| (e.task_id.as_deref().unwrap_or(""), e.output.as_deref()))
            .collect();
        let expected = |id: &str| include.then(|| result.task(id)?.result.as_ref()).flatten();
        assert_eq!(outputs, [("a", expected("a")), ("b", expected("b"))]);
        if include {
            assert_eq!(expected("b"), Some(&json!({"rows": 4})));
        }
        assert!(
            events
                .iter()
                .filter(|(_, e)| e.kind != EngineEventKind::TaskCompleted)
                .all(|(_, e)| e.output.is_none())
        );
    }
}
