//! A coordinator and N worker processes on one machine, through NATS JetStream: the
//! coordinator's engine runs a word count over a set of documents, each document counted
//! by whichever worker takes it, and a local report task adds the counts up.
//!
//! ```text
//! cargo run -p orch-nats --example distributed -- --workers 3
//! ```
//!
//! It uses the server at `ORCH_NATS_URL` (and the other `ORCH_NATS_*` settings) when
//! that is set; otherwise it starts a `nats-server -js` of its own on a free loopback
//! port, with its store in a temporary directory, and stops it at the end. Each worker
//! is this program again, started with `--worker NAME`; workers on other machines run
//! the same code with `ORCH_NATS_URL` pointing at a shared server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use orch_core::{Task, Workflow, WorkflowStatus};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{NatsConfig, RemoteHandler, Worker};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// What a worker reports for one document.
#[derive(Serialize, Deserialize)]
struct Counted {
    words: u64,
    worker: String,
}

/// The worker's handler: counts the words of the document in its configuration.
async fn count_words(ctx: TaskContext) -> Result<Counted, TaskError> {
    let text = ctx.config()["text"].as_str().unwrap_or_default();
    // Stand-in for real work (parsing, inference) that takes a while.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let worker = ctx.state::<String>()?.clone();
    Ok(Counted {
        words: text.split_whitespace().count() as u64,
        worker,
    })
}

/// The coordinator's local handler: adds up what the workers counted.
async fn report(ctx: TaskContext) -> Result<serde_json::Value, TaskError> {
    let mut words = 0;
    let mut by_worker: BTreeMap<String, u64> = BTreeMap::new();
    for (id, _) in ctx.dependency_results() {
        let counted: Counted = ctx.input(id)?;
        words += counted.words;
        *by_worker.entry(counted.worker).or_default() += 1;
    }
    Ok(json!({"words": words, "documents_by_worker": by_worker}))
}

/// The documents: sentence `i` repeated `i % 7 + 1` times.
fn documents(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("document {i} says hello to the workers. ").repeat(i % 7 + 1))
        .collect()
}

fn workflow(documents: &[String]) -> Workflow {
    let mut workflow = Workflow::new("word_count", "Distributed word count");
    for (i, text) in documents.iter().enumerate() {
        workflow
            .add_task(Task::new(format!("doc{i}"), "count_words").config(json!({"text": text})));
    }
    let all: Vec<String> = (0..documents.len()).map(|i| format!("doc{i}")).collect();
    workflow.add_task(Task::new("report", "report").depends_on(all));
    workflow
}

/// Serves `count_words` until standard input closes (the coordinator's signal to stop).
async fn run_worker(config: NatsConfig, name: String) -> Result<(), Box<dyn std::error::Error>> {
    let worker = Worker::builder()
        .name(name.clone())
        .state(name)
        .concurrency(2)
        .handler("count_words", count_words)
        .connect(&config)
        .await?;
    let stop = CancellationToken::new();
    let on_eof = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        on_eof.cancel();
    });
    println!("ready");
    worker.run(stop).await;
    Ok(())
}

async fn run_coordinator(
    config: NatsConfig,
    workers: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    // The coordinator creates the streams before workers look for them.
    let remote = RemoteHandler::connect(&config).await?;
    let url = config.servers.join(",");
    let mut children: Vec<Child> = Vec::new();
    for n in 1..=workers {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--worker", &format!("worker-{n}")])
            .env("ORCH_NATS_URL", &url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut ready = String::new();
        BufReader::new(child.stdout.take().ok_or("no output")?).read_line(&mut ready)?;
        if ready.trim() != "ready" {
            return Err(format!("worker-{n} did not start").into());
        }
        children.push(child);
    }
    let engine = WorkflowEngine::with_max_concurrent(16)?;
    engine.register_handler("count_words", remote);
    engine.register_handler("report", report);
    let documents = documents(40);
    let result = engine.execute_workflow(&workflow(&documents)).await?;
    let report = result.task("report").and_then(|t| t.result.clone());
    println!("status: {}", result.status.as_str());
    println!("report: {}", report.unwrap_or_default());
    for mut child in children {
        drop(child.stdin.take());
        child.wait()?;
    }
    if result.status != WorkflowStatus::Completed {
        return Err("the run did not complete".into());
    }
    Ok(())
}

/// A `nats-server -js` on a free loopback port, killed when dropped.
struct LocalServer {
    child: Child,
    _store: tempfile::TempDir,
}

impl LocalServer {
    fn start() -> Result<(Self, String), Box<dyn std::error::Error>> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start nats-server (is it installed?): {e}"))?;
        let server = LocalServer { child, _store: dir };
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok((server, format!("nats://127.0.0.1:{port}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("nats-server did not start listening".into())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut config = NatsConfig::from_env()?;
    match args.as_slice() {
        [flag, name] if flag == "--worker" => runtime.block_on(run_worker(config, name.clone())),
        rest => {
            let workers = match rest {
                [flag, n] if flag == "--workers" => match n.parse() {
                    Ok(workers) if workers > 0 => workers,
                    _ => {
                        return Err(
                            format!("--workers takes a count of 1 or more, not {n:?}").into()
                        );
                    }
                },
                [] => 3,
                _ => return Err("usage: distributed [--workers N] | --worker NAME".into()),
            };
            // Unset or empty, as `NatsConfig::from_env` takes it.
            let url_given = std::env::var_os("ORCH_NATS_URL").is_some_and(|url| !url.is_empty());
            let _server = if !url_given {
                let (server, url) = LocalServer::start()?;
                config.servers = vec![url];
                Some(server)
            } else {
                None
            };
            runtime.block_on(run_coordinator(config, workers))
        }
    }
}
