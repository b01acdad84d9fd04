//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: what `.ci/run` runs: formatting, clippy with warnings denied, the whole test suite.
//! - `bench [--quick]`: the quick benchmark table (engine shapes at 10^4..10^6 tasks), printed
//!   and written to `target/bench.json`. `--quick` stops at 10^5 tasks.

mod bench;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::run(args.iter().any(|a| a == "--quick")),
        _ => {
            eprintln!("usage: cargo xtask ci | cargo xtask bench [--quick]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What `.ci/run` does: formatting, lints (also without the optional bus and metrics),
/// the README's test command, and the engine's tests without those features.
fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&[
        "clippy",
        "-p",
        "orch",
        "--no-default-features",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])?;
    cargo(&["test", "-p", "orch-engine", "--no-default-features"])
}

fn cargo(args: &[&str]) -> Result<(), String> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}
