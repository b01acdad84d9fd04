//! `orch worker` and `orch run --nats` end to end, on a real nats-server on loopback: the
//! tasks run in the worker process (with its environment and directory), dependency
//! results travel to it, Ctrl-C stops it cleanly, and credentials never go on a command
//! line.

mod common;

use std::io::BufRead;
use std::process::Stdio;

use common::nats::{NatsServer, WorkerProcess, free_port};
use common::{Dir, alive, as_root, orch, output, parts, pid_in, run_as_a_user, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

/// A workflow whose tasks can only succeed on the worker: `where` forwards `WORKER_MARK`,
/// which only the worker's environment has (forwarding a variable that is not set fails a
/// task), and `here` prints the directory it runs in (the worker's `--dir`).
const WORKFLOW: &str = r#"workflow_id: remote
tasks:
  where:
    task_type: command
    config: { shell: true, script: 'echo "{\"mark\": \"$WORKER_MARK\", \"pid\": $PPID}"', forward_env: [WORKER_MARK] }
  here:
    task_type: command
    config: { program: pwd }
  nap:
    task_type: sleep
    config: { seconds: 0.05 }
  hello:
    task_type: echo
    config: { message: { greeting: hi } }
  sum:
    task_type: command
    dependencies: [where, hello]
    config: { shell: true, script: 'cat "$ORCH_INPUTS_DIR/where.json" "$ORCH_INPUTS_DIR/hello.json" | tr -d "\n"; echo " $ORCH_INPUTS_DIR"' }
"#;

/// Runs `orch run w.yaml --nats URL --output r.json EXTRA...` in `dir`, without
/// `WORKER_MARK` in its environment.
fn run_remote(dir: &Dir, url: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut run = orch();
    run.args(["run", "w.yaml", "--nats", url, "--output", "r.json"])
        .args(extra)
        .env_remove("WORKER_MARK")
        .current_dir(dir.path());
    parts(&output(run))
}

/// A worker named by default goes by the machine's host name, which shells do not export
/// as `HOSTNAME` (and which may say something else): it used to be named `worker-<pid>`
/// when `HOSTNAME` was not exported.
#[test]
fn a_worker_is_named_after_its_host_by_default() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let host = nix::unistd::gethostname().expect("the host name");
    let host = host.to_str().expect("text");
    let worker = WorkerProcess::start(&server.url(), &[], &[("HOSTNAME", "not-the-host")]);
    let expected = format!("worker {host}-{} serving", worker.pid());
    assert!(worker.banner.starts_with(&expected), "{}", worker.banner);
}

/// A worker's name is written escaped, as all of orch's output is: one given with a
/// terminal escape sequence or a line break does not reach the terminal as such.
#[test]
fn a_workers_name_is_written_escaped() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let name = "w\u{1b}]0;x\u{7}\nworker y";
    let worker = WorkerProcess::start(&server.url(), &["--name", name], &[]);
    assert!(
        (worker.banner).starts_with("worker w\\u{1b}]0;x\\u{7}\\u{a}worker y serving"),
        "{}",
        worker.banner
    );
}

#[test]
fn a_run_with_nats_executes_every_task_on_the_worker() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    let worker_dir = Dir::new();
    dir.write("w.yaml", WORKFLOW);
    let mut worker = WorkerProcess::start(
        &server.url(),
        &[
            "--name",
            "w1",
            "--dir",
            &worker_dir.path().display().to_string(),
        ],
        &[("WORKER_MARK", "on-the-worker")],
    );
    assert!(
        worker
            .banner
            .starts_with("worker w1 serving command, sleep, echo"),
        "{}",
        worker.banner
    );

    let (code, stdout, stderr) = run_remote(
        &dir,
        &server.url(),
        &["--max-concurrent", "4", "--progress", "lines"],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // Closing the connection at the end is no cause for a warning.
    assert!(!stderr.contains("WARN"), "{stderr}");

    let result = dir.json("r.json");
    assert_eq!(result["status"], "completed");
    let task = |id: &str| result["tasks"][id]["result"].clone();
    assert_eq!(task("where")["mark"], "on-the-worker");
    // The command's shell was started by the worker process.
    assert_eq!(task("where")["pid"], json!(worker.pid()));
    let worker_dir_path = std::fs::canonicalize(worker_dir.path()).expect("canonical");
    assert_eq!(task("here"), json!(worker_dir_path.display().to_string()));
    assert_eq!(task("nap"), json!(null));
    assert_eq!(task("hello"), json!({"greeting": "hi"}));
    // The dependencies' results reached the worker as files, removed after the attempt.
    let sum = task("sum");
    let sum = sum.as_str().expect("text");
    let (inputs, inputs_dir) = sum
        .rsplit_once(' ')
        .expect("the inputs and their directory");
    let expected = format!(
        "{}{}",
        json!({"mark": "on-the-worker", "pid": worker.pid()}),
        json!({"greeting": "hi"})
    );
    assert_eq!(inputs.replace(' ', ""), expected);
    assert!(!std::path::Path::new(inputs_dir).exists());

    // Ctrl-C stops the worker cleanly.
    kill(Pid::from_raw(worker.pid()), Signal::SIGINT).expect("signal the worker");
    let status = worker.child.wait().expect("the worker exits");
    assert!(status.success(), "{status:?}");
    let mut last = String::new();
    worker.out.read_line(&mut last).expect("its last line");
    assert_eq!(last.trim(), "worker stopped");
    assert!(!alive(worker.pid()));
}

/// A task that fails on a worker is logged there, with its id and error: the
/// coordinator's record does not say which worker it failed on.
#[test]
fn a_task_that_fails_on_a_worker_is_logged_by_that_worker() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: w\ntasks:\n  needs_a_secret: { task_type: command, config: \
         { program: 'true', forward_env: [ORCH_TEST_NEVER_SET] } }\n",
    );
    let log_path = dir.join("worker.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let mut worker = WorkerProcess::start_logging(
        &server.url(),
        &[],
        &[("RUST_LOG", "info")],
        Stdio::from(log),
    );
    let (code, stdout, stderr) = run_remote(&dir, &server.url(), &[]);
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    kill(Pid::from_raw(worker.pid()), Signal::SIGINT).expect("signal the worker");
    worker.child.wait().expect("the worker exits");
    let logged = std::fs::read_to_string(&log_path).expect("the worker's log");
    let line = logged
        .lines()
        .find(|line| line.contains("the task failed"))
        .unwrap_or_else(|| panic!("no failure in the worker's log:\n{logged}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("needs_a_secret"), "{line}");
    assert!(line.contains("`ORCH_TEST_NEVER_SET`"), "{line}");
}

/// Starts a worker with `worker_args` (and `--dir` the test's directory) and a
/// coordinator running one long command on it; returns both once the command runs, with
/// the command's pid.
fn start_long_command(
    server: &NatsServer,
    dir: &Dir,
    worker_args: &[&str],
) -> (WorkerProcess, std::process::Child, i32) {
    start_command(
        server,
        dir,
        worker_args,
        "echo $$ > long.pid; exec sleep 300",
    )
}

/// [`start_long_command`], the command being the shell script `script` (which writes
/// its pid to `long.pid`).
fn start_command(
    server: &NatsServer,
    dir: &Dir,
    worker_args: &[&str],
    script: &str,
) -> (WorkerProcess, std::process::Child, i32) {
    dir.write(
        "w.yaml",
        &format!(
            "workflow_id: long\ntasks:\n  long: {{ task_type: command, config: {{ shell: true, script: '{script}' }} }}\n"
        ),
    );
    start_workflow(server, dir, worker_args, &[])
}

/// Starts a worker with `worker_args` and `env` (and `--dir` the test's directory) and a
/// coordinator running `w.yaml` on it, whose task `long` writes its pid to `long.pid`;
/// returns both once `long` runs, with its pid.
fn start_workflow(
    server: &NatsServer,
    dir: &Dir,
    worker_args: &[&str],
    env: &[(&str, &str)],
) -> (WorkerProcess, std::process::Child, i32) {
    let place = dir.path().display().to_string();
    let log = std::fs::File::create(dir.join("worker.log")).expect("a log file");
    let worker = WorkerProcess::start_logging(
        &server.url(),
        &[&["--dir", &place][..], worker_args].concat(),
        env,
        Stdio::from(log),
    );
    let coordinator = orch()
        .args([
            "run",
            "w.yaml",
            "--nats",
            &server.url(),
            "--progress",
            "none",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("orch run starts");
    wait_for("the command to start on the worker", || {
        dir.join("long.pid").exists()
    });
    let command = pid_in(&dir.join("long.pid"));
    (worker, coordinator, command)
}

#[test]
fn ctrl_c_on_the_coordinator_stops_the_command_on_the_worker() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    let (_worker, mut coordinator, command) = start_long_command(&server, &dir, &[]);
    assert!(alive(command));
    kill(Pid::from_raw(coordinator.id() as i32), Signal::SIGINT).expect("signal orch run");
    let status = coordinator.wait().expect("orch run ends");
    assert_eq!(status.code(), Some(130));
    wait_for("the worker to stop the command", || !alive(command));
}

#[test]
fn a_task_type_no_worker_serves_fails_after_the_worker_timeout() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: lonely\ntasks:\n  a: { task_type: echo, config: { message: 1 } }\n",
    );
    let (code, stdout, stderr) = run_remote(
        &dir,
        &server.url(),
        &["--worker-timeout", "300ms", "--progress", "none"],
    );
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let result = dir.json("r.json");
    assert_eq!(result["tasks"]["a"]["status"], "failed");
    let error = result["tasks"]["a"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("echo"), "{error}");
}

/// A worker given `--types` serves those types only: a task of another type is left to
/// other workers (here there are none, so it fails after the worker timeout).
#[test]
fn a_worker_serves_only_the_types_it_is_given() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    dir.write(
        "w.yaml",
        "workflow_id: picky\ntasks:\n  a: { task_type: echo, config: { message: 1 } }\n  \
         b: { task_type: command, config: { program: 'true' } }\n",
    );
    let worker = WorkerProcess::start(&server.url(), &["--types", "echo,sleep,echo"], &[]);
    assert!(
        worker.banner.contains(" serving sleep, echo (up to"),
        "{}",
        worker.banner
    );
    let (code, stdout, stderr) = run_remote(
        &dir,
        &server.url(),
        &["--worker-timeout", "1s", "--progress", "none"],
    );
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let result = dir.json("r.json");
    assert_eq!(result["tasks"]["a"]["status"], "completed");
    assert_eq!(result["tasks"]["b"]["status"], "failed");
    let error = result["tasks"]["b"]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("no worker serves task type `command`"),
        "{error}"
    );
}

#[test]
fn a_type_the_worker_cannot_serve_is_refused_naming_it() {
    let mut command = orch();
    command.args([
        "worker",
        "--types",
        "echo,shell",
        "--nats",
        "nats://127.0.0.1:1",
    ]);
    let (code, stdout, stderr) = parts(&output(command));
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("'shell'") && stderr.contains("command, sleep, echo"),
        "{stderr}"
    );
}

#[test]
fn credentials_in_a_url_on_the_command_line_are_refused_without_being_shown() {
    for args in [
        vec!["worker", "--nats", "nats://alice:hunter2@127.0.0.1:4222"],
        vec!["run", "w.yaml", "--nats", "nats://hunter2@127.0.0.1:4222"],
    ] {
        let dir = Dir::new();
        dir.write(
            "w.yaml",
            "workflow_id: w\ntasks:\n  a: { task_type: echo }\n",
        );
        let mut command = orch();
        command.args(&args).current_dir(dir.path());
        let (code, stdout, stderr) = parts(&output(command));
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("ORCH_NATS_PASSWORD"), "{stderr}");
        assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"));
    }
}

#[test]
fn a_worker_with_no_server_to_reach_says_so() {
    let mut command = orch();
    let url = format!("nats://127.0.0.1:{}", free_port());
    command.args(["worker", "--nats", &url]);
    let (code, stdout, stderr) = parts(&output(command));
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("orch worker: cannot serve tasks"),
        "{stderr}"
    );
    assert!(stderr.contains("127.0.0.1"), "{stderr}");
}

/// A `--dir` that is not a directory, or that this user may not enter, is refused at
/// start-up, naming the flag and the path, before the worker connects (the server named
/// is not there): otherwise every command task would fail on its working directory.
#[test]
fn a_dir_that_is_no_directory_to_enter_is_refused_before_connecting() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    dir.write("afile", "");
    std::fs::create_dir(dir.join("locked")).expect("a directory");
    // Root's and closed to others, or this user's without the right to enter it.
    let bits = if as_root() { 0o700 } else { 0o600 };
    std::fs::set_permissions(dir.join("locked"), std::fs::Permissions::from_mode(bits))
        .expect("permissions");
    let url = format!("nats://127.0.0.1:{}", free_port());
    for (place, problem) in [
        ("afile", "is not a directory"),
        ("locked", "cannot be entered (no permission)"),
    ] {
        let args = ["worker", "--dir", place, "--nats", &url];
        let (code, stdout, stderr) = parts(&run_as_a_user(&dir, &args));
        assert_eq!(code, Some(2), "{stdout}{stderr}");
        assert_eq!(stderr, format!("orch worker: --dir {place}: {problem}\n"));
    }
}

/// A signal while the worker is still connecting (to a server that takes the connection
/// and never answers) stops it at once, with 128 + the signal's number, instead of waiting
/// for the connection to time out.
#[test]
fn a_signal_while_connecting_stops_the_worker_with_its_number() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("the port").port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut command = orch();
    command
        .args(["worker", "--nats", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut worker = command.spawn().expect("the worker starts");
    let mut connection = None;
    wait_for("the worker to connect", || {
        let ended = worker.try_wait().expect("the worker's state");
        assert!(ended.is_none(), "the worker ended before connecting");
        connection = listener.accept().ok();
        connection.is_some()
    });
    kill(Pid::from_raw(worker.id() as i32), Signal::SIGTERM).expect("signal the worker");
    let mut status = None;
    wait_for("the worker to stop", || {
        status = worker.try_wait().expect("the worker's state");
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(128 + 15));
}

#[test]
fn credentials_come_from_the_environment() {
    let Some(server) =
        NatsServer::start_with_config(Some("authorization { token: \"t0ken-xyz\" }"))
    else {
        return;
    };
    // Without the token, the server refuses the worker.
    let mut refused = orch();
    refused
        .args(["worker", "--nats", &server.url()])
        .env_remove("ORCH_NATS_TOKEN");
    let (code, stdout, stderr) = parts(&output(refused));
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    // With it (from the environment), the worker serves; the token shows nowhere.
    let mut worker = WorkerProcess::start(
        &server.url(),
        &["--name", "w2"],
        &[("ORCH_NATS_TOKEN", "t0ken-xyz")],
    );
    assert!(
        worker.banner.starts_with("worker w2 serving"),
        "{}",
        worker.banner
    );
    assert!(!worker.banner.contains("t0ken-xyz"));
    kill(Pid::from_raw(worker.pid()), Signal::SIGKILL).expect("kill the worker");
    worker.child.wait().expect("reaped");
}

/// A closed terminal or dropped connection (SIGHUP) and SIGQUIT stop a worker as Ctrl-C
/// does.
#[test]
fn sighup_and_sigquit_stop_a_worker_cleanly() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    for signal in [Signal::SIGHUP, Signal::SIGQUIT] {
        let mut worker = WorkerProcess::start(&server.url(), &[], &[]);
        kill(Pid::from_raw(worker.pid()), signal).expect("signal the worker");
        let status = worker.child.wait().expect("the worker exits");
        assert!(status.success(), "{signal}: {status:?}");
        let mut last = String::new();
        worker.out.read_line(&mut last).expect("its last line");
        assert_eq!(last.trim(), "worker stopped", "{signal}");
    }
}

/// A second Ctrl-C ends the shutdown grace at once: the running command is stopped and
/// its task handed back, and the worker exits.
#[test]
fn a_second_ctrl_c_stops_a_worker_without_waiting_for_the_grace() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    // A command that shows it runs: a line in `beats` every 20 ms.
    let script = "echo $$ > long.pid; while true; do echo . >> beats; sleep 0.02; done";
    let (mut worker, mut coordinator, command) =
        start_command(&server, &dir, &["--shutdown-grace", "10m"], script);
    let worker_pid = Pid::from_raw(worker.pid());
    kill(worker_pid, Signal::SIGINT).expect("signal the worker");
    // The first asks the command to finish, within the grace: it goes on, seen by its
    // beats after the worker took the signal.
    let log = || std::fs::read_to_string(dir.join("worker.log")).unwrap_or_default();
    wait_for("the worker to take the signal", || {
        log().contains("stopping: no new tasks")
    });
    let beats = || std::fs::read_to_string(dir.join("beats")).map_or(0, |b| b.len());
    let taken = beats();
    wait_for("the command to run on", || beats() >= taken + 10);
    assert!(alive(command));
    kill(worker_pid, Signal::SIGINT).expect("signal the worker again");
    wait_for("the worker to stop the command", || !alive(command));
    let status = worker.child.wait().expect("the worker exits");
    assert!(status.success(), "{status:?}");
    // Handed back: another worker gets the task at once, not after the 30 s in which
    // the server waits for a silent worker.
    std::fs::remove_file(dir.join("long.pid")).expect("the first pid file");
    let place = dir.path().display().to_string();
    let mut second = WorkerProcess::start(&server.url(), &["--dir", &place], &[]);
    let handed_back = std::time::Instant::now();
    while !dir.join("long.pid").exists() {
        assert!(
            handed_back.elapsed() < std::time::Duration::from_secs(20),
            "the task was not handed back"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let again = pid_in(&dir.join("long.pid"));
    kill(Pid::from_raw(second.pid()), Signal::SIGKILL).expect("stop the second worker");
    second.child.wait().expect("reaped");
    let _ = kill(Pid::from_raw(again), Signal::SIGKILL);
    kill(Pid::from_raw(coordinator.id() as i32), Signal::SIGKILL).expect("stop orch run");
    let _ = coordinator.wait();
}

/// A command still running when the shutdown grace ends is stopped politely (SIGTERM)
/// before its task is handed back: its clean-up runs.
#[test]
fn a_stopping_worker_stops_a_command_politely_after_the_grace() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    let script = "trap \"echo stopped > term.txt; exit 1\" TERM; echo $$ > long.pid; while true; do sleep 0.1; done";
    let (mut worker, mut coordinator, command) =
        start_command(&server, &dir, &["--shutdown-grace", "1s"], script);
    kill(Pid::from_raw(worker.pid()), Signal::SIGINT).expect("signal the worker");
    let status = worker.child.wait().expect("the worker exits");
    assert!(status.success(), "{status:?}");
    assert!(!alive(command));
    let cleaned = std::fs::read_to_string(dir.join("term.txt")).expect("the trap ran");
    assert_eq!(cleaned.trim(), "stopped");
    kill(Pid::from_raw(coordinator.id() as i32), Signal::SIGKILL).expect("stop orch run");
    let _ = coordinator.wait();
}

/// Stopped while its server is gone, a worker still exits: it once waited for ever to
/// send its last acknowledgements to a server that was not coming back.
#[test]
fn a_worker_whose_server_is_gone_still_stops() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    let log_path = dir.join("worker.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let grace = ["--shutdown-grace", "500ms"];
    let mut worker = WorkerProcess::start_logging(&server.url(), &grace, &[], Stdio::from(log));
    drop(server);
    kill(Pid::from_raw(worker.pid()), Signal::SIGINT).expect("signal the worker");
    wait_for("the worker to exit", || {
        worker.child.try_wait().expect("its status").is_some()
    });
    let status = worker.child.wait().expect("the worker exits");
    assert!(status.success(), "{status:?}");
    // The grace as given, not cut to whole seconds.
    let log = std::fs::read_to_string(&log_path).expect("the worker's log");
    assert!(log.contains("running ones have 500ms to finish"), "{log}");
}

/// A third Ctrl-C ends a stopping worker at once, whatever it still waits for (here the
/// last acknowledgements, for a server that is gone), with 128 + the signal's number.
#[test]
fn a_third_ctrl_c_ends_a_stopping_worker_at_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    let log = std::fs::File::create(dir.join("worker.log")).expect("a log file");
    let mut worker = WorkerProcess::start_logging(&server.url(), &[], &[], Stdio::from(log));
    drop(server);
    let status = ctrl_c_three_times(&mut worker, &dir);
    assert_eq!(status.code(), Some(130), "{status:?}");
}

/// Sends the worker, which logs to `worker.log` in `dir`, three SIGINTs, each once it
/// took the one before (signals sent together may arrive as one); its exit status.
fn ctrl_c_three_times(worker: &mut WorkerProcess, dir: &Dir) -> std::process::ExitStatus {
    let log = || std::fs::read_to_string(dir.join("worker.log")).unwrap_or_default();
    for took in ["stopping: no new tasks", "stopping now", ""] {
        kill(Pid::from_raw(worker.pid()), Signal::SIGINT).expect("signal the worker");
        wait_for(&format!("the worker to log `{took}`"), || {
            log().contains(took)
        });
    }
    wait_for("the worker to exit", || {
        worker.child.try_wait().expect("its status").is_some()
    });
    worker.child.wait().expect("the worker exits")
}

/// A third signal ends the worker at once, and no command it ran outlives it, not even
/// one that ignores the polite stop (SIGTERM): the task goes to another worker, and must
/// not run twice at the same time.
#[test]
fn a_third_ctrl_c_kills_the_commands_still_running() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    let script = "trap \"\" TERM; echo $$ > long.pid; exec sleep 300";
    let (mut worker, mut coordinator, command) =
        start_command(&server, &dir, &["--shutdown-grace", "10m"], script);
    let status = ctrl_c_three_times(&mut worker, &dir);
    assert_eq!(status.code(), Some(130), "{status:?}");
    wait_for("the command to be killed", || !alive(command));
    kill(Pid::from_raw(coordinator.id() as i32), Signal::SIGKILL).expect("stop orch run");
    let _ = coordinator.wait();
}

/// A third signal leaves no dependency results behind: the worker's directory of them
/// goes with it.
#[test]
fn a_third_ctrl_c_leaves_no_dependency_results_behind() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = Dir::new();
    let temp = tempfile::tempdir().expect("a temporary directory");
    dir.write(
        "w.yaml",
        "workflow_id: deps\ntasks:\n  a: { task_type: echo, config: { message: secret } }\n  long: { task_type: command, dependencies: [a], config: { shell: true, script: 'echo $$ > long.pid; exec sleep 300' } }\n",
    );
    let tmp = temp.path().display().to_string();
    let (mut worker, mut coordinator, _) =
        start_workflow(&server, &dir, &[], &[("TMPDIR", tmp.as_str())]);
    let entries = || std::fs::read_dir(temp.path()).expect("listed").count();
    assert!(
        entries() > 0,
        "the worker keeps its dependency results there"
    );
    let status = ctrl_c_three_times(&mut worker, &dir);
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_eq!(entries(), 0, "nothing left in the worker's TMPDIR");
    kill(Pid::from_raw(coordinator.id() as i32), Signal::SIGKILL).expect("stop orch run");
    let _ = coordinator.wait();
}

/// `orch run --help` and `orch worker --help` name every NATS variable, and say that
/// `orch run` sends tasks to workers only with `--nats`.
#[test]
fn the_help_of_run_and_worker_names_the_nats_variables() {
    let dir = Dir::new();
    for command in ["run", "worker"] {
        let (code, help, _) = parts(&common::run_in(&dir, &[command, "--help"]));
        assert_eq!(code, Some(0), "{command}");
        for variable in [
            "URL",
            "USER",
            "PASSWORD",
            "TOKEN",
            "NKEY_SEED",
            "CREDS",
            "TLS_CA",
            "TLS_CERT",
            "TLS_KEY",
            "NAME",
        ] {
            assert!(
                help.contains(&format!("ORCH_NATS_{variable}")),
                "{command}: {help}"
            );
        }
        assert!(help.contains("only with --nats"), "{command}: {help}");
    }
}
