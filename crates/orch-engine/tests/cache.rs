//! Result caching: a task that asks for it reuses a stored result for the same type,
//! configuration and inputs (or the same value of its type's key function), without
//! running its handler, and its record says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orch_core::{Task, TaskStatus, Workflow, WorkflowResult, WorkflowStatus};
use orch_engine::{CacheStore, MemoryCache, Shared, TaskContext, TaskError, WorkflowEngine};
use serde_json::{Value, json};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn run(engine: &WorkflowEngine, workflow: &Workflow) -> WorkflowResult {
    runtime()
        .block_on(engine.execute_workflow(workflow))
        .expect("valid")
}

/// An engine on `store` whose `source` tasks return their config's `value`, and whose
/// `slow` tasks (counted in `calls`) return their config and input.
fn engine(store: Arc<dyn CacheStore>, calls: &Arc<AtomicUsize>) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .cache_store(store)
        .build()
        .expect("valid");
    engine.register_handler("source", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.config()["value"].clone())
    });
    let calls = Arc::clone(calls);
    engine.register_handler("slow", move |ctx: TaskContext| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let input = ctx.input_json("source")?.clone();
            Ok::<_, TaskError>(json!({"config": ctx.config(), "input": input}))
        }
    });
    engine
}

fn workflow(source: Value, config: Value) -> Workflow {
    Workflow::new("w", "W")
        .task(Task::new("source", "source").config(json!({ "value": source })))
        .task(
            Task::new("slow", "slow")
                .config(config)
                .depends_on(["source"])
                .cache(true),
        )
}

fn calls() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

#[test]
fn a_hit_reuses_the_result_without_running_the_handler_and_says_so() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store.clone(), &calls);
    let workflow = workflow(json!(1), json!({"k": "v"}));
    let first = run(&engine, &workflow);
    let second = run(&engine, &workflow);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(store.len(), 1);
    let (before, after) = (&first.tasks["slow"], &second.tasks["slow"]);
    assert!(!before.cached);
    assert_eq!(before.attempts, 1);
    assert!(after.cached);
    assert_eq!(after.status, TaskStatus::Completed);
    assert_eq!(after.attempts, 0);
    assert_eq!(after.result, before.result);
    assert_eq!(second.status, WorkflowStatus::Completed);
    // The written result says which record came from the cache.
    let written = second.to_value();
    assert_eq!(written["tasks"]["slow"]["cached"], true);
    assert!(written["tasks"]["source"].get("cached").is_none());
    assert!(first.to_value()["tasks"]["slow"].get("cached").is_none());
}

#[test]
fn a_dependent_of_a_cached_task_reads_the_cached_result() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store, &calls);
    engine.register_handler("after", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.input_json("slow")?["input"].clone())
    });
    let workflow =
        workflow(json!("x"), json!({})).task(Task::new("after", "after").depends_on(["slow"]));
    run(&engine, &workflow);
    let second = run(&engine, &workflow);
    assert!(second.tasks["slow"].cached);
    assert_eq!(second.tasks["after"].result, Some(json!("x")));
}

#[test]
fn a_changed_config_or_input_misses() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store.clone(), &calls);
    run(&engine, &workflow(json!(1), json!({"k": "v", "j": 1})));
    let config_changed = run(&engine, &workflow(json!(1), json!({"k": "w"})));
    assert!(!config_changed.tasks["slow"].cached);
    let input_changed = run(&engine, &workflow(json!(2), json!({"k": "v", "j": 1})));
    assert!(!input_changed.tasks["slow"].cached);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(store.len(), 3);
    // Key order in the configuration does not matter.
    let reordered = run(&engine, &workflow(json!(1), json!({"j": 1, "k": "v"})));
    assert!(reordered.tasks["slow"].cached);
}

#[test]
fn a_task_that_does_not_ask_is_never_cached() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store.clone(), &calls);
    let plain = Workflow::from_tasks(
        "w",
        "W",
        workflow(json!(1), json!({}))
            .tasks()
            .cloned()
            .map(|t| t.cache(false)),
    );
    run(&engine, &plain);
    let second = run(&engine, &plain);
    assert!(!second.tasks["slow"].cached);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(store.is_empty());
}

#[test]
fn a_key_function_decides_what_identifies_the_result() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = WorkflowEngine::builder()
        .cache_store(store)
        .cache_key("slow", |ctx: &TaskContext| ctx.config()["id"].clone())
        .build()
        .expect("valid");
    let counted = Arc::clone(&calls);
    engine.register_handler("source", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
    engine.register_handler("slow", move |ctx: TaskContext| {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, TaskError>(ctx.config().clone())
        }
    });
    run(&engine, &workflow(json!(1), json!({"id": 7, "noise": 1})));
    // Other fields and the input change; the key does not: a hit.
    let hit = run(&engine, &workflow(json!(2), json!({"id": 7, "noise": 2})));
    assert!(hit.tasks["slow"].cached);
    assert_eq!(hit.tasks["slow"].result, Some(json!({"id": 7, "noise": 1})));
    let miss = run(&engine, &workflow(json!(1), json!({"id": 8, "noise": 1})));
    assert!(!miss.tasks["slow"].cached);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_panicking_key_function_fails_the_task() {
    let engine = WorkflowEngine::builder()
        .cache_key("slow", |_ctx: &TaskContext| -> Value { panic!("no key") })
        .build()
        .expect("valid");
    let calls = calls();
    let counted = Arc::clone(&calls);
    engine.register_handler("source", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
    engine.register_handler("slow", move |_ctx: TaskContext| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, TaskError>(Value::Null) }
    });
    let result = run(&engine, &workflow(json!(1), json!({})));
    let record = &result.tasks["slow"];
    assert_eq!(record.status, TaskStatus::Failed);
    let error = record.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("cache key function of task type `slow`"),
        "{error}"
    );
    assert!(error.contains("no key"), "{error}");
    // Said as the key function's panic, not a handler's.
    assert!(!error.contains("handler"), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// A store that panics whenever it is used.
struct PanickingStore;

impl CacheStore for PanickingStore {
    fn get(&self, _key: &orch_engine::CacheKey) -> Option<Value> {
        panic!("the store is broken")
    }

    fn put(&self, _key: orch_engine::CacheKey, _result: Value) {
        panic!("the store is broken")
    }
}

/// A store that panics is taken as one without the result, and one that did not store
/// it: the task runs, and the run goes on.
#[test]
fn a_panicking_store_is_a_store_without_results() {
    let calls = calls();
    let engine = engine(Arc::new(PanickingStore), &calls);
    let workflow = workflow(json!(1), json!({}));
    for runs in 1..=2 {
        let result = run(&engine, &workflow);
        assert_eq!(result.status, WorkflowStatus::Completed);
        assert!(!result.tasks["slow"].cached);
        assert_eq!(calls.load(Ordering::SeqCst), runs);
    }
}

#[test]
fn a_failure_is_not_cached() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store.clone(), &calls);
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&attempts);
    engine.register_handler("slow", move |_ctx: TaskContext| {
        let counted = Arc::clone(&counted);
        async move {
            match counted.fetch_add(1, Ordering::SeqCst) {
                0 => Err(TaskError::new("first run fails")),
                _ => Ok(json!("fine")),
            }
        }
    });
    let workflow = workflow(json!(1), json!({}));
    let failed = run(&engine, &workflow);
    assert_eq!(failed.tasks["slow"].status, TaskStatus::Failed);
    assert!(store.is_empty());
    let second = run(&engine, &workflow);
    assert_eq!(second.tasks["slow"].status, TaskStatus::Completed);
    assert!(!second.tasks["slow"].cached);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert!(run(&engine, &workflow).tasks["slow"].cached);
}

#[test]
fn a_result_after_retries_is_cached() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store.clone(), &calls);
    engine.register_handler("slow", |ctx: TaskContext| async move {
        match ctx.attempt() {
            1 => Err(TaskError::new("flaky")),
            _ => Ok(json!("second try")),
        }
    });
    let workflow = Workflow::from_tasks(
        "w",
        "W",
        workflow(json!(1), json!({})).tasks().cloned().map(|t| {
            t.retries(1).backoff(orch_core::Backoff {
                initial: std::time::Duration::ZERO,
                ..Default::default()
            })
        }),
    );
    assert_eq!(run(&engine, &workflow).tasks["slow"].attempts, 2);
    assert_eq!(store.len(), 1);
    assert!(run(&engine, &workflow).tasks["slow"].cached);
}

#[test]
fn shared_values_are_never_stored() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store.clone(), &calls);
    engine.register_handler("slow", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Shared::new(vec![1u8, 2, 3]).summary(json!("three bytes")))
    });
    let workflow = workflow(json!(1), json!({}));
    run(&engine, &workflow);
    let second = run(&engine, &workflow);
    assert!(store.is_empty());
    assert!(!second.tasks["slow"].cached);
}

#[test]
fn a_task_reading_a_shared_value_is_not_looked_up() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store.clone(), &calls);
    engine.register_handler("source", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Shared::new(5u32))
    });
    engine.register_handler("slow", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(*ctx.shared::<u32>("source")?)
    });
    let workflow = workflow(json!(1), json!({}));
    run(&engine, &workflow);
    let second = run(&engine, &workflow);
    assert!(store.is_empty());
    assert!(!second.tasks["slow"].cached);
    assert_eq!(second.tasks["slow"].result, Some(json!(5)));
}

#[test]
fn a_store_given_to_two_engines_serves_both() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let workflow = workflow(json!(1), json!({}));
    run(&engine(store.clone(), &calls), &workflow);
    let other = run(&engine(store.clone(), &calls), &workflow);
    assert!(other.tasks["slow"].cached);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Without a store set, each engine has a cache of its own, also engines built from
/// clones of one builder: one engine's handler results are not served to another, whose
/// handler of the same type may do something else.
#[test]
fn engines_built_from_one_builder_do_not_share_the_default_cache() {
    let builder = WorkflowEngine::builder();
    let engines = [builder.clone().build(), builder.build()].map(|e| e.expect("valid"));
    for (value, engine) in [1, 2].into_iter().zip(&engines) {
        engine.register_handler("t", move |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(value)
        });
    }
    let workflow = Workflow::new("w", "W").task(Task::new("x", "t").cache(true));
    let results = engines.each_ref().map(|engine| run(engine, &workflow));
    for (expected, result) in [1, 2].into_iter().zip(&results) {
        let x = result.task("x").expect("a record");
        assert_eq!((x.result.clone(), x.cached), (Some(json!(expected)), false));
    }
}

#[test]
fn a_map_task_can_be_cached_as_a_whole() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store, &calls);
    let counted = Arc::clone(&calls);
    engine.register_handler("double", move |ctx: TaskContext| {
        counted.fetch_add(1, Ordering::SeqCst);
        let x: Result<i64, _> = ctx.map_item();
        async move { Ok::<_, TaskError>(x? * 2) }
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("source", "source").config(json!({"value": [1, 2, 3]})))
        .task(Task::new("double", "double").map_over("source").cache(true));
    let first = run(&engine, &workflow);
    assert_eq!(first.tasks["double"].result, Some(json!([2, 4, 6])));
    let second = run(&engine, &workflow);
    assert!(second.tasks["double"].cached);
    assert_eq!(second.tasks["double"].result, Some(json!([2, 4, 6])));
    assert_eq!(second.tasks.len(), 2, "no instance ran");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// A map whose handler skipped an element is not stored: as a skipped task, the element
/// is tried again in the next run, where a stored list would give `null` for it for good.
#[test]
fn a_map_with_a_skipped_instance_is_not_cached() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store, &calls);
    let counted = Arc::clone(&calls);
    engine.register_handler("double", move |ctx: TaskContext| {
        let first_call_of_2 =
            ctx.map_item::<i64>().ok() == Some(2) && counted.fetch_add(1, Ordering::SeqCst) == 0;
        let x: Result<i64, _> = ctx.map_item();
        async move {
            match first_call_of_2 {
                true => Err(TaskError::skip("not yet")),
                false => Ok(x? * 2),
            }
        }
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("source", "source").config(json!({"value": [1, 2, 3]})))
        .task(Task::new("double", "double").map_over("source").cache(true));
    let first = run(&engine, &workflow);
    assert_eq!(first.tasks["double"].result, Some(json!([2, null, 6])));
    let second = run(&engine, &workflow);
    assert!(!second.tasks["double"].cached);
    assert_eq!(second.tasks["double"].result, Some(json!([2, 4, 6])));
    // Stored now that no instance skipped.
    let third = run(&engine, &workflow);
    assert!(third.tasks["double"].cached);
    assert_eq!(third.tasks["double"].result, Some(json!([2, 4, 6])));
}

/// An engine built from `builder` whose `items` tasks return their config's `items` and
/// whose `double` map instances double their element.
fn map_engine(builder: orch_engine::EngineBuilder) -> WorkflowEngine {
    let engine = builder.build().expect("valid");
    engine.register_handler("items", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.config()["items"].clone())
    });
    engine.register_handler("double", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.map_item::<i64>()? * 2)
    });
    engine
}

/// A cached list of three instances is not taken for a map that may now run two: the map
/// runs, and fails on its limit.
#[test]
fn a_cached_map_is_not_taken_under_a_lower_instance_limit() {
    let engine =
        map_engine(WorkflowEngine::builder().cache_store(Arc::new(MemoryCache::default())));
    let workflow = |limit: u32| {
        let mut map = Task::new("double", "double").map_over("items").cache(true);
        if limit > 0 {
            map = map.max_instances(limit);
        }
        Workflow::new("w", "W")
            .task(Task::new("items", "items").config(json!({"items": [1, 2, 3]})))
            .task(map)
    };
    assert_eq!(
        run(&engine, &workflow(3)).tasks["double"].status,
        TaskStatus::Completed
    );
    let lower = run(&engine, &workflow(2));
    assert!(!lower.tasks["double"].cached);
    assert_eq!(lower.tasks["double"].status, TaskStatus::Failed);
}

/// The same with the engine's limit, for a map that sets none: an engine with a lower
/// one sharing the store does not take the list another engine cached.
#[test]
fn a_cached_map_is_not_taken_by_an_engine_with_a_lower_instance_limit() {
    let store: Arc<dyn CacheStore> = Arc::new(MemoryCache::default());
    let engine = |limit: u32| {
        map_engine(
            WorkflowEngine::builder()
                .cache_store(Arc::clone(&store))
                .max_map_instances(limit),
        )
    };
    let workflow = Workflow::new("w", "W")
        .task(Task::new("items", "items").config(json!({"items": [1, 2, 3]})))
        .task(Task::new("double", "double").map_over("items").cache(true));
    let first = run(&engine(3), &workflow);
    assert_eq!(first.tasks["double"].status, TaskStatus::Completed);
    let lower = run(&engine(2), &workflow);
    assert!(!lower.tasks["double"].cached);
    assert_eq!(lower.tasks["double"].status, TaskStatus::Failed);
    // An engine with the same limit takes it.
    assert!(run(&engine(3), &workflow).tasks["double"].cached);
}

/// Whether the key comes from the task's configuration and inputs or from a key function
/// that gives both tasks the same value.
#[test]
fn a_cached_map_task_and_a_cached_plain_task_of_one_type_do_not_share_a_result() {
    for key_function in [false, true] {
        a_map_and_a_plain_task_do_not_share_a_result(key_function);
    }
}

fn a_map_and_a_plain_task_do_not_share_a_result(key_function: bool) {
    let mut builder = WorkflowEngine::builder().cache_store(Arc::new(MemoryCache::default()));
    if key_function {
        builder = builder.cache_key("double", |_ctx: &TaskContext| json!("one key"));
    }
    let engine = builder.build().expect("valid");
    engine.register_handler("source", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.config()["value"].clone())
    });
    engine.register_handler("double", |ctx: TaskContext| {
        let x = ctx.map_item::<i64>().unwrap_or(100);
        async move { Ok::<_, TaskError>(x * 2) }
    });
    let source = || Task::new("source", "source").config(json!({"value": [1, 2]}));
    let mapped = Workflow::new("w", "W")
        .task(source())
        .task(Task::new("double", "double").map_over("source").cache(true));
    let plain = Workflow::new("w", "W").task(source()).task(
        Task::new("double", "double")
            .depends_on(["source"])
            .cache(true),
    );
    assert_eq!(
        run(&engine, &mapped).tasks["double"].result,
        Some(json!([2, 4]))
    );
    let result = run(&engine, &plain);
    assert!(
        !result.tasks["double"].cached,
        "key function: {key_function}"
    );
    assert_eq!(result.tasks["double"].result, Some(json!(200)));
}

/// A key function's key does not tell whether the list came: a cached map whose rule
/// runs it without its list is skipped, not served the list of an earlier run.
#[test]
fn a_cached_map_whose_list_did_not_come_is_skipped_with_a_key_function() {
    let engine = WorkflowEngine::builder()
        .cache_store(Arc::new(MemoryCache::default()))
        .cache_key("double", |ctx: &TaskContext| {
            ctx.config()["dataset"].clone()
        })
        .build()
        .expect("valid");
    engine.register_handler("source", |ctx: TaskContext| async move {
        match ctx.config()["fail"].as_bool() {
            Some(true) => Err(TaskError::permanent("the source is down")),
            _ => Ok(json!([1, 2])),
        }
    });
    engine.register_handler("double", |ctx: TaskContext| {
        let x = ctx.map_item::<i64>().unwrap_or(0);
        async move { Ok::<_, TaskError>(x * 2) }
    });
    let workflow = |fail: bool| {
        Workflow::new("w", "W")
            .task(Task::new("source", "source").config(json!({ "fail": fail })))
            .task(
                Task::new("double", "double")
                    .map_over("source")
                    .config(json!({"dataset": "d1"}))
                    .trigger_rule(orch_core::TriggerRule::AllDone)
                    .cache(true),
            )
    };
    assert_eq!(
        run(&engine, &workflow(false)).tasks["double"].result,
        Some(json!([2, 4]))
    );
    let result = run(&engine, &workflow(true));
    let double = &result.tasks["double"];
    assert_eq!(double.status, TaskStatus::Skipped);
    assert!(!double.cached);
    assert_eq!(double.result, None);
}

/// A process restart: a new engine on a new `ResultFile` over the same journal directory
/// finds what the first one stored, beside a durable run's journal that still lists.
#[cfg(feature = "journal")]
#[test]
fn a_results_file_beside_the_journal_serves_an_engine_of_a_later_process() {
    use orch_engine::{Durability, FileJournal, Journal, ResultFile};

    let dir = tempfile::tempdir().expect("a temporary directory");
    let calls = calls();
    let workflow = workflow(json!(3), json!({"k": "v"}));
    let start = || {
        let journal = FileJournal::new(dir.path()).expect("a journal");
        let results = ResultFile::beside(&journal).expect("the results file");
        let engine = engine(Arc::new(results), &calls);
        let durable = WorkflowEngine::builder()
            .journal(journal, Durability::Process)
            .build()
            .expect("valid");
        (engine, durable)
    };
    let (first, durable) = start();
    assert!(!run(&first, &workflow).task("slow").expect("slow").cached);
    durable.register_handler("source", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(1)
    });
    let one = Workflow::new("d", "D").task(Task::new("a", "source"));
    let run_id = orch_core::RunId::parse("d1").expect("a run id");
    runtime()
        .block_on(durable.run_durable(&one, run_id))
        .expect("a durable run");
    drop((first, durable));

    let (second, _) = start();
    let again = run(&second, &workflow);
    let record = again.task("slow").expect("slow");
    assert_eq!(
        (record.cached, record.status),
        (true, TaskStatus::Completed)
    );
    assert_eq!(
        record.result,
        Some(json!({"config": {"k": "v"}, "input": 3}))
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the handler ran once, in the first"
    );
    let journal = FileJournal::new(dir.path()).expect("a journal");
    let runs = runtime()
        .block_on(journal.list(&Default::default()))
        .expect("the results file is not taken for a run");
    assert_eq!(runs.len(), 1);
}

/// A hit gives back a result, not a branch choice: a task that chose branches is not
/// stored, so it runs again and its choice holds in every run.
#[test]
fn a_task_that_chose_branches_is_not_stored_and_its_choice_holds_on_the_next_run() {
    let store = Arc::new(MemoryCache::default());
    let engine = engine(store.clone(), &calls());
    let routed = calls();
    let counter = Arc::clone(&routed);
    engine.register_handler("route", move |ctx: TaskContext| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            ctx.choose_branches(["small"])?;
            Ok::<_, TaskError>("small input")
        }
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("route", "route").cache(true))
        .task(Task::new("small", "source").depends_on(["route"]))
        .task(Task::new("large", "source").depends_on(["route"]))
        .task(Task::new("plain", "source").cache(true));
    for _ in 0..2 {
        let result = run(&engine, &workflow);
        assert_eq!(result.status, WorkflowStatus::Completed);
        let status = |id: &str| result.task(id).map(|r| r.status);
        assert_eq!(status("small"), Some(TaskStatus::Completed));
        assert_eq!(status("large"), Some(TaskStatus::Skipped));
        assert!(!result.task("route").expect("route").cached);
    }
    assert_eq!(routed.load(Ordering::SeqCst), 2);
    assert_eq!(store.len(), 1, "only the task without a choice is stored");
}

/// An output kept out of the journal is kept out of the cache store too: the task runs
/// every time.
#[test]
fn an_output_kept_out_of_the_journal_is_not_stored() {
    let (store, calls) = (Arc::new(MemoryCache::default()), calls());
    let engine = engine(store.clone(), &calls);
    engine.register_handler("slow", {
        let calls = Arc::clone(&calls);
        move |_ctx: TaskContext| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, TaskError>(orch_engine::Output::new(1)?.not_journaled("large")) }
        }
    });
    let workflow = workflow(json!(1), json!({}));
    run(&engine, &workflow);
    let second = run(&engine, &workflow);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(store.is_empty());
    assert!(!second.tasks["slow"].cached);
    assert_eq!(second.tasks["slow"].result, Some(json!(1)));
}

/// A cached task whose trigger rule starts it before all of its dependencies end
/// (`one_success`) may read one that ended after it started: its result then is not
/// stored under the key made from the inputs there at its start, which a later run
/// would otherwise be served for other inputs.
#[test]
fn a_result_that_read_an_input_ended_after_its_key_was_made_is_not_stored() {
    let store = Arc::new(MemoryCache::default());
    let calls = calls();
    let engine = WorkflowEngine::builder()
        .cache_store(Arc::clone(&store) as Arc<dyn CacheStore>)
        .max_concurrent(4)
        .build()
        .expect("valid");
    engine.register_handler("source", |ctx: TaskContext| async move {
        let ms = ctx.config()["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        Ok::<_, TaskError>(ctx.config()["value"].clone())
    });
    let counted = Arc::clone(&calls);
    engine.register_handler("gather", move |ctx: TaskContext| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            // Long enough for the slow dependency to end meanwhile.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let seen: serde_json::Map<String, Value> = ctx
                .dependency_results()
                .map(|(id, value)| (id.to_string(), value.clone()))
                .collect();
            Ok::<_, TaskError>(Value::Object(seen))
        }
    });
    let workflow = |slow_value: i64| {
        Workflow::new("w", "W")
            .task(Task::new("fast", "source").config(json!({"value": 1})))
            .task(Task::new("slow", "source").config(json!({"value": slow_value, "ms": 50})))
            .task(
                Task::new("gather", "gather")
                    .depends_on(["fast", "slow"])
                    .trigger_rule(orch_core::TriggerRule::OneSuccess)
                    .cache(true),
            )
    };
    let paused = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime")
    };
    let first = paused()
        .block_on(engine.execute_workflow(&workflow(2)))
        .expect("valid");
    let gather = first.task("gather").expect("a record");
    assert_eq!(gather.result, Some(json!({"fast": 1, "slow": 2})));
    let second = paused()
        .block_on(engine.execute_workflow(&workflow(3)))
        .expect("valid");
    let gather = second.task("gather").expect("a record");
    assert!(
        !gather.cached,
        "served the result of other inputs: {:?}",
        gather.result
    );
    assert_eq!(gather.result, Some(json!({"fast": 1, "slow": 3})));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
