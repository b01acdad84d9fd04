//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: everything CI checks (see [`ci`]): formatting, clippy with warnings denied, the
//!   whole test suite, and a short fuzzing session on every fuzz target.
//! - `fuzz [--secs N] [--target T] [--seed S]`: the stable-toolchain fuzzer (see [`fuzz`]);
//!   `fuzz --replay [PATH...]` runs saved cases again.
//! - `tidy [DIR]`: the reviewer's checks on every source file (see [`tidy`]).
//! - `bench [--quick]`: the quick benchmark table (engine shapes at 10^4..10^6 tasks), printed
//!   and written to `target/bench.json`. `--quick` stops at 10^5 tasks.

mod bench;
mod ci;
mod fuzz;
mod tidy;

use std::process::{Command, ExitCode};

use peak_alloc::PeakAlloc;

/// Counts live and peak heap bytes, so the fuzz targets can bound what one input costs.
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(rest),
        Some("fuzz") => fuzz::main(rest),
        // Started by `fuzz` itself: one target's inputs, run in this process.
        Some(fuzz::WORKER_COMMAND) => return fuzz::worker_main(rest),
        Some("tidy") => tidy::run(rest),
        Some("bench") => match rest {
            [] => bench::run(false),
            [quick] if quick == "--quick" => bench::run(true),
            _ => Err(format!(
                "cargo xtask bench takes `--quick` or nothing, not {rest:?}"
            )),
        },
        _ => {
            eprintln!(
                "usage: cargo xtask ci\n       \
                 cargo xtask fuzz [--secs N] [--target files|results|subjects|runs] [--seed S]\n       \
                 cargo xtask fuzz --replay [PATH...]\n       \
                 cargo xtask bench [--quick]\n       \
                 cargo xtask tidy [DIR]"
            );
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

/// Runs `cargo` with `args` in the workspace (plain output, for logs), echoing the
/// command first.
fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_with(args, &[])
}

/// [`cargo`], with the environment variables `env` set too. The caller's `ORCH_NATS_*`
/// settings are left out: the tests and benchmarks start servers of their own, which
/// another server's credentials or TLS settings would not fit.
fn cargo_with(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    let callers_nats = std::env::vars_os().map(|(key, _)| key).filter(|key| {
        key.to_str()
            .is_some_and(|key| key.starts_with("ORCH_NATS_"))
    });
    for key in callers_nats {
        command.env_remove(key);
    }
    run_command(
        command
            .args(args)
            .current_dir(workspace_root())
            .env("CARGO_TERM_COLOR", "never")
            .envs(env.iter().copied()),
    )
}

/// Runs `command`, echoing it first; an error if it cannot start or fails.
fn run_command(command: &mut Command) -> Result<(), String> {
    let shown = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("$ {shown}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// The workspace's root directory (the parent of this crate's).
fn workspace_root() -> std::path::PathBuf {
    let xtask = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}
