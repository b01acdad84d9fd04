//! `fan_out_cache`: one instance per document, results in order, and a second run that
//! reuses the cached results without running the handlers.

use orch::prelude::*;

#[path = "../fan_out_cache.rs"]
#[allow(dead_code)]
mod fan_out_cache;
use serde_json::json;

#[tokio::test]
async fn each_document_is_counted_once_and_the_second_run_is_cached() {
    let documents = ["one two", "three", "four five six", ""];
    let outcome = fan_out_cache::run(&documents).await.expect("runs");

    let first = &outcome.first;
    assert_eq!(first.status, WorkflowStatus::Completed);
    assert_eq!(first.tasks["count_words"].result, Some(json!([2, 1, 3, 0])));
    for (i, words) in [2, 1, 3, 0].into_iter().enumerate() {
        let record = &first.tasks[format!("count_words[{i}]").as_str()];
        assert_eq!(record.status, TaskStatus::Completed);
        assert_eq!(record.result, Some(json!(words)));
    }
    assert_eq!(
        first.tasks["report"].result,
        Some(json!({"documents": 4, "words": 6}))
    );

    let second = &outcome.second;
    assert_eq!(second.status, WorkflowStatus::Completed);
    assert!(second.tasks["count_words"].cached);
    assert!(second.tasks["report"].cached);
    assert_eq!(second.tasks["report"].result, first.tasks["report"].result);
    assert_eq!(second.tasks.len(), 3, "no instance ran the second time");
    assert_eq!(outcome.count_calls, documents.len());
    assert_eq!(outcome.report_calls, 1);
}

#[tokio::test]
async fn no_documents_give_an_empty_report() {
    let outcome = fan_out_cache::run(&[]).await.expect("runs");
    assert_eq!(
        outcome.first.tasks["report"].result,
        Some(json!({"documents": 0, "words": 0}))
    );
    assert_eq!(outcome.count_calls, 0);
}
