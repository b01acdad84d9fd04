//! A throwaway `nats-server -js` for the `orch worker` tests (orch-nats's test server),
//! and `orch worker` processes; both killed by their pid when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Stdio};

use super::orch;

#[path = "../../../orch-nats/tests/common/server.rs"]
mod server;

#[allow(unused_imports)] // only the worker tests use them
pub use server::{NatsServer, free_port};

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
        Self::start_logging(url, args, env, Stdio::inherit())
    }

    /// [`WorkerProcess::start`], with its log (its standard error) going to `log`.
    pub fn start_logging(url: &str, args: &[&str], env: &[(&str, &str)], log: Stdio) -> Self {
        let mut command = orch();
        command
            .args(["worker", "--nats", url])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log);
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
