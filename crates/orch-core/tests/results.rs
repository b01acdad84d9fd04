//! Run records as JSON: field order, time format, reading a result back, and metrics
//! worked out from the records.

use std::time::{Duration, SystemTime};

use orch_core::{
    Task, TaskRecord, TaskRecords, TaskStatus, Workflow, WorkflowResult, WorkflowStatus,
};
use serde_json::json;

fn workflow() -> Workflow {
    Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(Task::new("b", "t").depends_on(["a"]))
}

fn result() -> WorkflowResult {
    let workflow = workflow();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let records = vec![
        TaskRecord {
            status: TaskStatus::Completed,
            result: Some(json!({"rows": 3})),
            start_time: Some(start),
            end_time: Some(start + Duration::from_millis(250)),
            attempts: 1,
            ..TaskRecord::default()
        },
        TaskRecord {
            status: TaskStatus::Skipped,
            error: Some("dependency `a` failed".into()),
            ..TaskRecord::default()
        },
    ];
    WorkflowResult {
        workflow_id: "w".into(),
        run_id: orch_core::RunId::new(),
        name: "W".into(),
        status: WorkflowStatus::Failed,
        start_time: start,
        end_time: start + Duration::from_secs(1),
        max_concurrent: 2,
        tasks: TaskRecords::for_workflow(&workflow, records).expect("one per task"),
    }
}

#[test]
fn json_keeps_the_documented_field_order_and_rfc3339_times() {
    let text = result().to_json();
    let keys = [
        "\"workflow_id\"",
        "\"run_id\"",
        "\"name\"",
        "\"status\"",
        "\"start_time\"",
        "\"end_time\"",
        "\"total_duration\"",
        "\"max_concurrent\"",
        "\"tasks\"",
        "\"metrics\"",
    ];
    let positions: Vec<usize> = keys.iter().map(|k| text.find(k).expect(k)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    let value = result().to_value();
    assert_eq!(value["status"], "failed");
    assert_eq!(value["start_time"], "2023-11-14T22:13:20.000000Z");
    assert_eq!(value["total_duration"], 1.0);
    assert_eq!(value["tasks"]["a"]["duration"], 0.25);
    assert_eq!(value["tasks"]["b"]["status"], "skipped");
    assert_eq!(value["tasks"]["b"]["start_time"], serde_json::Value::Null);
}

#[test]
fn a_result_reads_back_from_its_json() {
    let original = result();
    let back: WorkflowResult = serde_json::from_str(&original.to_json_pretty()).expect("reads");
    assert_eq!(back, original);
    assert_eq!(
        back.task("a").and_then(|r| r.duration()),
        Some(Duration::from_millis(250))
    );
    assert!(back.tasks.workflow().is_none());
}

/// A handler may return null: its completed task reads back with that output, not with
/// none; a task that did not complete (its `result` written as null too) reads back
/// with none.
#[test]
fn a_null_output_reads_back_as_an_output() {
    let mut original = result();
    let mut records = original.tasks.records().to_vec();
    records[0].result = Some(serde_json::Value::Null);
    original.tasks = TaskRecords::for_workflow(&workflow(), records).expect("one per task");
    let back: WorkflowResult = serde_json::from_str(&original.to_json()).expect("reads");
    assert_eq!(
        back.task("a").expect("a").result,
        Some(serde_json::Value::Null)
    );
    assert_eq!(back.task("b").expect("b").result, None);
    assert_eq!(back, original);
}

#[test]
fn metrics_follow_the_result_as_it_is_when_asked() {
    let mut result = result();
    let first = result.metrics();
    assert_eq!(first.total_tasks, 2);
    assert_eq!(
        (first.completed_tasks, first.skipped_tasks),
        (1, 1),
        "{first:?}"
    );
    assert_eq!(first.critical_path, ["a"]);
    assert_eq!(first.parallel_efficiency, Some(0.25 / 2.0));

    result.max_concurrent = 5;
    result.end_time = result.start_time + Duration::from_secs(2);
    let second = result.metrics();
    assert_eq!(second.total_duration, 2.0);
    assert_eq!(second.parallel_efficiency, Some(0.25 / 10.0));
}

#[test]
fn json_carries_the_metrics_worked_out_while_writing() {
    let result = result();
    let value = result.to_value();
    let written: orch_core::RunMetrics =
        serde_json::from_value(value["metrics"].clone()).expect("metrics");
    assert_eq!(written, result.metrics());
    assert_eq!(value["metrics"]["critical_path"], json!(["a"]));
}

#[test]
fn a_result_read_back_works_its_metrics_out_again_from_its_records() {
    let result = result();
    let mut value = result.to_value();
    // Stored figures that disagree with the records are not believed.
    value["metrics"]["total_tasks"] = json!(99);
    value["metrics"]["failed_tasks"] = json!(7);
    let back: WorkflowResult = serde_json::from_value(value).expect("reads");
    let metrics = back.metrics();
    assert_eq!((metrics.total_tasks, metrics.failed_tasks), (2, 0));
    // Without its workflow, a result read back knows no dependencies, so no critical
    // path; given the workflow, the figures are those of the original.
    assert!(metrics.critical_path.is_empty());
    assert_eq!(back.metrics_with(&workflow()), result.metrics());

    // A result written without the `metrics` key reads back the same way.
    let mut value = result.to_value();
    value.as_object_mut().expect("an object").remove("metrics");
    let back: WorkflowResult = serde_json::from_value(value).expect("reads");
    assert_eq!(back, result);
    assert_eq!(back.metrics_with(&workflow()), result.metrics());
}

/// Text keeps the tasks in insertion order, read back too; a JSON value sorts them by id.
#[test]
fn json_text_keeps_the_tasks_order_and_a_value_sorts_them() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("b", "t"))
        .task(Task::new("a", "t").depends_on(["b"]));
    let records = vec![TaskRecord::default(), TaskRecord::default()];
    let mut result = self::result();
    result.tasks = TaskRecords::for_workflow(&workflow, records).expect("one per task");
    let back: WorkflowResult = serde_json::from_str(&result.to_json()).expect("reads");
    assert_eq!(back, result);
    let ids: Vec<&str> = back.tasks.ids().map(|id| id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    let value = result.to_value();
    let keys: Vec<&String> = value["tasks"].as_object().expect("tasks").keys().collect();
    assert_eq!(keys, ["a", "b"]);
}

/// As `to_json` says: an output nested 124 levels deep reads back, one level more does
/// not (the text is written either way).
#[test]
fn an_output_nested_up_to_124_levels_reads_back() {
    for (depth, reads) in [(124, true), (125, false)] {
        let mut output = json!(0);
        for _ in 0..depth {
            output = json!([output]);
        }
        let mut result = result();
        let mut records = result.tasks.records().to_vec();
        records[0].result = Some(output);
        result.tasks = TaskRecords::for_workflow(&workflow(), records).expect("one per task");
        let read = serde_json::from_str::<WorkflowResult>(&result.to_json());
        assert_eq!(read.is_ok(), reads, "{depth}: {:?}", read.err());
    }
}
