//! The original module's "Integration" workflow: `analyze` (an `inference` task) → `compress`
//! (`compression`) → `store` (`storage`).
//!
//! The agent and its services are replaced by deterministic stand-ins that still do the
//! work their names promise: `inference` extracts keywords and a one-sentence summary
//! from a text, `compression` zlib-compresses the analysis, and `storage` puts the bytes
//! in an in-memory key-value store that the caller can read back.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use orch::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{BoxError, task_output};

/// The text the example analyses.
pub const TICKET: &str = "The nightly export failed again. The export job times out when \
the database is busy, and a retry starts the export from scratch. Customers see stale \
reports every morning because the export did not finish. Splitting the export into \
smaller batches would let a retry resume from the last finished batch.";

/// Words too common to be keywords.
const STOPWORDS: &[&str] = &[
    "a", "again", "and", "because", "did", "every", "from", "into", "is", "let", "not", "out",
    "see", "the", "when", "would",
];

/// A key-value store in memory, shared by its clones.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore(Arc<Mutex<BTreeMap<String, Vec<u8>>>>);

impl MemoryStore {
    /// Stores `value` under `key`, replacing what was there.
    pub fn put(&self, key: &str, value: Vec<u8>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), value);
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }
}

/// A keyword and how often it occurs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyword {
    /// The word, lower case.
    pub word: String,
    /// Occurrences.
    pub count: usize,
}

/// What `analyze` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The most frequent words that are not stopwords, most frequent first (ties by
    /// name).
    pub keywords: Vec<Keyword>,
    /// The sentence that mentions the keywords most (the first on a tie).
    pub summary: String,
    /// Words in the text.
    pub words: usize,
}

/// What the example computed.
#[derive(Debug)]
pub struct Outcome {
    /// The run's records and metrics.
    pub result: WorkflowResult,
    /// The analysis `analyze` returned.
    pub analysis: Analysis,
    /// The store `store` wrote to.
    pub store: MemoryStore,
    /// The key it wrote.
    pub key: String,
}

/// Extracts the `top_k` keywords and the summary sentence of `text`.
///
/// ```
/// let analysis = examples::agent_workflow::analyze_text("Cats nap. Cats and dogs play.", 2);
/// let words: Vec<&str> = analysis.keywords.iter().map(|k| k.word.as_str()).collect();
/// assert_eq!(words, ["cats", "dogs"]);
/// assert_eq!(analysis.summary, "Cats and dogs play.");
/// ```
pub fn analyze_text(text: &str, top_k: usize) -> Analysis {
    let tokens = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let words = tokens(text);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for word in &words {
        if word.len() > 2 && !STOPWORDS.contains(&word.as_str()) {
            *counts.entry(word).or_default() += 1;
        }
    }
    let mut keywords: Vec<Keyword> = counts
        .into_iter()
        .map(|(word, count)| Keyword {
            word: word.to_owned(),
            count,
        })
        .collect();
    keywords.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    keywords.truncate(top_k);

    let score = |sentence: &str| -> usize {
        let in_sentence = tokens(sentence);
        keywords
            .iter()
            .map(|k| in_sentence.iter().filter(|w| **w == k.word).count())
            .sum()
    };
    let mut summary = "";
    let mut best = 0;
    for sentence in text.split_inclusive(['.', '!', '?']).map(str::trim) {
        let s = score(sentence);
        if s > best || summary.is_empty() {
            (summary, best) = (sentence, s);
        }
    }
    Analysis {
        keywords,
        summary: summary.to_owned(),
        words: words.len(),
    }
}

/// The three-task workflow over `text`, storing under `key`.
pub fn workflow(text: &str, key: &str) -> Workflow {
    Workflow::new("agent_workflow", "Agent Workflow")
        .task(
            Task::new("analyze", "inference")
                .name("analyze")
                .config(json!({"prompt": text, "top_k": 5})),
        )
        .task(
            Task::new("compress", "compression")
                .name("compress")
                .depends_on(["analyze"]),
        )
        .task(
            Task::new("store", "storage")
                .name("store")
                .config(json!({"key": key}))
                .depends_on(["compress"]),
        )
}

/// Registers the `inference`, `compression` and `storage` handlers; `storage` writes to
/// `store`.
pub fn register_handlers(engine: &WorkflowEngine, store: &MemoryStore) {
    engine.register_handler("inference", |ctx: TaskContext| async move {
        #[derive(Deserialize)]
        struct Config {
            prompt: String,
            top_k: usize,
        }
        let config: Config = ctx.config_as()?;
        Ok::<_, TaskError>(analyze_text(&config.prompt, config.top_k))
    });
    engine.register_handler("compression", |ctx: TaskContext| async move {
        let (_, input) = ctx
            .dependency_results()
            .next()
            .ok_or_else(|| TaskError::permanent("nothing to compress"))?;
        let bytes = serde_json::to_vec(input)?;
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&bytes)?;
        let data = encoder.finish()?;
        Ok::<_, TaskError>(json!({
            "format": "zlib",
            "original_bytes": bytes.len(),
            "compressed_bytes": data.len(),
            "data_hex": crate::hex::encode(&data),
        }))
    });
    let store = store.clone();
    engine.register_handler("storage", move |ctx: TaskContext| {
        let store = store.clone();
        async move {
            let key = ctx.config()["key"]
                .as_str()
                .ok_or_else(|| TaskError::permanent("`key` must be a string"))?;
            let (_, input) = ctx
                .dependency_results()
                .next()
                .ok_or_else(|| TaskError::permanent("nothing to store"))?;
            let data = input["data_hex"]
                .as_str()
                .and_then(crate::hex::decode)
                .ok_or_else(|| TaskError::permanent("the input has no hex `data_hex`"))?;
            // Two steps up the chain: any ancestor's output can be read, typed.
            let analysis: Analysis = ctx.input("analyze")?;
            let bytes = data.len();
            store.put(key, data);
            Ok::<_, TaskError>(json!({"key": key, "bytes": bytes, "words": analysis.words}))
        }
    });
}

/// Runs the workflow over `text`, storing the compressed analysis under `key`.
pub async fn run(text: &str, key: &str) -> Result<Outcome, BoxError> {
    let engine = WorkflowEngine::new();
    let store = MemoryStore::default();
    register_handlers(&engine, &store);
    let result = engine.execute_workflow(&workflow(text, key)).await?;
    let analysis = Analysis::deserialize(task_output(&result, "analyze")?)?;
    if store.get(key).is_none() {
        return Err(format!("nothing was stored: {}", result.to_json()).into());
    }
    Ok(Outcome {
        analysis,
        result,
        store,
        key: key.to_owned(),
    })
}
