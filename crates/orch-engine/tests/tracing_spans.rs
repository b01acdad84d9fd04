//! A tracing span per run and per task, carrying their ids.

use std::sync::{Arc, Mutex};

use orch_core::{Task, Workflow};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A span's name and its fields as `name=value` text.
type SpanEntry = (String, Vec<String>);

/// Records each new span.
#[derive(Clone, Default)]
struct SpanLog(Arc<Mutex<Vec<SpanEntry>>>);

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

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[test]
fn each_run_and_each_task_has_a_span_with_its_ids() {
    let log = SpanLog::default();
    let _guard = tracing::subscriber::set_default(log.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let engine = WorkflowEngine::new();
    engine.register_handler("t", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
    let workflow = Workflow::new("etl", "ETL")
        .task(Task::new("load", "t"))
        .task(Task::new("clean", "t").depends_on(["load"]));
    runtime
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    let spans = log.0.lock().expect("lock").clone();
    let named = |name: &str| -> Vec<Vec<String>> {
        spans
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, fields)| fields.clone())
            .collect()
    };
    assert_eq!(
        named("workflow_run"),
        [vec!["workflow_id=etl".to_owned(), "tasks=2".to_owned()]]
    );
    assert_eq!(
        named("task"),
        [
            vec!["task_id=load".to_owned(), "task_type=t".to_owned()],
            vec!["task_id=clean".to_owned(), "task_type=t".to_owned()],
        ]
    );
}
