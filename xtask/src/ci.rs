//! `cargo xtask ci`: every check CI runs, as a list of steps.
//!
//! Each step is a function; [`STEPS`] lists them in order. All steps run, even after one
//! fails, and a summary names the failed ones. To add a step (say, installing and starting
//! a service the tests need), write its function here and add it to [`STEPS`];
//! [`apt_install`] installs Debian packages.

use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::{cargo, run_command};

/// One CI step: a name for the summary and the function that runs it.
struct Step {
    name: &'static str,
    run: fn() -> Result<(), String>,
}

/// The steps, in order.
const STEPS: &[Step] = &[
    Step {
        name: "PostgreSQL",
        run: postgres,
    },
    Step {
        name: "Chromium and Graphviz",
        run: chromium_and_graphviz,
    },
    Step {
        name: "nats-server",
        run: nats_server,
    },
    Step {
        name: "fmt",
        run: fmt,
    },
    Step {
        name: "tidy",
        run: tidy,
    },
    Step {
        name: "clippy",
        run: clippy,
    },
    Step {
        name: "docs",
        run: docs,
    },
    Step {
        name: "clippy without default features",
        run: clippy_minimal,
    },
    Step {
        name: "clippy orch-core without YAML and TOML",
        run: clippy_core_minimal,
    },
    Step {
        name: "test",
        run: test,
    },
    Step {
        name: "test without optional features",
        run: test_without_optional_features,
    },
    Step {
        name: "fuzz",
        run: fuzz_briefly,
    },
];

/// Seconds each fuzz target runs for in CI (about a minute in all).
const FUZZ_SECS_PER_TARGET: u64 = 15;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(unknown) = args.first() {
        return Err(format!("ci takes no arguments, got `{unknown}`"));
    }
    let mut failed = Vec::new();
    for step in STEPS {
        eprintln!("== {}", step.name);
        let started = Instant::now();
        let outcome = (step.run)();
        let secs = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => eprintln!("== {}: ok ({secs:.0} s)", step.name),
            Err(message) => {
                eprintln!("== {}: FAILED ({secs:.0} s): {message}", step.name);
                failed.push(step.name);
            }
        }
    }
    if failed.is_empty() {
        eprintln!("ci: every step passed");
        Ok(())
    } else {
        Err(format!("ci: failed steps: {}", failed.join(", ")))
    }
}

/// PostgreSQL for orch-journal's tests (they start a throwaway server on loopback):
/// installed from Debian's package when no `pg_ctl` is found, without the system
/// server the package starts.
fn postgres() -> Result<(), String> {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        // As the tests look for it: a numbered version's `initdb` and `pg_ctl`.
        .filter(|version| {
            version
                .file_name()
                .to_str()
                .is_some_and(|v| v.parse::<u32>().is_ok())
        })
        .any(|version| {
            let bin = version.path().join("bin");
            bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()
        });
    if installed {
        return Ok(());
    }
    // Clusters there before (a server removed but not purged) are left alone.
    let clusters = || -> Vec<std::ffi::OsString> {
        // No such directory: no cluster.
        let versions = std::fs::read_dir("/etc/postgresql").into_iter().flatten();
        (versions.flatten())
            .filter(|version| version.path().join("main").is_dir())
            .map(|version| version.file_name())
            .collect()
    };
    let before = clusters();
    apt_install(&["postgresql"])?;
    // The package makes a cluster `main` and starts it where services may start: the
    // tests need no server of the system's, so it is stopped and removed.
    for version in clusters() {
        if !before.contains(&version) {
            run_command(
                Command::new("pg_dropcluster")
                    .arg("--stop")
                    .arg(&version)
                    .arg("main"),
            )?;
        }
    }
    Ok(())
}

/// For orch-cli's tests: Chromium renders the HTML report headless, Graphviz's `dot`
/// checks the DOT output. Installed from Debian's packages when missing.
fn chromium_and_graphviz() -> Result<(), String> {
    if on_path("chromium") && on_path("dot") {
        return Ok(());
    }
    apt_install(&["chromium", "graphviz"])
}

/// For orch-nats's tests: each starts its own nats-server (JetStream on, a temporary
/// store, a free loopback port) and kills it when done; openssl makes the certificates
/// of the TLS test. Installed from Debian's packages when missing.
fn nats_server() -> Result<(), String> {
    if on_path("nats-server") && on_path("openssl") {
        return Ok(());
    }
    let before = on_path("nats-server");
    apt_install(&["nats-server", "openssl"])?;
    // Where systemd runs, the package enables and starts a server of the system's: the
    // tests need none, so the one this install brought is stopped and not started again.
    if !before && Path::new("/run/systemd/system").is_dir() {
        run_command(Command::new("systemctl").args(["disable", "--now", "nats-server"]))?;
    }
    Ok(())
}

/// Whether `program` is a file in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Installs Debian packages with `apt-get` (after updating the package lists).
fn apt_install(packages: &[&str]) -> Result<(), String> {
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!(
            "{} missing, and there is no apt-get to install them",
            packages.join(", ")
        ));
    }
    // A machine just started may be updating its packages itself: wait for its lock
    // rather than fail at once.
    let wait_for_lock = ["-o", "DPkg::Lock::Timeout=300"];
    run_command(
        Command::new("apt-get")
            .args(wait_for_lock)
            .args(["update", "-qq"]),
    )?;
    run_command(
        Command::new("apt-get")
            .args(wait_for_lock)
            .args(["install", "-y", "-qq"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn fmt() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"])
}

/// `cargo xtask tidy`, in this process.
fn tidy() -> Result<(), String> {
    crate::tidy::run(&[])
}

fn clippy() -> Result<(), String> {
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])
}

/// The facade without the optional bus and metrics; orch-journal without PostgreSQL and
/// orch-metrics without the `metrics` facade (their defaults, as a user gets them: in
/// the workspace, other crates turn those features on), and orch-nats without its
/// default journal.
fn clippy_minimal() -> Result<(), String> {
    let packages: [&[&str]; 3] = [
        &["-p", "orch", "--no-default-features"],
        &["-p", "orch-journal", "-p", "orch-metrics", "--all-targets"],
        &["-p", "orch-nats", "--no-default-features", "--lib"],
    ];
    every(packages.map(|which| cargo(&[&["clippy"], which, &["--", "-D", "warnings"]].concat())))
}

/// Ok when every one of `outcomes` is (each run, whatever the one before did, so that
/// every failure is told); else their errors together.
fn every(outcomes: impl IntoIterator<Item = Result<(), String>>) -> Result<(), String> {
    let failures: Vec<String> = outcomes.into_iter().filter_map(Result::err).collect();
    match failures.is_empty() {
        true => Ok(()),
        false => Err(failures.join("; ")),
    }
}

/// The API docs of every crate build without a warning (a broken link, say).
fn docs() -> Result<(), String> {
    let args = ["doc", "--workspace", "--no-deps", "--all-features"];
    crate::cargo_with(&args, &[("RUSTDOCFLAGS", "-D warnings")])
}

/// orch-core without its default `yaml` and `toml` features: the library and its tests
/// are clean (they run in [`test_without_optional_features`]).
fn clippy_core_minimal() -> Result<(), String> {
    cargo(&[
        "clippy",
        "-p",
        "orch-core",
        "--no-default-features",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])
}

/// The README's test command; it includes replaying every saved fuzz case.
fn test() -> Result<(), String> {
    tests(&["test", "--workspace", "--no-fail-fast"])
}

/// Runs cargo's tests with `args` as CI: `CI=true`, so that a test whose server is
/// missing fails rather than skips, also when `cargo xtask ci` is run by hand.
fn tests(args: &[&str]) -> Result<(), String> {
    crate::cargo_with(args, &[("CI", "true")])
}

/// The crates whose optional features change what is built, tested without them (the
/// workspace's test command builds them with every feature another crate asks for):
/// orch-core without YAML and TOML (the tests that need neither pass, and a YAML or TOML
/// file gets an error naming the feature; the doc examples read YAML and TOML),
/// orch-engine without its bus, metrics and journal, orch-journal without PostgreSQL
/// (its file journal's tests), and the facade's docs without any of its features (its
/// doctests, and its links built).
fn test_without_optional_features() -> Result<(), String> {
    let packages: [&[&str]; 4] = [
        &["-p", "orch-core", "--lib", "--tests"],
        &["-p", "orch-engine"],
        &[
            "-p",
            "orch-journal",
            "--lib",
            "--test",
            "file",
            "--test",
            "crash",
            "--test",
            "results",
        ],
        // The facade's docs, built and run with none of its features.
        &["-p", "orch", "--doc"],
    ];
    let test = |which: &[&str]| {
        tests(&[&["test", "--no-fail-fast", "--no-default-features"], which].concat())
    };
    let facade_docs = || {
        let args = ["doc", "-p", "orch", "--no-deps", "--no-default-features"];
        crate::cargo_with(&args, &[("RUSTDOCFLAGS", "-D warnings")])
    };
    every(
        packages
            .into_iter()
            .map(test)
            .chain(std::iter::once_with(facade_docs)),
    )
}

/// Every fuzz target for [`FUZZ_SECS_PER_TARGET`] seconds, seeded by today's date, so a
/// failure can be reproduced the same day with the printed seed. It runs as a fresh
/// `cargo xtask fuzz`: the test steps may have rebuilt this very binary, and the fuzzer
/// starts its workers from its own executable.
fn fuzz_briefly() -> Result<(), String> {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let (secs, seed) = (FUZZ_SECS_PER_TARGET.to_string(), days.to_string());
    cargo(&["xtask", "fuzz", "--secs", &secs, "--seed", &seed])
}
