//! `cargo xtask tidy` passes on a clean tree and fails, naming the file, on each kind of
//! problem it checks: a missing module doc, a long file, a benchmark figure or internal
//! jargon in a doc comment, and a library whose lib doc does not open with an example.

use std::path::Path;
use std::process::Command;

const CLEAN_LIB: &str = "//! A small crate.\n//!\n//! ```\n//! assert_eq!(tiny::one(), 1);\n//! ```\n//!\n//! # Details\n\n/// One.\npub fn one() -> u32 {\n    1\n}\n";

/// A tree with one published library crate and one test file, all tidy.
fn clean_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    write(
        dir.path(),
        "crates/tiny/Cargo.toml",
        "[package]\nname = \"tiny\"\n",
    );
    write(dir.path(), "crates/tiny/src/lib.rs", CLEAN_LIB);
    let long_test = format!("//! Tests may be long.\n{}", "// line\n".repeat(600));
    write(dir.path(), "crates/tiny/tests/long.rs", &long_test);
    dir
}

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("directories");
    std::fs::write(path, text).expect("write");
}

/// Runs tidy on `root`: whether it passed, and what it printed.
fn tidy(root: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("tidy")
        .arg(root)
        .output()
        .expect("xtask runs");
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), report)
}

fn assert_fails(file: &str, text: &str, expected: &str) {
    let dir = clean_tree();
    write(dir.path(), file, text);
    let (passed, report) = tidy(dir.path());
    assert!(!passed, "tidy passed with {file}:\n{report}");
    assert!(
        report.contains(expected),
        "expected `{expected}` in:\n{report}"
    );
}

#[test]
fn a_clean_tree_passes() {
    let dir = clean_tree();
    let (passed, report) = tidy(dir.path());
    assert!(passed, "{report}");
}

#[test]
fn a_file_without_a_module_doc_fails() {
    assert_fails(
        "crates/tiny/src/extra.rs",
        "/// Not a module doc.\npub fn f() {}\n",
        "crates/tiny/src/extra.rs: does not start with a `//!` module doc",
    );
}

#[test]
fn a_long_file_fails_but_its_test_module_does_not_count() {
    let body = "// line\n".repeat(501);
    assert_fails(
        "crates/tiny/src/long.rs",
        &format!("//! Long.\n{body}"),
        "crates/tiny/src/long.rs: 502 lines outside tests",
    );
    let dir = clean_tree();
    let text = format!(
        "//! Short, with long tests.\n#[cfg(test)]\n#[allow(dead_code)]\nmod tests {{\n{body}}}\n"
    );
    write(dir.path(), "crates/tiny/src/short.rs", &text);
    let (passed, report) = tidy(dir.path());
    assert!(passed, "{report}");
    // A `#[cfg(test)]` on a helper early in the file does not exempt the rest.
    assert_fails(
        "crates/tiny/src/early.rs",
        &format!("//! Long.\n#[cfg(test)]\nfn helper() {{}}\n{body}"),
        "crates/tiny/src/early.rs: 504 lines outside tests",
    );
}

#[test]
fn benchmark_figures_in_doc_comments_fail() {
    for (doc, figure) in [
        ("/// Runs at 1,200,000 tasks/s.", "1,200,000 tasks/s"),
        ("/// Costs ~0.25 ms per task.", "0.25 ms"),
        ("/// About 3x faster than before.", "3 x"),
        ("//! Median 140 ns.", "140 ns"),
    ] {
        assert_fails(
            "crates/tiny/src/fast.rs",
            &format!("//! Fast.\n{doc}\npub fn f() {{}}\n"),
            &format!("benchmark figure `{figure}`"),
        );
    }
}

#[test]
fn settings_and_code_spans_are_not_figures() {
    let dir = clean_tree();
    let text = "//! Waits 50 ms before a retry; `~0.25 ms per task` is code.\n\
                /// A timeout of 2 ms, and 0x1F in hex.\npub fn f() {}\n";
    write(dir.path(), "crates/tiny/src/settings.rs", text);
    let (passed, report) = tidy(dir.path());
    assert!(passed, "{report}");
}

#[test]
fn internal_jargon_in_doc_comments_fails() {
    assert_fails(
        "crates/tiny/src/jargon.rs",
        "//! Jargon.\n/// As the seed describes.\npub fn f() {}\n",
        "crates/tiny/src/jargon.rs:2: internal jargon `the seed`",
    );
}

#[test]
fn a_lib_doc_without_a_leading_example_fails() {
    assert_fails(
        "crates/tiny/src/lib.rs",
        "//! A small crate.\n//!\n//! # Details\n//!\n//! ```\n//! assert!(true);\n//! ```\n",
        "crates/tiny/src/lib.rs: the lib doc does not start with a runnable example",
    );
    for info in ["ignore", "yaml", "json", "bash", "rust,ignore"] {
        assert_fails(
            "crates/tiny/src/lib.rs",
            &format!("//! A small crate.\n//!\n//! ```{info}\n//! tiny::one();\n//! ```\n"),
            "crates/tiny/src/lib.rs: the lib doc does not start with a runnable example",
        );
    }
    // Compiled examples pass, whatever else they say.
    for info in ["rust", "no_run", "rust,should_panic", "should_panic"] {
        let dir = clean_tree();
        let lib = format!(
            "//! A small crate.\n//!\n//! ```{info}\n//! assert_eq!(tiny::one(), 1);\n//! ```\n\n/// One.\npub fn one() -> u32 {{\n    1\n}}\n"
        );
        write(dir.path(), "crates/tiny/src/lib.rs", &lib);
        let (passed, report) = tidy(dir.path());
        assert!(passed, "{info}: {report}");
    }
}
