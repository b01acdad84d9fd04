//! [`CommandError`]: why an attempt of a `command` task failed, as its error reads.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use nix::sys::signal::Signal;

/// Why an attempt failed.
#[derive(Debug)]
pub(crate) enum CommandError {
    /// The program could not be started.
    Start { program: String, error: io::Error },
    /// The program's file is there, but the system found no file it needs to start it:
    /// the interpreter its `#!` line names (`shebang`, as read), or the loader of a
    /// binary.
    NoInterpreter {
        program: String,
        file: PathBuf,
        shebang: Option<String>,
    },
    /// The working directory does not exist, or is not a directory.
    Cwd {
        /// As written in `cwd`, or the full path when `cwd` is not set.
        dir: PathBuf,
        task_id: String,
        /// What is wrong with it: "does not exist", "is not a directory", ...
        problem: String,
    },
    /// A variable named in `forward_env` is not set.
    MissingEnv(String),
    /// It ran and exited unsuccessfully.
    Exit {
        program: String,
        status: ExitStatus,
        stderr_tail: String,
    },
    /// Its output passed the capture limit; it was killed.
    TooLarge { limit: usize },
    /// Its output is not UTF-8 and the capture mode wants text.
    NotUtf8 { offset: usize },
    /// `capture: json` and the output is not JSON.
    NotJson(serde_json::Error),
    /// `capture: json` and the output nests deeper than a result file can hold.
    TooDeep { depth: usize, limit: usize },
    /// The run was cancelled; the command was stopped.
    Cancelled { stderr_tail: String },
    /// It stopped to read from (or write to) the terminal, which a command does not
    /// get; it was killed rather than left stopped.
    Terminal {
        program: String,
        signal: Signal,
        stderr_tail: String,
    },
    /// Reading its output failed.
    Io(io::Error),
}

impl CommandError {
    /// Why `program`, found at `file`, did not start. The system says a file was not
    /// found also when `file` is there but the interpreter its `#!` line names (a script
    /// written on Windows ends that line with a carriage return) or a binary's loader is
    /// not: that is told apart, so that the error does not send the user looking for a
    /// file that is there.
    pub(crate) fn starting(program: &str, file: &OsStr, error: io::Error) -> Self {
        let file = Path::new(file);
        if error.kind() != io::ErrorKind::NotFound || !file.is_file() {
            return Self::Start {
                program: program.to_owned(),
                error,
            };
        }
        Self::NoInterpreter {
            program: program.to_owned(),
            file: file.to_owned(),
            shebang: shebang(file),
        }
    }

    /// Whether retrying cannot help. A program that could not start for want of a
    /// resource the system may have again soon (processes, open files, memory, or the
    /// program's file being written) can start on a later attempt.
    pub(crate) fn is_permanent(&self) -> bool {
        if let Self::Start { error, .. } = self {
            return !error.raw_os_error().is_some_and(is_passing);
        }
        matches!(
            self,
            Self::Cwd { .. }
                | Self::NoInterpreter { .. }
                | Self::MissingEnv(_)
                | Self::Cancelled { .. }
                | Self::Terminal { .. }
        )
    }
}

/// The interpreter line at the top of `file` (without `#!`), escaped and cut to 200
/// characters; `None` when the file does not start with `#!`.
fn shebang(file: &Path) -> Option<String> {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(256);
    std::fs::File::open(file)
        .ok()?
        .take(256)
        .read_to_end(&mut head)
        .ok()?;
    let line = head.strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let text: String = String::from_utf8_lossy(line)
        .trim_start()
        .escape_debug()
        .take(200)
        .collect();
    Some(text)
}

/// Whether a program failed to start with an error that passes: too many processes or
/// open files, no memory, its file busy being written, or a signal.
fn is_passing(errno: i32) -> bool {
    use nix::errno::Errno;
    [
        Errno::EAGAIN,
        Errno::EMFILE,
        Errno::ENFILE,
        Errno::ENOMEM,
        Errno::ETXTBSY,
        Errno::EINTR,
    ]
    .contains(&Errno::from_raw(errno))
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Start { program, error } if error.kind() == io::ErrorKind::NotFound => {
                write!(f, "cannot start `{program}`: program not found")
            }
            Self::Start { program, error } => write!(f, "cannot start `{program}`: {error}"),
            Self::NoInterpreter {
                program,
                file,
                shebang: Some(line),
            } => write!(
                f,
                "cannot start `{program}` ({}): the interpreter its first line names, \
                 `{line}`, was not found",
                file.display()
            ),
            Self::NoInterpreter { program, file, .. } => write!(
                f,
                "cannot start `{program}` ({}): the file is there, but the loader it needs \
                 was not found (a program built for another system?)",
                file.display()
            ),
            Self::Cwd {
                dir,
                task_id,
                problem,
            } => write!(
                f,
                "working directory `{}` of task `{task_id}` {problem}",
                dir.display(),
            ),
            Self::MissingEnv(name) => write!(
                f,
                "environment variable `{name}` (named in forward_env) is not set"
            ),
            Self::Terminal {
                program,
                signal,
                stderr_tail,
            } => {
                let what = if *signal == Signal::SIGTTOU {
                    "change or write to"
                } else {
                    "read from"
                };
                write!(
                    f,
                    "`{program}` stopped ({signal}) to {what} the terminal, which a command \
                     run by orch does not get (its input is empty): give it what it asks for \
                     in its arguments, environment or files"
                )?;
                write_tail(f, stderr_tail)
            }
            Self::Exit {
                program,
                status,
                stderr_tail,
            } => {
                match (
                    status.code(),
                    std::os::unix::process::ExitStatusExt::signal(status),
                ) {
                    (Some(code), _) => write!(f, "`{program}` exited with status {code}")?,
                    (None, Some(signal)) => {
                        let name = Signal::try_from(signal).map_or("unknown", Signal::as_str);
                        write!(f, "`{program}` was killed by signal {signal} ({name})")?
                    }
                    (None, None) => write!(f, "`{program}` ended: {status}")?,
                }
                write_tail(f, stderr_tail)
            }
            Self::TooLarge { limit } => write!(
                f,
                "standard output passed the capture limit of {limit} bytes, so the command was stopped (raise `max_output_bytes`, or set `capture: none`)"
            ),
            Self::NotUtf8 { offset } => write!(
                f,
                "standard output is not UTF-8 text (invalid byte at offset {offset}); set `capture: base64` to keep binary output"
            ),
            Self::NotJson(error) => {
                write!(f, "standard output is not JSON (`capture: json`): {error}")
            }
            Self::TooDeep { depth, limit } => write!(
                f,
                "standard output is JSON nested {depth} levels deep, and a result file reads back at most {limit} (set `capture: text` to keep it as text)"
            ),
            Self::Cancelled { stderr_tail } => {
                f.write_str("the command was stopped: the run was cancelled")?;
                write_tail(f, stderr_tail)
            }
            Self::Io(error) => write!(f, "reading the command's output failed: {error}"),
        }
    }
}

/// `; stderr ends: ...` after an error's text, when the command wrote to standard error.
fn write_tail(f: &mut std::fmt::Formatter<'_>, stderr_tail: &str) -> std::fmt::Result {
    if stderr_tail.is_empty() {
        return Ok(());
    }
    write!(f, "; stderr ends: {stderr_tail}")
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;

    fn start_error(error: io::Error) -> CommandError {
        CommandError::Start {
            program: "p".into(),
            error,
        }
    }

    #[test]
    fn a_program_that_could_not_start_for_want_of_resources_is_tried_again() {
        for errno in [Errno::EAGAIN, Errno::EMFILE, Errno::ENOMEM, Errno::ETXTBSY] {
            let error = start_error(io::Error::from_raw_os_error(errno as i32));
            assert!(!error.is_permanent(), "{error}");
        }
        for errno in [Errno::ENOENT, Errno::EACCES, Errno::ENOEXEC, Errno::E2BIG] {
            let error = start_error(io::Error::from_raw_os_error(errno as i32));
            assert!(error.is_permanent(), "{error}");
        }
        assert!(start_error(io::Error::other("no errno")).is_permanent());
    }
}
