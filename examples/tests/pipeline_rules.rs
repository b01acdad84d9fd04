//! `pipeline_rules`: the branch follows the figures, rules run past the offline source,
//! and the `gpu` pool runs its jobs one at a time by priority.

use orch::prelude::*;

#[path = "../pipeline_rules.rs"]
#[allow(dead_code)]
mod pipeline_rules;

#[tokio::test]
async fn small_figures_take_the_quick_report_and_the_run_completes() {
    let outcome = pipeline_rules::run(1).await.expect("runs");
    let result = &outcome.result;
    let status = |id: &str| result.task(id).expect("recorded").status;
    assert_eq!(status("source_eu"), TaskStatus::Failed);
    // `merge` sums what arrived: 60 + 15.
    let merge = result.task("merge").expect("merge");
    assert_eq!(merge.result.as_ref().expect("output")["total"], 75);
    assert_eq!(status("alert"), TaskStatus::Completed);
    assert_eq!(status("quick_report"), TaskStatus::Completed);
    assert_eq!(status("full_report"), TaskStatus::Skipped);
    assert_eq!(
        result
            .task("full_report")
            .expect("recorded")
            .error
            .as_deref(),
        Some("not chosen by branch task `route`")
    );
    let publish = result.task("publish").expect("publish");
    assert_eq!(
        publish.result.as_ref().expect("output")["published"],
        "quick_report"
    );
    assert_eq!(status("cleanup"), TaskStatus::Completed);
    // The failed source was handled by `alert`, so the run completes.
    assert_eq!(result.status, WorkflowStatus::Completed);
}

#[tokio::test]
async fn large_figures_take_the_full_report() {
    let outcome = pipeline_rules::run(100).await.expect("runs");
    let result = &outcome.result;
    let status = |id: &str| result.task(id).expect("recorded").status;
    assert_eq!(status("full_report"), TaskStatus::Completed);
    assert_eq!(status("quick_report"), TaskStatus::Skipped);
    let publish = result.task("publish").expect("publish");
    assert_eq!(
        publish.result.as_ref().expect("output")["text"],
        "full_report: 7500"
    );
}

#[tokio::test]
async fn gpu_jobs_start_by_priority() {
    let outcome = pipeline_rules::run(1).await.expect("runs");
    let gpu: Vec<&str> = outcome
        .starts
        .iter()
        .map(String::as_str)
        .filter(|id| id.starts_with("embed_"))
        .collect();
    assert_eq!(gpu, ["embed_today", "embed_week", "embed_archive"]);
    // The highest-priority job starts with the first tasks, before the sources behind
    // it in the workflow's order have all started.
    assert_eq!(outcome.starts[0], "embed_today");
}
