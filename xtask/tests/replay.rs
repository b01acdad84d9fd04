//! Every saved fuzz case (`fuzz/cases/<target>/*`) is a regression test: this runs them all
//! through their targets' checks again (`cargo xtask fuzz --replay`), each in a watched
//! worker process, so a case that crashes, hangs or still breaks an invariant fails here
//! with its file named.

use std::path::Path;
use std::process::Command;

#[test]
fn every_saved_fuzz_case_passes_its_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fuzz", "--replay"])
        .current_dir(root)
        .output()
        .expect("xtask runs");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("saved case(s), 0 failing"), "{report}");
    let replayed: usize = report
        .split("fuzz replay: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(replayed > 0, "no saved case was replayed: {report}");
}

/// A path that holds no saved case (mistyped, say) is an error, not a replay of nothing.
#[test]
fn a_path_with_no_saved_case_is_an_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fuzz", "--replay", "no/such/cases"])
        .output()
        .expect("xtask runs");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{report}");
    assert!(report.contains("no saved fuzz case"), "{report}");
    assert!(report.contains("no/such/cases"), "{report}");
}
