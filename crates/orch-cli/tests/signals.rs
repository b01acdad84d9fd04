//! A closed terminal or dropped connection (SIGHUP) and SIGQUIT stop a run as SIGTERM
//! does: the commands are stopped, the result is written, the exit code names the signal.

mod common;

use common::{Dir, alive, parts, spawn_until_pid_file, start_sleeper, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn sighup_and_sigquit_stop_the_commands_and_write_the_result() {
    for (signal, code) in [(Signal::SIGHUP, 129), (Signal::SIGQUIT, 131)] {
        let dir = Dir::new();
        let (child, pid) = start_sleeper(&dir, &["--output", "r.json"]);
        // Only orch gets the signal, not the command's process group.
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal sent");
        let (exit, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
        assert_eq!(exit, Some(code), "{signal}: {stdout}{stderr}");
        wait_for(&format!("{signal}: the command to end"), || !alive(pid));
        let result = dir.json("r.json");
        assert_eq!(result["tasks"]["a"]["status"], "cancelled", "{signal}");
        assert!(
            stdout.contains("workflow `w` was interrupted after"),
            "{signal}: {stdout}"
        );
    }
}

/// Under `nohup` (SIGHUP ignored when orch starts), a closed terminal does not stop the
/// run: orch leaves an ignored signal ignored.
#[test]
fn a_run_started_ignoring_sighup_keeps_running_through_one() {
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  a: { task_type: command, config: { shell: true, script: 'echo $$ > a.pid; sleep 1' } }\n",
    );
    // `trap '' HUP` makes the shell ignore SIGHUP, and `exec` hands that on to orch.
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", "trap '' HUP; exec \"$0\" run w.yaml --output r.json"])
        .arg(env!("CARGO_BIN_EXE_orch"))
        .env_remove("RUST_LOG");
    let (child, _) = spawn_until_pid_file(command, &dir, "a.pid");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).expect("signal sent");
    let (exit, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
    assert_eq!(exit, Some(0), "{stdout}{stderr}");
    assert_eq!(dir.json("r.json")["tasks"]["a"]["status"], "completed");
}

/// A second signal ends `orch run` at once: the command, which outlives SIGTERM and so
/// would have its 2 s before SIGKILL, is killed, and no summary or result file is
/// written.
#[test]
fn a_second_signal_ends_a_run_at_once() {
    let dir = Dir::new();
    let (child, pid) = stopping_run(&dir, Signal::SIGINT);
    let orch = Pid::from_raw(child.id() as i32);
    kill(orch, Signal::SIGTERM).expect("second signal sent");
    let (exit, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
    assert_eq!(exit, Some(143), "{stdout}{stderr}");
    assert!(
        stderr.contains("exiting at once: running commands killed; no result file written"),
        "{stderr}"
    );
    assert!(!stdout.contains("was interrupted"), "a summary: {stdout}");
    wait_for("the command to be killed", || !alive(pid));
    assert!(!dir.join("r.json").exists(), "a result file was written");
}

/// A second signal half a second after the first, while a command that ignores SIGTERM
/// keeps the run going: orch ends at once, with no summary on its standard output.
#[test]
fn a_run_ended_at_once_prints_no_summary() {
    let dir = Dir::new();
    let workflow = "workflow_id: t\ntasks:\n  a: { task_type: command, config: { program: sh, args: [-c, 'echo 1'] } }\n  b: { task_type: command, dependencies: [a], config: { shell: true, script: \"trap '' TERM; echo $$ > b.pid; sleep 30\" } }\n";
    let args = ["--output", "r.json", "--progress", "lines"];
    let (child, pid) = common::start_run(&dir, workflow, "b.pid", &args);
    let orch = Pid::from_raw(child.id() as i32);
    kill(orch, Signal::SIGTERM).expect("first signal sent");
    std::thread::sleep(std::time::Duration::from_millis(500));
    kill(orch, Signal::SIGTERM).expect("second signal sent");
    let (exit, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
    assert_eq!(exit, Some(143), "{stdout}{stderr}");
    assert!(!stdout.contains("was interrupted"), "a summary: {stdout}");
    wait_for("the command to be killed", || !alive(pid));
    assert!(!dir.join("r.json").exists(), "a result file was written");
}

/// A closed terminal may send SIGHUP twice (the shell passes it on, and the system sends
/// it again as the shell exits): the second is not taken as a second signal, and the run
/// stops as after one, writing its result.
#[test]
fn a_second_sighup_does_not_end_a_run_at_once() {
    let dir = Dir::new();
    let (child, pid) = stopping_run(&dir, Signal::SIGHUP);
    let orch = Pid::from_raw(child.id() as i32);
    kill(orch, Signal::SIGHUP).expect("second SIGHUP sent");
    let (exit, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
    assert_eq!(exit, Some(129), "{stdout}{stderr}");
    assert!(!stderr.contains("exiting at once"), "{stderr}");
    wait_for("the command to be killed", || !alive(pid));
    assert_eq!(dir.json("r.json")["tasks"]["a"]["status"], "cancelled");
}

/// Starts a run whose command outlives SIGTERM (and so has its 2 s before SIGKILL),
/// sends orch `first` and waits until orch asked the command to stop; orch and the
/// command's pid.
fn stopping_run(dir: &Dir, first: Signal) -> (std::process::Child, i32) {
    let (child, pid) = common::start_run(
        dir,
        "workflow_id: w\ntasks:\n  a: { task_type: command, config: { shell: true, script: 'trap \"echo > term.txt\" TERM; echo $$ > a.pid; while :; do sleep 1; done' } }\n",
        "a.pid",
        &["--output", "r.json"],
    );
    kill(Pid::from_raw(child.id() as i32), first).expect("signal sent");
    wait_for("the command's SIGTERM", || dir.join("term.txt").exists());
    (child, pid)
}

/// Orch's standard error may be a pipe nobody reads (a pager that stopped reading, with
/// every line orch logs stuck): a first signal still cancels the run and a second still
/// ends orch at once, killing the command.
#[test]
fn a_second_signal_ends_orch_while_its_standard_error_is_stuck() {
    let dir = Dir::new();
    let workflow = "workflow_id: w\ntasks:\n  a: { task_type: command, config: { shell: true, script: \"trap '' TERM; echo $$ > a.pid; yes 'a line for the log' >&2\" } }\n";
    let (mut child, pid) = common::start_run(&dir, workflow, "a.pid", &[]);
    // Time for the pipes between the command, orch and this test to fill.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let orch = Pid::from_raw(child.id() as i32);
    kill(orch, Signal::SIGINT).expect("first signal sent");
    std::thread::sleep(std::time::Duration::from_millis(500));
    kill(orch, Signal::SIGTERM).expect("second signal sent");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let ended = loop {
        match child.try_wait().expect("orch waited for") {
            Some(status) => break Some(status),
            None if std::time::Instant::now() > deadline => break None,
            None => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    if ended.is_none() {
        // Clean up what this test started: orch, and the command's process group.
        let _ = child.kill();
        let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
    }
    assert_eq!(
        ended.and_then(|status| status.code()),
        Some(143),
        "orch did not end"
    );
    wait_for("the command to be killed", || !alive(pid));
}
