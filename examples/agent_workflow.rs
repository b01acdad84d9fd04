//! The original module's agent workflow: `analyze` (an `inference` task) → `compress`
//! (`compression`) → `store` (`storage`). The agent and its services are stand-ins that
//! still do what their names promise: `inference` picks a ticket's keywords and the
//! sentence that mentions them most, `compression` zlib-compresses that analysis, and
//! `storage` puts the bytes in a key-value store in memory. Prints the analysis and what
//! was stored.
//!
//! `cargo run --example agent_workflow`

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use orch::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[path = "support/mod.rs"]
mod support;

use support::{BoxError, task_output};

/// The text the example analyses.
pub(crate) const TICKET: &str = "The nightly export failed again. The export job times out \
when the database is busy, and a retry starts the export from scratch. Customers see stale \
reports every morning because the export did not finish. Splitting the export into \
smaller batches would let a retry resume from the last finished batch.";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let outcome = run(TICKET, "tickets/analysis.json.zz").await?;
    for (id, record) in outcome.result.tasks.iter() {
        println!("{:<9} {}", id.as_str(), record.status);
    }
    println!("keywords:");
    for (word, count) in &outcome.analysis.keywords {
        println!("  {word:<10} {count}");
    }
    println!("summary: {}", outcome.analysis.summary);
    let stored = outcome.stored.map_or(0, |bytes| bytes.len());
    println!("stored: {} ({stored} bytes, zlib)", outcome.key);
    Ok(())
}

/// A key-value store in memory, shared by its clones.
pub(crate) type MemoryStore = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// What `analyze` returns.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Analysis {
    /// Words longer than four letters that occur more than once, with their counts, most
    /// frequent first (ties by name).
    pub(crate) keywords: Vec<(String, usize)>,
    /// The sentence that mentions the keywords most (the first on a tie).
    pub(crate) summary: String,
    /// Words in the text.
    pub(crate) words: usize,
}

/// The analysis of `text`.
pub(crate) fn analyze_text(text: &str) -> Analysis {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let all = words(text);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for word in all.iter().filter(|w| w.len() > 4) {
        *counts.entry(word).or_default() += 1;
    }
    let mut keywords: Vec<(String, usize)> = (counts.into_iter())
        .filter(|&(_, count)| count > 1)
        .map(|(word, count)| (word.to_owned(), count))
        .collect();
    keywords.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mentions = |sentence: &&str| {
        let in_sentence = words(sentence);
        let is_keyword = |w: &&String| keywords.iter().any(|(k, _)| k == *w);
        in_sentence.iter().filter(is_keyword).count()
    };
    let sentences = text.split_inclusive(['.', '!', '?']).map(str::trim);
    // `max_by_key` keeps the last maximum; walking backwards keeps the first.
    let summary = sentences.rev().max_by_key(mentions).unwrap_or_default();
    Analysis {
        summary: summary.to_owned(),
        keywords,
        words: all.len(),
    }
}

/// The three-task workflow over `text`, storing under `key`.
pub(crate) fn workflow(text: &str, key: &str) -> Workflow {
    Workflow::new("agent_workflow", "Agent Workflow")
        .task(Task::new("analyze", "inference").config(json!({"prompt": text})))
        .task(Task::new("compress", "compression").depends_on(["analyze"]))
        .task(
            Task::new("store", "storage")
                .config(json!({"key": key}))
                .depends_on(["compress"]),
        )
}

/// An engine with the `inference`, `compression` and `storage` handlers; `storage` writes
/// to `store`, which handlers read as the engine's state.
pub(crate) fn engine(store: MemoryStore) -> Result<WorkflowEngine, BoxError> {
    let engine = WorkflowEngine::builder().state(store).build()?;
    engine.register_handler("inference", |ctx: TaskContext| async move {
        #[derive(Deserialize)]
        struct Config {
            prompt: String,
        }
        let config: Config = ctx.config_as()?;
        Ok::<_, TaskError>(analyze_text(&config.prompt))
    });
    engine.register_handler("compression", |ctx: TaskContext| async move {
        // Whatever the task depends on, compressed as JSON.
        let (_, input) = ctx
            .dependency_results()
            .next()
            .ok_or_else(|| TaskError::permanent("nothing to compress"))?;
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&serde_json::to_vec(input)?)?;
        Ok::<_, TaskError>(encoder.finish()?)
    });
    engine.register_handler("storage", |ctx: TaskContext| async move {
        let key = ctx.config()["key"]
            .as_str()
            .ok_or_else(|| TaskError::permanent("`key` must be a string"))?;
        let data: Vec<u8> = ctx.input("compress")?;
        // Two steps up the chain: any ancestor's output can be read, typed.
        let analysis: Analysis = ctx.input("analyze")?;
        let bytes = data.len();
        let store = ctx.state::<MemoryStore>()?;
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        store.insert(key.to_owned(), data);
        Ok::<_, TaskError>(json!({"key": key, "bytes": bytes, "words": analysis.words}))
    });
    Ok(engine)
}

/// What the example computed.
pub(crate) struct Outcome {
    pub(crate) result: WorkflowResult,
    pub(crate) analysis: Analysis,
    /// The bytes `store` wrote, read back from the store.
    pub(crate) stored: Option<Vec<u8>>,
    pub(crate) key: String,
}

/// Runs the workflow over `text`, storing the compressed analysis under `key`.
pub(crate) async fn run(text: &str, key: &str) -> Result<Outcome, BoxError> {
    let store = MemoryStore::default();
    let engine = engine(Arc::clone(&store))?;
    let result = engine.execute_workflow(&workflow(text, key)).await?;
    let analysis = Analysis::deserialize(task_output(&result, "analyze")?)?;
    let stored = store
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key)
        .cloned();
    Ok(Outcome {
        result,
        analysis,
        stored,
        key: key.to_owned(),
    })
}
