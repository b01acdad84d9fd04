//! A tracing span per run and per task, carrying their ids; and tracing events, at their
//! levels, for retries, failures, skips, the end of a run, and a cache key function that
//! panics as its task completes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use orch_core::{Task, Workflow, WorkflowResult};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// A span's name and its fields as `name=value` text.
type SpanEntry = (String, Vec<String>);

/// An event's level and its fields as `name=value` text (the message as `message=...`).
type EventEntry = (Level, Vec<String>);

/// Records each new span and each event.
#[derive(Clone, Default)]
struct SpanLog(Arc<Mutex<Vec<SpanEntry>>>, Arc<Mutex<Vec<EventEntry>>>);

struct Fields<'a>(&'a mut Vec<String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(format!("{}={value}", field.name()));
    }
}

impl Subscriber for SpanLog {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Vec::new();
        span.record(&mut Fields(&mut fields));
        let mut log = self.0.lock().expect("lock");
        log.push((span.metadata().name().to_owned(), fields));
        Id::from_u64(log.len() as u64)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        let level = *event.metadata().level();
        self.1.lock().expect("lock").push((level, fields));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Runs `workflow` on `engine` under a [`SpanLog`], which it returns with the result.
fn run_logged(engine: &WorkflowEngine, workflow: &Workflow) -> (SpanLog, WorkflowResult) {
    let log = SpanLog::default();
    let _guard = tracing::subscriber::set_default(log.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let result = runtime
        .block_on(engine.execute_workflow(workflow))
        .expect("valid");
    (log, result)
}

#[test]
fn each_run_and_each_task_has_a_span_with_its_ids() {
    let engine = WorkflowEngine::new();
    engine.register_handler("t", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
    let workflow = Workflow::new("etl", "ETL")
        .task(Task::new("load", "t"))
        .task(Task::new("clean", "t").depends_on(["load"]));
    let (log, _) = run_logged(&engine, &workflow);
    let spans = log.0.lock().expect("lock").clone();
    let named = |name: &str| -> Vec<Vec<String>> {
        spans
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, fields)| fields.clone())
            .collect()
    };
    assert_eq!(
        named("workflow_run")
            .iter()
            .map(|fields| [&fields[..1], &fields[2..]].concat())
            .collect::<Vec<_>>(),
        [vec!["workflow_id=etl".to_owned(), "tasks=2".to_owned()]]
    );
    let run_id = &named("workflow_run")[0][1];
    assert!(run_id.starts_with("run_id=20"), "{run_id}");
    assert_eq!(
        named("task"),
        [
            vec!["task_id=load".to_owned(), "task_type=t".to_owned()],
            vec!["task_id=clean".to_owned(), "task_type=t".to_owned()],
        ]
    );
}

#[test]
fn failures_skips_retries_and_the_end_of_a_run_are_logged_at_their_levels() {
    let engine = WorkflowEngine::new();
    engine.register_handler("ok", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
    engine.register_handler("broken", |_ctx: TaskContext| async move {
        Err::<Value, _>(TaskError::new("disk full"))
    });
    let workflow = Workflow::new("etl", "ETL")
        .task(Task::new("load", "broken").retries(1))
        .task(Task::new("clean", "ok").depends_on(["load"]));
    let (log, result) = run_logged(&engine, &workflow);
    let events = log.1.lock().expect("lock").clone();
    let with_message = |message: &str| -> Vec<EventEntry> {
        let message = format!("message={message}");
        events
            .iter()
            .filter(|(_, fields)| fields.contains(&message))
            .cloned()
            .collect()
    };
    let fields = |list: &[&str]| list.iter().map(|f| f.to_string()).collect::<Vec<_>>();
    let retrying = with_message("retrying");
    assert_eq!(retrying.len(), 1);
    assert_eq!(retrying[0].0, Level::DEBUG);
    assert_eq!(
        retrying[0].1[1..5],
        fields(&[
            "task_id=load",
            "task_type=broken",
            "attempt=1",
            "error=disk full"
        ])
    );
    assert_eq!(
        with_message("task failed"),
        [(
            Level::WARN,
            fields(&[
                "message=task failed",
                "task_id=load",
                "task_type=broken",
                "attempt=2",
                "error=disk full"
            ])
        )]
    );
    assert_eq!(
        with_message("task skipped"),
        [(
            Level::INFO,
            fields(&[
                "message=task skipped",
                "task_id=clean",
                "task_type=ok",
                "attempt=0",
                "error=dependency `load` failed"
            ])
        )]
    );
    assert_eq!(
        with_message("workflow run finished"),
        [(
            Level::INFO,
            fields(&[
                "message=workflow run finished",
                "workflow_id=etl",
                &format!("run_id={}", result.run_id),
                "status=failed",
                "completed=0",
                "failed=1",
                "skipped=1",
                "cancelled=0"
            ])
        )]
    );
}

/// A map instance that will run again is logged as a task's retry is, under its own id.
#[test]
fn a_map_instance_that_will_run_again_is_logged_as_retrying() {
    let engine = WorkflowEngine::new();
    engine.register_handler("list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(serde_json::json!([1, 2]))
    });
    engine.register_handler("flaky", |ctx: TaskContext| async move {
        match ctx.attempt() {
            1 => Err(TaskError::new("busy")),
            _ => Ok(Value::Null),
        }
    });
    let workflow = Workflow::new("etl", "ETL")
        .task(Task::new("list", "list"))
        .task(Task::new("each", "flaky").map_over("list").retries(1));
    let (log, result) = run_logged(&engine, &workflow);
    assert_eq!(result.status, orch_core::WorkflowStatus::Completed);
    let events = log.1.lock().expect("lock").clone();
    let mut retried: Vec<Vec<String>> = (events.iter())
        .filter(|(level, fields)| *level == Level::DEBUG && fields[0] == "message=retrying")
        .map(|(_, fields)| fields[1..5].to_vec())
        .collect();
    retried.sort();
    let fields = |item: usize| {
        [
            format!("task_id=each[{item}]"),
            "task_type=flaky".to_owned(),
            "attempt=1".to_owned(),
            "error=busy".to_owned(),
        ]
    };
    assert_eq!(retried, [fields(0), fields(1)]);
}

/// A cached task started before all of its dependencies ended has its key worked out
/// again as it completes; a key function that panics then leaves the result unstored,
/// with a warning that names the task.
#[test]
fn a_key_function_that_panics_as_its_task_completes_is_warned_of() {
    let store = Arc::new(orch_engine::MemoryCache::default());
    let engine = WorkflowEngine::builder()
        .cache_store(Arc::clone(&store) as Arc<dyn orch_engine::CacheStore>)
        .cache_key("gather", {
            let calls = std::sync::atomic::AtomicUsize::new(0);
            move |_ctx: &TaskContext| match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Value::from("at its start"),
                _ => panic!("no key as it completes"),
            }
        })
        .build()
        .expect("valid");
    engine.register_handler("source", |ctx: TaskContext| async move {
        let ms = ctx.config()["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        Ok::<_, TaskError>(Value::Null)
    });
    engine.register_handler("gather", |_ctx: TaskContext| async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        Ok::<_, TaskError>(Value::from("gathered"))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("fast", "source"))
        .task(Task::new("slow", "source").config(serde_json::json!({"ms": 30})))
        .task(
            Task::new("gather", "gather")
                .depends_on(["fast", "slow"])
                .trigger_rule(orch_core::TriggerRule::OneSuccess)
                .cache(true),
        );
    let (log, result) = run_logged(&engine, &workflow);
    assert_eq!(
        result.tasks["gather"].status,
        orch_core::TaskStatus::Completed
    );
    assert!(store.is_empty());
    let events = log.1.lock().expect("lock").clone();
    let warned: Vec<&EventEntry> = events
        .iter()
        .filter(|(level, fields)| {
            *level == Level::WARN && fields.iter().any(|f| f.contains("no key as it completes"))
        })
        .collect();
    assert_eq!(warned.len(), 1, "{events:?}");
    assert!(
        warned[0].1.contains(&"task=gather".to_owned()),
        "{warned:?}"
    );
}
