//! Run records as JSON: field order, time format, reading a result back, and metrics
//! computed on first use.

use std::cell::Cell;
use std::time::{Duration, SystemTime};

use orch_core::{
    LazyMetrics, RunMetrics, Task, TaskRecord, TaskRecords, TaskStatus, Workflow, WorkflowResult,
    WorkflowStatus,
};
use serde_json::json;

fn result() -> WorkflowResult {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(Task::new("b", "t").depends_on(["a"]));
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
            error: Some("skipped: dependency `a` failed".into()),
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
        metrics: LazyMetrics::default(),
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

thread_local! {
    /// How often `counted_metrics` ran on this thread (each test has its own thread).
    static COMPUTED: Cell<usize> = const { Cell::new(0) };
}

/// Counts its calls, so a test can tell when the metrics were computed.
fn counted_metrics(result: &WorkflowResult) -> RunMetrics {
    COMPUTED.set(COMPUTED.get() + 1);
    RunMetrics {
        total_tasks: result.tasks.len(),
        max_task_duration: Some(result.max_concurrent as f64),
        ..RunMetrics::default()
    }
}

#[test]
fn metrics_are_computed_once_when_first_asked_for_and_written_to_json() {
    let result = WorkflowResult {
        metrics: LazyMetrics::computed_by(counted_metrics),
        ..result()
    };
    assert_eq!(COMPUTED.get(), 0, "nothing asked yet");
    assert!(result.metrics.get().is_none());
    assert_eq!(
        format!("{:?}", result.metrics),
        "LazyMetrics(not computed yet)"
    );
    assert_eq!(result.metrics().map(|m| m.total_tasks), Some(2));
    assert_eq!(result.to_value()["metrics"]["total_tasks"], 2);
    assert_eq!(result.clone().metrics().map(|m| m.total_tasks), Some(2));
    assert_eq!(
        COMPUTED.get(),
        1,
        "computed once, then kept, clones included"
    );
    assert!(format!("{:?}", result.metrics).starts_with("LazyMetrics(RunMetrics {"));

    // Read back, the result holds the metrics it was written with and computes nothing.
    let back: WorkflowResult = serde_json::from_str(&result.to_json()).expect("reads");
    assert_eq!(back.metrics.get().map(|m| m.total_tasks), Some(2));
    assert_eq!(
        back, result,
        "equal whether or not the metrics were computed"
    );
}

#[test]
fn a_clone_made_before_the_first_read_computes_its_own_and_clear_recomputes() {
    let mut result = WorkflowResult {
        metrics: LazyMetrics::computed_by(counted_metrics),
        ..result()
    };
    let mut copy = result.clone();
    copy.max_concurrent = 7;
    assert_eq!(copy.metrics().and_then(|m| m.max_task_duration), Some(7.0));
    assert_eq!(
        result.metrics().and_then(|m| m.max_task_duration),
        Some(2.0)
    );
    assert_eq!(COMPUTED.get(), 2);

    // Changed after the first read: the kept figures stay until they are cleared.
    result.max_concurrent = 5;
    assert_eq!(
        result.metrics().and_then(|m| m.max_task_duration),
        Some(2.0)
    );
    result.metrics.clear();
    assert_eq!(
        result.metrics().and_then(|m| m.max_task_duration),
        Some(5.0)
    );
    assert_eq!(COMPUTED.get(), 3);
}

#[test]
fn a_result_without_a_way_to_compute_metrics_writes_null() {
    let result = result();
    assert_eq!(result.metrics(), None);
    assert_eq!(format!("{:?}", result.metrics), "LazyMetrics(none)");
    assert_eq!(result.to_value()["metrics"], serde_json::Value::Null);
    let back: WorkflowResult = serde_json::from_str(&result.to_json()).expect("reads");
    assert_eq!(back.metrics(), None);

    // A result written without the `metrics` key reads back the same way.
    let mut value = result.to_value();
    value.as_object_mut().expect("an object").remove("metrics");
    let back: WorkflowResult = serde_json::from_value(value).expect("reads");
    assert_eq!(back.metrics(), None);
    assert_eq!(back, result);
}
