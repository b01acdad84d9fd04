//! `ml_pipeline`: the seven stages on `examples/data/ml_samples.csv`.
//!
//! The file has 300 rows; the problems in it were put there on purpose: 6 empty `x1`,
//! 3 empty `x2`, 2 empty `color`, 1 empty `label`, one `x1` of `n/a` and one `x2` of `?`,
//! each in a different row.

use orch::prelude::*;
use serde_json::json;

#[path = "../ml_pipeline.rs"]
#[allow(dead_code)]
mod ml_pipeline;

use ml_pipeline::support;

/// The pipeline with one stage's configuration replaced.
fn with_config(stage: &str, config: serde_json::Value) -> Workflow {
    let base = ml_pipeline::workflow(&support::data_file("ml_samples.csv"));
    let tasks = base.tasks().cloned().map(|mut task| {
        if task.task_id.as_str() == stage {
            task.config = config.clone();
        }
        task
    });
    Workflow::from_tasks(base.workflow_id(), base.name(), tasks)
}

async fn run_with(workflow: &Workflow) -> WorkflowResult {
    let engine = WorkflowEngine::new();
    ml_pipeline::register_handlers(&engine);
    engine
        .execute_workflow(workflow)
        .await
        .expect("valid workflow")
}

#[tokio::test]
async fn every_stage_does_its_part() {
    let outcome = ml_pipeline::run(&support::data_file("ml_samples.csv"))
        .await
        .expect("the pipeline runs");
    assert_eq!(outcome.result.status, WorkflowStatus::Completed);
    let r = &outcome.reports;

    assert_eq!(
        r["validate"],
        json!({
            "row_count": 300,
            "valid_rows": 286,
            "nulls": {"color": 2, "label": 1, "x1": 6, "x2": 3},
            "type_errors": {"x1": 1, "x2": 1},
        })
    );
    assert_eq!(
        r["clean"],
        json!({
            "method": "standard",
            "kept": 299,
            "dropped": 1,
            "imputed": {"color": 2, "x1": 7, "x2": 4},
        })
    );
    assert_eq!(
        r["feature_eng"]["features"],
        json!([
            "x1_scaled",
            "x2_scaled",
            "color=blue",
            "color=green",
            "color=red",
            "color=unknown"
        ])
    );
    assert_eq!(r["split"], json!({"train_size": 239, "test_size": 60}));
    assert_eq!(r["train"]["model"], "nearest_centroid");
    assert!(r["train"]["train_accuracy"].as_f64() > Some(0.8), "{r:?}");

    // The classes overlap, so about 0.89 is the best possible from x1 and x2 alone.
    let e = &r["evaluate"];
    assert_eq!(e["test_size"], 60);
    assert!(e["accuracy"].as_f64() >= Some(0.8), "{e}");
    assert!(e["f1"].as_f64() >= Some(0.8), "{e}");
    let confusion: [[usize; 2]; 2] = serde_json::from_value(e["confusion"].clone()).expect("2x2");
    assert_eq!(confusion.iter().flatten().sum::<usize>(), 60);
    let right = confusion[0][0] + confusion[1][1];
    assert_eq!(e["accuracy"].as_f64(), Some(right as f64 / 60.0));
}

#[tokio::test]
async fn the_drop_method_keeps_only_complete_rows() {
    let result = run_with(&with_config("clean", json!({"method": "drop"}))).await;
    let outcome = ml_pipeline::outcome(result).expect("completed");
    let clean = &outcome.reports["clean"];
    assert_eq!(
        (clean["kept"].as_u64(), clean["dropped"].as_u64()),
        (Some(286), Some(14))
    );
    assert_eq!(clean["imputed"], json!({}));
}

#[tokio::test]
async fn an_unsupported_model_fails_train_and_skips_evaluate() {
    let result = run_with(&with_config("train", json!({"model": "random_forest"}))).await;
    assert_eq!(result.status, WorkflowStatus::Failed);
    let train = result.task("train").expect("recorded");
    assert_eq!(train.status, TaskStatus::Failed);
    assert_eq!(train.attempts, 1, "a permanent error is not retried");
    assert!(
        train
            .error
            .as_deref()
            .is_some_and(|e| e.contains("random_forest"))
    );
    assert_eq!(result.tasks_with(TaskStatus::Skipped), ["evaluate"]);
    assert!(ml_pipeline::outcome(result).is_err());
}

#[tokio::test]
async fn a_malformed_file_fails_load_naming_the_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("samples.csv");
    std::fs::write(
        &file,
        "id,x1,x2,color,label\n1,2.0,3.0,red,0\n2,2.5,red,1\n",
    )
    .expect("written");
    let result = run_with(&ml_pipeline::workflow(&file)).await;
    let load = result.task("load").expect("recorded");
    assert_eq!(load.status, TaskStatus::Failed);
    assert!(
        load.error.as_deref().is_some_and(|e| e.contains("line 3")),
        "{:?}",
        load.error
    );
    assert_eq!(result.tasks_with(TaskStatus::Skipped).len(), 6);
}
