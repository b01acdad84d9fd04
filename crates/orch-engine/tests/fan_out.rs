//! Map tasks: one instance per element of a dependency's list, each with its own id,
//! record, retries and events; the map's result is the instances' results in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orch_core::{
    EngineEvent, EngineEventKind, Task, TaskStatus, ValidationError, Workflow, WorkflowResult,
    WorkflowStatus,
};
use orch_engine::{RunError, TaskContext, TaskError, WorkflowEngine};
use orch_events::EventBus;
use proptest::prelude::*;
use serde_json::{Value, json};

mod common;

use common::paused_runtime as runtime;

/// The statuses of the first `n` instances of `square` (`Pending` for one with no record).
fn instance_statuses(result: &WorkflowResult, n: usize) -> Vec<TaskStatus> {
    (0..n)
        .map(|i| {
            result
                .task(&format!("square[{i}]"))
                .map_or(TaskStatus::Pending, |r| r.status)
        })
        .collect()
}

/// An engine whose `list` tasks return their config's `items`, whose `square` tasks
/// square their element (sleeping longer for smaller elements, so that they finish in
/// reverse order), and whose `sum` tasks add up the list of `square`.
fn engine_with(max_concurrent: usize, calls: Arc<AtomicUsize>) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .max_concurrent(max_concurrent)
        .build()
        .expect("valid");
    register(&engine, calls);
    engine
}

fn register(engine: &WorkflowEngine, calls: Arc<AtomicUsize>) {
    engine.register_handler("list", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.config()["items"].clone())
    });
    engine.register_handler("square", move |ctx: TaskContext| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let x: i64 = ctx.map_item()?;
            tokio::time::sleep(Duration::from_millis(100 - x.clamp(0, 99) as u64)).await;
            Ok::<_, TaskError>(x * x)
        }
    });
    engine.register_handler("sum", |ctx: TaskContext| async move {
        let squares: Vec<i64> = ctx.input("square")?;
        Ok::<_, TaskError>(json!({"squares": squares, "sum": squares.iter().sum::<i64>()}))
    });
}

fn pipeline(items: Value) -> Workflow {
    Workflow::new("w", "W")
        .task(Task::new("list", "list").config(json!({ "items": items })))
        .task(Task::new("square", "square").map_over("list"))
        .task(Task::new("sum", "sum").depends_on(["square"]))
}

fn run(engine: &WorkflowEngine, workflow: &Workflow) -> WorkflowResult {
    runtime()
        .block_on(engine.execute_workflow(workflow))
        .expect("valid")
}

#[test]
fn each_element_gets_an_instance_and_dependents_see_the_results_in_order() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = engine_with(3, Arc::clone(&calls));
    let result = run(&engine, &pipeline(json!([1, 2, 3, 4, 5])));
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(
        result.task("sum").and_then(|r| r.result.clone()),
        Some(json!({"squares": [1, 4, 9, 16, 25], "sum": 55}))
    );
    let square = result.task("square").expect("the map's record");
    assert_eq!(square.status, TaskStatus::Completed);
    assert_eq!(square.result, Some(json!([1, 4, 9, 16, 25])));
    let ids: Vec<&str> = result.tasks.ids().map(|id| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "list",
            "square",
            "sum",
            "square[0]",
            "square[1]",
            "square[2]",
            "square[3]",
            "square[4]"
        ]
    );
    for (i, x) in [1, 2, 3, 4, 5].into_iter().enumerate() {
        let record = result
            .task(&format!("square[{i}]"))
            .expect("an instance record");
        assert_eq!(record.status, TaskStatus::Completed);
        assert_eq!(record.result, Some(json!(x * x)));
        assert_eq!(record.attempts, 1);
        assert!(record.start_time.is_some() && record.end_time.is_some());
    }
    // The metrics count instances as tasks and still find the critical path.
    let metrics = result.metrics();
    assert_eq!(metrics.total_tasks, 8);
    assert_eq!(
        metrics.critical_path.first().map(|id| id.as_str()),
        Some("list")
    );
}

#[test]
fn instances_run_as_tasks_of_their_own_on_a_multi_threaded_runtime() {
    let runtime = common::two_workers();
    let engine = WorkflowEngine::builder()
        .max_concurrent(4)
        .build()
        .expect("valid");
    register(&engine, Arc::new(AtomicUsize::new(0)));
    engine.register_handler("square", |ctx: TaskContext| async move {
        let x: i64 = ctx.map_item()?;
        tokio::task::yield_now().await;
        Ok::<_, TaskError>(x * x)
    });
    let items: Vec<i64> = (0..50).collect();
    let result = runtime
        .block_on(engine.execute_workflow(&pipeline(json!(items))))
        .expect("valid");
    let squares: Vec<i64> = items.iter().map(|x| x * x).collect();
    assert_eq!(
        result.task("square").and_then(|r| r.result.clone()),
        Some(json!(squares))
    );
    assert_eq!(result.tasks.len(), 53);
}

#[test]
fn a_resumed_run_keeps_a_completed_maps_instance_records() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = engine_with(2, Arc::clone(&calls));
    let fails = Arc::new(AtomicUsize::new(1));
    let left = Arc::clone(&fails);
    engine.register_handler("sum", move |ctx: TaskContext| {
        let left = Arc::clone(&left);
        async move {
            if left.fetch_sub(1, Ordering::SeqCst) > 0 {
                return Err(TaskError::permanent("not yet"));
            }
            let squares: Vec<i64> = ctx.input("square")?;
            Ok::<_, TaskError>(json!(squares.iter().sum::<i64>()))
        }
    });
    let workflow = pipeline(json!([1, 2, 3]));
    let first = runtime()
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    assert_eq!(first.status, WorkflowStatus::Failed);
    let resumed = runtime()
        .block_on(engine.resume(&workflow, &first))
        .expect("valid");
    assert_eq!(resumed.status, WorkflowStatus::Completed);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the map did not run again");
    assert_eq!(
        resumed.task("sum").and_then(|r| r.result.clone()),
        Some(json!(14))
    );
    for i in 0..3 {
        let id = format!("square[{i}]");
        assert_eq!(resumed.task(&id), first.task(&id), "{id}");
    }
    assert_eq!(resumed.tasks.len(), 6);
}

#[test]
fn an_empty_list_gives_an_empty_result_without_running_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = engine_with(2, Arc::clone(&calls));
    let result = run(&engine, &pipeline(json!([])));
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        result.task("square").and_then(|r| r.result.clone()),
        Some(json!([]))
    );
    assert_eq!(
        result.task("sum").and_then(|r| r.result.clone()),
        Some(json!({"squares": [], "sum": 0}))
    );
    assert_eq!(result.tasks.len(), 3);
}

/// A map over a `Shared` value goes over its summary: one that is not a list fails the
/// map, saying the value is shared (not that the handler returned some other JSON), and
/// one that is a list is mapped over.
#[test]
fn a_shared_source_fails_the_map_saying_it_is_shared() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = engine_with(2, Arc::clone(&calls));
    engine.register_handler("shared_list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(orch_engine::Shared::new(vec![1, 2, 3]).summary(json!({"n": 3})))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "shared_list"))
        .task(Task::new("square", "square").map_over("list"));
    let result = run(&engine, &workflow);
    let error = result.task("square").and_then(|r| r.error.clone());
    let error = error.expect("failed");
    assert!(error.contains("a shared `alloc::vec::Vec<i32>`"), "{error}");
    assert!(error.contains("summary is not a list"), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    engine.register_handler("shared_list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(orch_engine::Shared::new(vec![1, 2, 3]).summary(json!([1, 2, 3])))
    });
    let result = run(&engine, &workflow);
    let square = result.task("square").and_then(|r| r.result.clone());
    assert_eq!(square, Some(json!([1, 4, 9])));
}

#[test]
fn a_source_that_is_not_a_list_fails_the_map_naming_the_task_and_the_type() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = engine_with(2, Arc::clone(&calls));
    let result = run(&engine, &pipeline(json!({"a": 1})));
    assert_eq!(result.status, WorkflowStatus::Failed);
    let square = result.task("square").expect("recorded");
    assert_eq!(square.status, TaskStatus::Failed);
    assert_eq!(
        square.error.as_deref(),
        Some("task `square` maps over the output of `list`, which is an object, not a list")
    );
    assert_eq!(
        result.task("sum").map(|r| r.status),
        Some(TaskStatus::Skipped)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn more_elements_than_the_task_allows_fail_the_map_before_any_instance_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = engine_with(2, Arc::clone(&calls));
    let mut workflow = pipeline(json!([1, 2, 3, 4, 5]));
    workflow = Workflow::from_tasks(
        "w",
        "W",
        workflow
            .tasks()
            .cloned()
            .map(|task| match task.task_id.as_str() {
                "square" => task.max_instances(3),
                _ => task,
            }),
    );
    let result = run(&engine, &workflow);
    let square = result.task("square").expect("recorded");
    assert_eq!(square.status, TaskStatus::Failed);
    assert_eq!(
        square.error.as_deref(),
        Some(
            "task `square` maps over a list of 5 elements from `list`, more than its limit of \
             3 instances"
        )
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(result.tasks.len(), 3, "no instance records");
}

#[test]
fn the_engine_wide_limit_applies_to_maps_without_their_own() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = WorkflowEngine::builder()
        .max_map_instances(2)
        .build()
        .expect("valid");
    register(&engine, Arc::clone(&calls));
    let result = run(&engine, &pipeline(json!([1, 2, 3])));
    let error = result
        .task("square")
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(
        error.contains("more than its limit of 2 instances"),
        "{error}"
    );
    let result = run(&engine, &pipeline(json!([1, 2])));
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(orch_engine::DEFAULT_MAX_INSTANCES, 10_000);
}

#[test]
fn each_instance_retries_on_its_own() {
    let engine = WorkflowEngine::new();
    register(&engine, Arc::new(AtomicUsize::new(0)));
    // Odd elements fail their first attempt.
    engine.register_handler("square", |ctx: TaskContext| async move {
        let x: i64 = ctx.map_item()?;
        if x % 2 == 1 && ctx.attempt() == 1 {
            return Err(TaskError::new(format!("flaky {x}")));
        }
        Ok::<_, TaskError>(x * x)
    });
    let workflow = Workflow::from_tasks(
        "w",
        "W",
        pipeline(json!([1, 2, 3, 4]))
            .tasks()
            .cloned()
            .map(|task| match task.task_id.as_str() {
                "square" => task.retries(1).backoff(orch_core::Backoff {
                    jitter: false,
                    ..Default::default()
                }),
                _ => task,
            }),
    );
    let result = run(&engine, &workflow);
    assert_eq!(result.status, WorkflowStatus::Completed);
    let attempts: Vec<u32> = (0..4)
        .map(|i| {
            result
                .task(&format!("square[{i}]"))
                .map_or(0, |r| r.attempts)
        })
        .collect();
    assert_eq!(attempts, [2, 1, 2, 1]);
    assert_eq!(
        result.task("square").and_then(|r| r.result.clone()),
        Some(json!([1, 4, 9, 16]))
    );
}

/// An instance that fails, with retries left, once a sibling has failed its map, or
/// while it waits to retry when one does, is not tried again, and its map does not wait
/// out the pause: the map fails at once, whichever instance fails first.
#[test]
fn an_instance_with_retries_left_stops_when_a_sibling_fails_the_map() {
    // The flaky instance fails (and may retry, after an hour) before or after the broken
    // one fails for good.
    for (flaky_after, broken_after) in [(0, 10), (20, 10)] {
        let engine = engine_with(2, Arc::new(AtomicUsize::new(0)));
        engine.register_handler("square", move |ctx: TaskContext| async move {
            let x: i64 = ctx.map_item()?;
            let after = if x == 1 { flaky_after } else { broken_after };
            tokio::time::sleep(Duration::from_millis(after)).await;
            match x {
                1 => Err::<i64, _>(TaskError::new("flaky")),
                _ => Err(TaskError::permanent("broken")),
            }
        });
        let an_hour = Duration::from_secs(3600);
        let workflow = Workflow::new("w", "W")
            .task(Task::new("list", "list").config(json!({"items": [0, 1]})))
            .task(
                Task::new("square", "square")
                    .map_over("list")
                    .retries(1)
                    .backoff(orch_core::Backoff {
                        initial: an_hour,
                        max: an_hour,
                        jitter: false,
                        ..orch_core::Backoff::default()
                    }),
            );
        let (result, waited) = runtime().block_on(async {
            let started = tokio::time::Instant::now();
            let result = engine.execute_workflow(&workflow).await.expect("valid");
            (result, started.elapsed())
        });
        let order = format!("flaky after {flaky_after} ms, broken after {broken_after} ms");
        // The runtime's clock is paused: it moves only as far as the run waited.
        assert!(
            waited < an_hour,
            "{order}: the map waited out the pause: {waited:?}"
        );
        let retried = result.task("square[1]").expect("a record");
        assert_eq!(retried.attempts, 1, "{order}: not tried again");
        assert_eq!(retried.status, TaskStatus::Failed, "{order}");
        assert!(
            retried
                .error
                .as_deref()
                .unwrap_or_default()
                .ends_with("flaky (not tried again: a sibling failed the map)"),
            "{order}: {retried:?}"
        );
        let map = result.task("square").expect("a record");
        assert_eq!(map.status, TaskStatus::Failed, "{order}");
        assert!(
            map.error.as_deref().unwrap_or_default().contains("broken"),
            "{order}: {map:?}"
        );
    }
}

#[test]
fn a_failed_instance_fails_the_map_skips_the_rest_and_its_dependents() {
    let engine = WorkflowEngine::new();
    register(&engine, Arc::new(AtomicUsize::new(0)));
    engine.register_handler("square", |ctx: TaskContext| async move {
        let x: i64 = ctx.map_item()?;
        if x == 3 {
            return Err(TaskError::permanent("three is not allowed"));
        }
        Ok::<_, TaskError>(x * x)
    });
    let result = run(&engine, &pipeline(json!([1, 2, 3, 4, 5])));
    assert_eq!(result.status, WorkflowStatus::Failed);
    let statuses = instance_statuses(&result, 5);
    use TaskStatus::{Completed, Failed, Skipped};
    assert_eq!(statuses, [Completed, Completed, Failed, Skipped, Skipped]);
    assert_eq!(
        result
            .task("square")
            .and_then(|r| r.error.clone())
            .as_deref(),
        Some("instance `square[2]` failed: three is not allowed")
    );
    assert_eq!(result.task("sum").map(|r| r.status), Some(Skipped));
}

#[test]
fn reading_an_element_outside_a_map_is_a_clear_error() {
    let engine = WorkflowEngine::new();
    engine.register_handler("t", |ctx: TaskContext| async move {
        assert_eq!(ctx.item(), None);
        assert_eq!(ctx.item_index(), None);
        ctx.map_item::<i64>()
    });
    let result = run(&engine, &Workflow::new("w", "W").task(Task::new("a", "t")));
    assert_eq!(
        result.task("a").and_then(|r| r.error.clone()).as_deref(),
        Some("task `a` read a map element, but it is not a map task (see `Task::map_over`)")
    );
}

/// An instance's id is no task of the workflow: reading it says how to read the map.
#[test]
fn reading_an_instance_by_its_id_says_to_read_the_map() {
    let engine = engine_with(4, Arc::new(AtomicUsize::new(0)));
    engine.register_handler("first", |ctx: TaskContext| async move {
        ctx.input::<i64>("square[0]")
    });
    let workflow = pipeline(json!([1, 2]))
        .task(Task::new("first", "first").depends_on(["square"]))
        .task(Task::new("apart", "first"));
    let result = run(&engine, &workflow);
    assert_eq!(
        result
            .task("first")
            .and_then(|r| r.error.clone())
            .as_deref(),
        Some(
            "task `first` read the output of `square[0]`, which is not a task of workflow `w` \
             but an instance of map task `square`: read `square`, whose output lists its \
             instances' outputs in order"
        )
    );
    // One that does not depend on the map is not sent to read it.
    assert!(
        (result.task("apart").and_then(|r| r.error.clone())).is_some_and(
            |e| e.ends_with("instance of map task `square`, which it does not depend on")
        ),
    );
}

#[test]
fn handlers_see_their_element_and_its_position() {
    let engine = WorkflowEngine::builder()
        .max_concurrent(4)
        .build()
        .expect("valid");
    register(&engine, Arc::new(AtomicUsize::new(0)));
    engine.register_handler("square", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(json!([
            ctx.item_index(),
            ctx.item(),
            ctx.task_id().as_str()
        ]))
    });
    let result = run(&engine, &pipeline(json!(["a", {"b": 1}])));
    assert_eq!(
        result.task("square").and_then(|r| r.result.clone()),
        Some(json!([[0, "a", "square"], [1, {"b": 1}, "square"]]))
    );
}

#[test]
fn a_map_over_a_task_that_is_not_a_dependency_does_not_run() {
    let engine = WorkflowEngine::new();
    register(&engine, Arc::new(AtomicUsize::new(0)));
    let mut square = Task::new("square", "square");
    square.map = Some(orch_core::MapSpec::over("list"));
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(square);
    let error = runtime()
        .block_on(engine.execute_workflow(&workflow))
        .expect_err("invalid");
    let RunError::Invalid(errors) = error else {
        panic!("expected validation errors, got {error}");
    };
    assert!(matches!(
        errors.as_slice(),
        [ValidationError::InvalidOption { task, option: "map.over", .. }] if task == "square"
    ));
}

#[test]
fn a_cancelled_run_cancels_the_instances_that_had_not_ended() {
    runtime().block_on(async {
        let engine = engine_with(2, Arc::new(AtomicUsize::new(0)));
        // Elements after the first wait for the cancellation.
        engine.register_handler("square", |ctx: TaskContext| async move {
            let x: i64 = ctx.map_item()?;
            if x > 1 {
                ctx.cancellation().cancelled().await;
                return Err(TaskError::new("stopped"));
            }
            Ok::<_, TaskError>(x)
        });
        let run = engine.run(&pipeline(json!([1, 2, 3, 4])));
        let token = run.cancellation_token();
        let runner = tokio::spawn(run);
        tokio::time::sleep(Duration::from_millis(50)).await;
        token.cancel();
        let result = runner.await.expect("no panic").expect("valid");
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        let statuses = instance_statuses(&result, 4);
        use TaskStatus::{Cancelled, Completed};
        assert_eq!(statuses, [Completed, Cancelled, Cancelled, Cancelled]);
        assert_eq!(result.task("square").map(|r| r.status), Some(Cancelled));
        assert_eq!(result.task("sum").map(|r| r.status), Some(Cancelled));
    });
}

/// An instance that cancels the run in its first poll: its siblings, started in the same
/// pass, do not start after it. In a pool, a sibling dropped so once gave back a pool
/// slot under its own index, past the plan's tasks, and the run panicked.
#[test]
fn an_instance_cancelling_the_run_stops_its_siblings_from_starting() {
    for pool in [false, true] {
        runtime().block_on(async {
            let calls = Arc::new(AtomicUsize::new(0));
            // Two slots, both the map's: no task of the plan could start to notice.
            let mut builder = WorkflowEngine::builder().max_concurrent(2);
            if pool {
                builder = builder.pool("p", 2);
            }
            let engine = builder.build().expect("valid");
            register(&engine, Arc::new(AtomicUsize::new(0)));
            let seen = Arc::clone(&calls);
            engine.register_handler("square", move |ctx: TaskContext| {
                let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if first {
                        ctx.cancellation().cancel();
                        // Still running, so its slot stays taken.
                        tokio::task::yield_now().await;
                    }
                    Ok::<_, TaskError>(())
                }
            });
            let mut square = Task::new("square", "square").map_over("list");
            if pool {
                square = square.pool("p");
            }
            let workflow = Workflow::new("w", "W")
                .task(Task::new("list", "list").config(json!({ "items": [1, 2, 3, 4] })))
                .task(square)
                .task(Task::new("sum", "sum").depends_on(["square"]));
            let runner = tokio::spawn(async move { engine.execute_workflow(&workflow).await });
            let result = runner.await.expect("no panic").expect("valid");
            assert_eq!(result.status, WorkflowStatus::Cancelled, "pool: {pool}");
            assert_eq!(calls.load(Ordering::SeqCst), 1, "one instance started");
            let statuses = instance_statuses(&result, 4);
            assert_eq!(statuses[1..], [TaskStatus::Cancelled; 3], "pool: {pool}");
        });
    }
}

/// An instance that cancels the run as it fails its map, while the map still has
/// instances to start, with nothing else left to run: the run ends with its tasks'
/// status. It once found the map's leftover turn to start more instances and, the run
/// being cancelled, waited for it without ever waking: the run's poll never returned.
#[test]
fn an_instance_failing_its_map_as_it_cancels_the_run_ends_the_run() {
    let (sender, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = runtime().block_on(async {
            // One slot: the map's second instance waits for it.
            let engine = engine_with(1, Arc::new(AtomicUsize::new(0)));
            engine.register_handler("square", |ctx: TaskContext| async move {
                ctx.cancellation().cancel();
                Err::<(), _>(TaskError::new("fatal"))
            });
            let workflow = Workflow::new("w", "W")
                .task(Task::new("list", "list").config(json!({ "items": [1, 2] })))
                .task(Task::new("square", "square").map_over("list"));
            engine.execute_workflow(&workflow).await
        });
        let _ = sender.send(result);
    });
    // A guard against a poll that never returns, not a measure.
    let result = ended
        .recv_timeout(Duration::from_secs(60))
        .expect("the run ended")
        .expect("valid");
    let status = |id: &str| result.task(id).map(|t| t.status);
    assert_eq!(status("list"), Some(TaskStatus::Completed));
    assert_eq!(status("square"), Some(TaskStatus::Failed));
    assert_eq!(status("square[0]"), Some(TaskStatus::Failed));
    assert_eq!(result.status, WorkflowStatus::Failed);
}

/// An instance that fails on hearing of a cancellation its sibling made in the same pass
/// of the run ends cancelled, as a task does.
#[test]
fn an_instance_failing_on_a_cancellation_its_sibling_made_ends_cancelled() {
    runtime().block_on(async {
        let engine = engine_with(2, Arc::new(AtomicUsize::new(0)));
        engine.register_handler("square", |ctx: TaskContext| async move {
            let x: i64 = ctx.map_item()?;
            if x == 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ctx.cancellation().cancel();
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            ctx.cancellation().cancelled().await;
            Err::<i64, _>(TaskError::new("interrupted"))
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("list", "list").config(json!({ "items": [1, 2] })))
            .task(Task::new("square", "square").map_over("list"));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        let second = result.task("square[1]").expect("the second instance");
        assert_eq!(
            (second.status, second.error.as_deref()),
            (
                TaskStatus::Cancelled,
                Some("the run was cancelled; the handler ended with: interrupted")
            )
        );
        assert_eq!(result.status, WorkflowStatus::Cancelled);
    });
}

/// An instance waiting out its retry's backoff when the run is cancelled, in a pool: the
/// pause ends with the cancellation, and the instance is cancelled after one attempt.
#[test]
fn a_cancelled_run_with_pools_drops_an_instance_waiting_to_retry() {
    runtime().block_on(async {
        let engine = WorkflowEngine::builder()
            .max_concurrent(4)
            .pool("p", 2)
            .build()
            .expect("valid");
        register(&engine, Arc::new(AtomicUsize::new(0)));
        engine.register_handler("square", |ctx: TaskContext| async move {
            let x: i64 = ctx.map_item()?;
            if x == 2 {
                ctx.cancellation().cancelled().await;
            }
            Err::<i64, _>(TaskError::new("flaky"))
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("list", "list").config(json!({ "items": [1, 2] })))
            .task(
                Task::new("square", "square")
                    .map_over("list")
                    .pool("p")
                    .retries(3),
            )
            .task(Task::new("sum", "sum").depends_on(["square"]));
        let run = engine.run(&workflow);
        let token = run.cancellation_token();
        let runner = tokio::spawn(run);
        // `square[0]` failed at once and waits out its backoff (50 to 100 ms).
        tokio::time::sleep(Duration::from_millis(10)).await;
        token.cancel();
        let result = runner.await.expect("no panic").expect("valid");
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        let first = result.task("square[0]").expect("a record");
        assert_eq!((first.status, first.attempts), (TaskStatus::Cancelled, 1));
        assert_eq!(
            result.task("sum").map(|r| r.status),
            Some(TaskStatus::Cancelled)
        );
    });
}

#[test]
fn each_instance_has_its_own_events() {
    let rt = runtime();
    let (result, events) = rt.block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let mut subscription = bus.subscribe("workflow.w.task.>").expect("a valid pattern");
        let engine = WorkflowEngine::builder()
            .event_bus(bus.clone())
            .build()
            .expect("valid");
        register(&engine, Arc::new(AtomicUsize::new(0)));
        engine.register_handler("square", |ctx: TaskContext| async move {
            let x: i64 = ctx.map_item()?;
            if x == 2 && ctx.attempt() == 1 {
                return Err(TaskError::new("once"));
            }
            Ok::<_, TaskError>(x * x)
        });
        let workflow = Workflow::from_tasks(
            "w",
            "W",
            pipeline(json!([1, 2]))
                .tasks()
                .cloned()
                .map(|task| match task.task_id.as_str() {
                    "square" => task.retries(1),
                    _ => task,
                }),
        );
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        bus.close().await;
        let mut events = Vec::new();
        while let Some(event) = subscription.recv_event().await {
            events.push((event.subject().to_string(), event.payload().clone()));
        }
        (result, events)
    });
    assert_eq!(result.status, WorkflowStatus::Completed);
    let of = |id: &str| -> Vec<(String, EngineEventKind, u32)> {
        events
            .iter()
            .filter(|(_, e)| e.task_id.as_ref().is_some_and(|t| t == id))
            .map(|(subject, e)| (subject.clone(), e.kind, e.attempt))
            .collect()
    };
    use EngineEventKind::{TaskCompleted, TaskRetrying, TaskStarted};
    assert_eq!(
        of("square[0]"),
        [
            (
                "workflow.w.task.square[0].started".to_owned(),
                TaskStarted,
                1
            ),
            (
                "workflow.w.task.square[0].completed".to_owned(),
                TaskCompleted,
                1
            ),
        ]
    );
    let second = of("square[1]");
    assert_eq!(
        second
            .iter()
            .map(|(_, kind, attempt)| (*kind, *attempt))
            .collect::<Vec<_>>(),
        [(TaskStarted, 1), (TaskRetrying, 1), (TaskCompleted, 2)]
    );
    // Its retrying event gives the pause before the next attempt, as a task's does.
    let initial = orch_core::Backoff::default().initial;
    let retrying = events.iter().find(|(_, e)| e.kind == TaskRetrying);
    let pause = retrying.and_then(|(_, e)| e.duration);
    assert!(
        pause.is_some_and(|p| p <= initial && p >= initial / 2),
        "{pause:?}"
    );
    let square: Vec<EngineEventKind> = of("square").into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(square, [TaskStarted, TaskCompleted]);
    for (_, event) in &events {
        let id = event.task_id.as_ref().map(|id| id.as_str());
        let expected = match id {
            Some("square[0]") => Some(0),
            Some("square[1]") => Some(1),
            _ => None,
        };
        assert_eq!(event.map_item, expected, "{id:?}");
    }
    let instance = events
        .iter()
        .find(|(_, e)| e.task_id.as_ref().is_some_and(|t| t == "square[1]"))
        .map(|(_, e)| e.task_type.as_deref())
        .expect("an event");
    assert_eq!(instance, Some("square"));
}

/// The reference: what the map computes, element by element.
fn reference(x: i64) -> i64 {
    x.wrapping_mul(3).wrapping_add(1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any list and any concurrency, the map's result is the reference function
    /// applied to each element, in order; and each instance's record holds its own.
    #[test]
    fn the_result_is_the_reference_mapped_in_order(
        items in proptest::collection::vec(any::<i64>(), 0..40),
        max_concurrent in 1usize..5,
        waits in proptest::collection::vec(0u64..5, 40),
    ) {
        let engine = WorkflowEngine::builder().max_concurrent(max_concurrent).build().expect("valid");
        register(&engine, Arc::new(AtomicUsize::new(0)));
        let waits = Arc::new(waits);
        engine.register_handler("square", move |ctx: TaskContext| {
            let waits = Arc::clone(&waits);
            async move {
                let x: i64 = ctx.map_item()?;
                let i = ctx.item_index().unwrap_or_default();
                tokio::time::sleep(Duration::from_millis(waits[i % waits.len()])).await;
                Ok::<_, TaskError>(reference(x))
            }
        });
        let result = run(&engine, &pipeline(json!(items)));
        let expected: Vec<i64> = items.iter().copied().map(reference).collect();
        prop_assert_eq!(result.task("square").and_then(|r| r.result.clone()), Some(json!(expected)));
        for (i, y) in expected.iter().enumerate() {
            let record = result.task(&format!("square[{i}]"));
            prop_assert_eq!(record.and_then(|r| r.result.clone()), Some(json!(y)));
        }
        prop_assert_eq!(result.tasks.len(), 3 + items.len());
    }
}

/// A run cancelled while a map's instances run: every instance's events end with a final
/// one matching its record (those that never started are cancelled, with an event), and
/// a map whose instances had all started settles as they finish in the grace period.
#[test]
fn a_cancelled_map_ends_every_instance_with_an_event_and_settles_when_all_had_started() {
    for (items, map_status) in [
        (json!([1, 2, 3, 4, 5, 6]), TaskStatus::Cancelled),
        (json!([1, 2]), TaskStatus::Completed),
    ] {
        let (result, events) = runtime().block_on(async {
            let bus: EventBus<EngineEvent> = EventBus::new();
            let mut subscription = bus.subscribe("workflow.w.task.>").expect("a valid pattern");
            let engine = WorkflowEngine::builder()
                .max_concurrent(2)
                .event_bus(bus.clone())
                .build()
                .expect("valid");
            // `square` sleeps about 100 ms and does not watch its cancellation token.
            register(&engine, Arc::new(AtomicUsize::new(0)));
            let run = engine.run(&pipeline(items.clone()));
            let token = run.cancellation_token();
            let runner = tokio::spawn(run);
            tokio::time::sleep(Duration::from_millis(20)).await;
            token.cancel();
            let result = runner.await.expect("no panic").expect("valid");
            bus.close().await;
            let mut events = Vec::new();
            while let Some(event) = subscription.recv_event().await {
                events.push(event.payload().clone());
            }
            (result, events)
        });
        assert_eq!(result.status, WorkflowStatus::Cancelled);
        assert_eq!(result.task("square").map(|r| r.status), Some(map_status));
        let count = items.as_array().map_or(0, Vec::len);
        for i in 0..count {
            let id = format!("square[{i}]");
            let record = result.task(&id).expect("an instance record");
            let last = events
                .iter()
                .rev()
                .find(|e| e.task_id.as_ref().is_some_and(|t| t.as_str() == id))
                .map(|e| e.kind);
            let expected = match record.status {
                TaskStatus::Completed => EngineEventKind::TaskCompleted,
                TaskStatus::Cancelled => EngineEventKind::TaskCancelled,
                other => panic!("{id}: {other:?}"),
            };
            assert_eq!(last, Some(expected), "{id}");
        }
        // Instances end before their map, as in a run that was not stopped.
        let position = |id: &str| {
            events
                .iter()
                .rposition(|e| e.task_id.as_ref().is_some_and(|t| t.as_str() == id))
        };
        let map_end = position("square").expect("the map's last event");
        for i in 0..count {
            let instance_end = position(&format!("square[{i}]")).expect("an event");
            assert!(instance_end < map_end, "square[{i}] ended after its map");
        }
    }
}

/// Records each start (`label`) in order, and how many instances run at most at once.
#[derive(Default)]
struct Starts {
    log: std::sync::Mutex<Vec<String>>,
    running: AtomicUsize,
    most: AtomicUsize,
}

impl Starts {
    fn started(&self, label: String) {
        self.log.lock().expect("the log").push(label);
    }

    fn position(&self, label: &str) -> usize {
        let log = self.log.lock().expect("the log");
        log.iter()
            .position(|l| l == label)
            .unwrap_or_else(|| panic!("`{label}` never started: {log:?}"))
    }
}

/// [`engine_with`]'s engine, whose `wait` tasks also sleep for their config's `ms`, and
/// whose `step` instances sleep 50 ms, counted in `starts`.
fn timed_engine(max_concurrent: usize, starts: &Arc<Starts>) -> WorkflowEngine {
    let engine = engine_with(max_concurrent, Arc::default());
    engine.register_handler("wait", |ctx: TaskContext| async move {
        let ms = ctx.config()["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, TaskError>(())
    });
    let counted = Arc::clone(starts);
    engine.register_handler("step", move |ctx: TaskContext| {
        let starts = Arc::clone(&counted);
        async move {
            starts.started(format!("step[{}]", ctx.item_index().unwrap_or(0)));
            let now = starts.running.fetch_add(1, Ordering::SeqCst) + 1;
            starts.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            starts.running.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, TaskError>(())
        }
    });
    engine
}

#[test]
fn a_map_that_started_on_one_slot_widens_as_slots_free_up() {
    let starts = Arc::new(Starts::default());
    let engine = timed_engine(3, &starts);
    // The map starts while two slow tasks hold two of the three slots.
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list").config(json!({"items": [1, 2, 3, 4, 5, 6]})))
        .task(Task::new("slow", "wait").config(json!({"ms": 120})))
        .task(Task::new("slower", "wait").config(json!({"ms": 120})))
        .task(Task::new("step", "step").map_over("list"));
    assert_eq!(run(&engine, &workflow).status, WorkflowStatus::Completed);
    assert_eq!(
        starts.most.load(Ordering::SeqCst),
        3,
        "the map used every free slot"
    );
}

#[test]
fn a_task_ranked_before_a_running_map_gets_the_next_slot_one_of_its_instances_frees() {
    let starts = Arc::new(Starts::default());
    let engine = timed_engine(2, &starts);
    let attempts = Arc::new(AtomicUsize::new(0));
    let tried = Arc::clone(&attempts);
    let log = Arc::clone(&starts);
    // `urgent` fails at once, and waits 10 ms to retry while the map takes both slots.
    engine.register_handler("urgent", move |_ctx: TaskContext| {
        let attempt = tried.fetch_add(1, Ordering::SeqCst) + 1;
        log.started(format!("urgent#{attempt}"));
        async move {
            match attempt {
                1 => Err(TaskError::new("not yet")),
                _ => Ok(()),
            }
        }
    });
    let retry_soon = orch_core::Backoff {
        initial: Duration::from_millis(10),
        jitter: false,
        ..orch_core::Backoff::default()
    };
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list").config(json!({"items": [1, 2, 3, 4, 5, 6]})))
        .task(
            Task::new("urgent", "urgent")
                .priority(10)
                .retries(1)
                .backoff(retry_soon),
        )
        .task(Task::new("step", "step").map_over("list"));
    assert_eq!(run(&engine, &workflow).status, WorkflowStatus::Completed);
    assert!(
        starts.position("urgent#2") < starts.position("step[3]"),
        "{:?}",
        starts.log.lock().expect("the log")
    );
}

/// Instances that return shared values give their map a list of the values' summaries:
/// a dependent reads that list, and asking the map for a shared value is an error.
#[test]
fn a_map_of_shared_values_passes_on_their_summaries() {
    struct Frame(i64);
    let engine = WorkflowEngine::new();
    register(&engine, Arc::new(AtomicUsize::new(0)));
    engine.register_handler("frame", |ctx: TaskContext| async move {
        let x: i64 = ctx.map_item()?;
        Ok::<_, TaskError>(orch_engine::Shared::new(Frame(x)).summary(json!({ "x": x })))
    });
    engine.register_handler("read", |ctx: TaskContext| async move {
        let shared = ctx.shared::<Frame>("frames").map(|frame| frame.0);
        let error = shared.expect_err("the map's output is JSON").to_string();
        Ok::<_, TaskError>(json!({ "list": ctx.input_json("frames")?.clone(), "error": error }))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list").config(json!({ "items": [1, 2] })))
        .task(Task::new("frames", "frame").map_over("list"))
        .task(Task::new("read", "read").depends_on(["frames"]));
    let result = run(&engine, &workflow);
    let read = result
        .task("read")
        .and_then(|r| r.result.clone())
        .expect("read ran");
    assert_eq!(read["list"], json!([{ "x": 1 }, { "x": 2 }]));
    assert!(
        read["error"]
            .as_str()
            .is_some_and(|e| e.contains("`frames` returned JSON, not a shared")),
        "{read}"
    );
}
