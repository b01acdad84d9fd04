//! The `events` example.

use std::sync::{Arc, Mutex};

use orch::prelude::*;

#[path = "../events.rs"]
#[allow(dead_code)]
mod events;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_feed_shows_every_task_in_causal_order() {
    let printed: Arc<Mutex<Vec<String>>> = Arc::default();
    let outcome = events::run({
        let printed = Arc::clone(&printed);
        move |line| printed.lock().expect("not poisoned").push(line.to_owned())
    })
    .await
    .expect("runs");
    let events = &outcome.events;
    let lines = printed.lock().expect("not poisoned").clone();
    assert_eq!(
        events.first().map(|e| e.kind),
        Some(EngineEventKind::WorkflowStarted)
    );
    assert_eq!(
        events.last().map(|e| e.kind),
        Some(EngineEventKind::WorkflowFinished)
    );
    // The printer saw every event, in arrival order, each as its own line.
    assert_eq!(lines.len(), events.len());
    assert_eq!(
        lines.first().map(String::as_str),
        Some("workflow events      started   ")
    );
    let last = lines.last().map(String::as_str).unwrap_or_default();
    assert!(
        last.starts_with("workflow events      finished   after ") && last.ends_with(" ms: failed"),
        "{last}"
    );
    // Each task: one terminal event; every task that ran also a start, before it.
    for (id, record) in outcome.result.tasks.iter() {
        let of_task = |kind: EngineEventKind| {
            events
                .iter()
                .position(|e| e.kind == kind && e.task_id.as_ref() == Some(id))
        };
        let terminal: Vec<_> = events
            .iter()
            .filter(|e| e.kind.is_terminal() && e.task_id.as_ref() == Some(id))
            .collect();
        assert_eq!(terminal.len(), 1, "{id}");
        if record.attempts > 0 {
            let started = of_task(EngineEventKind::TaskStarted).expect("a start");
            let ended = events.iter().position(|e| std::ptr::eq(e, terminal[0]));
            assert!(Some(started) < ended, "{id}");
        }
    }
    // What went wrong, and the retry, each with its reason (durations vary).
    for exact in [
        "  fetch_rates        retrying   retry in 20.0 ms (rate service unavailable)",
        "  apply_settings     skipped    (dependency `read_settings` failed)",
    ] {
        assert!(lines.iter().any(|l| l == exact), "{exact}: {lines:#?}");
    }
    let failed = lines
        .iter()
        .find(|l| l.starts_with("  read_settings      failed     after "));
    assert!(
        failed.is_some_and(|l| l.ends_with(" ms (line 2: `batch_size` is not a number)")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  fetch_rates        completed  attempt 2 after ")),
        "{lines:#?}"
    );
}
