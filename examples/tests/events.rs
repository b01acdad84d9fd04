//! The `events` example.

use std::sync::{Arc, Mutex};

use orch::prelude::*;

#[path = "../events.rs"]
#[allow(dead_code)]
mod events;

use events::progress_line;

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
    // The printer saw every event, in arrival order.
    assert_eq!(lines, events.iter().map(progress_line).collect::<Vec<_>>());
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
    assert!(
        lines
            .iter()
            .any(|l| l.contains("fetch_rates") && l.contains("retrying"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("apply_settings") && l.contains("skipped"))
    );
}
