//! A worker's slots go to the task types that have tasks, against a real nats-server:
//! a type with nothing queued keeps no slot from a busy one.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::NatsServer;
use orch_core::WorkflowStatus;
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{RemoteHandler, Worker};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Each task of a chain is queued only once the one before ended, so on a worker with
/// one slot every link needs that slot back at once. A second type with nothing queued
/// used to take it for the whole of its pull request (two seconds) each time it came
/// free: the chain below took about 2 s per link. The bound is on a broken worker, five
/// times the length of a pull request's wait; a working one takes milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_task_type_keeps_no_slot_from_a_busy_one() {
    const LINKS: usize = 6;
    let Some(server) = NatsServer::start() else {
        return;
    };
    let worker = Worker::builder()
        .concurrency(1)
        .handler(
            "busy",
            |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
        )
        .handler(
            "idle",
            |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
        )
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let remote = RemoteHandler::builder()
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("busy", remote.clone());
    engine.register_handler("idle", remote);
    // Once, so that both types have asked for tasks before the chain is timed.
    let warm = engine.execute_workflow(&common::chain(1, "idle")).await;
    assert_eq!(warm.expect("valid").status, WorkflowStatus::Completed);

    let started = Instant::now();
    let result = engine
        .execute_workflow(&common::chain(LINKS, "busy"))
        .await
        .expect("valid");
    let took = started.elapsed();
    assert_eq!(result.status, WorkflowStatus::Completed, "{result:?}");
    assert!(
        took < Duration::from_secs(5),
        "{LINKS} links took {took:?}: the idle type held the only slot"
    );
    stop.cancel();
}

/// A worker with no free slot asks for no task of a type it has none of: a task of that
/// type goes to a worker with room. It used to go, as often as not, to the full worker,
/// and wait there until its long task ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_worker_leaves_an_idle_types_tasks_to_a_worker_with_room() {
    const QUICK: usize = 4;
    let Some(server) = NatsServer::start() else {
        return;
    };
    let release = Arc::new(Notify::new());
    let long_started = Arc::new(Notify::new());
    let full = Worker::builder()
        .concurrency(1)
        .handler("long", {
            let (release, started) = (Arc::clone(&release), Arc::clone(&long_started));
            move |_ctx: TaskContext| {
                let (release, started) = (Arc::clone(&release), Arc::clone(&started));
                async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, TaskError>("full")
                }
            }
        })
        .handler("quick", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>("full")
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let with_room = Worker::builder()
        .handler("quick", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>("with room")
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    tokio::spawn(full.run(stop.clone()));
    tokio::spawn(with_room.run(stop.clone()));
    let remote = RemoteHandler::builder()
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::new();
    engine.register_handler("long", remote.clone());
    engine.register_handler("quick", remote);

    let long = common::run_in_background(&engine, &common::chain(1, "long"));
    long_started.notified().await;
    let quick_workflow = common::chain(1, "quick");
    for _ in 0..QUICK {
        let quick = engine.execute_workflow(&quick_workflow);
        let result = tokio::time::timeout(Duration::from_secs(20), quick)
            .await
            .expect("a quick task is not held by the full worker")
            .expect("valid");
        assert_eq!(
            result.task("t0").and_then(|r| r.result.clone()),
            Some(json!("with room"))
        );
    }
    release.notify_one();
    let long = long.await.expect("the long run ends");
    assert_eq!(long.status, WorkflowStatus::Completed);
    stop.cancel();
}

/// A type whose task came while the worker's only slot was taken (the task went back to
/// the queue after waiting for it) gets the next slot in its turn. It used to ask again
/// holding none, drop the slot it was given to the type that held it, and have its task
/// come back once more each time, until the task ran out of deliveries ("worker lost")
/// with no worker lost. Long tasks here last longer than a task waits for a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_whose_task_found_no_free_slot_takes_the_next_one_in_turn() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let layout = orch_nats::Layout {
        max_deliver: 2,
        ..orch_nats::Layout::default()
    };
    let long_started = Arc::new(Notify::new());
    let worker = Worker::builder()
        .layout(layout.clone())
        .concurrency(1)
        .handler("long", {
            let started = Arc::clone(&long_started);
            move |_ctx: TaskContext| {
                let started = Arc::clone(&started);
                async move {
                    started.notify_one();
                    tokio::time::sleep(Duration::from_millis(2500)).await;
                    Ok::<_, TaskError>("long")
                }
            }
        })
        .handler("short", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>("short")
        });
    let stop = common::run_worker(&server, worker).await;
    let engine = common::remote_engine(&server, layout, &["long", "short"], 8).await;
    let longs = orch_core::Workflow::from_tasks(
        "longs",
        "Longs",
        (0..8).map(|i| orch_core::Task::new(format!("l{i}"), "long")),
    );
    let _long_run = common::run_in_background(&engine, &longs);
    long_started.notified().await;
    let short = common::run_in_background(&engine, &common::chain(1, "short"))
        .await
        .expect("the short run ends");
    let task = short.task("t0").expect("a task");
    assert_eq!(
        (task.status, task.error.as_deref()),
        (orch_core::TaskStatus::Completed, None)
    );
    stop.cancel();
}

/// A consumer that caps what one pull request may ask for (`max_batch`, set by an
/// operator here; newer servers cap it at `max_ack_pending` too): a busy type's
/// requests ask for no more. The server refuses a larger batch, and the worker, asking
/// for the same batch again and again, ran no further task of the type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_whose_consumer_caps_its_requests_keeps_taking_tasks() {
    takes_tasks_from_a_consumer_changed_by(|config| config.max_batch = 2).await;
}

/// A consumer whose requests may wait on the server less than the worker's own (edited
/// by an operator: `max_expires`, 1 s and 100 ms here) still gives the worker its tasks:
/// they are no longer all refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_whose_consumer_caps_request_waits_keeps_taking_tasks() {
    for limit in [Duration::from_secs(1), Duration::from_millis(100)] {
        takes_tasks_from_a_consumer_changed_by(|config| config.max_expires = limit).await;
    }
}

/// A worker runs a workflow's tasks of one type after its consumer's settings were
/// changed by `change` before it started.
async fn takes_tasks_from_a_consumer_changed_by(
    change: impl FnOnce(&mut async_nats::jetstream::consumer::Config),
) {
    const TASKS: usize = 12;
    let Some(server) = NatsServer::start() else {
        return;
    };
    let worker = Worker::builder()
        .concurrency(8)
        .handler("step", |_ctx: TaskContext| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, TaskError>(())
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    let admin = async_nats::connect(server.url()).await.expect("connects");
    let js = async_nats::jetstream::new(admin);
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream("step", "ORCH_TASKS")
        .await
        .expect("the worker made its consumer");
    let mut config = consumer.info().await.expect("its settings").config.clone();
    change(&mut config);
    js.create_consumer_on_stream(config, "ORCH_TASKS")
        .await
        .expect("updated");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    let remote = RemoteHandler::builder()
        .connect(&server.config())
        .await
        .expect("the coordinator connects");
    let engine = WorkflowEngine::builder()
        .max_concurrent(TASKS)
        .build()
        .expect("valid settings");
    engine.register_handler("step", remote);
    let mut workflow = orch_core::Workflow::new("capped", "Capped requests");
    for n in 0..TASKS {
        workflow = workflow.task(orch_core::Task::new(format!("t{n}"), "step"));
    }
    let run = engine.execute_workflow(&workflow);
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("every task ran")
        .expect("valid");
    assert_eq!(result.status, WorkflowStatus::Completed, "{result:?}");
    stop.cancel();
}
