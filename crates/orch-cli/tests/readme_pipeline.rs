//! The pipeline file the README runs with the `orch` command validates, runs to
//! completion, counts the README's words right and gives a report.

use std::path::Path;
use std::process::Command;

#[test]
fn the_readme_pipeline_runs_and_reports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let file = root.join("examples/workflows/pipeline.yaml");
    let dir = tempfile::tempdir().expect("temp dir");
    let result = dir.path().join("result.json");
    let report = dir.path().join("run.html");
    let orch = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(env!("CARGO_BIN_EXE_orch"))
            .args(args)
            .output()
            .expect("orch starts");
        assert!(
            out.status.success(),
            "orch {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    orch(&["validate".as_ref(), file.as_os_str()]);
    orch(&[
        "run".as_ref(),
        file.as_os_str(),
        "-o".as_ref(),
        result.as_os_str(),
    ]);
    orch(&[
        "report".as_ref(),
        result.as_os_str(),
        "-o".as_ref(),
        report.as_os_str(),
    ]);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result).expect("result file")).expect("JSON");
    assert_eq!(written["status"], "completed");
    let words = written["tasks"]["count"]["result"]
        .as_u64()
        .expect("a count");
    // As many words as `wc -w` counts in the README itself.
    let readme = Command::new("wc")
        .arg("-w")
        .stdin(std::fs::File::open(root.join("README.md")).expect("the README"))
        .output()
        .expect("wc starts");
    let counted: u64 =
        (String::from_utf8_lossy(&readme.stdout).trim().parse()).expect("wc gives a count");
    assert_eq!(words, counted);
    let html = std::fs::read_to_string(&report).expect("report");
    assert!(html.contains("word_count"));
}
