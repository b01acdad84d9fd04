//! The worker process: runs one target's inputs in-process and reports to the supervisor.
//!
//! Before each input runs, its bytes go to the supervisor (stdout, framed), so that if the
//! input kills this process the supervisor knows which one did. Violations follow as
//! frames of their own. The inputs run on a thread with the stack of a tokio worker
//! thread (2 MiB), as they would in a service.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::{Input, Target, Violation};

/// The stack of the thread that runs inputs: tokio's default for worker threads.
const STACK: usize = 2 << 20;

/// How long shrinking one violating input may take.
const SHRINK_TIME: Duration = Duration::from_secs(3);

/// Inputs kept to mutate, at most.
const CORPUS: usize = 256;

/// The longest input: longer mutations are cut to this.
const MAX_INPUT: usize = 4 << 20;

/// Inputs longer than this are not kept to mutate.
const MAX_KEPT: usize = 256 << 10;

/// Live heap past which the worker stops at once; the supervisor blames the last input.
pub(crate) const HEAP_LIMIT: usize = 768 << 20;

/// What the worker prints to stderr when it stops over [`HEAP_LIMIT`].
pub(super) const HEAP_EXCEEDED: &str = "fuzz-worker: live heap over the limit";

/// Frame tags, worker to supervisor.
pub(super) const INPUT: u8 = b'I';
pub(super) const VIOLATION: u8 = b'V';
pub(super) const STATS: u8 = b'S';

thread_local! {
    /// Where the last panic on this thread happened, for violation messages.
    static PANIC_AT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// `xtask fuzz-worker <target> (--seed S --secs N | --replay FILE...)`.
pub(crate) fn worker_main(args: &[String]) -> ExitCode {
    let Some((name, rest)) = args.split_first() else {
        eprintln!("fuzz-worker: no target");
        return ExitCode::from(2);
    };
    if !super::TARGETS.contains(&name.as_str()) {
        eprintln!("fuzz-worker: unknown target `{name}`");
        return ExitCode::from(2);
    }
    let name = name.clone();
    let job = match rest.first().map(String::as_str) {
        Some("--replay") => Job::Replay(rest[1..].iter().map(PathBuf::from).collect()),
        _ => {
            let value = |flag: &str| {
                rest.iter()
                    .position(|a| a == flag)
                    .and_then(|i| rest.get(i + 1))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            match (value("--seed"), value("--secs")) {
                (Some(seed), Some(secs)) => Job::Fuzz { seed, secs },
                _ => {
                    eprintln!("fuzz-worker: expected --seed S --secs N or --replay FILE...");
                    return ExitCode::from(2);
                }
            }
        }
    };
    // Panics are expected (handlers panic on purpose): note where, print nothing.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        PANIC_AT.with(|p| *p.borrow_mut() = at);
    }));
    // Watches the heap: an input that allocates without bound is stopped here, before the
    // machine runs out of memory.
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(5));
            if super::live_heap() > HEAP_LIMIT {
                eprintln!("{HEAP_EXCEEDED} ({} MiB)", HEAP_LIMIT >> 20);
                std::process::exit(4);
            }
        }
    });
    let thread = std::thread::Builder::new()
        .name("fuzz".into())
        .stack_size(STACK)
        .spawn(move || {
            let Some(mut target) = super::target(&name) else {
                return;
            };
            let mut out = Frames(std::io::stdout().lock());
            match job {
                Job::Fuzz { seed, secs } => fuzz(target.as_mut(), seed, secs, &mut out),
                Job::Replay(files) => replay(target.as_mut(), &files, &mut out),
            }
        });
    match thread.map(|t| t.join()) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

enum Job {
    Fuzz { seed: u64, secs: u64 },
    Replay(Vec<PathBuf>),
}

/// Framed messages to the supervisor: a tag byte, a little-endian `u32` length, the bytes.
struct Frames<W: Write>(W);

impl<W: Write> Frames<W> {
    fn send(&mut self, tag: u8, payload: &[u8]) {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let written = self
            .0
            .write_all(&[tag])
            .and_then(|()| self.0.write_all(&len.to_le_bytes()))
            .and_then(|()| self.0.write_all(&payload[..len as usize]))
            .and_then(|()| self.0.flush());
        if written.is_err() {
            // The supervisor is gone: nobody would hear about anything we find.
            std::process::exit(3);
        }
    }

    fn input(&mut self, input: &Input) {
        self.send(INPUT, &encode_input(input));
    }

    fn violation(&mut self, violation: &Violation, case: &Input) {
        let mut payload = vec![violation.known.unwrap_or(0)];
        for text in [&violation.kind, &violation.message] {
            payload.extend_from_slice(&(text.len() as u32).to_le_bytes());
            payload.extend_from_slice(text.as_bytes());
        }
        payload.extend_from_slice(&encode_input(case));
        self.send(VIOLATION, &payload);
    }
}

/// An input as framed: the extension's length, the extension, the bytes.
pub(super) fn encode_input(input: &Input) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(input.bytes.len() + 8);
    bytes.push(input.ext.len() as u8);
    bytes.extend_from_slice(input.ext.as_bytes());
    bytes.extend_from_slice(&input.bytes);
    bytes
}

fn fuzz(target: &mut dyn Target, seed: u64, secs: u64, out: &mut Frames<impl Write>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut corpus: Vec<Input> = Vec::new();
    let mut kinds = HashSet::new();
    let mut count = 0u64;
    while Instant::now() < deadline {
        let input = if corpus.len() < 2 || rng.u8(..) < 64 {
            let fresh = target.generate(&mut rng);
            if fresh.bytes.len() > MAX_KEPT {
                // Too big to be worth mutating.
            } else if corpus.len() < CORPUS {
                corpus.push(fresh.clone());
            } else {
                let slot = rng.usize(..CORPUS);
                corpus[slot] = fresh.clone();
            }
            fresh
        } else {
            let base = &corpus[rng.usize(..corpus.len())];
            let other = &corpus[rng.usize(..corpus.len())];
            let mut input = target.mutate(&mut rng, base, other);
            for _ in 0..rng.usize(0..3) {
                input = target.mutate(&mut rng, &input, other);
            }
            input.bytes.truncate(MAX_INPUT);
            input
        };
        count += 1;
        if let Err(violation) = run_one(target, &input, out)
            && kinds.insert(violation.kind.clone())
        {
            let (small, violation) = shrink(target, input, violation, out);
            out.violation(&violation, &small);
        }
    }
    out.send(STATS, format!("{count} inputs").as_bytes());
}

fn replay(target: &mut dyn Target, files: &[PathBuf], out: &mut Frames<impl Write>) {
    for file in files {
        let ext = match file.extension().and_then(|e| e.to_str()) {
            Some("json") => "json",
            Some("yaml" | "yml") => "yaml",
            Some("toml") => "toml",
            _ => "txt",
        };
        let input = match std::fs::read(file) {
            Ok(bytes) => Input::new(bytes, ext),
            Err(e) => {
                let empty = Input::new(Vec::new(), ext);
                out.input(&empty);
                let unreadable = Violation::new("unreadable", format!("cannot read: {e}"), None);
                out.violation(&unreadable, &empty);
                continue;
            }
        };
        if let Err(violation) = run_one(target, &input, out) {
            out.violation(&violation, &input);
        }
    }
    out.send(STATS, format!("{} cases", files.len()).as_bytes());
}

/// Announces `input`, then checks it; a panic escaping the check is a violation.
fn run_one(
    target: &mut dyn Target,
    input: &Input,
    out: &mut Frames<impl Write>,
) -> Result<(), Violation> {
    out.input(input);
    match catch_unwind(AssertUnwindSafe(|| target.check(input))) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = panic_text(payload.as_ref());
            let at = last_panic_location();
            let known = target.known_panic(&message);
            Err(Violation::new(
                &format!("panic at {at}"),
                format!("panicked at {at}: {message}"),
                known,
            ))
        }
    }
}

/// Where the last panic on this thread happened (`file:line`).
pub(super) fn last_panic_location() -> String {
    PANIC_AT.with(|p| p.borrow().clone())
}

/// The message of a panic payload.
pub(super) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a payload that is not text)".to_owned())
}

/// A smaller input with a violation of the same kind: whole lines are cut first, then
/// runs of bytes, for at most [`SHRINK_TIME`].
fn shrink(
    target: &mut dyn Target,
    input: Input,
    violation: Violation,
    out: &mut Frames<impl Write>,
) -> (Input, Violation) {
    let deadline = Instant::now() + SHRINK_TIME;
    let ext = input.ext;
    let mut kept = violation;
    let mut bytes = input.bytes;
    for by_line in [true, false] {
        bytes = cut(bytes, by_line, deadline, |candidate| {
            match run_one(target, &Input::new(candidate, ext), out) {
                Err(v) if v.kind == kept.kind => {
                    kept = v;
                    true
                }
                _ => false,
            }
        });
    }
    (Input::new(bytes, ext), kept)
}

/// Cuts runs of lines (or bytes) out of `bytes` while `still_fails` says the rest still
/// shows the problem: halves first, then ever smaller runs, until `deadline`.
pub(super) fn cut(
    mut bytes: Vec<u8>,
    by_line: bool,
    deadline: Instant,
    mut still_fails: impl FnMut(&[u8]) -> bool,
) -> Vec<u8> {
    let mut chunk = pieces(&bytes, by_line).len() / 2;
    while chunk > 0 && Instant::now() < deadline {
        let mut progressed = false;
        let mut at = 0;
        loop {
            let parts = pieces(&bytes, by_line);
            if at >= parts.len() || Instant::now() >= deadline {
                break;
            }
            let end = (at + chunk).min(parts.len());
            let candidate: Vec<u8> = parts[..at]
                .iter()
                .chain(&parts[end..])
                .copied()
                .flatten()
                .copied()
                .collect();
            if still_fails(&candidate) {
                bytes = candidate;
                progressed = true;
            } else {
                at += chunk;
            }
        }
        if !progressed {
            chunk /= 2;
        }
    }
    bytes
}

/// `bytes` cut into lines (each with its newline) or into single bytes.
fn pieces(bytes: &[u8], by_line: bool) -> Vec<&[u8]> {
    if by_line {
        bytes.split_inclusive(|&b| b == b'\n').collect()
    } else {
        bytes.chunks(1).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails on any input holding `boom`, and counts the inputs it saw.
    struct Boom(usize);

    impl Target for Boom {
        fn generate(&mut self, _rng: &mut fastrand::Rng) -> Input {
            Input::new(*b"a\nboom\nc\n", "txt")
        }

        fn check(&mut self, input: &Input) -> Result<(), Violation> {
            self.0 += 1;
            let text = String::from_utf8_lossy(&input.bytes);
            if text.contains("panic") {
                panic!("asked to");
            }
            match text.contains("boom") {
                true => Err(Violation::new("boom", "found boom", Some(5))),
                false => Ok(()),
            }
        }
    }

    #[test]
    fn shrinking_keeps_the_violation_and_drops_the_rest() {
        let mut out = Frames(Vec::new());
        let input = Input::new(*b"first line\nxx boom yy\nlast line\n", "txt");
        let violation = Violation::new("boom", "found boom", Some(5));
        let (small, kept) = shrink(&mut Boom(0), input, violation.clone(), &mut out);
        assert_eq!(small.bytes, b"boom");
        assert_eq!(kept, violation);
    }

    #[test]
    fn a_panic_in_a_check_is_a_violation_that_names_its_place() {
        let mut out = Frames(Vec::new());
        let outcome = run_one(&mut Boom(0), &Input::new(*b"panic", "txt"), &mut out);
        let violation = outcome.expect_err("a panic is a violation");
        assert!(violation.message.contains("asked to"), "{violation:?}");
        assert_eq!(out.0[0], INPUT, "the input is announced before it runs");
    }

    #[test]
    fn a_fuzz_session_reports_each_kind_once_and_ends_with_stats() {
        let mut out = Frames(Vec::new());
        let mut target = Boom(0);
        fuzz(&mut target, 7, 1, &mut out);
        let frames = super::super::supervise::read_frames(&out.0);
        let violations = frames.iter().filter(|(tag, _)| *tag == VIOLATION).count();
        assert_eq!(violations, 1);
        assert_eq!(frames.last().map(|(tag, _)| *tag), Some(STATS));
        assert!(target.0 > 1);
    }
}
