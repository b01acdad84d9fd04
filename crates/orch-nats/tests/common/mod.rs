//! What orch-nats's tests share: a throwaway nats-server (`server.rs`), a network outage
//! for one client (`outage.rs`), worker processes
//! (`tests/bin/worker.rs`), each killed by its pid when dropped, and the side files
//! they write.

#![allow(dead_code, unreachable_pub)]

mod captured_log;
mod outage;
pub mod permissions;
mod server;

#[allow(unused_imports)] // not every test file uses each
pub use captured_log::{CapturedLog, capture_log};
#[allow(unused_imports)]
pub use outage::Outage;
#[allow(unused_imports)]
pub use server::{NatsServer, free_port};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// A chain of `n` tasks of type `task_type`, `t0` to `t<n-1>`, each after the one before.
pub fn chain(n: usize, task_type: &str) -> orch_core::Workflow {
    orch_core::Workflow::from_tasks(
        "chain",
        "Chain",
        (0..n).map(|i| {
            let task = orch_core::Task::new(format!("t{i}"), task_type);
            if i == 0 {
                task
            } else {
                task.depends_on([format!("t{}", i - 1)])
            }
        }),
    )
}

/// Runs `workflow` on its own task; the run fails the test if it has not ended within a
/// minute (a bound on a broken test, not a timing).
pub fn run_in_background(
    engine: &orch_engine::WorkflowEngine,
    workflow: &orch_core::Workflow,
) -> tokio::task::JoinHandle<orch_core::WorkflowResult> {
    let run = engine.run(workflow);
    tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the run ended within a minute")
            .expect("a valid workflow")
    })
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

/// Waits until the future `done` makes answers true; the bound only keeps a broken test
/// from hanging.
pub async fn wait_for_async<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) {
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
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

/// Waits until the tasks stream holds `count` messages (0: every task message
/// acknowledged); the bound only keeps a broken test from hanging.
#[allow(dead_code)] // not every test binary counts task messages
pub async fn wait_for_task_messages(js: &async_nats::jetstream::Context, count: u64) {
    let mut tasks = js.get_stream("ORCH_TASKS").await.expect("the stream");
    for _ in 0..3000 {
        if tasks.info().await.expect("info").state.messages == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the tasks stream did not hold {count} messages within 30 s");
}

/// Returns once the server `url`'s tasks stream (the default layout's) has forgotten the
/// message ids sent to it before: its window for repeated ids has passed for them, and
/// the server has acted on it (it forgets ids on a timer of its own). A probe sent now is
/// sent again until the stream takes it as new, which it does only once it forgot the
/// probe's id, and with it every older one. The probes are then removed.
#[allow(dead_code)] // not every test binary waits for the window
pub async fn past_duplicate_window(url: &str) {
    use async_nats::jetstream;
    const SUBJECT: &str = "orch.task.duplicate-window-probe";
    let js = jetstream::new(async_nats::connect(url).await.expect("connects"));
    let probe = || {
        jetstream::message::PublishMessage::build()
            .payload("probe".into())
            .message_id("duplicate-window-probe")
    };
    let mut sends = 0;
    loop {
        let sent = js.send_publish(SUBJECT, probe()).await.expect("sent");
        let stored = sent.await.expect("taken by the tasks stream");
        sends += 1;
        if sends > 1 && !stored.duplicate {
            break;
        }
        assert!(sends < 1200, "the stream kept a message id for a minute");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = js.get_stream("ORCH_TASKS").await.expect("the tasks stream");
    stream
        .purge()
        .filter(SUBJECT)
        .await
        .expect("the probes removed");
}

/// Publishes more on `client`, whose server is gone, than it holds (about 2,048
/// commands), and checks a second later that the connection is full: the returned task
/// waits for room, for the server to come back; abort it at the end of the test.
pub async fn fill_connection(client: async_nats::Client) -> tokio::task::JoinHandle<()> {
    let filler = tokio::spawn(async move {
        for n in 0..3_000 {
            let _ = client.publish("filler", n.to_string().into()).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!filler.is_finished(), "the connection is full");
    filler
}

/// Connects the worker `builder` makes to `server` and runs it until the token returned
/// is cancelled.
pub async fn run_worker(
    server: &NatsServer,
    builder: orch_nats::WorkerBuilder,
) -> tokio_util::sync::CancellationToken {
    let worker = builder
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    stop
}

/// An engine running up to `max_concurrent` tasks at once, whose task `types` run on
/// workers through a coordinator connected to `server` with `layout`.
pub async fn remote_engine(
    server: &NatsServer,
    layout: orch_nats::Layout,
    types: &[&str],
    max_concurrent: usize,
) -> orch_engine::WorkflowEngine {
    let remote = orch_nats::RemoteHandler::builder()
        .layout(layout)
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = orch_engine::WorkflowEngine::with_max_concurrent(max_concurrent).expect("valid");
    for task_type in types {
        engine.register_handler(*task_type, remote.clone());
    }
    engine
}
