//! `agent_workflow`: analyze → compress → store, read back from the store.

use std::io::Read;

use flate2::read::ZlibDecoder;
use orch::prelude::*;

#[path = "../agent_workflow.rs"]
#[allow(dead_code)]
mod agent_workflow;

use agent_workflow::{Analysis, TICKET, analyze_text};

#[tokio::test]
async fn the_stored_bytes_are_the_compressed_analysis() {
    let outcome = agent_workflow::run(TICKET, "tickets/1")
        .await
        .expect("runs");
    assert_eq!(outcome.result.status, WorkflowStatus::Completed);

    let top: Vec<(&str, usize)> = (outcome.analysis.keywords.iter())
        .map(|(word, count)| (word.as_str(), *count))
        .collect();
    assert_eq!(top, [("export", 5), ("retry", 2)]);
    assert_eq!(
        outcome.analysis.summary,
        "The export job times out when the database is busy, and a retry starts the export \
         from scratch."
    );

    let stored = outcome.stored.expect("stored under its key");
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
fn keywords_are_long_repeated_words_and_the_summary_mentions_them_most() {
    let analysis =
        analyze_text("The horse ran. A horse and a horse ate. Horses: the horse, the horse!");
    assert_eq!(analysis.keywords, [("horse".to_owned(), 5)]);
    // Two sentences mention `horse` twice; the first of them wins.
    assert_eq!(analysis.summary, "A horse and a horse ate.");
    assert_eq!(analysis.words, 14);
}

#[test]
fn empty_text_has_no_keywords() {
    let analysis = analyze_text("");
    assert!(analysis.keywords.is_empty());
    assert_eq!((analysis.summary.as_str(), analysis.words), ("", 0));
}
