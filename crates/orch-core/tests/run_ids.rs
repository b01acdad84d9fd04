//! A result names its run: the run id is written to JSON and read back, and a result
//! written without one (by an earlier version) reads back with a fresh one.

use std::time::{Duration, SystemTime};

use orch_core::{RunId, Task, TaskRecord, TaskRecords, TaskStatus, Workflow, WorkflowResult};

fn result(run_id: RunId) -> WorkflowResult {
    let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let record = TaskRecord {
        status: TaskStatus::Completed,
        start_time: Some(start),
        end_time: Some(start),
        attempts: 1,
        ..TaskRecord::default()
    };
    let text = format!(
        r#"{{"workflow_id": "w", "run_id": "{run_id}", "name": "W", "status": "completed",
            "start_time": "2023-11-14T22:13:20Z", "end_time": "2023-11-14T22:13:20Z",
            "max_concurrent": 1, "tasks": {{}}}}"#
    );
    let mut result: WorkflowResult = serde_json::from_str(&text).expect("a valid result");
    result.tasks = TaskRecords::for_workflow(&workflow, vec![record]).expect("one per task");
    result
}

#[test]
fn the_run_id_is_written_and_read_back() {
    let run_id: RunId = "nightly-7".parse().expect("a valid id");
    let original = result(run_id.clone());
    assert_eq!(original.run_id, run_id);
    assert_eq!(original.to_value()["run_id"], "nightly-7");
    let back: WorkflowResult = serde_json::from_str(&original.to_json()).expect("reads back");
    assert_eq!(back.run_id, run_id);
    assert_eq!(back, original);
}

#[test]
fn results_of_different_runs_differ() {
    let (a, b) = (result(RunId::new()), result(RunId::new()));
    assert_ne!(a, b);
    assert_eq!(
        a,
        WorkflowResult {
            run_id: a.run_id.clone(),
            ..b
        }
    );
}

#[test]
fn a_result_written_without_a_run_id_reads_back_with_a_fresh_one() {
    let mut value = result(RunId::new()).to_value();
    value.as_object_mut().expect("an object").remove("run_id");
    let text = value.to_string();
    let first: WorkflowResult = serde_json::from_str(&text).expect("reads back");
    let second: WorkflowResult = serde_json::from_str(&text).expect("reads back");
    assert_ne!(first.run_id, second.run_id, "a fresh id each time");
    assert_eq!(
        RunId::parse(first.run_id.as_str()),
        Ok(first.run_id.clone())
    );
}

#[test]
fn an_invalid_run_id_is_refused_with_the_reason() {
    let mut value = result(RunId::new()).to_value();
    value["run_id"] = "../etc".into();
    let error = serde_json::from_value::<WorkflowResult>(value).expect_err("refused");
    assert!(error.to_string().contains("only ASCII letters"), "{error}");
}
