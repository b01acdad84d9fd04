//! The `distributed` example: a coordinator and three worker processes count the words
//! of 40 documents through a real nats-server.

mod common;

use std::process::Command;

use common::NatsServer;
use serde_json::Value;

#[test]
fn the_distributed_example_counts_every_document_on_its_workers() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    // Cargo builds the examples next to the test binaries' directory.
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let example = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join("distributed"))
        .expect("the target directory");
    // Run alone (`--test distributed`), cargo builds no example: one built before would
    // be run as it was then.
    let built = std::fs::metadata(&example)
        .and_then(|meta| meta.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is not built (cargo test builds examples)",
                example.display()
            )
        });
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The example's source, and the code of orch-nats and the crates it is built on.
    let sources = [
        "orch-nats/examples",
        "orch-nats/src",
        "orch-core/src",
        "orch-engine/src",
        "orch-events/src",
        "orch-journal/src",
    ];
    let newer = (sources.iter())
        .filter_map(|dir| newest_source(&crates.join(dir)))
        .max()
        .filter(|(changed, _)| *changed > built);
    if let Some((_, source)) = newer {
        panic!(
            "{} is older than {}: run the whole suite (`cargo test -p orch-nats`), which \
             builds examples, or `cargo build -p orch-nats --examples` first",
            example.display(),
            source.display()
        );
    }
    let output = Command::new(&example)
        .args(["--workers", "3"])
        .env("ORCH_NATS_URL", server.url())
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("status: completed"), "{stdout}");
    let report: Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("report: "))
        .and_then(|json| serde_json::from_str(json).ok())
        .expect("a report line");
    // Document i is a 7-word sentence, i % 7 + 1 times.
    let words: u64 = (0..40).map(|i| 7 * (i % 7 + 1)).sum();
    assert_eq!(report["words"], words);
    let by_worker = report["documents_by_worker"]
        .as_object()
        .expect("counts by worker");
    assert!(
        by_worker
            .keys()
            .all(|w| ["worker-1", "worker-2", "worker-3"].contains(&w.as_str()))
    );
    assert_eq!(
        by_worker.values().filter_map(Value::as_u64).sum::<u64>(),
        40
    );
}

/// The most recently changed Rust source under `dir`, and when it changed.
fn newest_source(dir: &std::path::Path) -> Option<(std::time::SystemTime, std::path::PathBuf)> {
    let mut newest: Option<(std::time::SystemTime, std::path::PathBuf)> = None;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(changed) = meta.modified()
                && newest.as_ref().is_none_or(|(when, _)| changed > *when)
            {
                newest = Some((changed, path));
            }
        }
    }
    newest
}
