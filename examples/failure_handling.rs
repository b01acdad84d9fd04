//! The original module's error handling rules, shown on one run:
//!
//! - `read_settings` parses `key = number` lines and fails on a line that is not a
//!   number; its dependents `apply_settings` and (through it) `restart_workers` are
//!   skipped.
//! - `count_words` and `report` are on an independent branch and complete.
//! - `fetch_rates` stands in for a flaky service: its first attempt fails with a
//!   retryable error, and with `retries(2)` its second attempt succeeds; `report` uses its
//!   result.
//!
//! The run as a whole ends `failed`, because one task failed.
//!
//! Prints each task's status, attempts and error.
//!
//! `cargo run --example failure_handling`

use std::collections::BTreeMap;
use std::time::Duration;

use orch::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

#[path = "support/mod.rs"]
mod support;

use support::BoxError;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let result = run().await?;
    println!("workflow: {}\n", result.status);
    for (id, record) in result.tasks.iter() {
        let id = id.as_str();
        println!(
            "{id:<16} {:<9} attempts {}  {}",
            record.status.as_str(),
            record.attempts,
            record.error.as_deref().unwrap_or("")
        );
    }
    for status in [
        TaskStatus::Failed,
        TaskStatus::Skipped,
        TaskStatus::Completed,
    ] {
        println!(
            "{:<10} {:?}",
            format!("{status}:"),
            result.tasks_with(status)
        );
    }
    if let Some(report) = result.task("report").and_then(|r| r.result.as_ref()) {
        println!("report:    {report}");
    }
    Ok(())
}

/// The settings text `read_settings` cannot parse (line 2 is not a number).
pub(crate) const BAD_SETTINGS: &str = "workers = 4\nbatch_size = forty\n";

/// The workflow, reading `settings` as its settings text.
pub(crate) fn workflow(settings: &str) -> Workflow {
    let quick_retry = Backoff {
        initial: Duration::from_millis(20),
        jitter: false,
        ..Backoff::default()
    };
    Workflow::new("failure_handling", "Failure Handling")
        .task(Task::new("read_settings", "parse_settings").config(json!({"text": settings})))
        .task(Task::new("apply_settings", "apply").depends_on(["read_settings"]))
        .task(Task::new("restart_workers", "apply").depends_on(["apply_settings"]))
        .task(Task::new("count_words", "word_count").config(json!({
            "text": "failures stay local: a failed task skips its dependents only"
        })))
        .task(
            Task::new("fetch_rates", "flaky")
                .config(json!({"fail_first": 1, "rates": {"eur": 1.0, "usd": 1.08}}))
                .retries(2)
                .backoff(quick_retry),
        )
        .task(Task::new("report", "report").depends_on(["count_words", "fetch_rates"]))
}

/// Registers the handlers for the workflow's task types.
pub(crate) fn register_handlers(engine: &WorkflowEngine) {
    engine.register_handler("parse_settings", |ctx: TaskContext| async move {
        let text = ctx.config()["text"].as_str().unwrap_or_default();
        parse_settings(text)
    });
    engine.register_handler("apply", |ctx: TaskContext| async move {
        let (from, settings) = ctx
            .dependency_results()
            .next()
            .ok_or_else(|| TaskError::permanent("nothing to apply"))?;
        Ok::<_, TaskError>(json!({"applied_from": from.as_str(), "settings": settings}))
    });
    engine.register_handler("word_count", |ctx: TaskContext| async move {
        let text = ctx.config()["text"].as_str().unwrap_or_default();
        Ok::<_, TaskError>(json!({"words": text.split_whitespace().count()}))
    });
    engine.register_handler("flaky", |ctx: TaskContext| async move {
        #[derive(Deserialize)]
        struct Config {
            fail_first: u32,
            rates: Value,
        }
        let config: Config = ctx.config_as()?;
        if ctx.attempt() <= config.fail_first {
            return Err(TaskError::new(format!(
                "rate service unavailable (attempt {})",
                ctx.attempt()
            )));
        }
        Ok::<_, TaskError>(json!({"rates": config.rates, "attempt": ctx.attempt()}))
    });
    engine.register_handler("report", |ctx: TaskContext| async move {
        // Both completed: a dependent runs only after all of its dependencies did.
        let words = &ctx.input_json("count_words")?["words"];
        let rates = &ctx.input_json("fetch_rates")?["rates"];
        Ok::<_, TaskError>(json!({"words": words, "rates": rates}))
    });
}

/// Parses `key = whole number` lines; a line that is not one fails permanently (trying
/// again cannot fix the text).
pub(crate) fn parse_settings(text: &str) -> Result<BTreeMap<String, i64>, TaskError> {
    let mut settings = BTreeMap::new();
    for (number, line) in (1..).zip(text.lines()) {
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            TaskError::permanent(format!("line {number}: expected `key = value`"))
        })?;
        let value = value
            .trim()
            .parse::<i64>()
            .map_err(|e| TaskError::permanent(format!("line {number}: `{}`: {e}", key.trim())))?;
        settings.insert(key.trim().to_owned(), value);
    }
    Ok(settings)
}

/// Runs the workflow with [`BAD_SETTINGS`].
pub(crate) async fn run() -> Result<WorkflowResult, BoxError> {
    run_with(BAD_SETTINGS).await
}

/// Runs the workflow with the given settings text.
pub(crate) async fn run_with(settings: &str) -> Result<WorkflowResult, BoxError> {
    let engine = WorkflowEngine::new();
    register_handlers(&engine);
    Ok(engine.execute_workflow(&workflow(settings)).await?)
}
