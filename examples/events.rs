//! Live progress: every lifecycle event of a run printed as it arrives from the bus. A
//! subscriber on `workflow.>` prints each task as it starts and ends, while the engine
//! runs a small workflow with something to see: a flaky task that is retried, a failure,
//! and the dependent it causes to be skipped.
//!
//! `cargo run --example events`

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use orch::prelude::*;
use serde_json::{Value, json};

#[path = "support/mod.rs"]
mod support;

use support::BoxError;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let outcome = run(|line| println!("{line}")).await?;
    println!(
        "\n{} events; workflow {}",
        outcome.events.len(),
        outcome.result.status
    );
    Ok(())
}

/// `read_settings` fails, so `apply_settings` is skipped; `fetch_rates` fails once and
/// succeeds when retried; `report` uses its result.
fn workflow() -> Workflow {
    let quick_retry = Backoff {
        initial: Duration::from_millis(20),
        jitter: false,
        ..Backoff::default()
    };
    Workflow::new("events", "Progress from events")
        .task(Task::new("read_settings", "bad_settings"))
        .task(Task::new("apply_settings", "done").depends_on(["read_settings"]))
        .task(
            Task::new("fetch_rates", "flaky")
                .retries(2)
                .backoff(quick_retry),
        )
        .task(Task::new("report", "done").depends_on(["fetch_rates"]))
}

fn register_handlers(engine: &WorkflowEngine) {
    engine.register_handler("bad_settings", |_ctx: TaskContext| async move {
        Err::<Value, _>(TaskError::permanent("line 2: `batch_size` is not a number"))
    });
    engine.register_handler("flaky", |ctx: TaskContext| async move {
        if ctx.attempt() == 1 {
            return Err(TaskError::new("rate service unavailable"));
        }
        Ok::<_, TaskError>(json!({"usd": 1.08}))
    });
    engine.register_handler("done", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
}

/// What the example saw.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The run's result.
    pub(crate) result: WorkflowResult,
    /// The events, in the order they arrived (each printed with [`progress_line`]).
    pub(crate) events: Vec<EngineEvent>,
}

/// One line of progress for an event: which task (or the workflow), what happened, how
/// long it took and why it failed.
pub(crate) fn progress_line(event: &EngineEvent) -> String {
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

/// Runs the workflow with a progress subscriber; `on_line` sees each
/// line as it arrives.
pub(crate) async fn run(
    on_line: impl Fn(&str) + Send + Sync + 'static,
) -> Result<Outcome, BoxError> {
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
    register_handlers(&engine);
    let result = engine.execute_workflow(&workflow()).await?;
    bus.close().await;
    progress.finished().await;
    let events = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(Outcome { result, events })
}
