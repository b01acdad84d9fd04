//! The supervising process: starts a worker per target, watches it, saves what it finds.
//!
//! The worker announces each input before running it. When it reports a violation, the
//! case is saved; when it dies (a stack overflow or an abort), stops announcing inputs for
//! [`HANG_LIMIT`], or grows past [`RSS_LIMIT`], the last input announced is saved as the
//! case, and a new worker carries on.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::worker::{HEAP_EXCEEDED, INPUT, STATS, VIOLATION};
use super::{Input, Violation, known_name};

/// The longest one input may run (wall-clock) before it counts as a hang.
pub(crate) const HANG_LIMIT: Duration = Duration::from_secs(20);

/// The most resident memory a worker may reach (a backstop: the worker itself stops when
/// its live heap passes [`HEAP_LIMIT`](super::worker::HEAP_LIMIT)).
pub(crate) const RSS_LIMIT: u64 = 2 << 30;

/// Crashes of one kind after which a target is not restarted again in a session.
const CRASHES_PER_KIND: usize = 3;

/// How long shrinking a case that kills the worker may take.
const SHRINK_CRASH_TIME: Duration = Duration::from_secs(10);

/// What the worker said, or how it ended.
enum Event {
    Frame(u8, Vec<u8>),
    Closed,
}

/// How one worker ended.
struct Ended {
    /// Frames of tag [`INPUT`] it sent.
    inputs: usize,
    /// The violation that ended it, with the input that caused it.
    fatal: Option<(Violation, Input)>,
    /// What it said it did, if it got to the end.
    stats: Option<String>,
}

/// Fuzzes `target` for `secs` seconds from `seed`; returns how many violations it found
/// (each printed and saved).
pub(crate) fn fuzz(target: &str, secs: u64, seed: u64) -> Result<usize, String> {
    eprintln!(
        "fuzz {target}: {secs} s from seed {seed} (again: cargo xtask fuzz --target {target} --seed {seed} --secs {secs})"
    );
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut kinds = HashSet::new();
    let mut crashes: Vec<String> = Vec::new();
    let mut found = 0;
    let mut restart = 0u64;
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs();
        if left == 0 {
            break;
        }
        let worker_seed = seed.wrapping_add(restart.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let args = vec![
            target.to_owned(),
            "--seed".into(),
            worker_seed.to_string(),
            "--secs".into(),
            left.to_string(),
        ];
        let ended = watch(&args, |violation, case, _| {
            if kinds.insert(violation.kind.clone()) {
                found += 1;
                report(target, violation, &save(target, case));
            }
        })?;
        if let Some(stats) = &ended.stats {
            eprintln!("fuzz {target}: ran {stats}");
        }
        let Some((violation, case)) = ended.fatal else {
            break;
        };
        if kinds.insert(violation.kind.clone()) {
            found += 1;
            let case = shrink_crash(target, case, &violation.kind);
            report(target, &violation, &save(target, &case));
        }
        crashes.push(violation.kind);
        let again = crashes
            .iter()
            .filter(|k| **k == crashes[crashes.len() - 1])
            .count();
        if again >= CRASHES_PER_KIND {
            eprintln!("fuzz {target}: the same crash again; stopping this target early");
            break;
        }
        restart += 1;
    }
    eprintln!("fuzz {target}: {found} violation(s)");
    Ok(found)
}

/// A case with fewer lines that still kills a worker the same way, found by running
/// candidates in fresh workers for at most [`SHRINK_CRASH_TIME`].
fn shrink_crash(target: &str, case: Input, kind: &str) -> Input {
    let deadline = Instant::now() + SHRINK_CRASH_TIME;
    let scratch = std::env::temp_dir().join(format!("orch-fuzz-shrink-{}", std::process::id()));
    let file = scratch.join(target).join(format!("candidate.{}", case.ext));
    if std::fs::create_dir_all(scratch.join(target)).is_err() {
        return case;
    }
    let same = |candidate: &Input| {
        std::fs::write(&file, &candidate.bytes).is_ok()
            && watch(
                &[
                    target.to_owned(),
                    "--replay".into(),
                    file.display().to_string(),
                ],
                |_, _, _| {},
            )
            .is_ok_and(|ended| ended.fatal.is_some_and(|(v, _)| v.kind == kind))
    };
    let bytes = super::worker::cut(case.bytes, true, deadline, |candidate| {
        same(&Input::new(candidate, case.ext))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    Input::new(bytes, case.ext)
}

/// Runs every case under `paths` (files, or directories holding `<target>/<case>`; by
/// default `fuzz/cases`) through its target's checks; an error naming each failing one,
/// or each path that is missing or holds no case (a mistyped path replays nothing).
pub(crate) fn replay(paths: &[PathBuf]) -> Result<(), String> {
    let roots = if paths.is_empty() {
        vec![super::cases_dir()]
    } else {
        paths.to_vec()
    };
    let empty: Vec<String> = (roots.iter())
        .filter(|root| {
            let mut found = Vec::new();
            for target in super::TARGETS {
                collect_cases(root, target, &mut found);
            }
            found.is_empty()
        })
        .map(|root| shown(root.as_path()))
        .collect();
    if !empty.is_empty() {
        return Err(format!(
            "no saved fuzz case (a file in a `<target>/` directory, target one of {:?}) in: {}",
            super::TARGETS,
            empty.join(", ")
        ));
    }
    let mut failures = Vec::new();
    let mut total = 0;
    for target in super::TARGETS {
        let mut files = Vec::new();
        for root in &roots {
            collect_cases(root, target, &mut files);
        }
        files.sort();
        total += files.len();
        let mut next = 0;
        while next < files.len() {
            let mut args = vec![target.to_owned(), "--replay".into()];
            args.extend(files[next..].iter().map(|f| f.display().to_string()));
            let ended = watch(&args, |violation, _case, inputs| {
                let file = &files[next + inputs.saturating_sub(1)];
                failures.push(format!("{}: {}", shown(file), message(violation)));
            })?;
            let current = next + ended.inputs.saturating_sub(1);
            if let Some((violation, _)) = ended.fatal {
                failures.push(format!(
                    "{}: {}",
                    shown(&files[current]),
                    message(&violation)
                ));
            }
            // Past a case that killed its worker, or done.
            next = if ended.inputs == 0 {
                files.len()
            } else {
                current + 1
            };
        }
    }
    eprintln!(
        "fuzz replay: {total} saved case(s), {} failing",
        failures.len()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "saved fuzz cases fail:\n  {}",
            failures.join("\n  ")
        ))
    }
}

/// The case files for `target` under `root`: `root` itself if it is such a file, else
/// the files of `root/<target>/` (or of `root` when it is that directory).
fn collect_cases(root: &Path, target: &str, files: &mut Vec<PathBuf>) {
    let fits = |file: &Path| {
        file.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| super::extensions(target).contains(&e))
    };
    if root.is_file() {
        let in_target = root.parent().and_then(Path::file_name) == Some(target.as_ref());
        if in_target && fits(root) {
            files.push(root.to_path_buf());
        }
        return;
    }
    let dir = if root.file_name() == Some(target.as_ref()) {
        root.to_path_buf()
    } else {
        root.join(target)
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    files.extend(entries.flatten().map(|e| e.path()).filter(|p| fits(p)));
}

/// Starts a worker with `args`, hands each violation it reports to `on_violation`, and
/// watches it for crashes, hangs and memory.
/// `on_violation` also gets the number of inputs announced so far.
fn watch(
    args: &[String],
    mut on_violation: impl FnMut(&Violation, &Input, usize),
) -> Result<Ended, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask itself: {e}"))?;
    let mut child = Command::new(exe)
        .arg(super::WORKER_COMMAND)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start a fuzz worker: {e}"))?;
    let (sender, events) = mpsc::channel();
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        if let Some(mut stdout) = stdout {
            while let Some((tag, payload)) = read_frame(&mut stdout) {
                if sender.send(Event::Frame(tag, payload)).is_err() {
                    return;
                }
            }
        }
        let _ = sender.send(Event::Closed);
    });
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let mut last: Option<Input> = None;
    let mut since = Instant::now();
    let mut inputs = 0;
    let mut stats = None;
    let mut fatal = None;
    loop {
        match events.recv_timeout(Duration::from_millis(50)) {
            Ok(Event::Frame(INPUT, payload)) => {
                last = decode_input(&payload);
                since = Instant::now();
                inputs += 1;
            }
            Ok(Event::Frame(VIOLATION, payload)) => {
                if let Some((violation, case)) = decode_violation(&payload) {
                    on_violation(&violation, &case, inputs);
                }
            }
            Ok(Event::Frame(STATS, payload)) => {
                stats = Some(String::from_utf8_lossy(&payload).into_owned());
            }
            Ok(Event::Frame(..)) => {}
            Ok(Event::Closed) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let stuck = since.elapsed() > HANG_LIMIT && stats.is_none();
        let rss = resident_bytes(&child);
        if stuck || rss > RSS_LIMIT {
            let _ = child.kill();
            fatal = Some(if stuck {
                Violation::new(
                    "hang",
                    format!("one input ran for over {} s", HANG_LIMIT.as_secs()),
                    None,
                )
            } else {
                Violation::new(
                    "memory (resident)",
                    format!("the worker grew to {} MiB of resident memory", rss >> 20),
                    None,
                )
            });
            break;
        }
    }
    let status = child.wait().map_err(|e| format!("fuzz worker lost: {e}"))?;
    let _ = reader.join();
    let stderr = errors.join().unwrap_or_default();
    if fatal.is_none() && !(status.success() && stats.is_some()) {
        fatal = Some(crash(status, &stderr));
    }
    let case = last.unwrap_or_else(|| Input::new(Vec::new(), "txt"));
    if let Some(violation) = &mut fatal {
        // Memory blown by a small YAML file with aliases is the known amplification.
        let aliases = case.ext == "yaml" && case.bytes.contains(&b'*');
        if violation.kind.starts_with("memory") && aliases {
            violation.known = Some(5);
        }
    }
    Ok(Ended {
        inputs,
        fatal: fatal.map(|v| (v, case)),
        stats,
    })
}

/// The violation of a worker that died: what its stderr says, and what that looks like.
fn crash(status: std::process::ExitStatus, stderr: &str) -> Violation {
    let tail: String = stderr
        .lines()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ");
    let (kind, known) = if stderr.contains(HEAP_EXCEEDED) {
        ("memory (heap)", None)
    } else if stderr.contains("overflowed its stack") {
        ("crash: stack overflow", Some(1))
    } else if stderr.contains("memory allocation of") {
        ("crash: allocation failure", Some(2))
    } else if stderr.contains("panic in a destructor") {
        ("crash: panic while panicking", Some(3))
    } else {
        ("crash", None)
    };
    Violation::new(kind, format!("the worker died ({status}): {tail}"), known)
}

/// The resident memory of `child`, from `/proc` (0 where that is not available).
fn resident_bytes(child: &Child) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn read_frame(from: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    from.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut payload = vec![0; len];
    from.read_exact(&mut payload).ok()?;
    Some((head[0], payload))
}

/// Every frame in `bytes` (for tests of the worker).
#[cfg(test)]
pub(super) fn read_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    std::iter::from_fn(|| read_frame(&mut bytes)).collect()
}

fn decode_input(payload: &[u8]) -> Option<Input> {
    let (&len, rest) = payload.split_first()?;
    let (ext, bytes) = rest.split_at_checked(len as usize)?;
    let ext = match ext {
        b"json" => "json",
        b"yaml" => "yaml",
        b"toml" => "toml",
        _ => "txt",
    };
    Some(Input::new(bytes, ext))
}

fn decode_violation(payload: &[u8]) -> Option<(Violation, Input)> {
    let (&known, mut rest) = payload.split_first()?;
    let mut text = || {
        let (len, after) = rest.split_at_checked(4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let (text, after) = after.split_at_checked(len)?;
        rest = after;
        Some(String::from_utf8_lossy(text).into_owned())
    };
    let (kind, message) = (text()?, text()?);
    let violation = Violation {
        kind,
        message,
        known: (known != 0).then_some(known),
    };
    Some((violation, decode_input(rest)?))
}

/// Saves `case` as `fuzz/cases/<target>/<hash>.<ext>`; returns the path (or why not).
fn save(target: &str, case: &Input) -> String {
    let dir = super::cases_dir().join(target);
    let file = dir.join(format!("{:016x}.{}", super::hash(&case.bytes), case.ext));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, &case.bytes)) {
        Ok(()) => shown(&file),
        Err(e) => format!("(not saved: {e})"),
    }
}

/// A path relative to the workspace root, when it is under it.
fn shown(path: &Path) -> String {
    let root = crate::workspace_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn message(violation: &Violation) -> String {
    match violation.known {
        Some(item) => format!("{} [looks like {}]", violation.message, known_name(item)),
        None => violation.message.clone(),
    }
}

fn report(target: &str, violation: &Violation, saved: &str) {
    eprintln!(
        "fuzz {target}: VIOLATION ({}): {}\n  saved as {saved}",
        violation.kind,
        message(violation)
    );
}
