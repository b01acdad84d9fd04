//! Lifecycle events on the bus: complete, lossless, in causal order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orch_core::{EngineEvent, EngineEventKind, Task, Workflow, WorkflowStatus};
use orch_engine::{TaskContext, TaskError, WorkflowEngine, inline};
use orch_events::{EventBus, SubscribeOptions};
use serde_json::Value;

mod common;
use common::{paused_runtime, two_workers};

/// An engine publishing on `bus` whose `instant` tasks finish at once.
fn instant_engine(bus: EventBus<EngineEvent>, max_concurrent: usize) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .max_concurrent(max_concurrent)
        .event_bus(bus)
        .build()
        .expect("valid");
    engine.register_handler("instant", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
    engine
}

/// Everything `pattern` received from running `workflow`, in arrival order.
fn run_and_collect(
    engine_for: impl FnOnce(EventBus<EngineEvent>) -> WorkflowEngine,
    workflow: &Workflow,
    capacity: usize,
) -> (orch_core::WorkflowResult, Vec<(String, EngineEvent)>) {
    two_workers().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let mut subscription = bus
            .subscribe_with("workflow.>", SubscribeOptions::new().capacity(capacity))
            .expect("a valid pattern");
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(event) = subscription.recv_event().await {
                seen.push((event.subject().to_string(), event.payload().clone()));
            }
            seen
        });
        let engine = engine_for(bus.clone());
        let result = engine.execute_workflow(workflow).await.expect("valid");
        bus.close().await;
        (result, reader.await.expect("reader finished"))
    })
}

fn random_workflow(n: usize) -> Workflow {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    Workflow::from_tasks(
        "big",
        "Big",
        (0..n).map(|i| {
            let deps: Vec<String> = (0..next() % 4)
                .filter(|_| i > 0)
                .map(|_| format!("t{}", next() % i as u64))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            Task::new(
                format!("t{i}"),
                if i % 3 == 0 { "yield" } else { "instant" },
            )
            .depends_on(deps)
        }),
    )
}

#[test]
fn every_task_gets_one_start_and_one_end_in_causal_order() {
    let workflow = random_workflow(10_000);
    let (result, events) = run_and_collect(
        |bus| {
            let engine = instant_engine(bus, 8);
            engine.register_handler("yield", |_ctx: TaskContext| async move {
                tokio::task::yield_now().await;
                Ok::<_, TaskError>(Value::Null)
            });
            engine
        },
        &workflow,
        // A small queue, so the run has to wait for the subscriber again and again.
        16,
    );
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(events.len(), 2 * workflow.len() + 2);
    assert_eq!(events[0].1.kind, EngineEventKind::WorkflowStarted);
    assert_eq!(events[0].0, "workflow.big.started");
    let last = &events[events.len() - 1];
    assert_eq!(
        (last.0.as_str(), last.1.kind),
        ("workflow.big.finished", EngineEventKind::WorkflowFinished)
    );
    assert_eq!(last.1.status, Some(WorkflowStatus::Completed));

    let mut started = HashMap::new();
    let mut completed = HashMap::new();
    for (position, (subject, event)) in events.iter().enumerate() {
        assert_eq!(event.run_id, events[0].1.run_id);
        assert_eq!(&*event.workflow_id, "big");
        let Some(id) = event.task_id.as_ref() else {
            continue;
        };
        assert_eq!(subject, &format!("workflow.big.task.{id}.{}", event.kind));
        let task_type = workflow.get(id).map(|t| t.task_type.as_str());
        assert_eq!(event.task_type.as_deref(), task_type);
        let first = match event.kind {
            EngineEventKind::TaskStarted => started.insert(id.clone(), position),
            EngineEventKind::TaskCompleted => completed.insert(id.clone(), position),
            other => panic!("unexpected {other:?}"),
        };
        assert!(first.is_none(), "{id} {} twice", event.kind);
    }
    assert_eq!(
        (started.len(), completed.len()),
        (workflow.len(), workflow.len())
    );
    for task in workflow.tasks() {
        let id = &task.task_id;
        assert!(started[id] < completed[id]);
        for dep in &task.dependencies {
            assert!(
                completed[dep] < started[id],
                "{id} started before {dep} completed"
            );
        }
    }
}

#[test]
fn failures_retries_and_skips_are_announced() {
    let workflow = Workflow::new("w", "W")
        .task(
            Task::new("flaky", "flaky")
                .retries(1)
                .backoff(orch_core::Backoff {
                    initial: Duration::from_millis(1),
                    ..orch_core::Backoff::default()
                }),
        )
        .task(Task::new("bad", "bad"))
        .task(Task::new("after.bad", "ok").depends_on(["bad"]));
    let (_, events) = run_and_collect(
        |bus| {
            let engine = WorkflowEngine::builder()
                .event_bus(bus)
                .build()
                .expect("valid");
            engine.register_handler("ok", |_ctx: TaskContext| async move {
                Ok::<_, TaskError>(Value::Null)
            });
            engine.register_handler("bad", |_ctx: TaskContext| async move {
                Err::<Value, _>(TaskError::new("broken"))
            });
            engine.register_handler("flaky", |ctx: TaskContext| async move {
                if ctx.attempt() == 1 {
                    Err(TaskError::new("first try fails"))
                } else {
                    Ok(Value::Null)
                }
            });
            engine
        },
        &workflow,
        64,
    );
    let kinds: Vec<(String, EngineEventKind)> = events
        .iter()
        .map(|(subject, event)| (subject.clone(), event.kind))
        .collect();
    use EngineEventKind::*;
    assert_eq!(
        kinds,
        [
            ("workflow.w.started".to_owned(), WorkflowStarted),
            ("workflow.w.task.flaky.started".to_owned(), TaskStarted),
            // One slot: a task pausing before its retry gives it back, so `bad` runs
            // in the pause.
            ("workflow.w.task.flaky.retrying".to_owned(), TaskRetrying),
            ("workflow.w.task.bad.started".to_owned(), TaskStarted),
            ("workflow.w.task.bad.failed".to_owned(), TaskFailed),
            (
                "workflow.w.task.after%2Ebad.skipped".to_owned(),
                TaskSkipped
            ),
            ("workflow.w.task.flaky.completed".to_owned(), TaskCompleted),
            ("workflow.w.finished".to_owned(), WorkflowFinished),
        ]
    );
    let retry = &events[2].1;
    assert_eq!(
        (retry.attempt, retry.error.as_deref()),
        (1, Some("first try fails"))
    );
    assert_eq!(events[4].1.error.as_deref(), Some("broken"));
    assert_eq!(
        events[5].1.error.as_deref(),
        Some("dependency `bad` failed")
    );
    assert_eq!(events[5].1.task_type.as_deref(), Some("ok"));
    assert_eq!(events[6].1.attempt, 2);
    assert_eq!(events[7].1.status, Some(WorkflowStatus::Failed));
}

/// Events carry the times the result records: a task's start and end, its duration,
/// and the run's start, end and duration.
#[test]
fn events_carry_the_times_and_durations_the_result_records() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "nap"))
        .task(Task::new("b", "broken").depends_on(["a"]));
    let (result, events) = run_and_collect(
        |bus| {
            let engine = WorkflowEngine::builder()
                .event_bus(bus)
                .build()
                .expect("valid");
            engine.register_handler("nap", |_ctx: TaskContext| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, TaskError>(Value::Null)
            });
            engine.register_handler("broken", |_ctx: TaskContext| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Err::<Value, _>(TaskError::new("broken"))
            });
            engine
        },
        &workflow,
        64,
    );
    use EngineEventKind::*;
    for (_, event) in &events {
        let Some(id) = &event.task_id else {
            let (at, duration) = match event.kind {
                WorkflowStarted => (result.start_time, None),
                _ => (result.end_time, Some(result.total_duration())),
            };
            assert_eq!((event.timestamp, event.duration), (at, duration));
            continue;
        };
        let record = result.task(id).expect("a task");
        match event.kind {
            TaskStarted => assert_eq!(Some(event.timestamp), record.start_time, "{id}"),
            _ => {
                assert_eq!(Some(event.timestamp), record.end_time, "{id}");
                assert_eq!(event.duration, record.duration(), "{id}");
                assert!(event.duration >= Some(Duration::from_millis(10)), "{id}");
            }
        }
    }
    assert_eq!(events.len(), 6);
}

/// A task served from the cache runs no attempt of its own: its events say attempt 0,
/// as its record does. Its start used to say attempt 1 and its completion 0.
#[test]
fn a_cached_task_is_announced_with_no_attempt_of_its_own() {
    let store: Arc<dyn orch_engine::CacheStore> = Arc::new(orch_engine::MemoryCache::default());
    let engine_for = |store: Arc<dyn orch_engine::CacheStore>| {
        move |bus: EventBus<EngineEvent>| {
            let engine = WorkflowEngine::builder()
                .event_bus(bus)
                .cache_store(store)
                .build()
                .expect("valid");
            engine.register_handler("instant", |_ctx: TaskContext| async move {
                Ok::<_, TaskError>(Value::Null)
            });
            engine
        }
    };
    let workflow = Workflow::new("w", "W").task(Task::new("t", "instant").cache(true));
    let attempts = |seen: &[(String, EngineEvent)]| -> Vec<(EngineEventKind, u32)> {
        seen.iter()
            .filter(|(_, e)| e.task_id.as_ref().is_some_and(|id| id.as_str() == "t"))
            .map(|(_, e)| (e.kind, e.attempt))
            .collect()
    };
    let (first, seen) = run_and_collect(engine_for(Arc::clone(&store)), &workflow, 64);
    assert!(!first.task("t").expect("a task").cached);
    assert_eq!(
        attempts(&seen),
        [
            (EngineEventKind::TaskStarted, 1),
            (EngineEventKind::TaskCompleted, 1)
        ]
    );
    let (again, seen) = run_and_collect(engine_for(store), &workflow, 64);
    let record = again.task("t").expect("a task");
    assert_eq!((record.cached, record.attempts), (true, 0));
    assert_eq!(
        attempts(&seen),
        [
            (EngineEventKind::TaskStarted, 0),
            (EngineEventKind::TaskCompleted, 0)
        ]
    );
}

#[test]
fn cancelled_tasks_are_announced() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let mut cancelled = bus.subscribe("workflow.w.task.*.cancelled").expect("valid");
        let engine = WorkflowEngine::builder()
            .event_bus(bus.clone())
            .cancel_grace_period(Duration::from_millis(10))
            .build()
            .expect("valid");
        engine.register_handler("forever", |_ctx: TaskContext| async move {
            std::future::pending::<()>().await;
            Ok::<_, TaskError>(Value::Null)
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "forever"))
            .task(Task::new("b", "forever").depends_on(["a"]));
        let run = engine.run(&workflow);
        let token = run.cancellation_token();
        let runner = tokio::spawn(run);
        tokio::time::sleep(Duration::from_millis(5)).await;
        token.cancel();
        let result = runner.await.expect("no panic").expect("valid");
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        bus.close().await;
        let mut ids = Vec::new();
        while let Some(event) = cancelled.recv_event().await {
            ids.push(event.payload().task_id.clone().expect("a task event"));
        }
        assert_eq!(ids, ["a", "b"]);
    });
}

#[test]
fn outside_a_tokio_runtime_the_run_publishes_its_own_events() {
    use futures_util::FutureExt;

    let bus: EventBus<EngineEvent> = EventBus::new();
    let mut subscription = bus.subscribe("workflow.>").expect("a valid pattern");
    let engine = instant_engine(bus, 1);
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "instant"))
        .task(Task::new("b", "instant").depends_on(["a"]));
    let result = engine
        .execute_workflow(&workflow)
        .now_or_never()
        .expect("no-op handlers finish in one poll")
        .expect("valid");
    assert_eq!(result.status, WorkflowStatus::Completed);
    let mut subjects = Vec::new();
    while let Some(Some(event)) = subscription.recv_event().now_or_never() {
        subjects.push(event.subject().to_string());
    }
    assert_eq!(
        subjects,
        [
            "workflow.w.started",
            "workflow.w.task.a.started",
            "workflow.w.task.a.completed",
            "workflow.w.task.b.started",
            "workflow.w.task.b.completed",
            "workflow.w.finished",
        ]
    );
}

#[test]
fn dropping_a_run_stops_its_publisher() {
    two_workers().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        // Never read: the publisher soon waits for room that never comes.
        let stuck = bus
            .subscribe_with("workflow.>", SubscribeOptions::new().capacity(1))
            .expect("a valid pattern");
        let engine = instant_engine(bus.clone(), 1);
        let workflow = Workflow::from_tasks(
            "w",
            "W",
            (0..100).map(|i| Task::new(format!("t{i}"), "instant")),
        );
        // Dropped once the subscriber's queue is full, the run's publisher waiting for
        // room for the next of its many events.
        let full = async {
            while stuck.stats().queued == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::select! {
            ended = engine.execute_workflow(&workflow) => {
                panic!("the run waits for the stuck subscriber, yet ended: {ended:?}")
            }
            () = full => {}
        }
        // `close` waits for publishes under way: the dropped run's publisher must be gone.
        let closed = tokio::time::timeout(Duration::from_secs(10), bus.close()).await;
        assert!(closed.is_ok(), "close waited for a dropped run's publisher");
        assert_eq!(stuck.stats().queued, 1);
    });
}

#[test]
fn a_current_thread_runtime_publishes_through_a_small_queue() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let mut subscription = bus
            .subscribe_with("workflow.>", SubscribeOptions::new().capacity(2))
            .expect("a valid pattern");
        let reader = tokio::spawn(async move {
            let mut kinds = Vec::new();
            while let Some(event) = subscription.recv_event().await {
                kinds.push(event.payload().kind);
            }
            kinds
        });
        let engine = instant_engine(bus.clone(), 4);
        let workflow = Workflow::from_tasks(
            "w",
            "W",
            (0..1_000).map(|i| {
                let task = Task::new(format!("t{i}"), "instant");
                if i == 0 {
                    task
                } else {
                    task.depends_on([format!("t{}", i - 1)])
                }
            }),
        );
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(result.status, WorkflowStatus::Completed);
        bus.close().await;
        let kinds = reader.await.expect("reader finished");
        assert_eq!(kinds.len(), 2 * 1_000 + 2);
        assert_eq!(kinds.first(), Some(&EngineEventKind::WorkflowStarted));
        assert_eq!(kinds.last(), Some(&EngineEventKind::WorkflowFinished));
        // A chain: each task starts, then completes, before the next starts.
        for pair in kinds[1..kinds.len() - 1].chunks(2) {
            assert_eq!(
                pair,
                [EngineEventKind::TaskStarted, EngineEventKind::TaskCompleted]
            );
        }
    });
}

#[test]
fn tasks_held_back_for_a_slow_publisher_start_when_it_catches_up() {
    const INSTANT: usize = 20_000;
    two_workers().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        // A small queue read one event at a time: the publisher falls behind the run.
        let mut subscription = bus
            .subscribe_with("workflow.>", SubscribeOptions::new().capacity(1))
            .expect("a valid pattern");
        let reader = tokio::spawn(async move {
            while subscription.recv_event().await.is_some() {
                tokio::task::yield_now().await;
            }
        });
        let engine = instant_engine(bus.clone(), 2);
        let gate = Arc::new(tokio::sync::Notify::new());
        let done = Arc::new(AtomicUsize::new(0));
        engine.register_handler("gate", {
            let gate = Arc::clone(&gate);
            move |_ctx: TaskContext| {
                let gate = Arc::clone(&gate);
                async move {
                    gate.notified().await;
                    Ok::<_, TaskError>(Value::Null)
                }
            }
        });
        engine.register_handler("counted", {
            let done = Arc::clone(&done);
            move |_ctx: TaskContext| {
                done.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, TaskError>(Value::Null) }
            }
        });
        // One slot stays taken by the gate until every other task has run.
        let workflow = Workflow::from_tasks(
            "w",
            "W",
            std::iter::once(Task::new("gate", "gate"))
                .chain((0..INSTANT).map(|i| Task::new(format!("t{i}"), "counted"))),
        );
        let run = tokio::spawn({
            let engine = engine.clone();
            async move { engine.execute_workflow(&workflow).await }
        });
        let all_ran = tokio::time::timeout(Duration::from_secs(30), async {
            while done.load(Ordering::SeqCst) < INSTANT {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let ran_while_gated = done.load(Ordering::SeqCst);
        gate.notify_one();
        let result = run.await.expect("the run finished").expect("valid");
        assert!(
            all_ran.is_ok(),
            "only {ran_while_gated} of {INSTANT} tasks ran while the gate held its slot"
        );
        assert_eq!(result.status, WorkflowStatus::Completed);
        bus.close().await;
        reader.await.expect("reader finished");
    });
}

#[test]
fn a_resumed_run_announces_its_size_then_each_restored_task_then_what_it_runs() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("kept", "instant"))
        .task(Task::new("also_kept", "instant"))
        .task(Task::new("rerun", "flaky").depends_on(["kept"]));
    let with_flaky = |bus, works: bool| {
        let engine = instant_engine(bus, 1);
        engine.register_handler("flaky", move |_ctx: TaskContext| async move {
            if works {
                Ok(Value::Null)
            } else {
                Err(TaskError::permanent("not yet"))
            }
        });
        engine
    };
    let (first, first_events) = run_and_collect(|bus| with_flaky(bus, false), &workflow, 64);
    assert_eq!(first.status, WorkflowStatus::Failed);
    let started = &first_events[0].1;
    assert_eq!(
        (started.total_tasks, started.restored_tasks),
        (Some(3), Some(0))
    );

    let (second, events) = two_workers().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let mut subscription = bus.subscribe("workflow.>").expect("a valid pattern");
        let engine = with_flaky(bus.clone(), true);
        let result = engine.resume(&workflow, &first).await.expect("valid");
        bus.close().await;
        let mut events = Vec::new();
        while let Some(event) = subscription.recv_event().await {
            events.push((event.subject().to_string(), event.payload().clone()));
        }
        (result, events)
    });
    assert_eq!(second.status, WorkflowStatus::Completed);
    let kinds: Vec<(&str, EngineEventKind)> = events
        .iter()
        .map(|(subject, event)| (subject.as_str(), event.kind))
        .collect();
    use EngineEventKind::*;
    assert_eq!(
        kinds,
        [
            ("workflow.w.started", WorkflowStarted),
            ("workflow.w.task.kept.restored", TaskRestored),
            ("workflow.w.task.also_kept.restored", TaskRestored),
            ("workflow.w.task.rerun.started", TaskStarted),
            ("workflow.w.task.rerun.completed", TaskCompleted),
            ("workflow.w.finished", WorkflowFinished),
        ]
    );
    let started = &events[0].1;
    assert_eq!(
        (started.total_tasks, started.restored_tasks),
        (Some(3), Some(2))
    );
    // A progress display that counts the events ending a task starts at 2/3.
    let restored = &events[1].1;
    assert!(restored.kind.is_terminal());
    assert_eq!(
        restored.attempt, 1,
        "the attempts of the run that completed it"
    );
    // The resumed run continues the first one: same run id, in events and result.
    assert_eq!(second.run_id, first.run_id);
    assert!(events.iter().all(|(_, e)| e.run_id == first.run_id));
}

/// A random DAG (up to three dependencies on earlier tasks), which tasks fail, and slots.
fn failing_dag() -> impl proptest::strategy::Strategy<Value = (Vec<Vec<usize>>, Vec<bool>, usize)> {
    use proptest::prelude::*;
    (1usize..25, 1usize..5).prop_flat_map(|(n, slots)| {
        let deps = (0..n)
            .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3)))
            .collect::<Vec<_>>();
        let failing = proptest::collection::vec(proptest::bool::weighted(0.25), n);
        (deps, failing, Just(slots))
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Through a small queue, with failures and skips: each task has one terminal event
    /// that says what its record says, and a start exactly when it ran.
    #[test]
    fn events_say_what_the_records_say((deps, failing, slots) in failing_dag()) {
        let workflow = Workflow::from_tasks(
            "w",
            "W",
            deps.iter().enumerate().map(|(i, deps)| {
                Task::new(format!("t{i}"), "work")
                    .config(serde_json::json!({"fail": failing[i]}))
                    .depends_on(deps.iter().map(|d| format!("t{d}")))
            }),
        );
        let engine_for = |bus| {
            let engine = instant_engine(bus, slots);
            engine.register_handler("work", |ctx: TaskContext| async move {
                tokio::task::yield_now().await;
                if ctx.config()["fail"] == true {
                    Err(TaskError::new("asked to fail"))
                } else {
                    Ok(Value::Null)
                }
            });
            engine
        };
        let (result, events) = run_and_collect(engine_for, &workflow, 2);
        for (id, record) in result.tasks.iter() {
            let kinds: Vec<EngineEventKind> = events
                .iter()
                .filter(|(_, e)| e.task_id.as_ref() == Some(id))
                .map(|(_, e)| e.kind)
                .collect();
            let terminal = match record.status {
                orch_core::TaskStatus::Completed => EngineEventKind::TaskCompleted,
                orch_core::TaskStatus::Failed => EngineEventKind::TaskFailed,
                orch_core::TaskStatus::Skipped => EngineEventKind::TaskSkipped,
                other => panic!("{id} ended {other}"),
            };
            let expected: Vec<EngineEventKind> = (record.attempts > 0)
                .then_some(EngineEventKind::TaskStarted)
                .into_iter()
                .chain([terminal])
                .collect();
            proptest::prop_assert_eq!(kinds, expected, "{}", id);
        }
    }
}

/// A map's instances, like tasks, wait while the publisher is behind: a subscriber that
/// reads nothing holds the run back instead of letting its events pile up, and once it
/// reads, the run goes on and every event arrives.
#[test]
fn map_instances_wait_while_the_publisher_is_behind() {
    const ITEMS: usize = 10_000;
    two_workers().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let mut stuck = bus
            .subscribe_with("workflow.>", SubscribeOptions::new().capacity(1))
            .expect("a valid pattern");
        let engine = instant_engine(bus.clone(), 2);
        let ran = Arc::new(AtomicUsize::new(0));
        engine.register_handler("list", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>((0..ITEMS).collect::<Vec<_>>())
        });
        engine.register_handler("item", {
            let ran = Arc::clone(&ran);
            move |_ctx: TaskContext| {
                ran.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, TaskError>(Value::Null) }
            }
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("list", "list"))
            .task(Task::new("each", "item").map_over("list"));
        let run = tokio::spawn({
            let engine = engine.clone();
            async move { engine.execute_workflow(&workflow).await }
        });
        // The run goes as far as it may while nobody reads, then stops (a run that did
        // not wait would stop only once every instance ran).
        let mut while_stuck = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = ran.load(Ordering::SeqCst);
            if now == while_stuck && now > 0 {
                break;
            }
            while_stuck = now;
        }
        assert!(
            while_stuck < ITEMS / 10,
            "{while_stuck} of {ITEMS} instances ran while nobody read the events"
        );
        let mut events = 0;
        while let Some(event) = stuck.recv_event().await {
            events += 1;
            if event.payload().kind == EngineEventKind::WorkflowFinished {
                break;
            }
        }
        let result = run.await.expect("the run finished").expect("valid");
        assert_eq!(result.status, WorkflowStatus::Completed);
        assert_eq!(ran.load(Ordering::SeqCst), ITEMS);
        // Started and completed for each instance and both tasks, and the run's two.
        assert_eq!(events, 2 * ITEMS + 2 * 2 + 2);
    });
}

/// Map instances whose retry pause ends while the publisher is behind are held back, and
/// start together once it catches up. The first of them to cancel the run on its first
/// poll stops the rest of that batch from starting, as the run's own start loop does.
#[test]
fn an_instance_held_for_the_publisher_that_cancels_the_run_stops_the_others() {
    const ITEMS: usize = 200;
    paused_runtime().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let mut stuck = bus
            .subscribe_with("workflow.>", SubscribeOptions::new().capacity(1))
            .expect("a valid pattern");
        let engine = instant_engine(bus.clone(), ITEMS + 1);
        // Each link of a chain ends in a pass of its own, and the publisher, stuck on
        // the first event, is soon too far behind: well before the retry pauses end.
        engine.register_handler("tick", |_ctx: TaskContext| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, TaskError>(Value::Null)
        });
        let retried = Arc::new(AtomicUsize::new(0));
        engine.register_handler("list", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>((0..ITEMS).collect::<Vec<_>>())
        });
        let seen = Arc::clone(&retried);
        // Inline: the first poll runs as the instance starts, so its cancellation is
        // there before the next one starts.
        engine.register_handler(
            "item",
            inline(move |ctx: TaskContext| {
                let outcome = match ctx.attempt() {
                    1 => Err(TaskError::new("first try")),
                    _ => Ok(Value::Null),
                };
                if ctx.attempt() > 1 && seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    ctx.cancellation().cancel();
                }
                async move { outcome }
            }),
        );
        let mut workflow = Workflow::new("w", "W")
            .task(Task::new("list", "list"))
            .task(Task::new("each", "item").map_over("list").retries(1))
            .task(Task::new("tick0", "tick"));
        for i in 1..20 {
            workflow = workflow
                .task(Task::new(format!("tick{i}"), "tick").depends_on([format!("tick{}", i - 1)]));
        }
        let run = tokio::spawn({
            let engine = engine.clone();
            async move { engine.execute_workflow(&workflow).await }
        });
        // Every first try fails while nobody reads; the retry pauses end meanwhile.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(retried.load(Ordering::SeqCst), 0, "no retry ran while held");
        while let Some(event) = stuck.recv_event().await {
            if event.payload().kind == EngineEventKind::WorkflowFinished {
                break;
            }
        }
        let result = run.await.expect("the run finished").expect("valid");
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        assert_eq!(
            retried.load(Ordering::SeqCst),
            1,
            "no instance started after the one that cancelled the run"
        );
    });
}

/// A handler polled on the run's own task that cancels the run as it fails is recorded
/// `Failed`, retries left or not, a task's or a map instance's: the run (here with
/// another task running) is cancelled, and no retry is announced.
#[test]
fn a_handler_that_cancels_the_run_as_it_fails_is_not_retried() {
    let plain = Workflow::new("w", "W").task(Task::new("a", "stop").retries(2));
    let map = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(Task::new("a", "stop").retries(2).map_over("list"));
    for (workflow, failed) in [(plain, "a"), (map, "a[0]")] {
        let workflow = workflow.task(Task::new("b", "polite"));
        two_workers().block_on(async {
            let bus: EventBus<EngineEvent> = EventBus::new();
            let mut events = bus.subscribe("workflow.>").expect("a valid pattern");
            let engine = WorkflowEngine::builder()
                .max_concurrent(2)
                .event_bus(bus.clone())
                .build()
                .expect("valid");
            engine.register_handler("polite", |ctx: TaskContext| async move {
                ctx.cancellation().cancelled().await;
                Ok::<_, TaskError>(Value::Null)
            });
            engine.register_handler("list", |_ctx: TaskContext| async move {
                Ok::<_, TaskError>(serde_json::json!([1]))
            });
            engine.register_handler(
                "stop",
                inline(|ctx: TaskContext| async move {
                    ctx.cancellation().cancel();
                    Err::<Value, _>(TaskError::new("boom"))
                }),
            );
            let result = engine.execute_workflow(&workflow).await.expect("valid");
            assert_eq!(result.status, WorkflowStatus::Cancelled);
            let record = &result.tasks[failed];
            let failed_once = (orch_core::TaskStatus::Failed, 1);
            assert_eq!((record.status, record.attempts), failed_once, "{record:?}");
            assert_eq!(record.error.as_deref(), Some("boom"));
            bus.close().await;
            let mut kinds = Vec::new();
            while let Some(delivery) = events.recv().await {
                kinds.extend(delivery.event().map(|event| event.payload().kind));
            }
            assert!(kinds.contains(&EngineEventKind::TaskFailed), "{kinds:?}");
            let retrying = EngineEventKind::TaskRetrying;
            assert!(!kinds.contains(&retrying), "{failed}: {kinds:?}");
        });
    }
}
