//! `failure_handling`: a failure skips its dependents only, and a flaky task is retried.

use orch::prelude::*;

#[path = "../failure_handling.rs"]
#[allow(dead_code)]
mod failure_handling;

use failure_handling::parse_settings;

#[tokio::test]
async fn a_failure_skips_its_dependents_and_nothing_else() {
    let result = failure_handling::run().await.expect("runs");
    assert_eq!(result.status, WorkflowStatus::Failed);
    assert_eq!(result.tasks_with(TaskStatus::Failed), ["read_settings"]);
    assert_eq!(
        result.tasks_with(TaskStatus::Skipped),
        ["apply_settings", "restart_workers"]
    );
    assert_eq!(
        result.tasks_with(TaskStatus::Completed),
        ["count_words", "fetch_rates", "report"]
    );

    let failed = result.task("read_settings").expect("recorded");
    assert_eq!(failed.attempts, 1);
    assert_eq!(
        failed.error.as_deref(),
        Some("line 2: `batch_size`: invalid digit found in string")
    );
    let skipped = result.task("restart_workers").expect("recorded");
    assert_eq!((skipped.attempts, skipped.start_time), (0, None));

    let metrics = result.metrics();
    assert_eq!(
        (
            metrics.completed_tasks,
            metrics.failed_tasks,
            metrics.skipped_tasks
        ),
        (3, 1, 2)
    );
}

#[tokio::test]
async fn the_flaky_task_succeeds_on_its_second_attempt() {
    let result = failure_handling::run().await.expect("runs");
    let flaky = result.task("fetch_rates").expect("recorded");
    assert_eq!(flaky.status, TaskStatus::Completed);
    assert_eq!(flaky.attempts, 2);
    assert_eq!(
        flaky.result.as_ref().map(|r| r["attempt"].clone()),
        Some(2.into())
    );

    let report = result.task("report").and_then(|r| r.result.as_ref());
    let report = report.expect("report completed");
    assert_eq!(report["words"], 10);
    assert_eq!(report["rates"]["usd"], 1.08);
}

#[tokio::test]
async fn valid_settings_complete_the_whole_run() {
    let result = failure_handling::run_with("workers = 4\nbatch_size = 40\n")
        .await
        .expect("runs");
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert!(result.tasks_with(TaskStatus::Failed).is_empty());
    assert!(result.tasks_with(TaskStatus::Skipped).is_empty());
    let restarted = result
        .task("restart_workers")
        .and_then(|r| r.result.as_ref());
    let restarted = restarted.expect("completed");
    assert_eq!(restarted["applied_from"], "apply_settings");
    assert_eq!(restarted["settings"]["settings"]["batch_size"], 40);
}

#[test]
fn settings_parse_or_fail_permanently() {
    let settings = parse_settings("a = 1\n\n b=-2 \n").expect("valid");
    assert_eq!(settings.len(), 2);
    assert_eq!((settings["a"], settings["b"]), (1, -2));
    assert!(parse_settings("no equals sign").is_err_and(|e| e.is_permanent()));
    assert!(parse_settings("x = 1.5").is_err_and(|e| e.is_permanent()));
}
