//! `ml_pipeline` and `from_file`: the seven stages on `examples/data/ml_samples.csv`.
//!
//! The file has 300 rows; the problems in it were put there on purpose: 6 empty `x1`,
//! 3 empty `x2`, 2 empty `color`, 1 empty `label`, one `x1` of `n/a` and one `x2` of `?`,
//! each in a different row.

use std::collections::BTreeMap;

use examples::ml_pipeline;
use orch::prelude::*;
use serde_json::json;

/// The pipeline with one stage's configuration replaced.
fn with_config(stage: &str, config: serde_json::Value) -> Workflow {
    let base = ml_pipeline::workflow(&examples::data_file("ml_samples.csv"));
    let tasks = base.tasks().cloned().map(|mut task| {
        if task.task_id.as_str() == stage {
            task.config = config.clone();
        }
        task
    });
    Workflow::from_tasks(base.workflow_id(), base.name(), tasks)
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn every_stage_does_its_part() {
    let outcome = ml_pipeline::run(&examples::data_file("ml_samples.csv"))
        .await
        .expect("the pipeline runs");
    assert_eq!(outcome.result.status, WorkflowStatus::Completed);

    let v = &outcome.validation;
    assert_eq!((v.row_count, v.valid_rows), (300, 286));
    assert_eq!(
        v.nulls,
        counts(&[("color", 2), ("label", 1), ("x1", 6), ("x2", 3)])
    );
    assert_eq!(v.type_errors, counts(&[("x1", 1), ("x2", 1)]));

    let c = &outcome.cleaning;
    assert_eq!((c.kept, c.dropped), (299, 1));
    assert_eq!(c.imputed, counts(&[("color", 2), ("x1", 7), ("x2", 4)]));

    assert_eq!(
        outcome.features,
        [
            "x1_scaled",
            "x2_scaled",
            "color=blue",
            "color=green",
            "color=red"
        ]
    );
    assert_eq!(outcome.split, (239, 60));

    // Both features separate the classes, so both weights come out positive.
    let model = &outcome.model;
    assert_eq!(model.fitted.weights.len(), 5);
    assert!(model.fitted.weights[0] > 0.5 && model.fitted.weights[1] > 0.5);
    assert!(model.train_accuracy > 0.8, "{model:?}");

    // Measured 0.90 for both; the classes overlap, so about 0.89 is the best possible
    // from x1 and x2 alone.
    let e = &outcome.evaluation;
    assert_eq!(e.test_size, 60);
    assert!(e.metrics["accuracy"] >= 0.85, "{e:?}");
    assert!(e.metrics["f1"] >= 0.85, "{e:?}");
    assert_eq!(e.metrics.len(), 2);
    let confusion = e.confusion;
    let total = confusion.true_positive
        + confusion.false_positive
        + confusion.true_negative
        + confusion.false_negative;
    assert_eq!(total, 60);
}

#[tokio::test]
async fn runs_are_deterministic() {
    let path = examples::data_file("ml_samples.csv");
    let first = ml_pipeline::run(&path).await.expect("runs");
    let second = ml_pipeline::run(&path).await.expect("runs");
    assert_eq!(first.model, second.model);
    assert_eq!(first.evaluation, second.evaluation);
}

#[tokio::test]
async fn the_workflow_file_runs_the_same_pipeline() {
    let from_code = ml_pipeline::run(&examples::data_file("ml_samples.csv"))
        .await
        .expect("runs");
    let from_file = examples::from_file::run(&examples::workflow_file("ml_pipeline.yaml"))
        .await
        .expect("runs");
    assert_eq!(from_file.result.status, WorkflowStatus::Completed);
    assert_eq!(from_file.result.workflow_id, "ml_pipeline");
    assert_eq!(from_file.validation, from_code.validation);
    assert_eq!(from_file.model, from_code.model);
    assert_eq!(from_file.evaluation, from_code.evaluation);
    // The file asks for retries on `train`; a deterministic stage needs one attempt.
    assert_eq!(from_file.result.task("train").map(|r| r.attempts), Some(1));
}

#[tokio::test]
async fn the_drop_method_keeps_only_complete_rows() {
    let engine = WorkflowEngine::new();
    ml_pipeline::register_handlers(&engine, examples::examples_dir());
    let workflow = with_config("clean", json!({"method": "drop"}));
    let result = engine
        .execute_workflow(&workflow)
        .await
        .expect("valid workflow");
    let outcome = ml_pipeline::outcome(result).expect("completed");
    assert_eq!((outcome.cleaning.kept, outcome.cleaning.dropped), (286, 14));
    assert!(outcome.cleaning.imputed.is_empty());
}

#[tokio::test]
async fn an_unsupported_model_fails_train_and_skips_evaluate() {
    let engine = WorkflowEngine::new();
    ml_pipeline::register_handlers(&engine, examples::examples_dir());
    let workflow = with_config("train", json!({"model": "random_forest"}));
    let result = engine
        .execute_workflow(&workflow)
        .await
        .expect("valid workflow");
    assert_eq!(result.status, WorkflowStatus::Failed);
    let train = result.task("train").expect("recorded");
    assert_eq!(train.status, TaskStatus::Failed);
    assert_eq!(train.attempts, 1, "a permanent error is not retried");
    assert_eq!(result.tasks_with(TaskStatus::Skipped), ["evaluate"]);
    assert!(ml_pipeline::outcome(result).is_err());
}
