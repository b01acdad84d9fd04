//! `orch`: check, draw, run and report orch workflow files from the shell, with no server.
//!
//! ```sh
//! $ cat build.yaml
//! workflow_id: build
//! tasks:
//!   version: { task_type: command, config: { program: git, args: [describe, --always] } }
//!   test:    { task_type: command, config: { program: cargo, args: [test] }, timeout: 600 }
//!   package:
//!     task_type: command
//!     dependencies: [version, test]
//!     config: { program: tar, args: [czf, app.tgz, src] }
//! $ orch validate build.yaml              # its problems, with file:line:column
//! $ orch plan build.yaml                  # order and levels
//! $ orch graph build.yaml --format svg -o build.svg
//! $ orch run build.yaml --max-concurrent 4 --output result.json
//! $ orch report result.json -o run.html   # DAG, timeline, metrics: one HTML file
//! $ orch gantt result.json                # the timeline in the terminal
//! $ orch run build.yaml --journal runs     # durable: prints the run's id
//! $ orch run build.yaml --journal runs --resume RUN_ID   # continue it after a crash
//! $ orch runs list runs                    # the recorded runs
//! $ orch worker --nats nats://queue:4222   # serve command, sleep, echo on this machine
//! $ orch run build.yaml --nats nats://queue:4222   # run every task on the workers
//! ```
//!
//! # Commands
//!
//! - `orch validate FILE...` reads every file and prints their problems at once (but a
//!   file that cannot be read as a workflow, for an unknown key of the workflow or of a
//!   task, or a field of the wrong type, stops at the first such problem: mend it to
//!   see the others), as
//!   `file:line:column: message (did you mean ...?)` where the place is known; exit 0 when
//!   all are valid, 1 otherwise. It lists the first 100 problems of a file and counts the
//!   others (`FILE: and N more problem(s), not listed`). `--format json` prints
//!   `{"valid": bool, "problems": N, "files": [{"file", "valid", "tasks", "problems": [{"kind",
//!   "message", "task", "line", "column", "suggestion"}], "unlisted_problems": N}]}`, every
//!   key in every problem (`null` when not known: no task, no place, nothing to suggest);
//!   `problems` at the top counts the unlisted ones too. Task types and their
//!   configurations are checked against the built-in types unless `--any-task-type` is given
//!   (for workflows run by a Rust program with handlers of its own).
//! - `orch plan FILE` prints the order tasks run in and their levels, as a table or
//!   (`--format json`) as `{"order", "levels", "tasks"}`. The order is the one a run one
//!   task at a time follows when each task completes: among the tasks whose dependencies
//!   are done, higher priority first, then the plan's execution order (file order where
//!   dependencies allow).
//! - `orch graph FILE --format dot|mermaid|svg [--result R.json] [-o OUT]` draws the DAG:
//!   task names and types, and with a result file each task coloured by its status (a
//!   run of another workflow id is refused; tasks of the run that FILE no longer has are
//!   named on standard error). The SVG
//!   is laid out by orch itself (no Graphviz needed); the Mermaid output keeps to a small,
//!   documented subset of the flowchart syntax. `OUT` is written as the report's page is
//!   (below): through a temporary file renamed into place, readable by its owner only. An
//!   `OUT` that is the workflow or result file, or that is not a file, is refused (exit 2).
//! - `orch run FILE` runs the workflow with the built-in task types, `--max-concurrent N`
//!   tasks at once (default 1). Trigger rules, branches and priorities in the file apply as
//!   they do in the library; tasks that name a pool (`pool: gpu`) need it declared with
//!   `--pool gpu=2` (once per pool; the limit follows the last `=`, so pool `gpu=a100`
//!   is `--pool gpu=a100=2`), else nothing runs (exit status 2). On a terminal a progress bar shows the counts (and the map instances
//!   done) and the running tasks; otherwise (or with `--progress lines`) one line per event. Ctrl-C (or SIGTERM,
//!   SIGHUP when the terminal closes or the connection drops, SIGQUIT) stops the running
//!   commands (SIGTERM, then SIGKILL after 2 s), marks what did not finish as cancelled,
//!   prints the summary, writes the result file and exits with 128 + the signal's number
//!   (130 for Ctrl-C, 143, 129, 131); one that comes while orch is still opening its
//!   journal, reaching its NATS server or looking up its `--metrics-addr` stops it with
//!   the same status, saying that
//!   nothing ran, and one that comes once the run ended (while the summary or the result
//!   file is written) still gives that status. A second signal ends orch at once with
//!   its number (a SIGHUP after the first signal does not count: a closed terminal may
//!   send it twice): the commands still running are killed, and no summary or result
//!   file is written, though one already being written is finished first (a journal
//!   keeps what it recorded, to `--resume` from). A signal ignored when orch starts stays
//!   ignored, so
//!   `nohup orch run ...` keeps running when the terminal closes. (orch learns what it
//!   ignores from Linux's `/proc/self/status`; where that cannot be read, on another
//!   Unix or without `/proc`, it stops on every one of these signals: start it with
//!   `setsid` instead, so that no terminal sends it SIGHUP.)
//!   `--output R.json` writes the result (checked before the run starts: a directory, the
//!   workflow file itself, a path whose directory is missing or not writable, or a workflow with a task `config`
//!   nested more than 123 levels deep, which the file could not hold, is refused with
//!   exit 2 before any task runs; a result that still cannot take its name after the
//!   run is kept beside it under a temporary name, or in the working directory (or the
//!   temporary directory) as `orch-result-*.json` when a task took its place during the
//!   run or its disk filled up, which the error gives, with exit 2; a result orch could
//!   not read back, a task's result from a worker nested more than 124 levels deep or a
//!   file over 1 GiB, is written all the same, and the error says so, with exit 2);
//!   `--metrics-addr HOST:PORT` serves Prometheus
//!   metrics on `http://HOST:PORT/metrics` while the run lasts (port 0 picks a free port;
//!   the address is logged; 64 connections are answered at once, more wait, and one that
//!   sends no request within 5 s, or does not read its reply within 10 s, is closed).
//! - `orch report R.json -o run.html` writes one self-contained HTML page: the DAG coloured
//!   by status, a timeline with the critical path highlighted, the metrics and every task
//!   (each instance of a map task too) with its status, attempts, duration and error.
//!   Like the result file, it is written through a temporary file renamed into place and
//!   is readable by its owner only (it holds the tasks' errors). An `-o` that is the
//!   result file itself, or that names a directory (`out/` too), is refused before
//!   anything is written (exit 2).
//! - `orch gantt R.json [--width N]` draws the timeline in the terminal, at most `N` columns
//!   wide (1 to 10000; default: the terminal's width, else 100; names take at least 4
//!   columns and bars at least 10, so a narrow `N` gives wider lines).
//! - `orch run FILE --journal DIR` makes the run durable: each completed task is recorded
//!   in the journal directory `DIR` (one file per run, readable by its owner only) before
//!   the tasks that depend on it start, and the run's id is printed first, once the
//!   journal took the run (a run refused or not started prints none). `DIR` is created
//!   when missing, but not by a run refused first for a `--resume` (that is no run id,
//!   or of a directory that does not exist) or a NATS server it cannot reach. After a crash,
//!   a kill or Ctrl-C, `orch run FILE --journal DIR --resume RUN_ID` continues that run:
//!   the tasks that completed keep their results and are not run again (their commands
//!   are not started), the rest run, and a task that ran on the outcome of one of those
//!   is decided again after it (an `all_done` task that ran after a failure runs again
//!   after the failed task's new attempt; a `one_failed` one runs again or is skipped as
//!   that attempt ends; the library README's "What a resume runs" has the whole rule).
//!   A map task's instances are recorded as they complete: a map cut short by the crash,
//!   Ctrl-C or a failed instance runs again only the instances that did not complete
//!   (unless a task it depends on runs again, or its definition changed).
//!   A resume is refused when the journal has no such
//!   run, or when a task that completed has changed since (its type, configuration,
//!   dependencies, trigger rule or map), naming it. `--durability power` also syncs each
//!   record to disk (it then survives a power loss; the default, `process`, survives orch
//!   itself dying).
//! - `orch runs list DIR` lists the runs of a journal directory, oldest first: id,
//!   workflow, status (`unfinished` when no end was recorded: running, or stopped
//!   without one, and resumable), task counts, start and end. A run whose file cannot be
//!   read is listed after the others with the status `unreadable` (its error on standard
//!   error, and as `"error"` in JSON), and the exit code is then 1; a file with no
//!   complete first line yet (a run being started), or with no complete line that
//!   begins as a run's does (a file of something else named like a run's), is left out. `orch runs show DIR RUN_ID`
//!   prints one run and each task's status, attempts, times and error (a map task's,
//!   not each of its instances'; a result file lists those), then, for each map task
//!   with completed instances recorded, how many (a resume of a map cut short
//!   keeps those, unless it runs them again: see `--resume`). With `--format
//!   json`: `{"runs": [{"run_id", "workflow_id", "workflow_name", "status", "tasks",
//!   "completed", "failed", "skipped", "cancelled", "not_run", "started", "ended"}]}`, and
//!   for `show` the same object with `"tasks"`, each task as in a result file (`"task_id"`,
//!   `"status"`, `"result"`, `"error"`, `"start_time"`, `"end_time"`, `"duration"`,
//!   `"attempts"`, and the keys a result file adds when they apply, and
//!   `"instances_completed"` for a map task with completed instances recorded; times RFC 3339,
//!   `null` when unknown).
//! - `orch worker --nats URL` serves the built-in task types (`--types echo,sleep` for
//!   some of them; a worker whose NATS user may take only some types' tasks serves
//!   those) to coordinators through NATS JetStream (`nats-server -js`), `--concurrency
//!   N` tasks at once (default 4), until
//!   Ctrl-C, SIGTERM, SIGHUP or SIGQUIT (one ignored at start, as under `nohup`, stays
//!   ignored): then it takes no more tasks, lets running ones finish for
//!   `--shutdown-grace` (default 30 s, cut short by a second signal; a SIGHUP after
//!   the first signal does not count, nor as the third below), stops the rest as
//!   a cancel does (SIGTERM, then SIGKILL after 2 s), hands them back to the queue for
//!   another worker, and exits with 0 (1 if its connection was closed for good, which
//!   reconnecting does not end; with 128 + the signal's number
//!   when stopped before it was connected, or by a third signal, which ends it at once
//!   whatever it still waits for; tasks it held go to other workers after the server's
//!   ack wait). A server that is gone holds it up past the grace period only while a
//!   result publish already under way waits for its answer (at most 5 s) and for its
//!   last acknowledgements (at most 5 s more). Commands run in the worker's environment (`forward_env`
//!   reads the worker's variables), relative `cwd`s start from `--dir` (default: the
//!   worker's current directory), and dependency files (`ORCH_INPUTS_DIR`) are removed
//!   when each attempt ends. It prints one line once it serves, and logs each task that
//!   fails on it (a warning naming run, task and attempt). Under systemd, give its unit
//!   `KillMode=mixed`: the default sends SIGTERM to its commands too, which then fail
//!   as killed instead of finishing in the grace period or being handed back.
//! - `orch run FILE --nats URL` is the coordinator: every task is sent to a worker; the
//!   run is scheduled, retried, timed out, cancelled, displayed and recorded here as a
//!   local one: a task starts when it is sent, so its duration and its `timeout` count
//!   the time it waits in the queue for a free worker. A task whose type no worker serves
//!   fails after `--worker-timeout` (default 30 s), and is taken off the queue: a worker
//!   started later does not run it. A worker that dies mid-task has its task delivered
//!   to another. Unlike a local run, the results a task reads from its dependencies
//!   travel in its task message, which the server caps (`max_payload`, 1 MiB by
//!   default): a task whose message passes that fails, naming its largest part (an
//!   input, say).
//!
//! NATS settings come from the `ORCH_NATS_*` environment variables (`ORCH_NATS_URL`,
//! `ORCH_NATS_USER` with `ORCH_NATS_PASSWORD`, or `ORCH_NATS_TOKEN`, `ORCH_NATS_NKEY_SEED`
//! or `ORCH_NATS_CREDS` (a credentials file); `ORCH_NATS_TLS_CA`, `ORCH_NATS_TLS_CERT`
//! with `ORCH_NATS_TLS_KEY`; `ORCH_NATS_NAME`); `--nats` replaces only the server URLs.
//! Secrets are never taken from the command line, where every user of the machine can
//! read them: a `--nats` URL with credentials in it (`nats://user:password@host`) is
//! refused. They are never logged.
//!
//! Exit status: 0 success; 1 a workflow failed, a file has problems (or cannot be read:
//! `orch run missing.yaml` too), a resume was refused for a changed task, the journal
//! failed while tasks ran (what it recorded stays, to resume from), `runs show` found no
//! such run (or only a file of one whose first line was never completely written, or of
//! something else), or `runs list` or `runs show` found a run it cannot read; 2 bad usage
//! or a run that could not be set up (an address in use, an unwritable output, no NATS
//! server, an unknown run to resume, a run another `orch` is writing, a `--journal` that
//! is a URL, a pool without its `--pool`), or a command that otherwise
//! succeeded but could not write to standard output (a full disk; a reader that went
//! away, as `| head -1`, is not an error); 128 + the signal number after Ctrl-C (130), SIGTERM (143), SIGHUP (129) or
//! SIGQUIT (131), even when the result file could then not be written (the error is
//! printed) (`orch worker` exits with 0 after a clean stop).
//!
//! Logs go to standard error: `-v`/`-vv`/`-vvv` for more, `RUST_LOG` to choose exactly
//! (it wins over `-v`; a directive orch cannot read is named and left out, and one with
//! none it can leaves `-v`'s choice; a span field's value in it is matched as the
//! field's whole text, not as a pattern: `RUST_LOG='[task{task_id=fetch}]=debug'`),
//! `--log-format json` for one JSON object per line.
//!
//! # Built-in task types
//!
//! - `echo`: the result is `config.message` (any JSON; null when absent).
//! - `sleep`: waits `config.seconds` (a non-negative number); ends early when cancelled.
//! - `command`: runs a program. Its configuration:
//!
//! | key | meaning |
//! |---|---|
//! | `program`, `args` | the program and its arguments (strings, or numbers and booleans written as their text: a number as the fewest digits that read back as it, with no exponent (`1e20` is `100000000000000000000`), so quote `"3.10"` to keep its zero, and an integer past 64 bits to keep its digits), passed as they are: no shell, nothing expanded or interpolated. A `program` with a `/` is a path from the command's working directory; otherwise it is looked up on the command's `PATH` (`env.PATH` when set, else orch's; `/bin:/usr/bin` when neither is set) |
//! | `shell: true`, `script` | runs `sh -c SCRIPT orch ARGS...` instead: the script sees `args` as `$1`, `$2`, ... |
//! | `env` | variables to set, `{NAME: value}` (a number or boolean as its text); do not put secrets here (the file and the result file hold them) |
//! | `forward_env` | names of variables passed through from orch's environment: the way to hand a command a secret, which then appears in no file, report or log; a name that is not set fails the task |
//! | `inherit_env` | `true` passes orch's whole environment, but for the `ORCH_INPUTS_DIR` and `ORCH_ITEM*` variables orch sets itself and its `ORCH_NATS_*` settings, which may hold credentials (each unless named in `forward_env`); by default a command gets only `PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`, `LANG`, `LC_ALL`, `LC_CTYPE`, `TZ`, `TMPDIR` and `TERM` (when set) |
//! | `cwd` | the working directory, relative to the workflow file's directory (the default). It is looked for when the task starts, not by `validate` (an earlier task may create it): a missing one, or one orch may not enter, fails the task at once, without retries, naming the directory and the task |
//! | `capture` | how standard output becomes the task's result: `auto` (default: JSON when all of it parses as JSON nested at most 124 levels deep (123 for an instance of a map task), which a result file reads back, and every number in it keeps its value (no integer past 64 bits, no decimal with more digits than a 64-bit float holds: `echo 123456789012345678901234567890` stays text), else the text less a trailing newline; empty, or only white space, is null), `text`, `json` (else the task fails; numbers are read as 64-bit integers or floats, so such a number is rounded), `base64` (any bytes), `none` (discarded, null) |
//! | `max_output_bytes` | the capture limit, default 1 MiB (1,048,576 bytes), at most 256 MiB: a command that writes more is killed and its task fails saying so. Output read as JSON takes more memory than its bytes (up to about 16 times, for an array of one-digit numbers) |
//!
//! Each command runs in a process group of its own. When it exits, times out (the task's
//! `timeout`), is cancelled, or writes past its limit, the whole group is killed, so
//! nothing it started outlives its task. Only orch itself kills the group: orch killed
//! outright (SIGKILL, the out-of-memory killer) leaves its running commands running, and
//! a `--resume` of that run, or another worker given the task, starts them again beside
//! them. A process that left the group (`setsid`) is not
//! killed; if it holds the command's output open, the task ends about 1 s after the
//! command (a cancelled one's, 1 s after the 2 s grace below), with the output read by
//! then. A cancelled command's group gets SIGTERM, then
//! SIGKILL after 2 s; what the command started keeps that grace when the command itself
//! exits first (it is killed once the group closed the command's output, or at 2 s). The
//! last lines written to standard error meanwhile end the task's error.
//! The processes of a killed group are reaped by the system's init, not by orch: as a
//! container's first process, run orch under an init (`docker run --init`, `tini`), or
//! each command that leaves a process behind leaves a zombie.
//! A non-zero exit fails the task (with the last lines of its standard error in the
//! message); output that is not UTF-8 fails it unless
//! `capture` is `base64` or `none`. Output that cannot be read as `capture` asks (not
//! JSON, not UTF-8, too deep, too large) fails the attempt as a non-zero exit does, and
//! is retried as the task's `retries` allow: a command's output may differ from one
//! attempt to the next (a model's, say), so a command with side effects runs again. Each line of standard error is logged at `info` as it
//! arrives, in a span naming the task (`task{id=build}: ...`). A program that cannot be
//! started (not found, not executable) fails its task at once, without retries; one the
//! system could not start for want of processes, open files or memory is retried as
//! the task's `retries` allow.
//!
//! Every command gets `ORCH_TASK_ID`, `ORCH_WORKFLOW_ID` and `ORCH_ATTEMPT`. An instance of
//! a map task (`dependencies: [list]`, `map: {over: list}`) gets its own id (`task[i]`) as `ORCH_TASK_ID`, its
//! element's position as `ORCH_ITEM_INDEX`, and the element as JSON in the file
//! `ORCH_ITEM_FILE` and, when at most 64 KiB, in `ORCH_ITEM`. A
//! command with dependencies also gets `ORCH_INPUTS_DIR`: a directory holding one file per
//! direct dependency that completed (none for one that failed or was skipped, which a
//! task with a trigger rule such as `all_done` may run after, but for a map task that
//! failed because an instance failed: its file holds the instances' results, `null`
//! where one did not complete; for a map instance, none for the list it maps over, whose
//! element it has), `<dependency id>.json`,
//! with that dependency's result as JSON (ids
//! written with `%XX` escapes for any byte but letters, digits, `-`, `_` and a non-leading
//! `.`; a name over 200 bytes keeps at most its first 183 (never cutting an escape) and
//! ends with `~` and the 16 hex digits of the
//! 64-bit FNV-1a hash of the id). Each attempt (and each instance of a map task) has a
//! directory of its own. The files are readable by their owner only (0600, in 0700
//! directories) and are removed when the attempt ends (and whatever is left, with the
//! run's temporary directory, when `orch run` ends). That directory is made under
//! `TMPDIR` when the first such command starts; when it cannot be, that task fails
//! saying why (a worker makes its own when it starts, and exits with 2 when it cannot).
//!
//! # The result file
//!
//! `--output` writes the run's result as the library serialises it (`workflow_id`,
//! `status`, times, every task's record with its result or error, `metrics`) plus a
//! `workflow` field with the definition that ran, which `report`, `gantt` and `graph
//! --result` use to draw the graph. It is written to a temporary file, synced and
//! renamed (the rename synced too), so it is never seen half-written, nor lost to a power
//! cut once `orch` has exited, and is readable by its owner only (it holds what the
//! commands printed). Through a symbolic link, as every `-o` file, it replaces the file
//! the link leads to, and the link stays.

/// `print!` to standard output, never panicking: a reader that went away (`orch ... |
/// head -1`) is no reason to panic or to stop a run; any other failure (a full disk) is
/// noted, and fails the command at its end (see `standard_output`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        crate::note_stdout(write!(std::io::stdout().lock(), $($arg)*));
    }};
}

/// `println!` to standard output, never panicking (see `out!`), with control characters
/// escaped as `errln!` escapes them: a line may quote a path or a run's names. (`out!`
/// writes text its maker escaped already, which may colour it.)
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let line = crate::display::printable(&line);
        crate::note_stdout(writeln!(std::io::stdout().lock(), "{line}"));
    }};
}

/// `eprintln!` to standard error, ignoring a write that fails (a closed pipe, or a
/// terminal gone after SIGHUP), where `eprintln!` would panic.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // Messages quote files, journals and what commands printed: their control
        // characters are escaped, so none reaches the terminal.
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr().lock(), "{}", crate::display::printable(&line));
    }};
}

mod builtin;
mod check;
mod columns;
mod commands;
mod dag;
mod display;
mod exact_numbers;
mod gantt;
mod graph;
mod inputs;
mod layout;
mod locate;
mod logging;
mod plan;
mod process;
mod prometheus;
mod read;
mod report;
mod result_file;
mod run;
mod runs;
mod runtime;
mod signals;
mod spec;
mod standard_output;
mod suggest;
mod svg;
mod tally;
mod times;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use standard_output::{note_stdout, stdout_failure};

#[derive(Parser)]
#[command(
    name = "orch",
    version,
    about = "Check, draw, run and report orch workflow files."
)]
struct Cli {
    /// More log output on standard error (-v info, -vv debug, -vvv trace); RUST_LOG wins.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// The log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Text for people or JSON for programs.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

/// A drawing format.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    Dot,
    Mermaid,
    Svg,
}

/// The NATS settings from the environment, for `orch run --nats` and `orch worker`.
const NATS_VARIABLES: &str = "NATS settings (orch worker, and orch run with --nats): \
ORCH_NATS_URL (orch worker's default server; orch run sends tasks to workers only \
with --nats, which replaces its servers but keeps credentials written in it), \
ORCH_NATS_USER with ORCH_NATS_PASSWORD, ORCH_NATS_TOKEN, ORCH_NATS_NKEY_SEED or \
ORCH_NATS_CREDS (one way to sign in), ORCH_NATS_TLS_CA, ORCH_NATS_TLS_CERT with \
ORCH_NATS_TLS_KEY, ORCH_NATS_NAME.";

#[derive(Subcommand)]
enum Command {
    /// Check workflow files and print their problems with their places (the first 100 of
    /// each file, the others counted).
    Validate {
        /// The workflow files (.json, .yaml, .yml, .toml).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Accept any task type (the workflow is run by a program with its own handlers).
        #[arg(long)]
        any_task_type: bool,
    },
    /// Print the order tasks run in (one at a time, each completing; priorities
    /// applied) and the level of each task.
    Plan {
        /// The workflow file (.json, .yaml, .yml or .toml).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Draw the DAG as DOT, Mermaid or SVG.
    Graph {
        /// The workflow file (.json, .yaml, .yml or .toml).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// A result file from `orch run --output`: colour the tasks by status.
        #[arg(long)]
        result: Option<PathBuf>,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Run a workflow with the built-in task types (command, sleep, echo).
    #[command(after_help = NATS_VARIABLES)]
    Run(run::RunArgs),
    /// Serve the built-in task types to `orch run --nats` coordinators through NATS.
    #[command(after_help = NATS_VARIABLES)]
    Worker(worker::WorkerArgs),
    /// Look at the runs recorded in a journal directory (`orch run --journal DIR`).
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Write a self-contained HTML report of a run.
    Report {
        /// A result file from `orch run --output`.
        result: PathBuf,
        /// The HTML file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Draw a run's timeline in the terminal.
    Gantt {
        /// A result file from `orch run --output`.
        result: PathBuf,
        /// Columns to use, 1 to 10000 (default: the terminal's width, else 100).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=i64::from(gantt::MAX_WIDTH)))]
        width: Option<u16>,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List the runs: id, workflow, status, task counts, start and end.
    List {
        /// The journal directory.
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show one run and the record of each of its tasks.
    Show {
        /// The journal directory.
        dir: PathBuf,
        /// The run's id.
        run_id: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.log_format == LogFormat::Json);
    let code = match cli.command {
        Command::Validate {
            files,
            format,
            any_task_type,
        } => commands::validate(&files, format, !any_task_type),
        Command::Plan { file, format } => commands::plan(&file, format),
        Command::Graph {
            file,
            format,
            result,
            output,
        } => commands::graph(&file, format, result.as_deref(), output.as_deref()),
        Command::Run(args) => run::run(args),
        Command::Worker(args) => worker::serve(args),
        Command::Runs(RunsCommand::List { dir, format }) => runs::list(&dir, format),
        Command::Runs(RunsCommand::Show {
            dir,
            run_id,
            format,
        }) => runs::show(&dir, &run_id, format),
        Command::Report { result, output } => commands::report(&result, &output),
        Command::Gantt { result, width } => commands::gantt(&result, width.map(usize::from)),
    };
    stdout_failure(code)
}
