//! The memory a YAML workflow may take, measured: aliases cannot blow a small file up
//! into gigabytes. (Its own test binary: the allocator counts every thread's memory.)

use orch_core::{LoadError, Workflow};
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

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

    let before = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let result = Workflow::from_yaml(&text);
    let peak = ALLOCATOR.peak_usage().saturating_sub(before);

    assert!(
        matches!(result, Err(LoadError::ExpansionLimit { .. })),
        "{result:?}"
    );
    assert!(
        peak < 512 * text.len(),
        "reading {} bytes took {peak} bytes at its peak",
        text.len()
    );
}
