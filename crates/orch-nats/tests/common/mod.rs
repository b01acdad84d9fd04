//! A throwaway nats-server with JetStream for the tests: started on a free loopback port
//! with its store in a temporary directory, killed (by its pid) when dropped.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orch_nats::NatsConfig;

/// A running nats-server.
pub struct NatsServer {
    child: Child,
    args: Vec<std::ffi::OsString>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server with JetStream, or `None` (with the reason printed) when
    /// nats-server is not installed; under `CI=true` a missing server fails the test.
    pub fn start() -> Option<Self> {
        Self::start_with_config(None)
    }

    /// Starts a server with the configuration text `config` (JetStream and the port are
    /// given on the command line).
    pub fn start_with_config(config: Option<&str>) -> Option<Self> {
        if Command::new("nats-server")
            .arg("--version")
            .output()
            .is_err()
        {
            let reason = "nats-server is not installed (apt-get install nats-server)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{reason}: CI must run these tests"
            );
            eprintln!("skipping: {reason}");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let mut args: Vec<std::ffi::OsString> =
            ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]
                .iter()
                .map(Into::into)
                .collect();
        args.push(dir.path().join("store").into());
        if let Some(config) = config {
            let path = dir.path().join("server.conf");
            std::fs::write(&path, config).expect("write the server config");
            args.push("-c".into());
            args.push(path.into());
        }
        let child = Command::new("nats-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let server = Self {
            child,
            args,
            port,
            _dir: dir,
        };
        server.wait_until_listening();
        Some(server)
    }

    /// Stops the server (SIGKILL) and starts it again on the same port and store, as a
    /// crash and restart would.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut command = Command::new("nats-server");
        command
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = command.spawn().expect("start nats-server again");
        self.wait_until_listening();
    }

    fn wait_until_listening(&self) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nats-server did not listen on port {} within 20 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn config(&self) -> NatsConfig {
        NatsConfig::new(self.url())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> PathBuf {
        self._dir.path().join("store")
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

/// A worker process (`tests/bin/worker.rs`), killed by its pid when dropped.
pub struct WorkerProcess {
    child: Child,
    pub name: String,
}

/// Settings of the worker processes of one test.
#[derive(Clone, Copy)]
pub struct WorkerSettings {
    pub ack_wait_ms: u64,
    pub max_deliver: u32,
    pub shutdown_grace_ms: u64,
}

impl WorkerProcess {
    /// Starts a worker and waits until it serves.
    pub fn start(server: &NatsServer, name: &str, side: &Path, settings: WorkerSettings) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_orch-nats-test-worker"))
            .arg(server.url())
            .arg(name)
            .arg(side)
            .arg(settings.ack_wait_ms.to_string())
            .arg(settings.max_deliver.to_string())
            .arg(settings.shutdown_grace_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a worker process");
        let stdout = child.stdout.take().expect("its output");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read the worker's output");
        assert_eq!(first.trim(), "ready", "worker `{name}` did not start");
        Self {
            child,
            name: name.to_owned(),
        }
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the worker");
        self.child.wait().expect("reap the worker");
    }

    /// Closes its standard input (its signal to stop) and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        self.child.wait().expect("the worker exits")
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of a side file: `(what, task, attempt, worker)`.
pub fn side_lines(path: &Path) -> Vec<(String, String, u32, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            Some((
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
                parts.next()?.parse().ok()?,
                parts.next()?.to_owned(),
            ))
        })
        .collect()
}

/// Waits until `done` holds; the bound only keeps a broken test from hanging.
pub async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the condition did not hold within 30 s");
}

/// Returns once the server has read everything `client` sent before (its subscriptions
/// included): `flush` only writes to the socket. A request nobody answers comes back as
/// the server's "no responders" status, read after them.
pub async fn subscriptions_in_place(client: &async_nats::Client) {
    let answer = client
        .request(client.new_inbox(), bytes::Bytes::new())
        .await
        .expect_err("nobody answers a fresh inbox");
    assert_eq!(
        answer.kind(),
        async_nats::client::RequestErrorKind::NoResponders,
        "{answer}"
    );
}
