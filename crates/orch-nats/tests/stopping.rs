//! A worker that stops while its request for tasks is still open on the server, against
//! a real nats-server: a task the request delivers late is handed back without using up
//! its deliveries, and runs on the next worker. Handed back at once, it went straight
//! back to the same open request, delivery after delivery, until it failed as "worker
//! lost" without ever running.

mod common;

use async_nats::jetstream::{self, consumer::PullConsumer};
use common::NatsServer;
use orch_core::{Task, TaskStatus, Workflow};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{RemoteHandler, Worker};
use tokio_util::sync::CancellationToken;

async fn echo_worker(server: &NatsServer, name: &str) -> Worker {
    Worker::builder()
        .name(name)
        // Room for more tasks than a task has deliveries.
        .concurrency(16)
        .handler("echo", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(ctx.task_id().to_string())
        })
        .connect(&server.config())
        .await
        .expect("the worker connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_delivered_to_a_stopping_worker_runs_on_the_next_one() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let remote = RemoteHandler::connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("echo", remote);
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));

    let stopping = echo_worker(&server, "stopping").await;
    let consumer: PullConsumer = js
        .get_consumer_from_stream("echo", "ORCH_TASKS")
        .await
        .expect("the worker set up its consumer");
    let stop = CancellationToken::new();
    let stopped = tokio::spawn(stopping.run(stop.clone()));
    // Its first request for tasks is open, with most of its two seconds to go.
    common::wait_for_async(|| {
        let mut consumer = consumer.clone();
        async move { consumer.info().await.expect("info").num_waiting > 0 }
    })
    .await;
    stop.cancel();
    let workflow = Workflow::new("w", "W").task(Task::new("late", "echo"));
    let run = common::run_in_background(&engine, &workflow);
    stopped.await.expect("the worker stops");

    let next = echo_worker(&server, "next").await;
    let stop_next = CancellationToken::new();
    tokio::spawn(next.run(stop_next.clone()));
    let result = run.await.expect("the run's task");
    let late = result.task("late").expect("a task");
    assert_eq!(late.status, TaskStatus::Completed, "{late:?}");
    stop_next.cancel();
}
