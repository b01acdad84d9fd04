//! Live progress from lifecycle events: a subscriber on `workflow.>` prints each task as
//! it starts and ends, while the engine runs the failure-handling workflow (so the feed
//! shows completions, a retry, a failure and the skips it causes).

use std::sync::{Arc, Mutex, PoisonError};

use orch::prelude::*;

use crate::BoxError;

/// What the example saw.
#[derive(Debug)]
pub struct Outcome {
    /// The run's result.
    pub result: WorkflowResult,
    /// The events, in the order they arrived (each printed with [`progress_line`]).
    pub events: Vec<EngineEvent>,
}

/// One line of progress for an event: which task (or the workflow), what happened, how
/// long it took and why it failed.
pub fn progress_line(event: &EngineEvent) -> String {
    let kind = event.kind.as_str();
    let subject = match &event.task_id {
        Some(id) => format!("  {id}"),
        None => format!("workflow {}", event.workflow_id),
    };
    let mut line = format!("{subject:<20} {kind:<10}");
    if event.attempt > 1 {
        line.push_str(&format!(" attempt {}", event.attempt));
    }
    if let Some(duration) = event.duration {
        let millis = duration.as_secs_f64() * 1000.0;
        if event.kind == EngineEventKind::TaskRetrying {
            line.push_str(&format!(" retry in {millis:.1} ms"));
        } else {
            line.push_str(&format!(" after {millis:.1} ms"));
        }
    }
    if let Some(status) = event.status {
        line.push_str(&format!(": {status}"));
    }
    if let Some(error) = &event.error {
        let error = error.strip_prefix(&format!("{kind}: ")).unwrap_or(error);
        line.push_str(&format!(" ({error})"));
    }
    line
}

/// Runs the failure-handling workflow with a progress subscriber; `on_line` sees each
/// line as it arrives.
pub async fn run(on_line: impl Fn(&str) + Send + Sync + 'static) -> Result<Outcome, BoxError> {
    let bus: EventBus<EngineEvent> = EventBus::new();
    let seen: Arc<Mutex<Vec<EngineEvent>>> = Arc::default();
    let log = Arc::clone(&seen);
    let mut progress =
        bus.subscribe_fn("workflow.>", SubscribeOptions::new(), move |delivery| {
            if let Some(event) = delivery.event() {
                on_line(&progress_line(event.payload()));
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(event.payload().clone());
            }
            std::future::ready(())
        })?;
    let engine = WorkflowEngine::builder()
        .max_concurrent(2)
        .event_bus(bus.clone())
        .build()?;
    crate::failure_handling::register_handlers(&engine);
    let workflow = crate::failure_handling::workflow(crate::failure_handling::BAD_SETTINGS);
    let result = engine.execute_workflow(&workflow).await?;
    bus.close().await;
    progress.finished().await;
    let events = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(Outcome { result, events })
}
