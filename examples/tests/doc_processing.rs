//! `doc_processing`: the stored file is the gzip of the extracted text.

use std::io::Read;
use std::path::PathBuf;

use flate2::read::GzDecoder;
use orch::prelude::*;

#[path = "../doc_processing.rs"]
#[allow(dead_code)]
mod doc_processing;

use doc_processing::support;

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    // Leftovers of an earlier run must not make a test pass.
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn stores_the_gzipped_text_of_the_document() {
    let dir = out_dir("doc_processing_round_trip");
    let outcome = doc_processing::run(&support::data_file("document.html"), &dir)
        .await
        .expect("the pipeline runs");
    assert_eq!(outcome.result.status, WorkflowStatus::Completed);
    assert_eq!(outcome.stored_path, dir.join("document.txt.gz"));

    assert_eq!(outcome.title, "Field Notes on Running Pipelines");
    assert!(
        outcome
            .text
            .starts_with("Field Notes on Running Pipelines\nA pipeline is")
    );
    assert!(outcome.text.contains("are not affected & keep going"));
    assert!(
        outcome
            .text
            .contains("the machine <or the services it calls>")
    );
    assert!(
        !outcome.text.contains("<p") && !outcome.text.contains("<h"),
        "tags are dropped"
    );
    assert!(
        !outcome.text.contains("console.log"),
        "script content is dropped"
    );
    assert!(
        !outcome.text.contains("font-family"),
        "style content is dropped"
    );
    assert_eq!(outcome.text.lines().count(), 8);

    let stored = std::fs::read(&outcome.stored_path).expect("the file was stored");
    assert_eq!(stored.len(), outcome.compressed_bytes);
    assert!(outcome.compressed_bytes < outcome.original_bytes);
    let mut text = String::new();
    GzDecoder::new(stored.as_slice())
        .read_to_string(&mut text)
        .expect("a valid gzip stream");
    assert_eq!(text, outcome.text);
    assert_eq!(text.len(), outcome.original_bytes);
}

#[tokio::test]
async fn a_missing_document_fails_fetch_and_skips_the_rest() {
    let dir = out_dir("doc_processing_missing");
    let engine = WorkflowEngine::new();
    doc_processing::register_handlers(&engine);
    let workflow =
        doc_processing::workflow(&support::data_file("missing.html"), &dir, "out.txt.gz");
    let result = engine
        .execute_workflow(&workflow)
        .await
        .expect("valid workflow");
    assert_eq!(
        result.task("fetch").map(|r| r.status),
        Some(TaskStatus::Failed)
    );
    assert_eq!(
        result.tasks_with(TaskStatus::Skipped),
        ["extract", "compress", "store"]
    );
    assert!(!dir.join("out.txt.gz").exists());
}

#[test]
fn gzip_round_trips() {
    let data = b"abcabcabcabcabcabc".repeat(10);
    let packed = doc_processing::gzip(&data, 9).expect("compresses");
    let mut unpacked = Vec::new();
    GzDecoder::new(packed.as_slice())
        .read_to_end(&mut unpacked)
        .expect("decompresses");
    assert_eq!(unpacked, data);
    assert!(packed.len() < data.len());
}

#[test]
fn the_text_keeps_the_body_without_tags_scripts_or_head() {
    let html = "<html><head><title> A &amp; B </title><style>x {}</style></head>\
                <body><h1>Hi</h1><p>one\n   two &lt;3&gt;</p><script>var s;</script><p>end</p></body></html>";
    let (title, text) = doc_processing::html_to_text(html);
    assert_eq!(title, "A & B");
    assert_eq!(text, "Hi\none two <3>\nend\n");
}

/// An output directory that cannot be made (a file is in its way) fails the run with an
/// error that names it.
#[tokio::test]
async fn an_output_directory_that_cannot_be_made_is_named() {
    let dir = out_dir("doc_processing_blocked");
    std::fs::create_dir_all(&dir).expect("made");
    let blocked = dir.join("a-file");
    std::fs::write(&blocked, "in the way").expect("written");
    let out = blocked.join("out");
    let error = doc_processing::run(&support::data_file("document.html"), &out)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains(&format!("cannot make directory {}", out.display())),
        "{error}"
    );
}
