//! `cargo xtask tidy [DIR]`: the checks a reviewer would otherwise repeat, over every `.rs`
//! file of the workspace (or of `DIR`):
//!
//! - every file starts with a `//!` module doc;
//! - no file is over [`MAX_LINES`] lines, not counting its `#[cfg(test)] mod ... { }`
//!   test module and what follows it;
//!   files under a `tests` directory (and `tests.rs` files) are exempt;
//! - doc comments (`///`, `//!`) hold no benchmark figures and none of the [`JARGON`]
//!   words. A figure is a rate (`tasks/s`, `1.2M tasks/s`), a factor (`3x`), or a time (`ns`, `µs`, `ms`, `s`)
//!   on a line that says it was measured ([`MEASURE_WORDS`]); code spans are not read;
//! - every published library crate's lib doc starts with a runnable example: its first
//!   code block comes before its first heading and is Rust that is compiled (`no_run` is
//!   allowed, for examples that need a server; `ignore` and `text` are not).

use std::path::{Path, PathBuf};

/// The most lines a source file may have outside its tests.
const MAX_LINES: usize = 500;

/// Files allowed over [`MAX_LINES`] for now, each with its reason. Remove an entry as soon
/// as its file is split.
const LONG_FILES_ALLOWED: &[(&str, &str)] = &[];

/// Words that mean something only to the people who wrote the code, not to its users.
const JARGON: &[&str] = &["the seed", "seed's", "the brief", "helper session"];

/// Units that make a number a benchmark figure (times only with [`MEASURE_WORDS`]).
const UNITS: &[&str] = &["ns", "µs", "us", "ms", "s", "x"];

/// Words that make a time on the same line a measured figure rather than a setting (a
/// timeout of `50 ms` is fine; `~0.25 ms per task` is not).
const MEASURE_WORDS: &[&str] = &[
    "per task",
    "per event",
    "/task",
    "/event",
    "per call",
    "per run",
    "median",
    "overhead",
    "throughput",
    "faster",
    "slower",
    "measured",
    "~",
];

/// Rates that make a number a benchmark figure.
const RATES: &[&str] = &["tasks/s", "events/s", "ops/s", "runs/s"];

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let root = match args {
        [] => crate::workspace_root(),
        [dir] => PathBuf::from(dir),
        _ => return Err("tidy takes at most one argument, a directory".to_owned()),
    };
    let problems = check(&root)?;
    if problems.is_empty() {
        eprintln!("tidy: ok");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    Err(format!("tidy: {} problem(s)", problems.len()))
}

/// Every problem found under `root`, one line each, naming the file (and line).
fn check(root: &Path) -> Result<Vec<String>, String> {
    let mut files = Vec::new();
    collect(root, &mut files)?;
    files.sort();
    let mut problems = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(root).unwrap_or(path);
        let shown = relative.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        if path.extension().is_some_and(|e| e == "rs") {
            check_source(&shown, &text, &mut problems);
        } else if path.file_name().is_some_and(|n| n == "Cargo.toml") {
            check_crate(path, &shown, &text, &mut problems);
        }
    }
    Ok(problems)
}

/// The `.rs` files and `Cargo.toml`s under `dir`, skipping build output and hidden
/// directories.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                collect(&path, files)?;
            }
        } else if name.ends_with(".rs") || name == "Cargo.toml" {
            files.push(path);
        }
    }
    Ok(())
}

/// The lines of `text` before its test module (a `#[cfg(test)]` followed by an inline
/// `mod ... {`): all of them when it has none. A `#[cfg(test)]` on anything else (a
/// helper, an out-of-line `mod tests;`) counts with the rest.
fn lines_before_tests(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let test_module = |at: usize| {
        // Past blank lines and other attributes.
        let next = (lines[at + 1..].iter().map(|l| l.trim()))
            .find(|l| !l.is_empty() && !l.starts_with("#["));
        lines[at].trim() == "#[cfg(test)]"
            && next.is_some_and(|l| l.split_whitespace().any(|w| w == "mod") && l.ends_with('{'))
    };
    (0..lines.len())
        .find(|&at| test_module(at))
        .unwrap_or(lines.len())
}

fn check_source(shown: &str, text: &str, problems: &mut Vec<String>) {
    let first = text.lines().find(|line| !line.trim().is_empty());
    if !first.is_some_and(|line| line.starts_with("//!")) {
        problems.push(format!("{shown}: does not start with a `//!` module doc"));
    }
    let is_test =
        shown.split(['/', '\\']).any(|part| part == "tests") || shown.ends_with("tests.rs");
    let lines = lines_before_tests(text);
    let allowed = LONG_FILES_ALLOWED
        .iter()
        .any(|(file, _)| shown.replace('\\', "/") == *file);
    if !is_test && !allowed && lines > MAX_LINES {
        problems.push(format!(
            "{shown}: {lines} lines outside tests (at most {MAX_LINES}); split it"
        ));
    }
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let Some(doc) = trimmed
            .strip_prefix("///")
            .or_else(|| trimmed.strip_prefix("//!"))
        else {
            continue;
        };
        let prose = outside_code_spans(doc);
        if let Some(figure) = benchmark_figure(&prose) {
            problems.push(format!(
                "{shown}:{}: benchmark figure `{figure}` in a doc comment (figures belong in BENCHMARKS.md)",
                number + 1
            ));
        }
        let lower = prose.to_lowercase();
        for word in JARGON {
            if lower.contains(word) {
                problems.push(format!(
                    "{shown}:{}: internal jargon `{word}` in a doc comment",
                    number + 1
                ));
            }
        }
    }
}

/// `doc` with its `code spans` blanked out.
fn outside_code_spans(doc: &str) -> String {
    let mut inside = false;
    doc.chars()
        .map(|c| {
            if c == '`' {
                inside = !inside;
                ' '
            } else if inside {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The first number followed by a benchmark unit or rate in `prose`, as written.
fn benchmark_figure(prose: &str) -> Option<String> {
    let lower = prose.to_lowercase();
    let measured = MEASURE_WORDS.iter().any(|word| lower.contains(word));
    let chars: Vec<char> = prose.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_number = chars[i].is_ascii_digit()
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'));
        if !starts_number {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || matches!(chars[i], '.' | ',' | '_'))
        {
            i += 1;
        }
        let mut j = i;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        let rest: String = chars[j..].iter().collect();
        // A multiplier before a rate (`1.2M tasks/s`).
        let multiplied = rest
            .chars()
            .next()
            .filter(|c| matches!(c, 'k' | 'K' | 'M' | 'G'));
        if let Some(multiplier) = multiplied {
            let after = rest[1..].trim_start();
            if let Some(rate) = RATES.iter().find(|rate| after.starts_with(**rate)) {
                let number: String = chars[start..i].iter().collect();
                return Some(format!("{number}{multiplier} {rate}"));
            }
        }
        let unit = UNITS.iter().chain(RATES).find(|unit| {
            let counts = measured || RATES.contains(unit) || **unit == "x";
            counts
                && rest.starts_with(*unit)
                && !rest[unit.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
        });
        if let Some(unit) = unit {
            let number: String = chars[start..i].iter().collect();
            return Some(format!("{} {unit}", number.trim_end_matches(['.', ','])));
        }
    }
    None
}

/// A published library crate (no `publish = false`) must open its lib doc with a
/// runnable example.
fn check_crate(manifest: &Path, shown: &str, text: &str, problems: &mut Vec<String>) {
    let Some(dir) = manifest.parent() else {
        return;
    };
    let lib = dir.join("src").join("lib.rs");
    if !text.contains("[package]") || text.contains("publish = false") || !lib.exists() {
        return;
    }
    let shown_lib = shown.replace("Cargo.toml", "src/lib.rs");
    let Ok(source) = std::fs::read_to_string(&lib) else {
        return;
    };
    let doc = source
        .lines()
        .take_while(|line| line.starts_with("//!") || line.trim().is_empty())
        .filter_map(|line| line.strip_prefix("//!"))
        .map(str::trim);
    for line in doc {
        if line.starts_with('#') {
            break;
        }
        if let Some(info) = line.strip_prefix("```") {
            // Rust that is compiled: no language or `rust`, with no attribute that keeps
            // it from compiling (`no_run` and `should_panic` compile).
            let runnable = info.split(',').map(str::trim).all(|tag| {
                matches!(tag, "" | "rust" | "no_run" | "should_panic") || tag.starts_with("edition")
            });
            if runnable {
                return;
            }
            break;
        }
    }
    problems.push(format!(
        "{shown_lib}: the lib doc does not start with a runnable example (a code block before its first heading)"
    ));
}

#[cfg(test)]
mod tests {
    use super::benchmark_figure;

    #[test]
    fn figures_are_found_in_their_common_forms() {
        for (prose, figure) in [
            ("runs at 12,000 tasks/s here", "12,000 tasks/s"),
            ("about 1.2M tasks/s", "1.2M tasks/s"),
            ("150 ns/task", "150 ns"),
            ("~0.25 ms per task", "0.25 ms"),
            ("0.3 s per task", "0.3 s"),
            ("3x faster", "3 x"),
        ] {
            assert_eq!(benchmark_figure(prose).as_deref(), Some(figure), "{prose}");
        }
    }

    #[test]
    fn settings_are_not_figures() {
        for prose in [
            "a timeout of 50 ms",
            "waits 5 s for the server",
            "retries 3 times",
            "at most 2 s per message",
            "2 Mb of memory",
        ] {
            assert_eq!(benchmark_figure(prose), None, "{prose}");
        }
    }
}
