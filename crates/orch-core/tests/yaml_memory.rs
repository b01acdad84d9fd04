//! The memory a YAML workflow may take, measured: aliases cannot blow a small file up
//! into gigabytes. (Its own test binary: the allocator counts every thread's memory, so
//! the tests here measure one at a time.)

use std::sync::{Mutex, PoisonError};

use orch_core::{LoadError, Workflow};
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

static MEASURING: Mutex<()> = Mutex::new(());

/// Reads `text`, which aliases expand past the limit, and checks that this took less
/// than 512 bytes of memory per byte of text at its peak.
fn refused_within_memory(text: &str) {
    let _alone = MEASURING.lock().unwrap_or_else(PoisonError::into_inner);
    let before = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let result = Workflow::from_yaml(text);
    let peak = ALLOCATOR.peak_usage().saturating_sub(before);

    assert!(
        matches!(result, Err(LoadError::ExpansionLimit { .. })),
        "{result:?}"
    );
    assert!(
        peak < 512 * text.len(),
        "reading {} bytes took {peak} bytes at its peak ({} per byte)",
        text.len(),
        peak / text.len()
    );
}

#[test]
fn a_small_file_of_many_aliases_to_a_large_anchor_stays_small_in_memory() {
    // 4,000 aliases to a 4,000-item anchor: 16 million values from a 28 kB file.
    let mut text = String::from(
        "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      big: &big [",
    );
    text.push_str(&"0,".repeat(4_000));
    text.push_str("]\n      copies: [");
    text.push_str(&"*big,".repeat(4_000));
    text.push_str("]\n");
    assert!(text.len() < 30_000);
    refused_within_memory(&text);
}

#[test]
fn a_small_file_of_many_aliases_to_nested_one_key_maps_stays_small_in_memory() {
    // A map of one entry takes room for several: aliases to an anchor of ten nested ones.
    let mut text = String::from(
        "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      \
         m: &m {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: 0}}}}}}}}}}\n      c: [",
    );
    text.push_str(&"*m,".repeat(10_000));
    text.push_str("]\n");
    refused_within_memory(&text);
}
