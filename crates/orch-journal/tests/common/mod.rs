//! Helpers shared by the journal's tests: running a future, and proptest strategies for
//! workflows and task records.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orch_core::{Task, TaskId, TaskRecord, TaskStatus, Workflow, WorkflowStatus};
use proptest::prelude::*;
use serde_json::Value;

/// A record of a task that ran once and ended as `status` with `result`.
pub fn ran_once(status: TaskStatus, result: Value) -> TaskRecord {
    TaskRecord {
        status,
        result: Some(result),
        attempts: 1,
        ..TaskRecord::default()
    }
}

/// A record of a task that completed with `result` on its first attempt.
pub fn completed(result: Value) -> TaskRecord {
    ran_once(TaskStatus::Completed, result)
}

/// Runs `future` on a fresh single-threaded runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A workflow of independent tasks with the given ids.
pub fn workflow_of(id: &str, tasks: &[String]) -> Workflow {
    tasks.iter().fold(Workflow::new(id, "W"), |w, t| {
        w.task(Task::new(t.as_str(), "t"))
    })
}

pub fn status() -> impl Strategy<Value = TaskStatus> {
    prop_oneof![
        Just(TaskStatus::Pending),
        Just(TaskStatus::Running),
        Just(TaskStatus::Completed),
        Just(TaskStatus::Failed),
        Just(TaskStatus::Skipped),
        Just(TaskStatus::Cancelled),
    ]
}

/// JSON values whose text form reads back equal (floats are multiples of 1/4).
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 4.0)),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Times RFC 3339 can write: 1970 to 9999, to the nanosecond.
pub fn time() -> impl Strategy<Value = SystemTime> {
    (0u64..=253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n))
}

pub fn record() -> impl Strategy<Value = TaskRecord> {
    (
        status(),
        prop::option::of(json()),
        prop::option::of("\\PC{0,20}"),
        prop::option::of(time()),
        prop::option::of(time()),
        (any::<u32>(), any::<bool>(), any::<bool>()),
        prop::option::of(prop::collection::vec("\\PC{1,10}", 0..3)),
    )
        .prop_map(
            |(
                status,
                result,
                error,
                start_time,
                end_time,
                (attempts, shared_output, cached),
                chosen,
            )| TaskRecord {
                status,
                result,
                error,
                start_time,
                end_time,
                attempts,
                shared_output,
                cached,
                chosen_branches: chosen.map(|ids| ids.into_iter().map(TaskId::from).collect()),
            },
        )
}

/// Task ids (1 to `max` distinct, any characters), and batches of records naming them
/// by index.
pub fn run(max: usize) -> impl Strategy<Value = (Vec<String>, Vec<Vec<(usize, TaskRecord)>>)> {
    prop::collection::btree_set("\\PC{1,10}", 1..=max).prop_flat_map(|ids| {
        let n = ids.len();
        let batch = prop::collection::vec((0..n, record()), 0..5);
        (
            Just(ids.into_iter().collect::<Vec<_>>()),
            prop::collection::vec(batch, 0..5),
        )
    })
}

/// The record in force for task `id` by the documented rule: the first completed record
/// after its last pending one, or else its last record.
pub fn in_force<'a>(
    records: &'a [(orch_core::TaskId, TaskRecord)],
    id: &str,
) -> Option<&'a TaskRecord> {
    let mine: Vec<&TaskRecord> = (records.iter())
        .filter(|(t, _)| t == id)
        .map(|(_, r)| r)
        .collect();
    let since_reset = match mine.iter().rposition(|r| r.status == TaskStatus::Pending) {
        Some(reset) => &mine[reset..],
        None => &mine[..],
    };
    (since_reset.iter())
        .find(|r| r.status == TaskStatus::Completed)
        .or(since_reset.last())
        .copied()
}

/// Records run `run` (workflow id `workflow_id`) the way a durable run with map tasks
/// does, and checks what comes back: map `m` completed, with its instances recorded
/// in the same batch just before it; map `n` failed, and an instance of it that
/// completed is in the journal all the same (say, from an older version). The previous
/// result has the workflow's tasks, then the instances of `m` only; the listing counts
/// tasks, not instances. Returns the workflow.
pub async fn map_instances_come_back_with_their_map(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow_id: &str,
) -> Workflow {
    use orch_core::TaskId;
    let workflow = Workflow::new(workflow_id, "W")
        .task(Task::new("list", "t"))
        .task(Task::new("m", "t").map_over("list"))
        .task(Task::new("n", "t").map_over("list"));
    let ids = ["list", "n[0]", "n", "m[0]", "m[1]", "m"].map(TaskId::from);
    let records = [
        completed(serde_json::json!([1, 2])),
        completed(serde_json::json!(1)),
        ran_once(TaskStatus::Failed, Value::Null),
        completed(serde_json::json!(1)),
        ran_once(TaskStatus::Skipped, Value::Null),
        completed(serde_json::json!([1, null])),
    ];
    let pairs: Vec<_> = ids.iter().zip(&records).collect();
    let opened = journal.open(run, &workflow).await.unwrap();
    for batch in [&pairs[..3], &pairs[3..]] {
        opened.writer.append(batch).await.unwrap();
    }
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.task("m[0]"), Some(&records[3]));
    assert_eq!(loaded.task("n[0]"), Some(&records[1]));
    let result = loaded.to_result(&workflow).unwrap();
    let kept: Vec<_> = result
        .tasks
        .iter()
        .map(|(id, r)| (id.as_str(), r))
        .collect();
    let expected = [
        ("list", &records[0]),
        ("m", &records[5]),
        ("n", &records[2]),
        // A map that did not complete keeps the instances that did, for a resume.
        ("n[0]", &records[1]),
        ("m[0]", &records[3]),
        ("m[1]", &records[4]),
    ];
    assert_eq!(kept, expected);
    let filter = orch_journal::RunFilter::default().workflow(workflow_id);
    let listed = journal.list(&filter).await.unwrap();
    let counts = (listed[0].recorded_tasks, listed[0].completed_tasks);
    assert_eq!(counts, (3, 2), "tasks, not instances");
    workflow
}

/// Instances recorded as they completed, not all of them and not in order, for a map
/// that did not complete: they come back with the run, stay with the map's completion
/// without its list, and a reset of the map takes every one of them out of force.
pub async fn instances_recorded_apart_go_with_a_reset(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow_id: &str,
) {
    use orch_core::TaskId;
    let workflow = Workflow::new(workflow_id, "W")
        .task(Task::new("list", "t"))
        .task(Task::new("m", "t").map_over("list"));
    let opened = journal.open(run, &workflow).await.unwrap();
    let ids = ["list", "m[5]", "m[0]", "m[2]", "m"].map(TaskId::from);
    let (list, six, one, three) = (
        completed(serde_json::json!([1, 2, 3, 4, 5, 6])),
        completed(serde_json::json!(6)),
        completed(serde_json::json!(1)),
        completed(serde_json::json!(3)),
    );
    let batches: [&[(&TaskId, &TaskRecord)]; 3] = [
        &[(&ids[0], &list)],
        &[(&ids[1], &six)],
        &[(&ids[2], &one), (&ids[3], &three)],
    ];
    for batch in batches {
        opened.writer.append(batch).await.unwrap();
    }
    let loaded = journal.load(run).await.unwrap().unwrap();
    let result = loaded.to_result(&workflow).unwrap();
    let instances: Vec<&str> = (result.tasks.iter())
        .map(|(id, _)| id.as_str())
        .filter(|id| id.starts_with("m["))
        .collect();
    assert_eq!(instances, ["m[5]", "m[0]", "m[2]"], "in the order recorded");
    assert_eq!(result.task("m").unwrap().status, TaskStatus::Pending);

    // The map's completion without its list (not journaled) takes none of them out.
    let unlisted = TaskRecord {
        shared_output: true,
        ..completed(serde_json::json!({ "not_journaled": "too large" }))
    };
    opened.writer.append(&[(&ids[4], &unlisted)]).await.unwrap();
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.task("m"), Some(&unlisted));
    for (id, record) in [("m[0]", &one), ("m[2]", &three), ("m[5]", &six)] {
        assert_eq!(
            loaded.task(id),
            Some(record),
            "{id} after the map's completion"
        );
    }

    let reset = TaskRecord::default();
    opened.writer.append(&[(&ids[4], &reset)]).await.unwrap();
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    for id in ["m[0]", "m[2]", "m[5]"] {
        assert_eq!(loaded.task(id), None, "{id} after the reset");
    }
}

/// On the run [`map_instances_come_back_with_their_map`] recorded: pending records (a
/// resumed run's, for tasks it runs again) take `list`'s completion and `m`'s, with
/// `m`'s instances, out of force, and the records after them are in force.
pub async fn a_pending_record_resets_a_completion_and_its_instances(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow: &Workflow,
) {
    use orch_core::TaskId;
    let (list, m, m0) = (
        TaskId::from("list"),
        TaskId::from("m"),
        TaskId::from("m[0]"),
    );
    let pending = TaskRecord::default();
    let opened = journal.open(run, workflow).await.unwrap();
    opened
        .writer
        .append(&[(&list, &pending), (&m, &pending)])
        .await
        .unwrap();
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.task("list"), Some(&pending));
    assert_eq!(loaded.task("m"), Some(&pending));
    assert_eq!((loaded.task("m[0]"), loaded.task("m[1]")), (None, None));
    let filter = orch_journal::RunFilter::default().workflow(workflow.workflow_id());
    let listed = journal.list(&filter).await.unwrap();
    let counts = (listed[0].recorded_tasks, listed[0].completed_tasks);
    assert_eq!(counts, (1, 0), "only `n` is recorded now");

    let (new_list, new_m0, new_m) = (
        completed(serde_json::json!([5])),
        completed(serde_json::json!(5)),
        completed(serde_json::json!([5])),
    );
    let batch = [(&list, &new_list), (&m0, &new_m0), (&m, &new_m)];
    opened.writer.append(&batch).await.unwrap();
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.task("list"), Some(&new_list));
    assert_eq!(loaded.task("m"), Some(&new_m));
    assert_eq!(loaded.task("m[0]"), Some(&new_m0));
    assert_eq!(
        loaded.task("m[1]"),
        None,
        "the first completion's instance is gone"
    );
    let result = loaded.to_result(workflow).unwrap();
    let instances: Vec<&str> = (result.tasks.iter())
        .map(|(id, _)| id.as_str())
        .filter(|id| id.starts_with("m["))
        .collect();
    assert_eq!(instances, ["m[0]"]);
}

/// Opens run `run` of `workflow`, records `records` and ends the run as completed.
async fn record_completed_run(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow: &Workflow,
    records: &[(&TaskId, &TaskRecord)],
) {
    let opened = journal.open(run, workflow).await.unwrap();
    opened.writer.append(records).await.unwrap();
    let ended = opened.writer.finish(WorkflowStatus::Completed).await;
    ended.unwrap();
}

/// Run `run` (workflow id `workflow_id`) completes `x`, is reopened without it, and then
/// with a changed `x`: that `x` has no record to resume from, and its new completion is
/// the one in force.
pub async fn a_task_dropped_and_added_back_starts_afresh(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow_id: &str,
) {
    let with_x = |config: Value| {
        Workflow::new(workflow_id, "W")
            .task(Task::new("a", "t"))
            .task(Task::new("x", "t").config(config).map_over("a"))
    };
    let (a, x, x0) = (TaskId::from("a"), TaskId::from("x"), TaskId::from("x[0]"));
    let first = [
        (&a, &completed(serde_json::json!([1]))),
        (&x0, &completed(Value::from("A0"))),
        (&x, &completed(serde_json::json!(["A0"]))),
    ];
    record_completed_run(journal, run, &with_x(Value::from("A")), &first).await;
    let without_x = Workflow::new(workflow_id, "W").task(Task::new("a", "t"));
    let opened = journal.open(run, &without_x).await.unwrap();
    // The new definition goes in with the first record after it.
    let again = completed(serde_json::json!([1]));
    opened.writer.append(&[(&a, &again)]).await.unwrap();
    drop(opened);
    // Reopened with another definition, the ended run is unfinished again, and the
    // dropped map task's instance went with it.
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.status(), orch_journal::RunStatus::Unfinished);
    assert_eq!(loaded.task("x[0]"), None);

    let opened = journal.open(run, &with_x(Value::from("B"))).await.unwrap();
    assert_eq!(opened.changes.added, std::slice::from_ref(&x));
    let previous = opened.previous.as_ref().expect("a recorded run");
    assert_eq!(
        previous.task("x").map(|r| r.status),
        Some(TaskStatus::Pending)
    );
    assert_eq!(
        previous.task("a").map(|r| r.status),
        Some(TaskStatus::Completed)
    );
    assert_eq!(previous.task("x[0]"), None, "the old instance is gone");
    let again = completed(Value::from("B"));
    opened.writer.append(&[(&x, &again)]).await.unwrap();
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.task("x"), Some(&again));
}

/// Run `run` (workflow id `workflow_id`) is reopened with a changed task whose skip it
/// recorded and without a task it completed, and closed before it records anything: it
/// keeps its definition and the dropped task's record (it is unfinished, no longer
/// ended), so opening it again reports the same changes (a scheduler resets the skip in its first commit). The
/// first records after a change, or the run's end, take the new definition with them.
pub async fn a_changed_definition_is_taken_with_the_first_record(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow_id: &str,
) {
    let workflow = |config: Value, with_c: bool| {
        let w = Workflow::new(workflow_id, "W")
            .task(Task::new("a", "t"))
            .task(Task::new("b", "t").config(config).depends_on(["a"]));
        if with_c {
            w.task(Task::new("c", "t"))
        } else {
            w
        }
    };
    let (a, b, c) = (TaskId::from("a"), TaskId::from("b"), TaskId::from("c"));
    let skipped = TaskRecord {
        status: TaskStatus::Skipped,
        error: Some("not today".to_owned()),
        ..TaskRecord::default()
    };
    let done = completed(Value::from(1));
    let first = [(&a, &done), (&b, &skipped), (&c, &done)];
    record_completed_run(journal, run, &workflow(Value::from(1), true), &first).await;

    let changed = workflow(Value::from(2), false);
    for opening in 0..2 {
        let opened = journal.open(run, &changed).await.unwrap();
        let changes = &opened.changes;
        let expected = (std::slice::from_ref(&b), std::slice::from_ref(&c));
        assert_eq!(
            (&changes.changed[..], &changes.removed[..]),
            expected,
            "opening {opening}"
        );
        // A write of no records writes no definition either: it goes in with the first.
        let nothing = opened.writer.commit(&[], orch_journal::Durability::Power);
        nothing.await.unwrap();
        drop(opened);
    }
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.changes(&changed).changed, std::slice::from_ref(&b));
    assert_eq!(loaded.task("b"), Some(&skipped));
    assert_eq!(
        loaded.task("c"),
        Some(&done),
        "the dropped task's record stays"
    );
    assert_eq!(loaded.status(), orch_journal::RunStatus::Unfinished);

    let opened = journal.open(run, &changed).await.unwrap();
    let reset = TaskRecord::default();
    opened.writer.append(&[(&b, &reset)]).await.unwrap();
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.task("c"), None, "gone with the first write");
    assert_eq!(loaded.status(), orch_journal::RunStatus::Unfinished);
    let opened = journal.open(run, &changed).await.unwrap();
    assert!(opened.changes.is_empty(), "{:?}", opened.changes);
    let previous = opened.previous.as_ref().expect("a recorded run");
    assert_eq!(previous.task("b"), Some(&reset));
    drop(opened);

    // The run's end alone takes a change too.
    let changed_again = workflow(Value::from(3), false);
    let opened = journal.open(run, &changed_again).await.unwrap();
    assert_eq!(opened.changes.changed, std::slice::from_ref(&b));
    opened
        .writer
        .finish(WorkflowStatus::Cancelled)
        .await
        .unwrap();
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert!(loaded.changes(&changed_again).is_empty());
    assert_eq!(loaded.status(), orch_journal::RunStatus::Cancelled);
}

/// Run `run` (workflow id `workflow_id`) completes map task `m` with one instance,
/// `m[0]`, and is reopened with a plain task `m[0]` instead: that task's later records
/// count like any task's (the instance's record it replaced does not hold them back).
pub async fn a_plain_task_in_place_of_a_maps_instance_keeps_its_records(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow_id: &str,
) {
    let with_map = Workflow::new(workflow_id, "W")
        .task(Task::new("list", "t"))
        .task(Task::new("m", "t").map_over("list"));
    let (list, m, m0) = (
        TaskId::from("list"),
        TaskId::from("m"),
        TaskId::from("m[0]"),
    );
    let opened = journal.open(run, &with_map).await.unwrap();
    let first = [
        (&list, &completed(serde_json::json!([1]))),
        (&m0, &completed(Value::from("an instance's"))),
        (&m, &completed(serde_json::json!(["an instance's"]))),
    ];
    opened.writer.append(&first).await.unwrap();
    drop(opened);
    let plain = Workflow::new(workflow_id, "W")
        .task(Task::new("list", "t"))
        .task(Task::new("m[0]", "t").depends_on(["list"]));
    let failed = ran_once(TaskStatus::Failed, Value::Null);
    let opened = journal.open(run, &plain).await.unwrap();
    opened.writer.append(&[(&m0, &failed)]).await.unwrap();
    drop(opened);
    let done = completed(Value::from("the task's own"));
    let opened = journal.open(run, &plain).await.unwrap();
    opened.writer.append(&[(&m0, &done)]).await.unwrap();
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.task("m[0]"), Some(&done));
}

/// A pending record (a reset) in a batch applies in its place among the batch's
/// records: a map's reset forgets the instances recorded before it in the same batch,
/// and a task's reset touches no other task's record, even one whose id looks like an
/// instance of it (`x[0]` beside `x`).
pub async fn a_reset_in_a_batch_applies_in_its_place(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow_id: &str,
) {
    let workflow = Workflow::new(workflow_id, "W")
        .task(Task::new("list", "t"))
        .task(Task::new("m", "t").map_over("list"))
        .task(Task::new("x", "t"))
        .task(Task::new("x[0]", "t"));
    let [list, m, m0, m1, x, x0] = ["list", "m", "m[0]", "m[1]", "x", "x[0]"].map(TaskId::from);
    let pending = TaskRecord::default();
    let first_x0 = completed(Value::from("first"));
    let opened = journal.open(run, &workflow).await.unwrap();
    let first = [
        (&list, &completed(serde_json::json!([1, 2]))),
        (&m0, &completed(Value::from("a"))),
        (&m1, &completed(Value::from("b"))),
        (&m, &completed(serde_json::json!(["a", "b"]))),
        (&x0, &first_x0),
    ];
    opened.writer.append(&first).await.unwrap();
    let again = completed(Value::from("again"));
    let batch = [(&m0, &again), (&m, &pending), (&x, &pending), (&x0, &again)];
    opened.writer.append(&batch).await.unwrap();
    // `m` completes again with no instance recorded (say, from a cache).
    let m_again = completed(serde_json::json!(["z"]));
    opened.writer.append(&[(&m, &m_again)]).await.unwrap();
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.task("m"), Some(&m_again));
    assert_eq!(
        (loaded.task("m[0]"), loaded.task("m[1]")),
        (None, None),
        "the reset of `m` forgets the instances recorded before it"
    );
    assert_eq!(loaded.task("x"), Some(&pending));
    assert_eq!(
        loaded.task("x[0]"),
        Some(&first_x0),
        "task `x[0]` is not `x`'s"
    );
}

/// A run's end is recorded once: a second `finish`, and any record after the first,
/// are refused with `JournalError::Finished`, and the end recorded first stays.
pub async fn a_run_ends_once(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow_id: &str,
) {
    let workflow = Workflow::new(workflow_id, "W").task(Task::new("a", "t"));
    let opened = journal.open(run, &workflow).await.unwrap();
    let a = TaskId::from("a");
    let done = completed(Value::from(1));
    opened.writer.append(&[(&a, &done)]).await.unwrap();
    opened
        .writer
        .finish(WorkflowStatus::Completed)
        .await
        .unwrap();
    // A sync after the end (as `Durability::Power` makes) does not move the end time
    // (both read from the journal: a server's clock may differ from this process's).
    let end_time = |loaded: Option<orch_journal::LoadedRun>| loaded.unwrap().end_time();
    let finished = end_time(journal.load(run).await.unwrap()).expect("an end time");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    opened.writer.sync().await.unwrap();
    let again = opened.writer.finish(WorkflowStatus::Failed).await;
    assert!(
        matches!(again, Err(orch_journal::JournalError::Finished { .. })),
        "{again:?}"
    );
    let late = opened.writer.append(&[(&a, &done)]).await;
    assert!(
        matches!(late, Err(orch_journal::JournalError::Finished { .. })),
        "{late:?}"
    );
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.status(), orch_journal::RunStatus::Completed);
    let ended = loaded.end_time().expect("an end time");
    assert_eq!(ended, finished, "the end time moved with the sync");
}

/// A run that ended and is opened again is unfinished while it is open, and after, until
/// it ends again: what lists the runs shows it going on, not with its old end.
pub async fn a_reopened_run_is_unfinished_until_it_ends_again(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow_id: &str,
) {
    use orch_journal::{RunFilter, RunStatus};
    let workflow = Workflow::new(workflow_id, "W").task(Task::new("a", "t"));
    let a = TaskId::from("a");
    let opened = journal.open(run, &workflow).await.unwrap();
    opened
        .writer
        .append(&[(&a, &ran_once(TaskStatus::Failed, Value::Null))])
        .await
        .unwrap();
    opened.writer.finish(WorkflowStatus::Failed).await.unwrap();
    drop(opened);
    let unfinished = RunFilter::default()
        .workflow(workflow_id)
        .status(RunStatus::Unfinished);
    let listed = |runs: Vec<orch_journal::RunSummary>| -> Vec<orch_core::RunId> {
        runs.into_iter().map(|r| r.run_id).collect()
    };
    assert_eq!(
        listed(journal.list(&unfinished).await.unwrap()),
        Vec::<orch_core::RunId>::new()
    );

    let opened = journal.open(run, &workflow).await.unwrap();
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.status(), RunStatus::Unfinished, "while it is open");
    assert_eq!(loaded.end_time(), None);
    assert_eq!(
        listed(journal.list(&unfinished).await.unwrap()),
        std::slice::from_ref(run)
    );
    // Its records stand as they were.
    assert_eq!(loaded.task("a").map(|r| r.status), Some(TaskStatus::Failed));
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(
        loaded.status(),
        RunStatus::Unfinished,
        "closed without an end"
    );

    let opened = journal.open(run, &workflow).await.unwrap();
    opened
        .writer
        .append(&[(&a, &completed(Value::from(1)))])
        .await
        .unwrap();
    opened
        .writer
        .finish(WorkflowStatus::Completed)
        .await
        .unwrap();
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!(loaded.status(), RunStatus::Completed);
    assert_eq!(loaded.task("a"), Some(&completed(Value::from(1))));
}

/// A record of no task of the workflow the run goes on with (nor an instance, `task[i]`,
/// of one) is refused when appended, with nothing of its batch written: written, it
/// would make the run unreadable. After a reopening, that is the new workflow's tasks.
pub async fn a_record_of_no_task_is_refused(
    journal: &dyn orch_journal::Journal,
    run: &orch_core::RunId,
    workflow_id: &str,
) {
    let both = Workflow::new(workflow_id, "W")
        .task(Task::new("a", "t"))
        .task(Task::new("b", "t"));
    let (a, b) = (TaskId::from("a"), TaskId::from("b"));
    let done = completed(Value::from(1));
    let refused = |appended: Result<(), orch_journal::JournalError>, foreign: &str| match appended {
        Err(orch_journal::JournalError::InvalidRecord { task, .. }) => {
            assert_eq!(task.as_str(), foreign)
        }
        other => panic!("a record of `{foreign}`: {other:?}"),
    };
    let opened = journal.open(run, &both).await.unwrap();
    opened.writer.append(&[(&b, &done)]).await.unwrap();
    for foreign in ["zz", "zz[0]", "a[x]"] {
        let foreign_id = TaskId::from(foreign);
        let appended = opened
            .writer
            .append(&[(&a, &done), (&foreign_id, &done)])
            .await;
        refused(appended, foreign);
    }
    drop(opened);
    let only_a = Workflow::new(workflow_id, "W").task(Task::new("a", "t"));
    let opened = journal.open(run, &only_a).await.unwrap();
    refused(opened.writer.append(&[(&b, &done)]).await, "b");
    opened.writer.append(&[(&a, &done)]).await.unwrap();
    drop(opened);
    let loaded = journal.load(run).await.unwrap().unwrap();
    assert_eq!((loaded.task("a"), loaded.task("b")), (Some(&done), None));
}
