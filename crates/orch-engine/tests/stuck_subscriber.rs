//! A cancelled run returns within its grace period even when a lossless subscriber never
//! reads; the events it could not publish by then are published later, in the
//! background, and none is lost. A run dropped while it waits for such a subscriber
//! still cancels its token.
//!
//! The waits below that carry a limit only turn a hang into a failure (on the paused clock
//! they pass in no real time); nothing asserts how long anything took.

use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;
use orch_core::{
    EngineEvent, EngineEventKind, Task, TaskStatus, Workflow, WorkflowResult, WorkflowStatus,
};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_events::{EventBus, SubscribeOptions, Subscription};
use serde_json::Value;

mod common;
use common::paused_runtime;

/// Far beyond any grace period here: reaching it means the run hangs.
const HANG: Duration = Duration::from_secs(3600);

/// A bus with a `workflow.>` subscription of capacity 4 that nobody reads yet.
fn bus_with_a_full_subscriber() -> (EventBus<EngineEvent>, Subscription<EngineEvent>) {
    let bus: EventBus<EngineEvent> = EventBus::new();
    let stuck = bus
        .subscribe_with("workflow.>", SubscribeOptions::new().capacity(4))
        .expect("a valid pattern");
    (bus, stuck)
}

/// An engine on `bus` with a grace period of `grace`: `instant` handlers finish at once,
/// `polite` ones when the run is cancelled.
fn engine(bus: &EventBus<EngineEvent>, grace: Duration) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .max_concurrent(4)
        .cancel_grace_period(grace)
        .event_bus(bus.clone())
        .build()
        .expect("valid");
    engine.register_handler("instant", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
    engine.register_handler("polite", |ctx: TaskContext| async move {
        ctx.cancellation().cancelled().await;
        Ok::<_, TaskError>(Value::Null)
    });
    engine
}

/// Ten tasks of `task_type`, the last five each depending on one of the first five.
fn workflow(task_type: &str) -> Workflow {
    Workflow::from_tasks(
        "w",
        "W",
        (0..10).map(|i| {
            let task = Task::new(format!("t{i}"), task_type);
            if i < 5 {
                task
            } else {
                task.depends_on([format!("t{}", i - 5)])
            }
        }),
    )
}

/// Reads `subscription` up to the run's `finished` event.
async fn read_until_finished(subscription: &mut Subscription<EngineEvent>) -> Vec<EngineEvent> {
    let mut events = Vec::new();
    loop {
        let event = tokio::time::timeout(HANG, subscription.recv_event())
            .await
            .expect("every event is delivered")
            .expect("the bus is open");
        let kind = event.payload().kind;
        events.push(event.payload().clone());
        if kind == EngineEventKind::WorkflowFinished {
            return events;
        }
    }
}

/// The events say what the records say: the run starts first and finishes last with its
/// status; each task that started has one `started` event, and every task one event for
/// how it ended.
fn assert_events_match(result: &WorkflowResult, events: &[EngineEvent]) {
    assert_eq!(
        events.first().map(|e| e.kind),
        Some(EngineEventKind::WorkflowStarted)
    );
    assert_eq!(events.last().and_then(|e| e.status), Some(result.status));
    for (id, record) in result.tasks.iter() {
        let of_task = |kind: EngineEventKind| {
            events
                .iter()
                .filter(|e| e.kind == kind && e.task_id.as_ref() == Some(id))
                .count()
        };
        let started = usize::from(record.start_time.is_some());
        assert_eq!(of_task(EngineEventKind::TaskStarted), started, "{id}");
        let ended = match record.status {
            TaskStatus::Completed => EngineEventKind::TaskCompleted,
            TaskStatus::Cancelled => EngineEventKind::TaskCancelled,
            other => panic!("{id} ended {other:?}"),
        };
        assert_eq!(of_task(ended), 1, "{id} {ended}");
    }
    let task_events = events.iter().filter(|e| e.task_id.is_some()).count();
    let expected: usize = result
        .tasks
        .iter()
        .map(|(_, r)| 1 + usize::from(r.start_time.is_some()))
        .sum();
    assert_eq!(task_events, expected, "no other task events");
}

/// Closes the bus (which waits for publishes under way) and checks that `subscription`
/// then ends with nothing more.
async fn assert_nothing_more(
    bus: &EventBus<EngineEvent>,
    subscription: &mut Subscription<EngineEvent>,
) {
    tokio::time::timeout(HANG, bus.close())
        .await
        .expect("no publish is left waiting");
    assert!(subscription.recv_event().await.is_none());
}

/// Runs `workflow` on `engine` as a task of its own, cancels it once `first` is done (it
/// cannot have ended by then), and checks that it returns and that `stuck` then receives
/// every one of its events, and nothing more.
async fn cancel_then_read_everything(
    engine: &WorkflowEngine,
    workflow: &Workflow,
    first: impl Future<Output = ()>,
    (bus, stuck): (&EventBus<EngineEvent>, &mut Subscription<EngineEvent>),
) -> WorkflowResult {
    let run = engine.run(workflow);
    let token = run.cancellation_token();
    let runner = tokio::spawn(run);
    first.await;
    assert!(
        !runner.is_finished(),
        "the run ended before it was cancelled"
    );
    token.cancel();
    let result = tokio::time::timeout(HANG, runner)
        .await
        .expect("the cancelled run returns")
        .expect("no panic")
        .expect("valid");
    let events = read_until_finished(stuck).await;
    assert_events_match(&result, &events);
    assert_nothing_more(bus, stuck).await;
    result
}

#[test]
fn a_run_cancelled_while_its_handlers_run_returns_and_delivers_its_events_later() {
    paused_runtime().block_on(async {
        let (bus, mut stuck) = bus_with_a_full_subscriber();
        let engine = engine(&bus, Duration::from_secs(1));
        let started = tokio::time::sleep(Duration::from_millis(10));
        let result =
            cancel_then_read_everything(&engine, &workflow("polite"), started, (&bus, &mut stuck))
                .await;
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        assert_eq!(result.tasks_with(TaskStatus::Completed).len(), 4);
        assert_eq!(result.tasks_with(TaskStatus::Cancelled).len(), 6);
    });
}

#[test]
fn a_run_cancelled_while_it_waits_to_publish_its_last_events_returns() {
    paused_runtime().block_on(async {
        let (bus, mut stuck) = bus_with_a_full_subscriber();
        let engine = engine(&bus, Duration::from_secs(1));
        // Long enough for every task to have run: the run then waits for `stuck` alone.
        let all_ran = tokio::time::sleep(Duration::from_secs(60));
        let result =
            cancel_then_read_everything(&engine, &workflow("instant"), all_ran, (&bus, &mut stuck))
                .await;
        assert_eq!(result.status, WorkflowStatus::Completed);
    });
}

#[test]
fn the_background_delivery_ends_when_the_full_subscriber_is_dropped() {
    paused_runtime().block_on(async {
        let (bus, stuck) = bus_with_a_full_subscriber();
        let mut watcher = bus
            .subscribe_with("workflow.>", SubscribeOptions::new().capacity(64))
            .expect("a valid pattern");
        let engine = engine(&bus, Duration::from_secs(1));
        let run = engine.run(&workflow("polite"));
        run.cancel();
        let result = tokio::time::timeout(HANG, run)
            .await
            .expect("the cancelled run returns")
            .expect("valid");
        assert_eq!(stuck.stats().queued, 4);
        drop(stuck);
        // The publisher, no longer held, gives the other subscriber everything.
        let events = read_until_finished(&mut watcher).await;
        assert_events_match(&result, &events);
        assert_nothing_more(&bus, &mut watcher).await;
    });
}

#[test]
fn on_a_multi_threaded_runtime_the_spawned_publisher_finishes_in_the_background() {
    let runtime = common::two_workers();
    runtime.block_on(async {
        let (bus, mut stuck) = bus_with_a_full_subscriber();
        let engine = engine(&bus, Duration::from_millis(10));
        let result = cancel_then_read_everything(
            &engine,
            &workflow("polite"),
            tokio::task::yield_now(),
            (&bus, &mut stuck),
        )
        .await;
        assert_eq!(result.status, WorkflowStatus::Cancelled);
    });
}

#[test]
fn outside_a_tokio_runtime_a_thread_delivers_the_rest() {
    let (bus, mut stuck) = bus_with_a_full_subscriber();
    let engine = engine(&bus, Duration::from_secs(1));
    let run = engine.run(&workflow("instant"));
    run.cancel();
    // No runtime, so no timer for a grace period: the run returns at once.
    let result = run
        .now_or_never()
        .expect("the cancelled run returns at once")
        .expect("valid");
    assert_eq!(result.tasks_with(TaskStatus::Cancelled).len(), 10);
    assert_eq!(stuck.stats().queued, 4);
    // Events now come from another thread: a paused clock would not wait for them.
    let reader = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    reader.block_on(async {
        let events = read_until_finished(&mut stuck).await;
        assert_events_match(&result, &events);
        assert_nothing_more(&bus, &mut stuck).await;
    });
}

/// A run dropped while it waits for a subscriber that never reads (nothing else under
/// way) still tells what its handlers left watching its token.
#[test]
fn a_run_dropped_while_it_waits_for_a_subscriber_cancels_its_token() {
    paused_runtime().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let _stuck = bus
            .subscribe_with("workflow.>", SubscribeOptions::new().capacity(1))
            .expect("a valid pattern");
        let engine = engine(&bus, Duration::from_secs(1));
        let told = std::sync::Arc::new(tokio::sync::Notify::new());
        let watcher = std::sync::Arc::clone(&told);
        engine.register_handler("leaves_a_watcher", move |ctx: TaskContext| {
            let (told, token) = (std::sync::Arc::clone(&watcher), ctx.cancellation().clone());
            async move {
                tokio::spawn(async move {
                    token.cancelled().await;
                    told.notify_one();
                });
                Ok::<_, TaskError>(Value::Null)
            }
        });
        let workflow = Workflow::new("w", "W").task(Task::new("watch", "leaves_a_watcher"));
        let run = tokio::time::timeout(HANG, engine.execute_workflow(&workflow));
        assert!(run.await.is_err(), "the run cannot end: its events wait");
        let heard = tokio::time::timeout(HANG, told.notified()).await;
        assert!(
            heard.is_ok(),
            "the watcher never heard that its run was dropped"
        );
    });
}
