//! What a cached result stands for: the inputs of named dependencies (not only their
//! values in order), and a handler's answer in a run that was not cancelled.

use std::sync::Arc;
use std::time::Duration;

use orch_core::{Task, TaskStatus, Workflow, WorkflowResult};
use orch_engine::{CacheStore, MemoryCache, TaskContext, TaskError, WorkflowEngine};
use serde_json::{Value, json};

fn run(engine: &WorkflowEngine, workflow: &Workflow) -> WorkflowResult {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(engine.execute_workflow(workflow))
        .expect("valid")
}

/// An engine caching in `store`, whose `source` tasks return their config's `value`.
fn engine(store: &Arc<MemoryCache>) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .cache_store(Arc::clone(store) as Arc<dyn CacheStore>)
        .build()
        .expect("valid");
    engine.register_handler("source", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.config()["value"].clone())
    });
    engine
}

/// The same values, in the same order, from dependencies with other ids are other
/// inputs: a handler reads its inputs by id.
#[test]
fn the_same_values_from_other_dependencies_miss() {
    let store = Arc::new(MemoryCache::default());
    let engine = engine(&store);
    engine.register_handler("difference", |ctx: TaskContext| async move {
        let a = ctx.input_json("a")?.as_i64().unwrap_or(0);
        let b = ctx.input_json("b")?.as_i64().unwrap_or(0);
        Ok::<_, TaskError>(json!(a - b))
    });
    let workflow = |a: i64, b: i64, order: [&str; 2]| {
        Workflow::new("w", "W")
            .task(Task::new("a", "source").config(json!({ "value": a })))
            .task(Task::new("b", "source").config(json!({ "value": b })))
            .task(Task::new("d", "difference").depends_on(order).cache(true))
    };
    let first = run(&engine, &workflow(1, 2, ["a", "b"]));
    assert_eq!(first.tasks["d"].result, Some(json!(-1)));
    // In dependency order the values are again 1 and 2, but `a` is now 2.
    let second = run(&engine, &workflow(2, 1, ["b", "a"]));
    assert!(!second.tasks["d"].cached, "{:?}", second.tasks["d"].result);
    assert_eq!(second.tasks["d"].result, Some(json!(1)));
    assert_eq!(store.len(), 2);
}

/// What identifies a result is the task's type, configuration and inputs, not its id:
/// another task with the same ones is served the stored result (as the docs of
/// `Task::cache` warn), while a different configuration runs.
#[test]
fn another_task_with_the_same_type_configuration_and_inputs_shares_the_result() {
    let store = Arc::new(MemoryCache::default());
    let engine = engine(&store);
    let workflow = |id: &str, value: i64| {
        Workflow::new("w", "W").task(
            Task::new(id, "source")
                .config(json!({ "value": value }))
                .cache(true),
        )
    };
    let first = run(&engine, &workflow("notify_ops", 1));
    assert!(!first.tasks["notify_ops"].cached);
    let shared = run(&engine, &workflow("notify_dev", 1));
    assert!(
        shared.tasks["notify_dev"].cached,
        "the same type, configuration and inputs"
    );
    assert_eq!(shared.tasks["notify_dev"].result, Some(json!(1)));
    let other = run(&engine, &workflow("notify_dev", 2));
    assert!(!other.tasks["notify_dev"].cached, "another configuration");
}

/// A handler that stops early when its run is cancelled may answer with what it had so
/// far: that answer is the task's result in the cancelled run, and is not stored.
#[test]
fn a_result_returned_once_the_run_was_cancelled_is_not_stored() {
    let store = Arc::new(MemoryCache::default());
    // The key is the task type's alone: the configuration is left out of it.
    let engine = WorkflowEngine::builder()
        .cache_store(Arc::clone(&store) as Arc<dyn CacheStore>)
        .cache_key("count", |_ctx: &TaskContext| Value::Null)
        .build()
        .expect("valid");
    engine.register_handler("count", |ctx: TaskContext| async move {
        if ctx.config()["cancel"] == true {
            ctx.cancellation().cancel();
        }
        tokio::select! {
            () = ctx.cancellation().cancelled() => Ok::<_, TaskError>(json!("partial")),
            () = tokio::time::sleep(Duration::from_millis(10)) => Ok(json!("full")),
        }
    });
    let workflow = |cancel: bool| {
        let task = Task::new("c", "count").config(json!({ "cancel": cancel }));
        Workflow::new("w", "W").task(task.cache(true))
    };
    let cancelled = run(&engine, &workflow(true));
    assert_eq!(cancelled.tasks["c"].result, Some(json!("partial")));
    assert!(store.is_empty(), "stored from a cancelled run");
    let next = run(&engine, &workflow(false));
    assert!(!next.tasks["c"].cached);
    assert_eq!(next.tasks["c"].result, Some(json!("full")));
    assert_eq!(next.tasks["c"].status, TaskStatus::Completed);
}
