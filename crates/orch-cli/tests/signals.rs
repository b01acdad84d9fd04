//! A closed terminal or dropped connection (SIGHUP) and SIGQUIT stop a run as SIGTERM
//! does: the commands are stopped, the result is written, the exit code names the signal.

mod common;

use common::{Dir, alive, parts, start_sleeper, wait_for};
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
