//! A throwaway nats-server with JetStream for tests: started on a free loopback port with
//! its store in a temporary directory, killed (by its pid) when dropped. orch-cli's tests
//! use this file too (it needs nothing of orch-nats's own test programs).

#![allow(dead_code, unreachable_pub)]

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orch_nats::NatsConfig;

/// A running nats-server.
pub struct NatsServer {
    child: Child,
    args: Vec<std::ffi::OsString>,
    port: u16,
    dir: tempfile::TempDir,
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
        // A port found free may be taken before the server binds it: then the server
        // exits, and it starts again on another one.
        for _ in 0..5 {
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
            let mut child = Command::new("nats-server")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nats-server");
            if wait_until_listening(&mut child, port) {
                return Some(Self {
                    child,
                    args,
                    port,
                    dir,
                });
            }
        }
        panic!("nats-server exited at start on five free ports in a row");
    }

    /// Stops the server (SIGKILL) and starts it again on the same port and store, as a
    /// crash and restart would.
    pub fn restart(&mut self) {
        self.stop();
        let mut command = Command::new("nats-server");
        command
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = command.spawn().expect("start nats-server again");
        assert!(
            wait_until_listening(&mut self.child, self.port),
            "nats-server exited when started again on port {}",
            self.port
        );
    }

    /// Stops the server (SIGKILL), until [`NatsServer::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// [`NatsServer::restart`] with the configuration text `config` in place of the one
    /// it was started with (it must have been started with one).
    pub fn restart_with_config(&mut self, config: &str) {
        let path = self.dir.path().join("server.conf");
        assert!(
            self.args.iter().any(|arg| arg == path.as_os_str()),
            "the server was started without a configuration"
        );
        std::fs::write(&path, config).expect("write the server config");
        self.restart();
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

    /// Pauses the server's process (SIGSTOP), its connections left open: what a client
    /// sends piles up on its connection until that is full. Dropping the server ends it.
    #[allow(dead_code)] // not every test binary pauses its server
    pub fn pause(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).expect("a pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("paused");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server `child` answers on `port` with its greeting (`INFO`; a bare
/// connect can succeed without a server, when the client's own port happens to be
/// `port`); false if the server exited first.
fn wait_until_listening(child: &mut Child, port: u16) -> bool {
    let started = Instant::now();
    loop {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut greeting = [0u8; 4];
            if stream.read_exact(&mut greeting).is_ok() && &greeting == b"INFO" {
                return true;
            }
        }
        if started.elapsed() >= Duration::from_secs(20) {
            // Stopped before the test fails: a dropped `Child` would keep running.
            let _ = child.kill();
            let _ = child.wait();
            panic!("nats-server did not answer on port {port} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}
