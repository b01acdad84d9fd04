//! What orch-nats costs over JetStream itself, on a nats-server this bench starts:
//! 10,000 no-op tasks through 4 workers, and a 1,000-task chain (per-hop latency), each
//! next to a raw async-nats work queue doing the same round trips (publish, pull, ack,
//! reply) in the same run. Workers run in this process, each on its own connection.
//!
//! `cargo bench -p orch-nats --bench round_trip` (needs `nats-server` on the PATH). The
//! chains' per-hop p50/p99 are printed after the criterion groups.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use common::NatsServer;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use orch_core::{Task, Workflow, WorkflowResult, WorkflowStatus};
use orch_engine::{TaskContext, TaskError, WorkflowEngine, inline};
use orch_nats::{RemoteHandler, Worker};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const TASKS: usize = 10_000;
const CHAIN: usize = 1_000;
const WORKERS: usize = 4;
/// Tasks each worker may hold at once, in both harnesses.
const PER_WORKER: usize = 64;

/// A raw JetStream work queue: tasks published to `RAW_TASKS`, pulled by workers
/// through one durable consumer, acknowledged, and answered on a core subject.
struct Raw {
    js: jetstream::Context,
    replies: tokio::sync::Mutex<async_nats::Subscriber>,
}

impl Raw {
    async fn start(server: &NatsServer, stop: &CancellationToken) -> Self {
        let client = async_nats::connect(server.url()).await.expect("connects");
        let js = jetstream::new(client.clone());
        let stream = js
            .create_stream(stream::Config {
                name: "RAW_TASKS".into(),
                subjects: vec!["raw.task".into()],
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .expect("the raw stream");
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some("raw".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                max_ack_pending: 100_000,
                ..Default::default()
            })
            .await
            .expect("the raw consumer");
        for _ in 0..WORKERS {
            let client = async_nats::connect(server.url()).await.expect("connects");
            let js = jetstream::new(client.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                let consumer: consumer::PullConsumer = js
                    .get_consumer_from_stream("raw", "RAW_TASKS")
                    .await
                    .expect("the consumer");
                let mut messages = consumer
                    .stream()
                    .max_messages_per_batch(PER_WORKER)
                    .messages()
                    .await
                    .expect("pulls");
                loop {
                    let message = tokio::select! {
                        m = messages.next() => m,
                        () = stop.cancelled() => None,
                    };
                    let Some(Ok(message)) = message else { break };
                    let _ = message.ack().await;
                    let _ = client.publish("raw.reply", message.payload.clone()).await;
                }
            });
        }
        let replies = client.subscribe("raw.reply").await.expect("subscribes");
        client.flush().await.expect("flushes");
        Raw {
            js,
            replies: tokio::sync::Mutex::new(replies),
        }
    }

    /// `count` tasks published at once; returns when every reply is in.
    async fn burst(&self, count: usize) {
        let mut replies = self.replies.lock().await;
        // Acknowledgements are awaited as they come, a thousand outstanding at most (the
        // client allows 5,000 before it waits).
        let mut acks = futures_util::stream::FuturesUnordered::<BoxFuture<'_, ()>>::new();
        for i in 0..count {
            if acks.len() >= 1000 {
                acks.next().await;
            }
            let ack = self.js.publish("raw.task", Bytes::from(i.to_string()));
            acks.push(Box::pin(async move {
                ack.await.expect("published").await.expect("stored");
            }));
        }
        while acks.next().await.is_some() {}
        for _ in 0..count {
            replies.next().await.expect("a reply");
        }
    }

    /// `hops` tasks one after another; returns each round trip.
    async fn chain(&self, hops: usize) -> Vec<Duration> {
        let mut replies = self.replies.lock().await;
        let mut times = Vec::with_capacity(hops);
        for i in 0..hops {
            let start = Instant::now();
            self.js
                .publish("raw.task", Bytes::from(i.to_string()))
                .await
                .expect("published")
                .await
                .expect("stored");
            replies.next().await.expect("a reply");
            times.push(start.elapsed());
        }
        times
    }
}

/// An engine whose `noop` tasks run on 4 orch-nats workers.
async fn orch(server: &NatsServer, stop: &CancellationToken) -> WorkflowEngine {
    let remote = RemoteHandler::connect(&server.config())
        .await
        .expect("connects");
    for n in 0..WORKERS {
        let worker = Worker::builder()
            .name(format!("bench-{n}"))
            .concurrency(PER_WORKER)
            .handler(
                "noop",
                inline(|_ctx: TaskContext| async move { Ok::<_, TaskError>(()) }),
            )
            .connect(&server.config())
            .await
            .expect("connects");
        tokio::spawn(worker.run(stop.clone()));
    }
    let engine = WorkflowEngine::with_max_concurrent(WORKERS * PER_WORKER).expect("valid");
    engine.register_handler("noop", remote);
    engine
}

fn independent(n: usize) -> Workflow {
    Workflow::from_tasks(
        "burst",
        "Burst",
        (0..n).map(|i| Task::new(format!("t{i}"), "noop")),
    )
}

fn chain(n: usize) -> Workflow {
    Workflow::from_tasks(
        "chain",
        "Chain",
        (0..n).map(|i| {
            let task = Task::new(format!("t{i}"), "noop");
            if i == 0 {
                task
            } else {
                task.depends_on([format!("t{}", i - 1)])
            }
        }),
    )
}

/// The time between consecutive tasks' ends in a chain's result.
fn hops(result: &WorkflowResult) -> Vec<Duration> {
    let ends: Vec<SystemTime> = result
        .tasks
        .records()
        .iter()
        .filter_map(|t| t.end_time)
        .collect();
    ends.windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap_or_default())
        .collect()
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort_unstable();
    let index = ((times.len() as f64 - 1.0) * p).round() as usize;
    times.get(index).copied().unwrap_or_default()
}

struct Setup {
    runtime: Runtime,
    raw: Arc<Raw>,
    engine: WorkflowEngine,
    _stop: CancellationToken,
    _server: NatsServer,
}

fn setup() -> Option<Setup> {
    let server = NatsServer::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let stop = CancellationToken::new();
    let (raw, engine) = runtime.block_on(async {
        (
            Arc::new(Raw::start(&server, &stop).await),
            orch(&server, &stop).await,
        )
    });
    Some(Setup {
        runtime,
        raw,
        engine,
        _stop: stop,
        _server: server,
    })
}

fn round_trips(c: &mut Criterion) {
    let Some(setup) = setup() else { return };
    let burst = independent(TASKS);
    let line = chain(CHAIN);

    let groups = [
        ("nats/noop_10k_4_workers", TASKS, &burst, false),
        ("nats/chain_1000", CHAIN, &line, true),
    ];
    for (name, size, workflow, one_by_one) in groups {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(10));
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function("raw_jetstream", |b| {
            b.iter(|| {
                setup.runtime.block_on(async {
                    if one_by_one {
                        setup.raw.chain(size).await;
                    } else {
                        setup.raw.burst(size).await;
                    }
                })
            })
        });
        group.bench_function("orch_nats", |b| {
            b.iter(|| {
                let result = setup
                    .runtime
                    .block_on(setup.engine.execute_workflow(workflow))
                    .expect("valid");
                assert_eq!(result.status, WorkflowStatus::Completed);
            })
        });
        group.finish();
    }

    let mut raw = setup.runtime.block_on(setup.raw.chain(CHAIN));
    let result = setup
        .runtime
        .block_on(setup.engine.execute_workflow(&line))
        .expect("valid");
    let mut orch = hops(&result);
    for (name, times) in [("raw_jetstream", &mut raw), ("orch_nats", &mut orch)] {
        let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
        println!("nats/chain_1000 per hop, {name}: p50 {p50:?}, p99 {p99:?}");
    }
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
