//! A coordinator process for the crash test: runs (or continues) run `RUN_ID` of a
//! workflow of `TASKS` independent `slow` tasks of 5 ms on remote workers, recording it
//! in the JetStream journal, and prints `completed` when the run completes.
//!
//! Arguments: `URL RUN_ID TASKS`.

use orch_core::{RunId, Task, Workflow, WorkflowStatus};
use orch_engine::{Durability, WorkflowEngine};
use orch_nats::{Layout, NatsConfig, NatsJournal, RemoteHandler};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, run, tasks] = args.as_slice() else {
        eprintln!("usage: URL RUN_ID TASKS");
        std::process::exit(2);
    };
    let run = RunId::parse(run).expect("a run id");
    let tasks: usize = tasks.parse().expect("a number of tasks");
    let workflow = Workflow::from_tasks(
        "crash",
        "Crash",
        (0..tasks).map(|i| Task::new(format!("t{i}"), "slow").config(json!({"ms": 5}))),
    );
    let config = NatsConfig::new(url.clone());
    let journal = NatsJournal::connect(&config, &Layout::default())
        .await
        .expect("the journal connects");
    let engine = WorkflowEngine::builder()
        .journal(journal, Durability::Process)
        .max_concurrent(16)
        .build()
        .expect("valid settings");
    engine.register_handler(
        "slow",
        RemoteHandler::connect(&config)
            .await
            .expect("the coordinator connects"),
    );
    println!("started");
    let result = engine.run_durable(&workflow, run).await.expect("runs");
    if result.status == WorkflowStatus::Completed {
        println!("completed");
    } else {
        println!("ended {:?}", result.status);
    }
}
