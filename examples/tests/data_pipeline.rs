//! `data_pipeline`: the aggregation over `examples/data/sales.csv`, checked against
//! totals worked out separately from the file.

use orch::prelude::*;

#[path = "../data_pipeline.rs"]
#[allow(dead_code)]
mod data_pipeline;

use data_pipeline::{Totals, support};

fn totals(orders: u32, units: u32, revenue_cents: u64) -> Totals {
    Totals {
        orders,
        units,
        revenue_cents,
    }
}

#[tokio::test]
async fn aggregates_the_sales_file_by_region() {
    let outcome = data_pipeline::run(&support::data_file("sales.csv"), "region")
        .await
        .expect("the pipeline runs");
    assert_eq!(outcome.result.status, WorkflowStatus::Completed);
    let summary = &outcome.summary;
    assert_eq!(summary.total, totals(20, 216, 81_115));
    assert_eq!(summary.groups.len(), 4);
    assert_eq!(summary.groups["north"], totals(5, 62, 14_899));
    assert_eq!(summary.groups["south"], totals(5, 52, 27_822));
    assert_eq!(summary.groups["east"], totals(5, 54, 24_546));
    assert_eq!(summary.groups["west"], totals(5, 48, 13_848));

    let metrics = outcome.result.metrics();
    assert_eq!((metrics.total_tasks, metrics.completed_tasks), (2, 2));
    assert_eq!(metrics.critical_path, ["fetch_task", "process_task"]);
}

#[tokio::test]
async fn aggregates_by_product() {
    let outcome = data_pipeline::run(&support::data_file("sales.csv"), "product")
        .await
        .expect("the pipeline runs");
    assert_eq!(outcome.summary.groups.len(), 4);
    assert_eq!(outcome.summary.groups["gizmo"], totals(4, 7, 34_300));
    assert_eq!(outcome.summary.groups["sprocket"], totals(5, 131, 9_825));
    assert_eq!(outcome.summary.total, totals(20, 216, 81_115));
}

#[tokio::test]
async fn bad_input_fails_the_task_not_the_program() {
    let missing = data_pipeline::run(&support::data_file("no_such_file.csv"), "region").await;
    assert!(missing.is_err());

    let engine = WorkflowEngine::new();
    data_pipeline::register_handlers(&engine);
    let workflow = data_pipeline::workflow(&support::data_file("sales.csv"), "colour");
    let result = engine
        .execute_workflow(&workflow)
        .await
        .expect("valid workflow");
    let process = result.task("process_task").expect("recorded");
    assert_eq!(process.status, TaskStatus::Failed);
    assert_eq!(process.attempts, 1);
    assert!(
        process
            .error
            .as_deref()
            .is_some_and(|e| e.contains("colour"))
    );
}

/// The pipeline's run on an orders file holding `text`.
async fn run_on(text: &str) -> WorkflowResult {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("orders.csv");
    std::fs::write(&file, text).expect("written");
    let engine = WorkflowEngine::new();
    data_pipeline::register_handlers(&engine);
    engine
        .execute_workflow(&data_pipeline::workflow(&file, "region"))
        .await
        .expect("valid workflow")
}

#[tokio::test]
async fn a_malformed_line_fails_fetch_naming_the_line() {
    let text = "order_id,region,product,units,unit_price\n1,north,widget,2,1.50\n2,south,gadget,two,3.00\n";
    let result = run_on(text).await;
    let fetch = result.task("fetch_task").expect("recorded");
    assert_eq!(fetch.status, TaskStatus::Failed);
    assert_eq!(fetch.attempts, 1, "a permanent error is not retried");
    let error = fetch.error.as_deref().unwrap_or_default();
    assert!(error.contains("line 3"), "{error}");
    assert_eq!(
        result.task("process_task").map(|t| t.status),
        Some(TaskStatus::Skipped)
    );
}

/// A file without its header fails `fetch` naming line 1, rather than taking the first
/// order for the header; blank lines are passed over.
#[tokio::test]
async fn a_missing_header_fails_fetch_and_blank_lines_are_passed_over() {
    let result = run_on("1,north,widget,2,1.50\n2,south,gadget,1,3.00\n").await;
    let fetch = result.task("fetch_task").expect("recorded");
    assert_eq!(fetch.status, TaskStatus::Failed);
    let error = fetch.error.as_deref().unwrap_or_default();
    assert!(error.contains("line 1"), "{error}");
    let text = "order_id,region,product,units,unit_price\n\n1,north,widget,2,1.50\n\n";
    let result = run_on(text).await;
    let fetch = result.task("fetch_task").expect("recorded");
    assert_eq!(fetch.status, TaskStatus::Completed, "{:?}", fetch.error);
}

/// A price that is negative, not a number, or too large to count in cents fails `fetch`
/// naming its line; totals too large to count fail `process`, rather than overflowing.
#[tokio::test]
async fn prices_and_totals_out_of_range_fail_their_task() {
    for (price, line) in [("-1.00", 2), ("NaN", 2), ("inf", 2), ("1e30", 2)] {
        let text = format!("order_id,region,product,units,unit_price\n1,north,widget,2,{price}\n");
        let result = run_on(&text).await;
        let fetch = result.task("fetch_task").expect("recorded");
        assert_eq!(fetch.status, TaskStatus::Failed, "{price}");
        let error = fetch.error.as_deref().unwrap_or_default();
        assert!(error.contains(&format!("line {line}")), "{price}: {error}");
    }
    let text = "order_id,region,product,units,unit_price\n1,north,widget,4000000000,1e15\n";
    let result = run_on(text).await;
    let process = result.task("process_task").expect("recorded");
    assert_eq!(process.status, TaskStatus::Failed);
    let error = process.error.as_deref().unwrap_or_default();
    assert!(error.contains("too large to count"), "{error}");
}
