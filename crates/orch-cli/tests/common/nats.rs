//! A throwaway `nats-server -js` for the `orch worker` tests, and `orch worker` processes;
//! both killed by their pid when dropped.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};

use super::{in_ci, installed, orch, wait_for};

/// A running nats-server with JetStream, its store in a temporary directory.
pub struct NatsServer {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts one on a free loopback port, or returns `None` with the reason printed when
    /// nats-server is not installed; under `CI=true` a missing server fails the test.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// Starts one that accepts only clients presenting `token`.
    pub fn start_with_token(token: &str) -> Option<Self> {
        Self::start_with(&["--auth", token])
    }

    fn start_with(extra: &[&str]) -> Option<Self> {
        if !installed("nats-server") {
            let reason = "nats-server is not installed (apt-get install nats-server)";
            assert!(!in_ci(), "{reason}: CI must run the worker tests");
            eprintln!("skipping: {reason}");
            return None;
        }
        let store = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        wait_for("nats-server to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(Self {
            child,
            port,
            _store: store,
        })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// An `orch worker` process.
pub struct WorkerProcess {
    pub child: Child,
    /// What it printed once it served.
    pub banner: String,
    /// The rest of its output (kept open: the worker prints when it stops).
    pub out: BufReader<ChildStdout>,
}

impl WorkerProcess {
    /// Starts `orch worker --nats URL ARGS...` with `env` added, and waits for the line it
    /// prints once it serves.
    pub fn start(url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = orch();
        command
            .args(["worker", "--nats", url])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("orch worker starts");
        let mut banner = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("its output"));
        out.read_line(&mut banner)
            .expect("read the worker's first line");
        Self { child, banner, out }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
