//! `from_file`: the YAML file runs the same pipeline as the `ml_pipeline` example's code.

use orch::prelude::*;

#[path = "../from_file.rs"]
#[allow(dead_code)]
mod from_file;

use from_file::ml_pipeline::{self, support};

#[tokio::test]
async fn the_workflow_file_runs_the_same_pipeline() {
    let from_code = ml_pipeline::run(&support::data_file("ml_samples.csv"))
        .await
        .expect("runs");
    let from_file = from_file::run(&support::workflow_file("ml_pipeline.yaml"))
        .await
        .expect("runs");
    assert_eq!(from_file.result.status, WorkflowStatus::Completed);
    assert_eq!(from_file.result.workflow_id, "ml_pipeline");
    assert_eq!(from_file.result.tasks.len(), 7);
    assert_eq!(from_file.reports, from_code.reports);
    // The file asks for retries on `train`; a deterministic stage needs one attempt.
    let train = from_file.result.task("train").expect("recorded");
    assert_eq!(train.attempts, 1);
}

#[tokio::test]
async fn a_relative_data_path_is_read_from_the_files_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("data")).expect("created");
    let samples = std::fs::read_to_string(support::data_file("ml_samples.csv")).expect("read");
    // Only the first 101 lines: the result must come from this copy.
    let head: Vec<&str> = samples.lines().take(101).collect();
    std::fs::write(dir.path().join("data/few.csv"), head.join("\n")).expect("written");
    let yaml = std::fs::read_to_string(support::workflow_file("ml_pipeline.yaml"))
        .expect("read")
        .replace("../data/ml_samples.csv", "data/few.csv");
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, yaml).expect("written");

    let outcome = from_file::run(&file).await.expect("runs");
    assert_eq!(outcome.reports["validate"]["row_count"], 100);
}

/// A file the engine would refuse is refused as read, though the example copies its
/// tasks: a repeated id is not dropped with the copy.
#[tokio::test]
async fn a_file_with_a_repeated_task_id_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("twice.yaml");
    let task = "{ task_id: load, task_type: load, config: { path: x.csv } }";
    std::fs::write(
        &file,
        format!("workflow_id: w\ntasks:\n  - {task}\n  - {task}\n"),
    )
    .expect("written");
    let error = from_file::run(&file).await.err().expect("refused");
    assert!(
        error
            .to_string()
            .contains("task id `load` is used by more than one task"),
        "{error}"
    );
}

/// A stage that did not run because an earlier one failed is reported with the failure
/// that started it.
#[tokio::test]
async fn a_missing_data_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = std::fs::read_to_string(support::workflow_file("ml_pipeline.yaml"))
        .expect("read")
        .replace("../data/ml_samples.csv", "data/missing.csv");
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, yaml).expect("written");
    let error = from_file::run(&file)
        .await
        .err()
        .expect("fails")
        .to_string();
    assert!(error.contains("the run's first failure: `load`"), "{error}");
    assert!(error.contains("missing.csv"), "{error}");
}
