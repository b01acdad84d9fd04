//! `agent_workflow`: analyze → compress → store, read back from the store.

use std::io::Read;

use examples::agent_workflow::{self, Analysis, TICKET, analyze_text};
use flate2::read::ZlibDecoder;
use orch::prelude::*;

#[tokio::test]
async fn the_stored_bytes_are_the_compressed_analysis() {
    let outcome = agent_workflow::run(TICKET, "tickets/1")
        .await
        .expect("runs");
    assert_eq!(outcome.result.status, WorkflowStatus::Completed);

    let top: Vec<(&str, usize)> = (outcome.analysis.keywords.iter())
        .map(|k| (k.word.as_str(), k.count))
        .collect();
    assert_eq!(
        top,
        [
            ("export", 5),
            ("retry", 2),
            ("batch", 1),
            ("batches", 1),
            ("busy", 1)
        ]
    );
    assert_eq!(
        outcome.analysis.summary,
        "The export job times out when the database is busy, and a retry starts the export \
         from scratch."
    );

    let stored = outcome.store.get("tickets/1").expect("stored");
    let mut json = String::new();
    ZlibDecoder::new(stored.as_slice())
        .read_to_string(&mut json)
        .expect("a valid zlib stream");
    let read_back: Analysis = serde_json::from_str(&json).expect("the analysis as JSON");
    assert_eq!(read_back, outcome.analysis);

    let store = outcome.result.task("store").and_then(|r| r.result.as_ref());
    assert_eq!(store.map(|r| r["bytes"].clone()), Some(stored.len().into()));
    // `store` read `analyze`, which it depends on only through `compress`.
    assert_eq!(
        store.map(|r| r["words"].clone()),
        Some(outcome.analysis.words.into())
    );
}

#[test]
fn keywords_skip_stopwords_and_short_words() {
    let analysis = analyze_text("The cat and the dog. A cat is a cat!", 3);
    let words: Vec<&str> = analysis.keywords.iter().map(|k| k.word.as_str()).collect();
    assert_eq!(words, ["cat", "dog"]);
    assert_eq!(analysis.keywords[0].count, 3);
    assert_eq!(analysis.summary, "The cat and the dog.");
    assert_eq!(analysis.words, 10);
}

#[test]
fn empty_text_has_no_keywords() {
    let analysis = analyze_text("", 5);
    assert!(analysis.keywords.is_empty());
    assert_eq!((analysis.summary.as_str(), analysis.words), ("", 0));
}
