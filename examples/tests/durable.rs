//! `durable`: a run stopped halfway resumes from its journal, running only what did not
//! complete and restoring the rest.

use std::time::Duration;

use orch::prelude::*;

#[path = "../durable.rs"]
#[allow(dead_code)]
mod durable;

use durable::Options;

fn ids(list: &[&str]) -> Vec<TaskId> {
    list.iter().map(|id| TaskId::from(*id)).collect()
}

#[tokio::test]
async fn a_run_stopped_halfway_resumes_with_the_completed_steps_restored() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut options = Options {
        journal_dir: dir.path().join("journal"),
        run_id: RunId::parse("pipeline-1").expect("a valid id"),
        step: Duration::from_millis(1),
        abort_after: Some(3),
    };
    let first = durable::run(&options, CancellationToken::new())
        .await
        .expect("runs");
    assert_eq!(first.result.status, WorkflowStatus::Cancelled);
    assert_eq!(first.ran, ids(&["download", "parse", "clean"]));
    assert!(first.restored.is_empty());

    options.abort_after = None;
    let second = durable::run(&options, CancellationToken::new())
        .await
        .expect("runs");
    assert_eq!(second.result.status, WorkflowStatus::Completed);
    assert_eq!(second.restored, ids(&["download", "parse", "clean"]));
    assert_eq!(second.ran, ids(&["index", "report", "publish"]));
    // `report` read `clean`'s restored output: the depth counts every step before it.
    let publish = second.result.task("publish").expect("recorded");
    assert_eq!(publish.result, Some(serde_json::json!({"depth": 5})));
}

#[tokio::test]
async fn a_stop_from_outside_cancels_the_run_and_a_restart_resumes_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = Options {
        journal_dir: dir.path().join("journal"),
        run_id: RunId::parse("pipeline-2").expect("a valid id"),
        step: Duration::from_millis(1),
        abort_after: None,
    };
    let stop = CancellationToken::new();
    stop.cancel();
    let first = durable::run(&options, stop).await.expect("runs");
    assert_eq!(first.result.status, WorkflowStatus::Cancelled);
    let second = durable::run(&options, CancellationToken::new())
        .await
        .expect("runs");
    assert_eq!(second.result.status, WorkflowStatus::Completed);
    let mut all = second.restored.clone();
    all.extend(second.ran.iter().cloned());
    all.sort();
    let mut expected = ids(&["download", "parse", "clean", "index", "report", "publish"]);
    expected.sort();
    assert_eq!(all, expected, "each step either restored or run");
}
