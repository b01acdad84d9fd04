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
    assert_eq!(load.durations.sum, Duration::from_millis(2030));
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

/// A record read back from a file may claim any number of attempts: its retries are
/// counted at once, not one by one.
#[test]
fn a_record_of_billions_of_attempts_is_counted_at_once() {
    let workflow = Workflow::new("w", "W").task(Task::new("a", "fetch"));
    let record = TaskRecord {
        status: TaskStatus::Completed,
        attempts: u32::MAX,
        ..TaskRecord::default()
    };
    let at = SystemTime::UNIX_EPOCH;
    let tasks = TaskRecords::for_workflow(&workflow, vec![record]).expect("one per task");
    let result = completed_run(&orch_core::RunId::new(), (at, at), tasks);
    let recorder = Recorder::new();
    recorder.record_result_with(&result, &workflow);
    recorder.record_result_with(&result, &workflow);
    let fetch = recorder.task_type("fetch").expect("seen");
    let retries = u64::from(u32::MAX - 1);
    assert_eq!((fetch.started, fetch.retried), (2, 2 * retries));
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

/// A run of map task `sq` over three items, one of which failed once before it
/// completed: its result, and the events the engine publishes for it.
/// The result of run `run_id` of workflow `w` ("W"), completed, from `times.0` to
/// `times.1`, with the records `tasks`.
fn completed_run(
    run_id: &orch_core::RunId,
    times: (SystemTime, SystemTime),
    tasks: TaskRecords,
) -> WorkflowResult {
    WorkflowResult {
        workflow_id: "w".into(),
        run_id: run_id.clone(),
        name: "W".into(),
        status: WorkflowStatus::Completed,
        start_time: times.0,
        end_time: times.1,
        max_concurrent: 2,
        tasks,
    }
}

fn map_run() -> (WorkflowResult, Vec<EngineEvent>) {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "load"))
        .task(Task::new("sq", "square").map_over("list"));
    let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    let ran = |from, to, attempts| TaskRecord {
        status: TaskStatus::Completed,
        start_time: Some(at(from)),
        end_time: Some(at(to)),
        attempts,
        ..TaskRecord::default()
    };
    let instances = [ran(10, 20, 1), ran(10, 30, 2), ran(20, 40, 1)];
    let records = vec![ran(0, 10, 1), ran(10, 40, 2)];
    let extra = (instances.iter().enumerate())
        .map(|(i, record)| (orch_core::TaskId::from(format!("sq[{i}]")), record.clone()));
    let run_id = orch_core::RunId::new();
    let tasks = TaskRecords::for_workflow_with_extra(&workflow, records, extra).expect("records");
    let result = completed_run(&run_id, (at(0), at(40)), tasks);
    let event = |kind, id: &str, task_type: &str, item: Option<u32>, ms: Option<u64>| {
        let mut event = EngineEvent::new(kind, "w".into(), run_id.clone(), at(0));
        event.task_id = Some(id.into());
        event.task_type = Some(task_type.into());
        event.map_item = item;
        event.duration = ms.map(Duration::from_millis);
        event
    };
    use EngineEventKind::{TaskCompleted, TaskRetrying, TaskStarted, WorkflowFinished};
    let mut events = vec![
        event(TaskStarted, "list", "load", None, None),
        event(TaskCompleted, "list", "load", None, Some(10)),
        event(TaskStarted, "sq", "square", None, None),
    ];
    for (i, ms) in [(0, 10), (1, 20), (2, 20)] {
        let id = format!("sq[{i}]");
        events.push(event(TaskStarted, &id, "square", Some(i), None));
        if i == 1 {
            events.push(event(TaskRetrying, &id, "square", Some(i), None));
        }
        events.push(event(TaskCompleted, &id, "square", Some(i), Some(ms)));
    }
    events.push(event(TaskCompleted, "sq", "square", None, Some(30)));
    events.push(EngineEvent::new(
        WorkflowFinished,
        "w".into(),
        run_id,
        at(40),
    ));
    (result, events)
}

#[test]
fn a_maps_instances_count_alike_from_events_and_from_its_result() {
    let (result, events) = map_run();
    let from_events = Recorder::new();
    for event in &events {
        from_events.observe(event);
    }
    let from_result = Recorder::new();
    from_result.record_result(&result);
    assert_eq!(from_events.snapshot(), from_result.snapshot());
    let square = from_result.task_type("square").expect("seen");
    // The map task and its three instances; durations of the instances only.
    assert_eq!(
        (square.started, square.completed, square.retried),
        (4, 4, 1)
    );
    assert_eq!(square.durations.count, 3);
    // Records that know only their ids (as read back from a file), with the workflow
    // given.
    let mut read_back = result.clone();
    read_back.tasks = (result.tasks.iter())
        .map(|(id, record)| (id.clone(), record.clone()))
        .collect();
    let from_json = Recorder::new();
    from_json.record_result(&read_back);
    assert!(
        from_json.snapshot().is_empty(),
        "no task types without the workflow"
    );
    let workflow = result.tasks.workflow().expect("run from a workflow");
    from_json.record_result_with(&read_back, workflow);
    assert_eq!(from_json.snapshot(), from_result.snapshot());
}

/// A task whose result came from the cache announced its start (and has a start time)
/// though no attempt of its own ran: it counts as started from its events and from its
/// result alike.
#[test]
fn a_result_from_the_cache_counts_as_started_from_events_and_from_its_result() {
    let workflow = Workflow::new("w", "W").task(Task::new("c", "t"));
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(5);
    let cached = TaskRecord {
        status: TaskStatus::Completed,
        start_time: Some(at),
        end_time: Some(at),
        attempts: 0,
        cached: true,
        ..TaskRecord::default()
    };
    let run_id = orch_core::RunId::new();
    let tasks = TaskRecords::for_workflow_with_extra(&workflow, vec![cached], []);
    let result = completed_run(&run_id, (at, at), tasks.expect("records"));
    let from_events = Recorder::new();
    for (kind, duration) in [
        (EngineEventKind::TaskStarted, None),
        (EngineEventKind::TaskCompleted, Some(Duration::ZERO)),
    ] {
        let mut event = EngineEvent::new(kind, "w".into(), run_id.clone(), at);
        event.task_id = Some("c".into());
        event.task_type = Some("t".into());
        event.duration = duration;
        from_events.observe(&event);
    }
    let from_result = Recorder::new();
    from_result.record_result(&result);
    assert_eq!(from_events.snapshot(), from_result.snapshot());
    assert_eq!(from_result.task_type("t").map(|t| t.started), Some(1));
}

/// A map run again in a resumed run: its instances' records count their attempts in
/// that run, so its result tells of the retries that run made, as its events do.
#[test]
fn a_resumed_maps_instances_count_the_retries_of_their_run() {
    use orch_engine::{TaskContext, TaskError, WorkflowEngine};
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "load"))
        .task(Task::new("sq", "square").map_over("list").retries(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let run = |fail: bool, previous: Option<WorkflowResult>| {
        let bus: orch_events::EventBus<EngineEvent> = orch_events::EventBus::new();
        let mut subscription = bus
            .subscribe_with(
                "workflow.>",
                orch_events::SubscribeOptions::new().capacity(1 << 10),
            )
            .expect("a valid pattern");
        let engine = WorkflowEngine::builder()
            .event_bus(bus.clone())
            .build()
            .expect("valid");
        engine.register_handler("load", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(serde_json::json!([1, 2, 3]))
        });
        engine.register_handler("square", move |ctx: TaskContext| async move {
            match fail && ctx.item_index() == Some(0) {
                true => Err(TaskError::new("down")),
                false => Ok(ctx.map_item::<u32>()?.pow(2)),
            }
        });
        runtime.block_on(async {
            let result = match &previous {
                None => engine.execute_workflow(&workflow).await,
                Some(previous) => engine.resume(&workflow, previous).await,
            };
            bus.close().await;
            let from_events = Recorder::new();
            while let Some(event) = subscription.recv_event().await {
                from_events.observe(event.payload());
            }
            (result.expect("valid"), from_events)
        })
    };
    let (first, _) = run(true, None);
    assert_eq!(first.status, WorkflowStatus::Failed);
    let (second, from_events) = run(false, Some(first));
    assert_eq!(second.status, WorkflowStatus::Completed);
    let from_result = Recorder::new();
    from_result.record_result(&second);
    let retried = |recorder: &Recorder| recorder.task_type("square").map(|t| t.retried);
    // Every instance completed at its first attempt of the resumed run.
    assert_eq!(retried(&from_events), Some(0));
    assert_eq!(retried(&from_result), Some(0));
}
