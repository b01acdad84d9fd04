//! `data_pipeline`: the aggregation over `examples/data/sales.csv`, checked against
//! totals worked out separately from the file.

use examples::data_pipeline::{self, Totals};
use orch::prelude::*;

fn totals(orders: u32, units: u32, revenue_cents: u64) -> Totals {
    Totals {
        orders,
        units,
        revenue_cents,
    }
}

#[tokio::test]
async fn aggregates_the_sales_file_by_region() {
    let outcome = data_pipeline::run(&examples::data_file("sales.csv"), "region")
        .await
        .expect("the pipeline runs");
    assert_eq!(outcome.result.status, WorkflowStatus::Completed);
    let summary = &outcome.summary;
    assert_eq!(summary.total, totals(20, 216, 81_115));
    assert_eq!(summary.groups["north"], totals(5, 62, 14_899));
    assert_eq!(summary.groups["south"], totals(5, 52, 27_822));
    assert_eq!(summary.groups["east"], totals(5, 54, 24_546));
    assert_eq!(summary.groups["west"], totals(5, 48, 13_848));
    assert_eq!(summary.top_group.as_deref(), Some("south"));

    let metrics = outcome.result.metrics();
    assert_eq!((metrics.total_tasks, metrics.completed_tasks), (2, 2));
    assert_eq!(metrics.critical_path, ["fetch_task", "process_task"]);
}

#[tokio::test]
async fn aggregates_by_product() {
    let outcome = data_pipeline::run(&examples::data_file("sales.csv"), "product")
        .await
        .expect("the pipeline runs");
    assert_eq!(outcome.summary.groups.len(), 4);
    assert_eq!(outcome.summary.groups["gizmo"], totals(4, 7, 34_300));
    assert_eq!(outcome.summary.groups["sprocket"], totals(5, 131, 9_825));
    assert_eq!(outcome.summary.top_group.as_deref(), Some("gizmo"));
}

#[tokio::test]
async fn bad_input_fails_the_task_not_the_program() {
    let missing = data_pipeline::run(&examples::data_file("no_such_file.csv"), "region").await;
    assert!(missing.is_err());

    let engine = WorkflowEngine::new();
    data_pipeline::register_handlers(&engine);
    let workflow = data_pipeline::workflow(&examples::data_file("sales.csv"), "colour");
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
