//! `cargo xtask fuzz`: a fuzzer that needs only the stable toolchain.
//!
//! Each target turns random bytes into inputs for one part of orch (a seeded generator of
//! valid inputs, plus mutations of them), runs every input in-process and checks
//! invariants, not only "no panic" (see each target's module doc):
//!
//! - `files` ([`files`]): workflow files in JSON, YAML and TOML;
//! - `results` ([`results`]): `WorkflowResult` JSON files;
//! - `subjects` ([`subjects`]): subscribe, publish and drop on an `EventBus`;
//! - `runs` ([`runs`]): random workflows run by the engine under tokio's paused clock.
//!
//! The inputs run in a worker process (this binary, started as `fuzz-worker`) that tells
//! the supervising process each input before running it, so an input that kills the
//! worker (a stack overflow, an abort), hangs, or takes more than [`supervise::RSS_LIMIT`]
//! of memory is caught too. A violation is saved under `fuzz/cases/<target>/<hash>.<ext>`
//! and makes the command fail; `cargo xtask fuzz --replay` (run by the `replay` test of
//! this crate) runs every saved case through the same checks again.

mod doc;
mod files;
mod formats;
mod mutate;
mod plain;
mod results;
mod runs;
mod subjects;
mod supervise;
mod worker;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) use worker::worker_main;

/// The hidden command the supervisor starts workers with.
pub(crate) const WORKER_COMMAND: &str = "fuzz-worker";

/// The fuzz targets, in the order `cargo xtask fuzz` runs them.
pub(crate) const TARGETS: [&str; 4] = ["files", "results", "subjects", "runs"];

/// Seconds per target when `--secs` is not given.
const DEFAULT_SECS: u64 = 20;

/// One input: its bytes and the extension its case file gets (for `files`, the format).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Input {
    pub(crate) bytes: Vec<u8>,
    pub(crate) ext: &'static str,
}

impl Input {
    pub(crate) fn new(bytes: impl Into<Vec<u8>>, ext: &'static str) -> Self {
        Self {
            bytes: bytes.into(),
            ext,
        }
    }
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Violation {
    /// A short name for the kind of violation (`memory`, `round-trip`, ...): a session
    /// saves one case per kind, and shrinking an input keeps its kind.
    pub(crate) kind: String,
    /// What was observed, in full.
    pub(crate) message: String,
    /// The item of issue 10 (the behaviours known when the fuzzer was written) that this
    /// looks like, if any.
    pub(crate) known: Option<u8>,
}

impl Violation {
    pub(crate) fn new(kind: &str, message: impl Into<String>, known: Option<u8>) -> Self {
        Self {
            kind: kind.to_owned(),
            message: message.into(),
            known,
        }
    }
}

/// What a fuzz target does with inputs.
pub(crate) trait Target {
    /// A fresh input from the generator.
    fn generate(&mut self, rng: &mut fastrand::Rng) -> Input;

    /// A mutation of `input`; `other` is another input to splice from. The default applies
    /// the byte-level mutations of [`mutate`].
    fn mutate(&mut self, rng: &mut fastrand::Rng, input: &Input, other: &Input) -> Input {
        Input::new(mutate::bytes(rng, &input.bytes, &other.bytes), input.ext)
    }

    /// Runs `input` and checks the target's invariants.
    fn check(&mut self, input: &Input) -> Result<(), Violation>;

    /// The issue-10 item that a panic escaping [`Target::check`] with this message looks
    /// like.
    fn known_panic(&self, _message: &str) -> Option<u8> {
        None
    }
}

/// The target called `name`, ready to run.
fn target(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "files" => Box::new(files::Files::new()),
        "results" => Box::new(results::Results),
        "subjects" => Box::new(subjects::Subjects),
        "runs" => Box::new(runs::Runs::new()),
        _ => return None,
    })
}

/// The extensions of a target's case files.
fn extensions(target: &str) -> &'static [&'static str] {
    match target {
        "files" => &["json", "yaml", "yml", "toml"],
        "results" => &["json"],
        _ => &["txt"],
    }
}

/// The items of issue 10, for naming what a violation looks like.
const KNOWN: [(u8, &str); 13] = [
    (1, "a long subject pattern overflows the stack"),
    (2, "a length prefix in a binary format aborts"),
    (
        3,
        "a handler future that panics when dropped escapes the engine",
    ),
    (
        4,
        "cancel cannot end a run held by a full lossless subscriber",
    ),
    (5, "YAML aliases amplify a small file"),
    (6, "the route cache keeps long subjects alive"),
    (7, "a timer without a time driver panics inside tokio"),
    (8, "times outside RFC 3339's range make serialisation panic"),
    (9, "config values are mangled silently"),
    (10, "errors without a place (non-UTF-8, byte-order mark)"),
    (11, "`timeout: null` is refused"),
    (12, "durations drift through a round trip"),
    (13, "`retries: u32::MAX` overflows the attempt counter"),
];

/// "issue 10 item N: what it is", for a report.
pub(crate) fn known_name(item: u8) -> String {
    let what = KNOWN
        .iter()
        .find(|(n, _)| *n == item)
        .map_or("?", |(_, what)| what);
    format!("issue 10 item {item}: {what}")
}

/// What one `cargo xtask fuzz` invocation does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Session {
    pub(crate) targets: Vec<&'static str>,
    pub(crate) secs: u64,
    pub(crate) seed: u64,
    /// Run these saved cases (files or directories) instead of fuzzing.
    pub(crate) replay: Option<Vec<PathBuf>>,
}

impl Session {
    /// Every target for `secs` seconds each, from `seed`.
    fn all_targets(secs: u64, seed: u64) -> Self {
        Self {
            targets: TARGETS.to_vec(),
            secs,
            seed,
            replay: None,
        }
    }

    fn parse(args: &[String]) -> Result<Self, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut session = Self::all_targets(DEFAULT_SECS, nanos % 1_000_000_007);
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value"))
                    .cloned()
            };
            match arg.as_str() {
                "--secs" => session.secs = number(&value("--secs")?)?,
                "--seed" => session.seed = number(&value("--seed")?)?,
                "--target" => {
                    let name = value("--target")?;
                    let known = TARGETS.iter().find(|t| **t == name).ok_or_else(|| {
                        format!("unknown target `{name}`: expected one of {TARGETS:?}")
                    })?;
                    session.targets = vec![known];
                }
                // Every argument after it is a path: `--replay` comes last.
                "--replay" => {
                    let paths: Vec<PathBuf> = args.by_ref().map(PathBuf::from).collect();
                    if let Some(flag) = paths.iter().find(|p| p.to_string_lossy().starts_with("--"))
                    {
                        return Err(format!(
                            "`{}` after --replay: --replay takes paths only, and comes last",
                            flag.display()
                        ));
                    }
                    session.replay = Some(paths);
                }
                other => return Err(format!("unknown fuzz argument `{other}`")),
            }
        }
        Ok(session)
    }
}

fn number(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("expected a whole number, got `{text}`"))
}

/// `cargo xtask fuzz ...`.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    session(&Session::parse(args)?)
}

/// Fuzzes (or replays) as `session` says; an error if any invariant broke.
fn session(session: &Session) -> Result<(), String> {
    if let Some(paths) = &session.replay {
        return supervise::replay(paths);
    }
    let mut found = 0;
    for target in &session.targets {
        found += supervise::fuzz(target, session.secs, session.seed)?;
    }
    if found == 0 {
        Ok(())
    } else {
        Err(format!(
            "fuzzing found {found} violation(s); each is saved under fuzz/cases/ and named above"
        ))
    }
}

/// Where saved cases live: `fuzz/cases/<target>/`.
pub(crate) fn cases_dir() -> PathBuf {
    crate::workspace_root().join("fuzz").join("cases")
}

/// A stable 64-bit hash (FNV-1a) of a case's bytes, for its file name.
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs `f` and returns its value with the most heap it allocated beyond what was live
/// when it started.
pub(crate) fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = crate::ALLOC.current_usage();
    crate::ALLOC.reset_peak_usage();
    let value = f();
    let peak = crate::ALLOC.peak_usage().saturating_sub(before);
    (value, peak)
}

/// Heap bytes live now.
pub(crate) fn live_heap() -> usize {
    crate::ALLOC.current_usage()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn arguments_select_targets_time_and_seed() {
        let session = Session::parse(&args("--secs 3 --target runs --seed 42")).expect("valid");
        assert_eq!(session.targets, ["runs"]);
        assert_eq!((session.secs, session.seed), (3, 42));
        assert!(Session::parse(&args("--target nope")).is_err());
        assert!(Session::parse(&args("--secs")).is_err());
        let replay = Session::parse(&args("--replay a b")).expect("valid");
        assert_eq!(
            replay.replay,
            Some(vec![PathBuf::from("a"), PathBuf::from("b")])
        );
    }

    #[test]
    fn the_case_hash_is_fnv_1a() {
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn every_target_has_a_name_and_known_items_are_named() {
        for name in TARGETS {
            assert!(target(name).is_some(), "{name}");
        }
        assert!(known_name(5).contains("YAML aliases"));
    }
}
