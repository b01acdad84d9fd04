//! Running one attempt of a `command` task: the process in a process group of its own,
//! standard output captured (bounded) as the result, standard error streamed to the log,
//! and the whole group killed when the attempt ends, times out or is cancelled.

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::spec::{Capture, CommandSpec};

mod error;
mod groups;
mod result;
mod stderr;

use groups::GroupGuard;
pub(crate) use groups::kill_running_commands;
pub(crate) use result::depth;
use result::{MAX_DEPTH, to_result};
use stderr::StderrLog;

pub(crate) use error::CommandError;

/// Variables a command gets from orch's environment unless `inherit_env` passes them all.
const BASE_ENV: [&str; 11] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "TERM",
];
/// How long a cancelled command has between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long, after a command ended and its group was killed, its output pipes may stay
/// open (held by a process that left the group, with `setsid`) before the task ends
/// without waiting for them.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// Where and as what one attempt runs.
pub(crate) struct Launch<'a> {
    pub(crate) spec: &'a CommandSpec,
    /// The task's id (an instance's own, `task[i]`).
    pub(crate) task_id: &'a str,
    pub(crate) workflow_id: &'a str,
    /// For an instance of a map task: its element's position, and the element as JSON.
    pub(crate) item: Option<(usize, &'a str)>,
    pub(crate) attempt: u32,
    /// The directory relative paths in `cwd` start from (the workflow file's).
    pub(crate) base_dir: &'a Path,
    /// The directory holding the dependencies' results, if the task has any.
    pub(crate) inputs_dir: Option<PathBuf>,
}

/// The largest element (as JSON) a map instance's command gets in `ORCH_ITEM`.
const ITEM_IN_ENV: usize = 64 << 10;

/// How the command's own process stopped running.
enum Ended {
    /// It exited (not reaped yet).
    Exited,
    /// It stopped on this signal to use the terminal, which it cannot have: it is in a
    /// process group of its own, not the terminal's foreground one, and would wait for
    /// ever.
    StoppedForTerminal(Signal),
}

/// Resolves once process `pid` (a child of orch) has exited, without reaping it (until
/// it is reaped its pid, and so its process group's id, cannot be reused), or has
/// stopped to use the terminal. (Only the command's own process is watched. A process
/// it started that reads the terminal stops its whole process group, the command's
/// own process with it, unless it made a group of its own: then it keeps the task
/// waiting until its timeout.)
///
/// The wait holds a blocking thread of the runtime while the command runs: build the
/// runtime with `runtime::for_commands`.
async fn exited(pid: Pid) -> Ended {
    let watch = WaitPidFlag::WEXITED | WaitPidFlag::WSTOPPED | WaitPidFlag::WNOWAIT;
    let ended = tokio::task::spawn_blocking(move || {
        loop {
            match waitid(Id::Pid(pid), watch) {
                Err(nix::errno::Errno::EINTR) => {}
                Ok(WaitStatus::Stopped(_, signal @ (Signal::SIGTTIN | Signal::SIGTTOU))) => {
                    return Ended::StoppedForTerminal(signal);
                }
                // Stopped otherwise (by a user, say): taken note of, and waited on.
                Ok(WaitStatus::Stopped(..)) => {
                    let taken = WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG;
                    let _ = waitid(Id::Pid(pid), taken);
                }
                _ => return Ended::Exited,
            }
        }
    });
    ended.await.unwrap_or(Ended::Exited)
}

/// Whether process `pid` (a child of orch) has exited, without reaping it.
fn has_exited(pid: Pid) -> bool {
    let look = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    matches!(
        waitid(Id::Pid(pid), look),
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
    )
}

/// Resolves when `deadline` passes; never when there is none.
async fn until(deadline: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match deadline {
        Some(sleep) => sleep.await,
        None => std::future::pending().await,
    }
}

/// Runs one attempt to its end; `cancelled` resolves when the run is cancelled.
pub(crate) async fn run(
    launch: Launch<'_>,
    cancelled: impl Future<Output = ()>,
) -> Result<Value, CommandError> {
    let spec = launch.spec;
    let mut cancelled = std::pin::pin!(cancelled);
    // A run cancelled before the command starts (while its inputs were written, say)
    // does not start it.
    let already = {
        let mut not_waiting = std::task::Context::from_waker(std::task::Waker::noop());
        cancelled.as_mut().poll(&mut not_waiting).is_ready()
    };
    if already {
        return Err(CommandError::Cancelled {
            stderr_tail: String::new(),
        });
    }
    let mut command = command(&launch)?;
    let mut child = command.spawn().map_err(|error| {
        CommandError::starting(&spec.program, command.as_std().get_program(), error)
    })?;
    let Some(pid) = child.id() else {
        return Err(CommandError::Io(io::Error::other(
            "the child exited at once",
        )));
    };
    let mut group = GroupGuard::new(Pid::from_raw(pid as i32));
    let mut output = Vec::new();
    let mut stderr_log = StderrLog::new(launch.task_id);
    let mut status = None;
    let mut read = None;
    let mut stopped = false;
    // Whether the command's own process ended (it is reaped with what it left behind).
    let mut ended = false;
    let mut terminal = None;
    {
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let reading = read_bounded(stdout, spec.max_output_bytes, &mut output);
        let logging = stderr::read(stderr, &mut stderr_log);
        let exit = exited(group.pid);
        tokio::pin!(reading, logging, exit);
        let mut logged = false;
        // SIGKILL for a cancelled command that has not stopped by then.
        let mut kill_at = None;
        // How long pipes held open by processes that left the group may keep the task.
        let mut drain_until = None;
        while status.is_none() || read.is_none() || !logged {
            tokio::select! {
                how = &mut exit, if !ended => {
                    ended = true;
                    if let Ended::StoppedForTerminal(signal) = how {
                        terminal = Some(signal);
                    }
                }
                bytes = &mut reading, if read.is_none() => {
                    if matches!(bytes, Err(CommandError::TooLarge { .. })) {
                        group.signal(Signal::SIGKILL);
                    }
                    read = Some(bytes);
                }
                () = &mut logging, if !logged => logged = true,
                // A command that already exited is not stopped: its result stands.
                // (Its exit may be there, not yet taken note of.)
                () = &mut cancelled, if !stopped && !ended => {
                    if has_exited(group.pid) {
                        ended = true;
                    } else {
                        stopped = true;
                        // Standard error is still read while the command stops.
                        group.signal(Signal::SIGTERM);
                        kill_at = Some(Box::pin(tokio::time::sleep(TERM_GRACE)));
                    }
                }
                () = until(&mut kill_at) => {
                    group.signal(Signal::SIGKILL);
                    kill_at = None;
                }
                () = until(&mut drain_until) => break,
            }
            // The command is reaped once it ended; but while it stops, the rest of its
            // group keeps its grace, until it closed the output or the grace is over.
            let grace_over =
                !stopped || kill_at.is_none() || terminal.is_some() || (read.is_some() && logged);
            if ended && status.is_none() && grace_over {
                // Whatever the command left behind goes with it, so its pipes close;
                // killed before the command is reaped, while its group id is its own.
                group.signal(Signal::SIGKILL);
                group.disarm();
                status = Some(child.wait().await.map_err(CommandError::Io)?);
                kill_at = None;
                drain_until = Some(Box::pin(tokio::time::sleep(PIPE_GRACE)));
            }
        }
    }
    // With a line not ended, if its pipe was still open.
    let tail = stderr_log.finish();
    if stopped {
        return Err(CommandError::Cancelled { stderr_tail: tail });
    }
    if let Some(signal) = terminal {
        return Err(CommandError::Terminal {
            program: spec.program.clone(),
            signal,
            stderr_tail: tail,
        });
    }
    let Some(status) = status else {
        unreachable!("the loop ends after the command was reaped");
    };
    // Pipes still open after the drain: what was read so far is the output.
    read.unwrap_or(Ok(()))?;
    if !status.success() {
        return Err(CommandError::Exit {
            program: spec.program.clone(),
            status,
            stderr_tail: tail,
        });
    }
    // A map instance's output is held one level further down, in its map task's list.
    let max_depth = match launch.item {
        Some(_) => MAX_DEPTH - 1,
        None => MAX_DEPTH,
    };
    to_result(output, spec.capture, max_depth)
}

/// The process to start: program and arguments exactly as written, in a process group
/// of its own, with the environment the spec allows.
///
/// The program is looked up on the command's own `PATH` here, not by the standard
/// library: with a changed environment it would start the command by fork and exec
/// rather than the much cheaper posix_spawn, which costs about a millisecond a command.
fn command(launch: &Launch<'_>) -> Result<Command, CommandError> {
    let spec = launch.spec;
    let cwd = match &spec.cwd {
        Some(cwd) => launch.base_dir.join(cwd),
        None => launch.base_dir.to_owned(),
    };
    // Checked here: the process would fail to start with an error naming only the program.
    let may_enter = || nix::unistd::access(&cwd, nix::unistd::AccessFlags::X_OK).is_ok();
    let problem = match std::fs::metadata(&cwd) {
        Ok(meta) if meta.is_dir() && may_enter() => None,
        Ok(meta) if meta.is_dir() => Some("cannot be entered (no permission)".to_owned()),
        Ok(_) => Some("is not a directory".to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some("does not exist".to_owned()),
        Err(e) => Some(format!("cannot be used: {e}")),
    };
    if let Some(problem) = problem {
        return Err(CommandError::Cwd {
            dir: spec.cwd.clone().unwrap_or_else(|| cwd.clone()),
            task_id: launch.task_id.to_owned(),
            problem,
        });
    }
    let path = match spec.env.get("PATH") {
        Some(path) => Some(OsString::from(path)),
        None => std::env::var_os("PATH"),
    };
    let program =
        locate(&spec.program, &cwd, path.as_deref()).map_err(|error| CommandError::Start {
            program: spec.program.clone(),
            error,
        })?;
    let mut command = Command::new(program);
    command
        .arg0(&spec.program)
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(if spec.capture == Capture::None {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stderr(Stdio::piped())
        .process_group(0)
        .current_dir(cwd);
    if spec.inherit_env {
        // Those orch sets only for some tasks, which an orch run inside a command would
        // otherwise hand on from its own task; and orch's own NATS settings, which may
        // hold its credentials (a command that prints its environment would show them).
        for name in [
            "ORCH_INPUTS_DIR",
            "ORCH_ITEM_INDEX",
            "ORCH_ITEM_FILE",
            "ORCH_ITEM",
        ] {
            command.env_remove(name);
        }
        for (name, _) in std::env::vars_os() {
            if name.as_encoded_bytes().starts_with(b"ORCH_NATS_") {
                command.env_remove(name);
            }
        }
    } else {
        command.env_clear();
        for name in BASE_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
    }
    for name in &spec.forward_env {
        let value = std::env::var_os(name).ok_or_else(|| CommandError::MissingEnv(name.clone()))?;
        command.env(name, value);
    }
    command
        .envs(&spec.env)
        .env("ORCH_TASK_ID", launch.task_id)
        .env("ORCH_WORKFLOW_ID", launch.workflow_id)
        .env("ORCH_ATTEMPT", launch.attempt.to_string());
    if let Some(dir) = &launch.inputs_dir {
        command.env("ORCH_INPUTS_DIR", dir);
    }
    if let Some((index, text)) = launch.item {
        command.env("ORCH_ITEM_INDEX", index.to_string());
        if let Some(dir) = &launch.inputs_dir {
            command.env("ORCH_ITEM_FILE", dir.join(crate::inputs::ITEM_FILE));
        }
        // The system refuses a variable over 128 KiB: a large element is in the file only.
        if text.len() <= ITEM_IN_ENV {
            command.env("ORCH_ITEM", text);
        }
    }
    Ok(command)
}

/// The directories searched for a program when the command has no `PATH`, as the C
/// library's `execvp` does.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The file `program` names: with a `/`, relative to the command's working directory;
/// otherwise the first file of that name in `path`'s directories ([`DEFAULT_PATH`]'s
/// without one) that this process may execute, as `execvp` finds it (one with an
/// execute bit for others only is passed over). When there is none: not found, or, as
/// `execvp` says, permission denied if a file of that name was passed over (naming it).
fn locate(program: &str, cwd: &Path, path: Option<&OsStr>) -> io::Result<PathBuf> {
    if program.contains('/') {
        return Ok(cwd.join(program));
    }
    let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut passed_over = None;
    for dir in std::env::split_paths(path) {
        let candidate = cwd.join(dir).join(program);
        if !std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
        passed_over.get_or_insert(candidate);
    }
    Err(match passed_over {
        Some(file) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "`{}` may not be executed (permission denied)",
                file.display()
            ),
        ),
        None => io::ErrorKind::NotFound.into(),
    })
}

/// Reads everything into `bytes`, failing as soon as more than `limit` bytes arrive.
/// `bytes` grows by doubling, as a `Vec` does, but never past `limit + 1` bytes: a
/// command writing up to its limit takes that much memory, not up to twice as much.
/// The stream is read straight into `bytes`' spare room.
async fn read_bounded(
    stream: Option<impl AsyncRead + Unpin>,
    limit: usize,
    bytes: &mut Vec<u8>,
) -> Result<(), CommandError> {
    let Some(mut stream) = stream else {
        return Ok(());
    };
    // One byte past the limit tells "exactly at the limit" from "over it".
    let most = limit.saturating_add(1);
    loop {
        if bytes.len() == bytes.capacity() {
            let grown = (bytes.capacity() * 2).max(8 * 1024).min(most);
            bytes.reserve_exact(grown.saturating_sub(bytes.len()));
        }
        // At most the spare room: the read never makes `bytes` grow by itself.
        let room = (bytes.capacity() - bytes.len()).min(most - bytes.len());
        let read = (&mut stream)
            .take(room as u64)
            .read_buf(bytes)
            .await
            .map_err(CommandError::Io)?;
        if read == 0 {
            return Ok(());
        }
        if bytes.len() > limit {
            return Err(CommandError::TooLarge { limit });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn output_read_up_to_its_limit_takes_no_more_room_than_the_limit() {
        let limit = 3_000_000;
        let written = vec![7u8; limit];
        let mut bytes = Vec::new();
        let read = read_bounded(Some(&written[..]), limit, &mut bytes).await;
        assert!(read.is_ok(), "{read:?}");
        assert_eq!(bytes, written);
        assert!(bytes.capacity() <= limit + 1, "{}", bytes.capacity());

        let over = vec![7u8; limit + 10];
        let mut bytes = Vec::new();
        let read = read_bounded(Some(&over[..]), limit, &mut bytes).await;
        assert!(
            matches!(read, Err(CommandError::TooLarge { limit: 3_000_000 })),
            "{read:?}"
        );
        assert!(bytes.capacity() <= limit + 1, "{}", bytes.capacity());

        for (written, fits) in [(&b"12345"[..], true), (&b"123456"[..], false)] {
            let mut bytes = Vec::new();
            let read = read_bounded(Some(written), 5, &mut bytes).await;
            assert_eq!(read.is_ok(), fits, "{read:?}");
            assert!(bytes.capacity() <= 6, "{}", bytes.capacity());
        }
    }

    fn command_spec(config: Value) -> CommandSpec {
        match crate::spec::parse("command", &config) {
            Some(Ok(crate::spec::Builtin::Command(spec))) => spec,
            _ => panic!("a valid command: {config}"),
        }
    }

    /// An attempt of task `t` running `spec` in `dir`.
    fn launch_in<'a>(spec: &'a CommandSpec, dir: &'a Path) -> Launch<'a> {
        Launch {
            spec,
            task_id: "t",
            workflow_id: "w",
            item: None,
            attempt: 1,
            base_dir: dir,
            inputs_dir: None,
        }
    }

    /// A run cancelled before its command starts (as while the dependencies' results
    /// were written to files) does not start it.
    #[tokio::test]
    async fn a_command_is_not_started_once_its_run_is_cancelled() {
        let dir = tempfile::tempdir().expect("a directory");
        let spec = command_spec(json!({"program": "touch", "args": ["started"]}));
        let launch = || launch_in(&spec, dir.path());
        let outcome = run(launch(), std::future::ready(())).await;
        assert!(
            matches!(outcome, Err(CommandError::Cancelled { .. })),
            "{outcome:?}"
        );
        assert!(!dir.path().join("started").exists());
        // Not cancelled, it starts.
        run(launch(), std::future::pending()).await.expect("ran");
        assert!(dir.path().join("started").exists());
    }

    /// A command that exited as the run was cancelled, before its exit was taken note
    /// of, keeps its result.
    #[tokio::test]
    async fn a_command_that_exited_as_its_run_was_cancelled_keeps_its_result() {
        let dir = tempfile::tempdir().expect("a directory");
        let spec = command_spec(json!({"shell": true, "script": "echo $$ > pid; exec true"}));
        for _ in 0..50 {
            let pid_file = dir.path().join("pid");
            let _ = std::fs::remove_file(&pid_file);
            // Cancelled once the command's process is a zombie: exited, not reaped.
            let exited_then_cancelled = async {
                loop {
                    let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
                    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
                    if pid.ends_with('\n') && stat.is_ok_and(|stat| stat.contains(") Z ")) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            let outcome = run(launch_in(&spec, dir.path()), exited_then_cancelled).await;
            assert!(outcome.is_ok(), "{outcome:?}");
        }
    }

    #[test]
    fn programs_are_found_on_the_commands_path() {
        let dir = tempfile::tempdir().expect("a directory");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        let write = |name: &str, mode: u32| {
            let path = bin.join(name);
            std::fs::write(&path, "#!/bin/sh\n").expect("written");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("mode");
        };
        write("tool", 0o755);
        write("plain", 0o644);
        let path = std::env::join_paths(["/nonexistent", "bin"]).expect("a PATH");
        let found = |program: &str| locate(program, dir.path(), Some(&path)).ok();
        assert_eq!(found("tool"), Some(bin.join("tool")));
        let plain = locate("plain", dir.path(), Some(&path)).expect_err("not executable");
        assert_eq!(plain.kind(), io::ErrorKind::PermissionDenied);
        let named = format!("`{}` may not be executed", bin.join("plain").display());
        assert!(plain.to_string().contains(&named), "{plain}");
        let missing = locate("missing", dir.path(), Some(&path)).expect_err("not there");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert_eq!(found("./x/y"), Some(dir.path().join("./x/y")));
        assert_eq!(found("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        // Without a PATH, the C library's default directories.
        assert_eq!(locate("tool", dir.path(), None).ok(), None);
        assert_eq!(
            locate("sh", dir.path(), None).ok(),
            Some(PathBuf::from("/bin/sh"))
        );
        // One that is executable further on is found, as `execvp` finds it.
        let later = bin.join("later");
        std::fs::create_dir(&later).expect("later");
        std::fs::copy(bin.join("tool"), later.join("plain")).expect("copied");
        let path = std::env::join_paths(["bin", "bin/later"]).expect("a PATH");
        let found = locate("plain", dir.path(), Some(&path)).expect("found");
        assert_eq!(found, later.join("plain"));
    }
}
