//! Helpers for the end-to-end tests: the built `orch` binary, workflow files in a temporary
//! directory, and checks on processes by pid.

#![allow(dead_code, unreachable_pub)]

pub mod nats;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `orch` binary under test, with a clean log filter and its temporary files kept
/// under the build directory.
pub fn orch() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orch"));
    command.env_remove("RUST_LOG");
    // The directories of dependency results that a run killed outright leaves behind
    // (as a test means it to) go to the build's own temporary directory, not to /tmp.
    command.env("TMPDIR", env!("CARGO_TARGET_TMPDIR"));
    command
}

/// A temporary directory for one test's files.
pub struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to `name` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, text).expect("written");
        path
    }

    /// Reads `name` as JSON.
    pub fn json(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.join(name)).expect("the file exists");
        serde_json::from_str(&text).expect("JSON")
    }
}

/// Runs `orch ARGS` in `dir` and returns its output.
pub fn run_in(dir: &Dir, args: &[&str]) -> Output {
    let mut command = orch();
    command.args(args).current_dir(dir.path());
    output(command)
}

/// Runs `command` to its end and returns its output; kills it and fails the test if it
/// has not ended after two minutes (a guard against hanging, not a measure of speed).
pub fn output(mut command: Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let pid = child.id();
    let (done, ended) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if ended.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            return true;
        }
        false
    });
    let output = child.wait_with_output().expect("the command ends");
    let _ = done.send(());
    let killed = watchdog.join().unwrap_or(false);
    assert!(!killed, "the command hung and was killed: {command:?}");
    output
}

/// The exit code, standard output and standard error as text.
pub fn parts(output: &Output) -> (Option<i32>, String, String) {
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits until `condition` holds, failing the test with `what` after a minute (a guard
/// against hanging, not a measure of speed).
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether this test runs as root.
pub fn as_root() -> bool {
    let id = Command::new("id").arg("-u").output().expect("id runs");
    String::from_utf8_lossy(&id.stdout).trim() == "0"
}

/// Runs `orch ARGS` in `dir` as a user that is not root: as `nobody` (through `setpriv`)
/// when the test runs as root, else as the test's own user. `dir` is made writable by
/// everyone.
pub fn run_as_a_user(dir: &Dir, args: &[&str]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let open = std::fs::Permissions::from_mode(0o777);
    std::fs::set_permissions(dir.path(), open).expect("permissions");
    let mut command = match as_root() {
        true => {
            let mut command = Command::new("setpriv");
            command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
            command.arg(env!("CARGO_BIN_EXE_orch"));
            command
        }
        false => orch(),
    };
    command
        .env_remove("RUST_LOG")
        .args(args)
        .current_dir(dir.path());
    output(command)
}

/// Reads a pid that a command wrote to `path`.
pub fn pid_in(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}: {text:?}", path.display()))
}

/// Whether `CI=true`: then a missing tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `program` can be found on PATH.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A workflow whose only task, `a`, writes its pid to `a.pid` and sleeps for 5 minutes.
pub const SLEEPER: &str = "workflow_id: w\ntasks:\n  a: { task_type: command, config: { shell: true, script: 'echo $$ > a.pid; exec sleep 300' } }\n";

/// Starts `orch run w.yaml ARGS` in `dir` on [`SLEEPER`], output piped, and waits until its
/// command runs; returns orch and the command's pid.
pub fn start_sleeper(dir: &Dir, args: &[&str]) -> (std::process::Child, i32) {
    start_run(dir, SLEEPER, "a.pid", args)
}

/// Starts `orch run w.yaml ARGS` in `dir` with `workflow` as `w.yaml`, output piped, and
/// waits until a command wrote its pid to `pid_file`; returns orch and that pid.
pub fn start_run(
    dir: &Dir,
    workflow: &str,
    pid_file: &str,
    args: &[&str],
) -> (std::process::Child, i32) {
    dir.write("w.yaml", workflow);
    let mut command = orch();
    command.args(["run", "w.yaml"]).args(args);
    spawn_until_pid_file(command, dir, pid_file)
}

/// Starts `command` in `dir`, output piped, and waits until a command it runs wrote its
/// pid to `pid_file`; returns the process started and that pid.
pub fn spawn_until_pid_file(
    mut command: Command,
    dir: &Dir,
    pid_file: &str,
) -> (std::process::Child, i32) {
    let child = command
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orch starts");
    let pid_file = dir.join(pid_file);
    wait_for("the pid file", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n'))
    });
    (child, pid_in(&pid_file))
}

/// The error of `task` in a result file's JSON (empty when it has none).
pub fn task_error(result: &serde_json::Value, task: &str) -> String {
    result["tasks"][task]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
