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
