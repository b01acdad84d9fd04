//! Metrics of hand-made runs, including the edge cases: nothing ran, one task, cancelled.

use std::time::{Duration, SystemTime};

use orch_core::{
    Task, TaskRecord, TaskRecords, TaskStatus, Workflow, WorkflowResult, WorkflowStatus,
};

fn at(millis: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}

fn ran(status: TaskStatus, start: u64, end: u64) -> TaskRecord {
    TaskRecord {
        status,
        start_time: Some(at(start)),
        end_time: Some(at(end)),
        attempts: 1,
        ..TaskRecord::default()
    }
}

fn not_run(status: TaskStatus) -> TaskRecord {
    TaskRecord {
        status,
        ..TaskRecord::default()
    }
}

fn result_of(
    workflow: &Workflow,
    records: Vec<TaskRecord>,
    wall: u64,
    slots: usize,
) -> WorkflowResult {
    WorkflowResult {
        workflow_id: workflow.workflow_id().into(),
        run_id: orch_core::RunId::new(),
        name: workflow.name().into(),
        status: WorkflowStatus::Completed,
        start_time: at(0),
        end_time: at(wall),
        max_concurrent: slots,
        tasks: TaskRecords::for_workflow(workflow, records).expect("one record per task"),
    }
}

fn chain(n: usize) -> Workflow {
    Workflow::from_tasks(
        "chain",
        "Chain",
        (0..n).map(|i| {
            let task = Task::new(format!("t{i}"), "t");
            if i == 0 {
                task
            } else {
                task.depends_on([format!("t{}", i - 1)])
            }
        }),
    )
}

#[test]
fn counts_and_duration_statistics() {
    let workflow = chain(4);
    let records = vec![
        ran(TaskStatus::Completed, 0, 100),
        ran(TaskStatus::Completed, 100, 400),
        ran(TaskStatus::Failed, 400, 600),
        not_run(TaskStatus::Skipped),
    ];
    let metrics = result_of(&workflow, records, 600, 1).metrics();
    assert_eq!(metrics.total_tasks, 4);
    assert_eq!(
        (
            metrics.completed_tasks,
            metrics.failed_tasks,
            metrics.skipped_tasks,
            metrics.cancelled_tasks
        ),
        (2, 1, 1, 0)
    );
    assert_eq!(metrics.total_duration, 0.6);
    assert_eq!(metrics.min_task_duration, Some(0.1));
    assert_eq!(metrics.max_task_duration, Some(0.3));
    assert!((metrics.avg_task_duration.expect("ran") - 0.2).abs() < 1e-12);
    assert_eq!(metrics.p50_task_duration, Some(0.2));
    assert_eq!(metrics.p95_task_duration, Some(0.3));
    assert_eq!(metrics.p99_task_duration, Some(0.3));
    // The skipped t3 adds nothing, so the path ends where the work ended.
    assert_eq!(metrics.critical_path, ["t0", "t1", "t2"]);
    assert!((metrics.critical_path_duration - 0.6).abs() < 1e-12);
    assert!((metrics.parallel_efficiency.expect("took time") - 1.0).abs() < 1e-12);
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let workflow =
        Workflow::from_tasks("w", "W", (0..100).map(|i| Task::new(format!("t{i}"), "t")));
    // Durations 1..=100 ms, stored out of order.
    let records = (0..100u64)
        .map(|i| ran(TaskStatus::Completed, 0, (i * 37) % 100 + 1))
        .collect();
    let metrics = result_of(&workflow, records, 100, 100).metrics();
    assert_eq!(metrics.p50_task_duration, Some(0.05));
    assert_eq!(metrics.p95_task_duration, Some(0.095));
    assert_eq!(metrics.p99_task_duration, Some(0.099));
    assert_eq!(metrics.critical_path.len(), 1);
}

#[test]
fn nothing_ran_when_everything_was_skipped() {
    let workflow = chain(3);
    let records = vec![not_run(TaskStatus::Skipped); 3];
    let metrics = result_of(&workflow, records, 0, 4).metrics();
    assert_eq!(metrics.skipped_tasks, 3);
    assert_eq!(metrics.avg_task_duration, None);
    assert_eq!(metrics.p99_task_duration, None);
    assert_eq!(metrics.parallel_efficiency, None);
    assert_eq!(metrics.critical_path_duration, 0.0);
}

#[test]
fn one_task() {
    let workflow = chain(1);
    let metrics = result_of(&workflow, vec![ran(TaskStatus::Completed, 5, 25)], 30, 2).metrics();
    assert_eq!(metrics.min_task_duration, metrics.max_task_duration);
    assert_eq!(metrics.p50_task_duration, Some(0.02));
    assert_eq!(metrics.critical_path, ["t0"]);
    assert_eq!(metrics.parallel_efficiency, Some(0.02 / (0.03 * 2.0)));
}

#[test]
fn a_cancelled_run_counts_cancelled_tasks_and_what_ran_before() {
    let workflow = chain(3);
    let records = vec![
        ran(TaskStatus::Completed, 0, 10),
        ran(TaskStatus::Cancelled, 10, 50),
        not_run(TaskStatus::Cancelled),
    ];
    let mut result = result_of(&workflow, records, 50, 1);
    result.status = WorkflowStatus::Cancelled;
    let metrics = result.metrics();
    assert_eq!((metrics.completed_tasks, metrics.cancelled_tasks), (1, 2));
    assert_eq!(metrics.max_task_duration, Some(0.04));
    assert_eq!(metrics.critical_path, ["t0", "t1"]);
}

#[test]
fn results_read_from_json_need_their_workflow_for_the_critical_path() {
    let workflow = chain(2);
    let records = vec![
        ran(TaskStatus::Completed, 0, 10),
        ran(TaskStatus::Completed, 10, 30),
    ];
    let result = result_of(&workflow, records, 30, 1);
    let read_back: WorkflowResult =
        serde_json::from_str(&result.to_json()).expect("a result reads back");
    assert_eq!(read_back.tasks, result.tasks);
    assert!(read_back.metrics().critical_path.is_empty());
    let with = read_back.metrics_with(&workflow);
    assert_eq!(with.critical_path, ["t0", "t1"]);
    assert_eq!(with, result.metrics());
}

#[test]
fn a_task_that_took_no_measurable_time_still_ends_its_chain() {
    let workflow = chain(2);
    let records = vec![
        ran(TaskStatus::Completed, 0, 10),
        ran(TaskStatus::Completed, 10, 10),
    ];
    let metrics = result_of(&workflow, records, 10, 1).metrics();
    assert_eq!(metrics.critical_path, ["t0", "t1"]);
    assert_eq!(metrics.critical_path_duration, 0.01);
}

#[test]
fn records_are_matched_to_the_given_workflow_by_id_not_by_place() {
    let fan = |order: [&str; 3]| {
        Workflow::from_tasks(
            "fan",
            "Fan",
            order.map(|id| match id {
                "r" => Task::new("r", "t"),
                _ => Task::new(id, "t").depends_on(["r"]),
            }),
        )
    };
    let recorded = fan(["r", "x", "y"]);
    let records = vec![
        ran(TaskStatus::Completed, 0, 10),
        ran(TaskStatus::Completed, 10, 20),
        ran(TaskStatus::Completed, 10, 40),
    ];
    let read_back: WorkflowResult =
        serde_json::from_str(&result_of(&recorded, records, 40, 2).to_json())
            .expect("a result reads back");
    // The same tasks listed in another order: `y`, the longer branch, is second here.
    let metrics = read_back.metrics_with(&fan(["r", "y", "x"]));
    assert_eq!(metrics.critical_path, ["r", "y"]);
    assert!((metrics.critical_path_duration - 0.04).abs() < 1e-12);
}

/// A map task's record spans its instances, which have records of their own: its time
/// is counted once, through the instances, and the critical path goes through the map.
#[test]
fn a_map_tasks_time_is_counted_once() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "t"))
        .task(Task::new("m", "t").map_over("list"));
    // One slot: the list for 1 s, then three instances of 1 s each, one after another.
    let records = vec![
        ran(TaskStatus::Completed, 0, 1000),
        ran(TaskStatus::Completed, 1000, 4000),
    ];
    let instances = (0..3u64).map(|i| {
        let start = 1000 + 1000 * i;
        (
            orch_core::TaskId::from(format!("m[{i}]")),
            ran(TaskStatus::Completed, start, start + 1000),
        )
    });
    let pending = vec![not_run(TaskStatus::Pending); 2];
    let mut result = result_of(&workflow, pending, 4000, 1);
    result.tasks = TaskRecords::for_workflow_with_extra(&workflow, records, instances)
        .expect("one record per task");
    let metrics = result.metrics();
    assert_eq!(metrics.total_tasks, 5);
    assert_eq!(metrics.parallel_efficiency, Some(1.0));
    assert_eq!(metrics.avg_task_duration, Some(1.0));
    assert_eq!(metrics.max_task_duration, Some(1.0));
    assert_eq!(metrics.critical_path, ["list", "m"]);
    assert_eq!(metrics.critical_path_duration, 4.0);
}

/// A resumed run keeps the records of the tasks an earlier run completed, with that
/// run's times: the busy time counts only what ran within this run (a 100 s task of the
/// earlier run once made a 1 s resume 101 times busier than it could be).
#[test]
fn a_task_restored_from_an_earlier_run_is_busy_only_within_this_run() {
    let workflow = chain(2);
    let records = vec![
        ran(TaskStatus::Completed, 0, 100_000),
        ran(TaskStatus::Completed, 100_000, 101_000),
    ];
    let mut result = result_of(&workflow, records, 101_000, 1);
    result.start_time = at(100_000);
    let metrics = result.metrics();
    assert_eq!(metrics.total_duration, 1.0);
    assert_eq!(metrics.parallel_efficiency, Some(1.0));
    // Its earlier run's time is not on this run's critical path either, which would
    // then be longer than the run.
    assert_eq!(metrics.critical_path, ["t0", "t1"]);
    assert_eq!(metrics.critical_path_duration, 1.0);
}

/// A task whose rule starts it early (`one_success`) did not wait for its slower
/// dependency: the critical path does not add that one's time to its own (it once
/// came out longer than the run), and goes through the dependency it waited for.
#[test]
fn the_critical_path_follows_only_the_dependencies_a_task_waited_for() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("fast", "t"))
        .task(Task::new("slow", "t"))
        .task(
            Task::new("join", "t")
                .depends_on(["fast", "slow"])
                .trigger_rule(orch_core::TriggerRule::OneSuccess),
        )
        .task(Task::new("after", "t").depends_on(["join"]));
    let records = vec![
        ran(TaskStatus::Completed, 0, 1_000),
        ran(TaskStatus::Completed, 0, 10_000),
        ran(TaskStatus::Completed, 1_000, 2_000),
        ran(TaskStatus::Completed, 2_000, 3_000),
    ];
    let metrics = result_of(&workflow, records, 10_000, 2).metrics();
    assert_eq!(metrics.critical_path, ["slow"]);
    assert_eq!(metrics.critical_path_duration, 10.0);
}

/// `x[0]` names an instance only of a map task `x`: beside a plain `x`, it is a task of
/// its own, and `x` keeps its place in the duration statistics.
#[test]
fn a_plain_task_named_like_an_instance_keeps_the_other_task_counted() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("shard", "t"))
        .task(Task::new("shard[0]", "t"));
    let records = vec![
        ran(TaskStatus::Completed, 0, 3000),
        ran(TaskStatus::Completed, 0, 1000),
    ];
    let metrics = result_of(&workflow, records, 3000, 2).metrics();
    assert_eq!(metrics.max_task_duration, Some(3.0));
    assert_eq!(metrics.avg_task_duration, Some(2.0));
    assert_eq!(metrics.parallel_efficiency, Some(4.0 / 6.0));
}

/// A result's records follow its own workflow's order: the dependencies of a workflow
/// with the same tasks in another order (equal by `==`) are matched to them by id.
#[test]
fn the_critical_path_with_the_same_tasks_in_another_order_matches_records_by_id() {
    let ran_in = Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(Task::new("b", "t").depends_on(["a"]))
        .task(Task::new("c", "t"));
    let reordered = Workflow::new("w", "W")
        .task(Task::new("c", "t"))
        .task(Task::new("a", "t"))
        .task(Task::new("b", "t").depends_on(["a"]));
    assert_eq!(ran_in, reordered);
    let records = vec![
        ran(TaskStatus::Completed, 0, 1000),
        ran(TaskStatus::Completed, 1000, 2000),
        ran(TaskStatus::Completed, 0, 10_000),
    ];
    let metrics = result_of(&ran_in, records, 10_000, 2).metrics_with(&reordered);
    assert_eq!(metrics.critical_path, ["c"]);
    assert_eq!(metrics.critical_path_duration, 10.0);
}
