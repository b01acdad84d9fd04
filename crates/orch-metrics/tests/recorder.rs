//! The recorder: per task type counts and histograms, from events and from results.

use std::time::{Duration, SystemTime};

use orch_core::{
    EngineEvent, EngineEventKind, Task, TaskRecord, TaskRecords, TaskStatus, Workflow,
    WorkflowResult, WorkflowStatus,
};
use orch_metrics::{DURATION_BUCKETS, DurationHistogram, Recorder};

fn event(kind: EngineEventKind, task_type: &str, millis: Option<u64>) -> EngineEvent {
    let mut event = EngineEvent::new(
        kind,
        "w".into(),
        orch_core::RunId::new(),
        SystemTime::UNIX_EPOCH,
    );
    event.task_id = Some("t".into());
    event.task_type = Some(task_type.into());
    event.duration = millis.map(Duration::from_millis);
    event
}

#[test]
fn events_are_counted_per_task_type() {
    use EngineEventKind::*;
    let recorder = Recorder::new();
    for e in [
        event(TaskStarted, "load", None),
        event(TaskRetrying, "load", Some(100)),
        event(TaskCompleted, "load", Some(30)),
        event(TaskStarted, "load", None),
        event(TaskFailed, "load", Some(2_000)),
        event(TaskSkipped, "store", None),
        event(TaskCancelled, "store", None),
        EngineEvent::new(
            WorkflowFinished,
            "w".into(),
            orch_core::RunId::new(),
            SystemTime::UNIX_EPOCH,
        ),
    ] {
        recorder.observe(&e);
    }
    let load = recorder.task_type("load").expect("seen");
    assert_eq!(
        (load.started, load.completed, load.failed, load.retried),
        (2, 1, 1, 1)
    );
    assert_eq!(
        load.durations.count, 2,
        "retry pauses are not task durations"
    );
    assert!((load.durations.sum - 2.03).abs() < 1e-9);
    let store = recorder.task_type("store").expect("seen");
    assert_eq!((store.skipped, store.cancelled, store.started), (1, 1, 0));
    assert_eq!(
        recorder.snapshot().keys().collect::<Vec<_>>(),
        ["load", "store"]
    );
    assert!(recorder.task_type("other").is_none());
}

#[test]
fn durations_land_in_the_first_bucket_that_holds_them() {
    let mut histogram = DurationHistogram::default();
    histogram.record(Duration::from_micros(50)); // <= 100 µs
    histogram.record(Duration::from_millis(1)); // exactly 1 ms: the 1 ms bucket
    histogram.record(Duration::from_secs(3600)); // beyond every bound
    let ms = DURATION_BUCKETS
        .iter()
        .position(|&b| b == 0.001)
        .expect("a 1 ms bound");
    assert_eq!(histogram.counts[0], 1);
    assert_eq!(histogram.counts[ms], 1);
    assert_eq!(histogram.counts[DURATION_BUCKETS.len()], 1);
    assert_eq!(histogram.count, 3);
}

#[test]
fn whole_results_can_be_recorded() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "fetch"))
        .task(Task::new("b", "store").depends_on(["a"]));
    let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    let records = vec![
        TaskRecord {
            status: TaskStatus::Failed,
            start_time: Some(at(0)),
            end_time: Some(at(20)),
            attempts: 3,
            ..TaskRecord::default()
        },
        TaskRecord {
            status: TaskStatus::Skipped,
            ..TaskRecord::default()
        },
    ];
    let result = WorkflowResult {
        workflow_id: "w".into(),
        run_id: orch_core::RunId::new(),
        name: "W".into(),
        status: WorkflowStatus::Failed,
        start_time: at(0),
        end_time: at(20),
        max_concurrent: 1,
        tasks: TaskRecords::for_workflow(&workflow, records).expect("one per task"),
    };
    let recorder = Recorder::new();
    recorder.record_result(&result);
    let fetch = recorder.task_type("fetch").expect("seen");
    assert_eq!((fetch.started, fetch.retried, fetch.failed), (1, 2, 1));
    assert_eq!(fetch.durations.count, 1);
    assert_eq!(recorder.task_type("store").expect("seen").skipped, 1);
}

#[cfg(feature = "metrics-facade")]
#[test]
fn the_metrics_facade_sees_counters_and_histograms() {
    let exporter = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = exporter.handle();
    metrics::with_local_recorder(&exporter, || {
        let recorder = Recorder::new();
        recorder.observe(&event(EngineEventKind::TaskCompleted, "load", Some(30)));
        recorder.observe(&event(EngineEventKind::TaskCompleted, "load", Some(40)));
    });
    let text = handle.render();
    assert!(
        text.contains(r#"orch_tasks_total{task_type="load",outcome="completed"} 2"#),
        "{text}"
    );
    assert!(text.contains("orch_task_duration_seconds"), "{text}");
}
