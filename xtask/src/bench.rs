//! `cargo xtask bench`: runs each quick benchmark case in its own process and tabulates:
//! the engine with no-op handlers over the standard shapes (8 slots and 1), the same with
//! a bus subscriber on `workflow.>`, durable runs with a journal (file at `Process` and
//! `Power` durability, and PostgreSQL when its server programs are installed), lossless bus
//! fan-out, the `orch` command (`cli/` rows: `orch run` of 1,000 `true` commands
//! beside a plain tokio::process loop, and `orch validate` of 10^5 tasks), and orch-nats
//! (`nats/` rows: 10,000 no-op tasks through 4 workers and a 1,000-task chain's per-hop
//! p50/p99, beside raw JetStream work queues in the same run; skipped, with the reason,
//! when `nats-server` is not on the PATH). For the bus rows a "task" is one delivery.
//!
//! The table goes to `target/bench.json` and into `BENCHMARKS.md`, between the
//! [`TABLE_START`] and [`TABLE_END`] markers, replacing the table there. A case that
//! fails fails the command, and nothing is written.

use std::path::PathBuf;

use crate::cargo;

/// The line after which `BENCHMARKS.md` holds the written table.
const TABLE_START: &str = "<!-- cargo xtask bench: table start -->";
/// The line before which the written table ends.
const TABLE_END: &str = "<!-- cargo xtask bench: table end -->";

const SHAPES: [&str; 5] = ["chain", "fan_out_in", "binary_tree", "wavefront", "random"];

/// One row of the table, as the case binary printed it.
struct Row {
    case: String,
    tasks: u64,
    ns_per_task: f64,
    tasks_per_s: f64,
    peak_rss_bytes: u64,
    json: String,
}

pub(crate) fn run(quick: bool) -> Result<(), String> {
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "benches",
        "--bin",
        "orch_bench",
        "--bin",
        "orch_bench_postgres",
    ])?;
    let release = target_dir()?.join("release");
    let binary = release.join("orch_bench");
    // The PostgreSQL journal's case has a binary of its own, so that the PostgreSQL
    // client's code is no part of the other rows' memory.
    let postgres_binary = release.join("orch_bench_postgres");
    let sizes: &[&str] = if quick {
        &["10000", "100000"]
    } else {
        &["10000", "100000", "1000000"]
    };
    let mut rows = Vec::new();
    for max_concurrent in ["8", "1"] {
        for size in sizes {
            for shape in SHAPES {
                rows.push(run_case(&binary, &["engine", shape, size, max_concurrent])?);
            }
        }
    }
    // The same runs with lifecycle events going to a lossless subscriber.
    for size in sizes {
        for shape in SHAPES {
            rows.push(run_case(&binary, &["engine", shape, size, "8", "bus"])?);
        }
    }
    // With handlers that compute for 2 µs, the bus's work overlaps the run's.
    for bus in [&[][..], &["bus"][..]] {
        let args = [&["engine", "random", "100000", "8", "work=2000"][..], bus].concat();
        rows.push(run_case(&binary, &args)?);
    }
    // Durable runs: each completion committed to a journal before its dependents start,
    // against the same run without one (the first row above for this shape and size).
    for journal in ["journal=process", "journal=power"] {
        rows.push(run_case(
            &binary,
            &["engine", "random", "100000", "8", journal],
        )?);
    }
    // Left out only when no PostgreSQL server can be started here; any other failure
    // fails the whole command, as every other case's does.
    let postgres = ["engine", "random", "100000", "8", "journal=postgres"];
    let mut command = std::process::Command::new(&postgres_binary);
    command.args(postgres);
    let output = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", postgres_binary.display()))?;
    match output.status.code() {
        Some(POSTGRES_SKIPPED) => eprintln!(
            "engine/random/c8+journal-postgres skipped: {}",
            stderr(&output).trim()
        ),
        _ => rows.push(row_of(output, &postgres.join(" "))?),
    }
    for (subscribers, events) in [("1", "1000000"), ("10", "500000"), ("100", "100000")] {
        rows.push(run_case(&binary, &["fanout", subscribers, events])?);
    }
    rows.extend(cli_rows()?);
    match nats_rows()? {
        Some(nats) => rows.extend(nats),
        None => eprintln!(
            "nats/ rows skipped: nats-server is not on the PATH (apt-get install nats-server)"
        ),
    }
    print!("{}", markdown_table(&rows));
    let json = format!(
        "[\n  {}\n]\n",
        rows.iter()
            .map(|r| r.json.as_str())
            .collect::<Vec<_>>()
            .join(",\n  ")
    );
    let out = release.with_file_name("bench.json");
    std::fs::write(&out, json).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("\nwritten to {}", out.display());
    let doc_path = crate::workspace_root().join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&doc_path)
        .map_err(|e| format!("cannot read {}: {e}", doc_path.display()))?;
    let scope = if quick {
        "`--quick` (up to 10^5 tasks)"
    } else {
        "full"
    };
    let table = format!(
        "Written by `cargo xtask bench`, {scope}.\n\n{}",
        markdown_table(&rows)
    );
    let doc = with_table(&doc, &table)?;
    std::fs::write(&doc_path, doc)
        .map_err(|e| format!("cannot write {}: {e}", doc_path.display()))?;
    println!("and into {}", doc_path.display());
    Ok(())
}

/// The `orch` command's cases, one process each: 1,000 `command` tasks running `true` at
/// concurrency 8 (orch run, without and with the line display) next to a plain
/// tokio::process loop doing the same spawns, and `orch validate` of 10^5 tasks.
fn cli_rows() -> Result<Vec<Row>, String> {
    let bench = ["bench", "--quiet", "-p", "orch-cli", "--bench", "cli"];
    cargo(&[&bench[..], &["--no-run"]].concat())?;
    let cargo_bin = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    ["tokio-loop", "run-none", "run-lines", "validate"]
        .iter()
        .map(|case| {
            let mut command = std::process::Command::new(&cargo_bin);
            command
                .args(bench)
                .args(["--", "--row", case])
                .current_dir(crate::workspace_root());
            case_row(command, case)
        })
        .collect()
}

/// orch-nats next to raw JetStream work queues, alternated in one process on a
/// nats-server it starts (`--bench round_trip -- --rows`): one row per figure; none when
/// `nats-server` is not on the PATH.
fn nats_rows() -> Result<Option<Vec<Row>>, String> {
    if std::process::Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        return Ok(None);
    }
    let bench = [
        "bench",
        "--quiet",
        "-p",
        "orch-nats",
        "--bench",
        "round_trip",
    ];
    cargo(&[&bench[..], &["--no-run"]].concat())?;
    let cargo_bin = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo_bin)
        .args(bench)
        .args(["--", "--rows"])
        .current_dir(crate::workspace_root())
        .output()
        .map_err(|e| format!("cannot run the orch-nats bench: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows = row_lines(&stdout)?;
    if !output.status.success() || rows.is_empty() {
        return Err(format!(
            "the orch-nats bench printed no rows: {}",
            stderr(&output).trim()
        ));
    }
    Ok(Some(rows))
}

/// The rows among a case's output lines; a row line that does not read as one is an
/// error, not a row left out of the table.
fn row_lines(stdout: &str) -> Result<Vec<Row>, String> {
    stdout
        .lines()
        .filter(|l| l.starts_with("{\"case\""))
        .map(|line| parse_row(line).ok_or_else(|| format!("a row that does not read: {line}")))
        .collect()
}

/// The rows as a Markdown table.
fn markdown_table(rows: &[Row]) -> String {
    let mut table = String::from(
        "| case | tasks | ns/task | tasks/s | peak RSS MB | RSS B/task |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        table.push_str(&format!(
            "| {} | {} | {:.1} | {:.0} | {:.1} | {} |\n",
            row.case,
            row.tasks,
            row.ns_per_task,
            row.tasks_per_s,
            row.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            row.peak_rss_bytes / row.tasks.max(1)
        ));
    }
    table
}

/// `doc` with what lies between the table markers replaced by `table`; an error naming
/// the markers if `doc` lacks them.
fn with_table(doc: &str, table: &str) -> Result<String, String> {
    let missing = || format!("BENCHMARKS.md needs the lines `{TABLE_START}` and `{TABLE_END}`");
    let start = doc.find(TABLE_START).ok_or_else(missing)? + TABLE_START.len();
    let end = start + doc[start..].find(TABLE_END).ok_or_else(missing)?;
    Ok(format!(
        "{}\n{}\n{}",
        &doc[..start],
        table.trim_end(),
        &doc[end..]
    ))
}

fn run_case(binary: &PathBuf, args: &[&str]) -> Result<Row, String> {
    let mut command = std::process::Command::new(binary);
    command.args(args);
    case_row(command, &args.join(" "))
}

/// The exit code with which `orch_bench_postgres` says it could not run here (no
/// PostgreSQL server programs).
const POSTGRES_SKIPPED: i32 = 3;

/// Runs a case's process and reads the row it prints last.
fn case_row(mut command: std::process::Command, case: &str) -> Result<Row, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run case {case}: {e}"))?;
    row_of(output, case)
}

/// The row a case's process printed last, if it succeeded.
fn row_of(output: std::process::Output, case: &str) -> Result<Row, String> {
    if !output.status.success() {
        return Err(format!("case {case} failed: {}", stderr(&output)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.trim().lines().last().unwrap_or_default().to_owned();
    parse_row(&line).ok_or_else(|| format!("case {case} printed `{line}`"))
}

/// Reads the flat JSON object a case prints (no nesting, no escapes: the case writes it).
fn parse_row(line: &str) -> Option<Row> {
    let field = |name: &str| -> Option<&str> {
        let key = format!("\"{name}\": ");
        let start = line.find(&key)? + key.len();
        let rest = &line[start..];
        let end = rest.find([',', '}'])?;
        Some(rest[..end].trim().trim_matches('"'))
    };
    Some(Row {
        case: field("case")?.to_owned(),
        tasks: field("tasks")?.parse().ok()?,
        ns_per_task: field("ns_per_task")?.parse().ok()?,
        tasks_per_s: field("tasks_per_s")?.parse().ok()?,
        peak_rss_bytes: field("peak_rss_bytes")?.parse().ok()?,
        json: line.to_owned(),
    })
}

/// Where cargo builds the workspace, as cargo itself reads it (`CARGO_TARGET_DIR`,
/// `CARGO_BUILD_TARGET_DIR`, `build.target-dir`, relative to the workspace): the bench
/// binaries just built are there, not an older build elsewhere.
fn target_dir() -> Result<PathBuf, String> {
    let cargo_bin = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo_bin)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(crate::workspace_root())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata gave no metadata ({e}): {}", stderr(&output)))?;
    match metadata["target_directory"].as_str() {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Err("cargo metadata names no target directory".to_owned()),
    }
}

fn stderr(output: &std::process::Output) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&output.stderr)
}

#[cfg(test)]
mod tests {
    use super::{TABLE_END, TABLE_START, markdown_table, parse_row, row_lines, with_table};

    #[test]
    fn the_table_replaces_only_what_is_between_the_markers() {
        let row = parse_row(
            r#"{"case": "engine/chain/c8", "tasks": 1000, "ns_per_task": 2.25, "tasks_per_s": 444444444, "peak_rss_bytes": 2097152}"#,
        )
        .expect("a well-formed line");
        let table = markdown_table(&[row]);
        assert!(
            table.ends_with("| engine/chain/c8 | 1000 | 2.2 | 444444444 | 2.0 | 2097 |\n"),
            "{table}"
        );
        let doc =
            format!("# Title\n\nSummary.\n\n{TABLE_START}\n| old |\n{TABLE_END}\n\n## Rest\n");
        let written = with_table(&doc, &table).expect("markers present");
        assert_eq!(
            written,
            format!(
                "# Title\n\nSummary.\n\n{TABLE_START}\n{}\n{TABLE_END}\n\n## Rest\n",
                table.trim_end()
            )
        );
        // Writing again gives the same document.
        assert_eq!(with_table(&written, &table).as_ref(), Ok(&written));
        let error = with_table("# No markers\n", &table).expect_err("no markers");
        assert!(error.contains(TABLE_START), "{error}");
    }

    #[test]
    fn the_real_benchmarks_file_has_the_markers() {
        let doc = std::fs::read_to_string(crate::workspace_root().join("BENCHMARKS.md"))
            .expect("BENCHMARKS.md");
        assert!(with_table(&doc, "| x |").is_ok());
    }

    #[test]
    fn a_case_line_parses_into_a_row() {
        let row = parse_row(
            r#"{"case": "engine/chain/c8", "tasks": 10000, "ns_per_task": 151.5, "tasks_per_s": 6600660, "peak_rss_bytes": 9437184}"#,
        )
        .expect("a well-formed line");
        assert_eq!(row.case, "engine/chain/c8");
        assert_eq!(row.tasks, 10_000);
        assert_eq!(row.ns_per_task, 151.5);
        assert_eq!(row.peak_rss_bytes, 9_437_184);
        assert!(parse_row(r#"{"case": "x"}"#).is_none());
    }

    /// The target directory is the one cargo built this very test binary in.
    #[test]
    fn the_target_directory_is_where_cargo_builds() {
        let dir = super::target_dir().expect("cargo metadata names it");
        let this = std::env::current_exe().expect("this test's binary");
        assert!(
            this.starts_with(&dir),
            "{} is not in {}",
            this.display(),
            dir.display()
        );
    }

    #[test]
    fn every_row_line_of_a_case_is_read_other_lines_are_not_and_a_broken_row_is_an_error() {
        let stdout = "skipping nothing\n\
            {\"case\": \"nats/a\", \"tasks\": 10, \"ns_per_task\": 5.0, \"tasks_per_s\": 200000000, \"peak_rss_bytes\": 0, \"cpu_ns_per_task\": 7.0}\n\
            nats/chain per hop: p50 1ms\n\
            {\"case\": \"nats/b\", \"tasks\": 20, \"ns_per_task\": 6.0, \"tasks_per_s\": 1, \"peak_rss_bytes\": 0}\n";
        let rows = row_lines(stdout).expect("rows");
        let cases: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
        assert_eq!(cases, ["nats/a", "nats/b"]);
        assert!(row_lines("nothing here\n").expect("no rows").is_empty());
        let broken = row_lines("{\"case\": \"nats/c\", \"tasks\": \"many\"}\n");
        assert!(broken.err().expect("an error").contains("nats/c"));
    }
}
