//! Dynamic fan-out and result caching: `list_documents → count_words[i] → report`.
//!
//! `list_documents` returns a list of texts known only when it runs; `count_words` is a
//! map over that list, so one instance runs per text (`count_words[0]`, `count_words[1]`,
//! ...) and the task's result is the list of their counts, in order. `report` adds them
//! up. Both `count_words` and `report` ask for caching: run the workflow a second time on
//! the same engine and neither handler runs again; their records say `cached: true`.
//!
//! `cargo run --example fan_out_cache`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orch::prelude::*;
use serde_json::json;

#[path = "support/mod.rs"]
mod support;

use support::BoxError;

const DOCUMENTS: [&str; 3] = [
    "orch runs workflows",
    "a map task runs once per element",
    "cached results are reused",
];

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let outcome = run(&DOCUMENTS).await?;
    for (label, result) in [
        ("first run", &outcome.first),
        ("second run", &outcome.second),
    ] {
        println!("{label}: {}", result.status);
        for (id, record) in result.tasks.iter() {
            let result = record.result.as_ref().map(ToString::to_string);
            let cached = if record.cached { " (cached)" } else { "" };
            println!(
                "  {id:<16} {:<10} attempts {} {}{cached}",
                record.status.as_str(),
                record.attempts,
                result.unwrap_or_default()
            );
        }
    }
    println!(
        "count_words ran {} times, report {} times, over both runs",
        outcome.count_calls, outcome.report_calls
    );
    Ok(())
}

/// What the two runs gave.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The first run: every handler ran.
    pub(crate) first: WorkflowResult,
    /// The second run of the same workflow on the same engine: cached results reused.
    pub(crate) second: WorkflowResult,
    /// How many times `count_words` ran, over both runs (once per document).
    pub(crate) count_calls: usize,
    /// How many times `report` ran, over both runs.
    pub(crate) report_calls: usize,
}

/// The workflow over `documents`.
pub(crate) fn workflow(documents: &[&str]) -> Workflow {
    Workflow::new("fan_out_cache", "Fan-out and Cache")
        .task(Task::new("list_documents", "list").config(json!({ "documents": documents })))
        .task(
            Task::new("count_words", "count_words")
                .map_over("list_documents")
                .max_instances(1_000)
                .cache(true),
        )
        .task(
            Task::new("report", "report")
                .depends_on(["count_words"])
                .cache(true),
        )
}

/// Runs the workflow over `documents` twice on one engine with a [`MemoryCache`].
pub(crate) async fn run(documents: &[&str]) -> Result<Outcome, BoxError> {
    let store = Arc::new(MemoryCache::default());
    let engine = WorkflowEngine::builder()
        .max_concurrent(4)
        .cache_store(store)
        .build()?;
    let (count_calls, report_calls) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    engine.register_handler("list", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.config()["documents"].clone())
    });
    let counted = Arc::clone(&count_calls);
    engine.register_handler("count_words", move |ctx: TaskContext| {
        counted.fetch_add(1, Ordering::SeqCst);
        let text: Result<String, TaskError> = ctx.map_item();
        async move { Ok::<_, TaskError>(text?.split_whitespace().count()) }
    });
    let reported = Arc::clone(&report_calls);
    engine.register_handler("report", move |ctx: TaskContext| {
        reported.fetch_add(1, Ordering::SeqCst);
        let counts: Result<Vec<usize>, TaskError> = ctx.input("count_words");
        async move {
            let counts = counts?;
            Ok::<_, TaskError>(json!({
                "documents": counts.len(),
                "words": counts.iter().sum::<usize>(),
            }))
        }
    });
    let workflow = workflow(documents);
    let first = engine.execute_workflow(&workflow).await?;
    let second = engine.execute_workflow(&workflow).await?;
    Ok(Outcome {
        first,
        second,
        count_calls: count_calls.load(Ordering::SeqCst),
        report_calls: report_calls.load(Ordering::SeqCst),
    })
}
