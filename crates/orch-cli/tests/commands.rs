//! A `command` task's process: a working directory that is not there, a background
//! process that leaves the command's process group, and what a stopped command writes to
//! standard error, and one that reads the terminal; how its program is found.

mod common;

use common::{Dir, as_root, parts, pid_in, run_as_a_user, run_in, start_run, task_error};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

fn error(result: &Value, task: &str) -> String {
    task_error(result, task)
}

#[test]
fn a_missing_working_directory_is_named_with_its_task() {
    let dir = Dir::new();
    dir.write("afile", "");
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  x: { task_type: command, retries: 2, config: { program: 'true', cwd: no-such-dir } }
  y: { task_type: command, config: { shell: true, script: 'true', cwd: afile } }
"#,
    );
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", "r.json"]));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(
        error(&result, "x"),
        "working directory `no-such-dir` of task `x` does not exist"
    );
    assert_eq!(result["tasks"]["x"]["attempts"], 1, "not retried");
    assert_eq!(
        error(&result, "y"),
        "working directory `afile` of task `y` is not a directory"
    );
}

#[test]
fn a_process_that_left_the_group_does_not_keep_its_task_running() {
    let dir = Dir::new();
    // The background process keeps the command's output pipes open for 5 minutes.
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  x: { task_type: command, config: { shell: true, script: "setsid sh -c 'echo $$ > bg.pid; exec sleep 300' & while [ ! -s bg.pid ]; do sleep 0.01; done; echo done" } }
  y: { task_type: echo, dependencies: [x] }
"#,
    );
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", "r.json"]));
    let escaped = pid_in(&dir.join("bg.pid"));
    let _ = kill(Pid::from_raw(escaped), Signal::SIGKILL);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(result["tasks"]["x"]["result"], "done");
    assert_eq!(result["tasks"]["y"]["status"], "completed");
}

/// A last line of standard error with no line break is logged and quoted, though a
/// process that left the group keeps the pipe open past the command's end.
#[test]
fn an_unended_last_line_of_stderr_is_kept_when_its_pipe_stays_open() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  x: { task_type: command, config: { shell: true, script: "setsid sh -c 'echo $$ > bg.pid; exec sleep 300' & while [ ! -s bg.pid ]; do sleep 0.01; done; echo line1 >&2; printf 'fatal: disk full' >&2; exit 4" } }
"#,
    );
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", "r.json"]));
    let escaped = pid_in(&dir.join("bg.pid"));
    let _ = kill(Pid::from_raw(escaped), Signal::SIGKILL);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let error = error(&dir.json("r.json"), "x");
    assert!(
        error.ends_with("stderr ends: line1 | fatal: disk full"),
        "{error}"
    );
    assert!(stderr.contains("fatal: disk full"), "logged: {stderr}");
}

/// Runs one command task `x` with `script`, interrupts the run once `x.pid` is written,
/// checks that orch exits with 130 and `x` was cancelled, and gives the run's result and
/// orch's standard error.
fn interrupted(dir: &Dir, script: &str) -> (serde_json::Value, String) {
    let workflow = format!(
        "workflow_id: w\ntasks:\n  x: {{ task_type: command, config: {{ shell: true, script: {} }} }}\n",
        serde_json::Value::from(script)
    );
    let (child, _) = start_run(dir, &workflow, "x.pid", &["-o", "r.json"]);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT sent");
    let (code, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
    assert_eq!(code, Some(130), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(result["tasks"]["x"]["status"], "cancelled", "{result}");
    (result, stderr)
}

#[test]
fn what_a_stopping_command_writes_to_stderr_is_in_its_error() {
    let dir = Dir::new();
    let (result, _) = interrupted(
        &dir,
        "trap 'echo cleaning up >&2; echo bye >&2; exit 1' TERM; echo $$ > x.pid; \
         while :; do sleep 0.05; done",
    );
    // What it wrote after SIGTERM, during its grace period, ends the message.
    let error = error(&result, "x");
    assert!(
        error.contains("the command was stopped: the run was cancelled; stderr ends: "),
        "{error}"
    );
    assert!(error.ends_with("cleaning up | bye"), "{error}");
}

/// A cancelled command's other processes get the grace period too, even when the one
/// orch started (here a shell, which SIGTERM ends at once) exits first.
#[test]
fn a_cancelled_commands_other_processes_get_their_grace() {
    let dir = Dir::new();
    let (_, stderr) = interrupted(
        &dir,
        "sh -c 'trap \"sleep 0.3; echo cleaned > cleaned; exit 0\" TERM; echo $$ > x.pid; \
         while :; do sleep 0.05; done'; true",
    );
    let cleaned = std::fs::read_to_string(dir.join("cleaned"));
    assert_eq!(cleaned.ok().as_deref(), Some("cleaned\n"), "{stderr}");
}

/// A run interrupted while a command that already exited waits for pipes held by a
/// process that left its group: the command's result stands.
#[test]
fn a_command_that_exited_before_the_run_was_interrupted_keeps_its_result() {
    let dir = Dir::new();
    let (child, _) = start_run(
        &dir,
        r#"workflow_id: w
tasks:
  x: { task_type: command, config: { shell: true, script: "setsid sh -c 'echo $$ > bg.pid; exec sleep 300' & while [ ! -s bg.pid ]; do sleep 0.01; done; echo done; echo $$ > x.pid" } }
"#,
        "x.pid",
        &["-o", "r.json"],
    );
    // The command exits right after writing x.pid; once orch has reaped it (its /proc
    // entry is gone), its pipes stay open for up to 1 s.
    let command = pid_in(&dir.join("x.pid"));
    common::wait_for("orch to reap the command", || {
        !std::path::Path::new(&format!("/proc/{command}")).exists()
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT sent");
    let (code, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
    let escaped = pid_in(&dir.join("bg.pid"));
    let _ = kill(Pid::from_raw(escaped), Signal::SIGKILL);
    assert_eq!(code, Some(130), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(result["tasks"]["x"]["status"], "completed", "{result}");
    assert_eq!(result["tasks"]["x"]["result"], "done");
}

/// Under a terminal (`script` gives orch one), a command that reads from it, itself or
/// through a program it starts, stops, as a process outside the terminal's foreground
/// group does (the whole group stops with the program that read): its task fails
/// saying so, rather than waiting for ever.
#[test]
fn a_command_that_reads_the_terminal_fails_instead_of_waiting() {
    if !common::installed("script") {
        assert!(
            !common::in_ci(),
            "`script` (util-linux) must be installed in CI"
        );
        println!("skipped: no `script` to give orch a terminal");
        return;
    }
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: tty\ntasks:\n  \
           ask: { task_type: command, config: { shell: true, script: 'read x < /dev/tty; echo $x' } }\n  \
           child: { task_type: command, config: { shell: true, script: 'head -c 1 /dev/tty; echo' } }\n",
    );
    let orch = env!("CARGO_BIN_EXE_orch");
    let mut under_terminal = std::process::Command::new("script");
    under_terminal
        .args([
            "-qec",
            &format!("'{orch}' run w.yaml --max-concurrent 2 --output r.json"),
            "/dev/null",
        ])
        .env_remove("RUST_LOG")
        .current_dir(dir.path());
    // Killed, failing the test, if it hangs.
    let (code, stdout, stderr) = parts(&common::output(under_terminal));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result: Value = dir.json("r.json");
    for task in ["ask", "child"] {
        let error = error(&result, task);
        assert!(
            error.starts_with("`sh` stopped (SIGTTIN) to read from the terminal"),
            "{task}: {error}"
        );
    }
}

/// A signal while `orch run --nats` is still reaching its server (here one that accepts
/// the connection and never answers) stops it as during the run: exit 128 + the signal,
/// saying nothing ran. It once found the default action, killing orch outright and
/// leaving its temporary directory behind.
#[test]
fn a_signal_while_reaching_the_nats_server_stops_the_run_before_it_starts() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: echo, config: { message: 1 } }\n",
    );
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("nats://{}", silent.local_addr().expect("its address"));
    let child = common::orch()
        .args(["run", "w.yaml", "--nats", &url])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("orch starts");
    // Connected: orch now waits for the server's greeting.
    let (_connection, _) = silent.accept().expect("orch connects");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM sent");
    let (code, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
    assert_eq!(code, Some(143), "{stdout}{stderr}");
    assert!(
        stderr.contains("stopped before the run started"),
        "{stderr}"
    );
}

/// A program is looked up as `execvp` looks it up: a file of that name this user may not
/// execute (another user's, executable by its owner only) is passed over for the next one
/// on the `PATH`.
#[test]
fn a_program_this_user_may_not_execute_is_passed_over_on_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let mode = std::fs::Permissions::from_mode;
    // Executable by its owner (root) only, or by others only: never by this user.
    let barred = if as_root() { 0o700 } else { 0o011 };
    for (place, bits) in [("first", barred), ("second", 0o755)] {
        std::fs::create_dir(dir.join(place)).expect("a directory");
        std::fs::set_permissions(dir.join(place), mode(0o755)).expect("permissions");
        let tool = dir.write(
            &format!("{place}/tool"),
            &format!("#!/bin/sh\necho {place}\n"),
        );
        std::fs::set_permissions(&tool, mode(bits)).expect("permissions");
    }
    let path = format!(
        "{}:{}",
        dir.join("first").display(),
        dir.join("second").display()
    );
    dir.write(
        "w.yaml",
        &format!(
            "workflow_id: w\ntasks:\n  t: {{ task_type: command, config: {{ program: tool, env: {{ PATH: '{path}' }} }} }}\n"
        ),
    );
    let (code, stdout, stderr) = parts(&run_as_a_user(&dir, &["run", "w.yaml", "-o", "r.json"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(dir.json("r.json")["tasks"]["t"]["result"], "second");
}

/// A working directory this user may not enter is named with its task, as a missing one
/// is, not reported as the program failing to start.
#[test]
fn a_working_directory_this_user_may_not_enter_is_named_with_its_task() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    std::fs::create_dir(dir.join("locked")).expect("a directory");
    // Root's and closed to others, or this user's without the right to enter it.
    let bits = if as_root() { 0o700 } else { 0o600 };
    std::fs::set_permissions(dir.join("locked"), std::fs::Permissions::from_mode(bits))
        .expect("permissions");
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  t: { task_type: command, config: { program: 'true', cwd: locked } }\n",
    );
    let (code, stdout, stderr) = parts(&run_as_a_user(&dir, &["run", "w.yaml", "-o", "r.json"]));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(
        error(&dir.json("r.json"), "t"),
        "working directory `locked` of task `t` cannot be entered (no permission)"
    );
}
