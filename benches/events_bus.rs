//! The orch-events bus: lossless fan-out throughput, publish-to-receive latency, routing
//! through 10^4 wildcard subscriptions, batches of subjects that never repeat (as the
//! engine publishes them), making such subjects, and ending many subscriptions to one
//! pattern. Tokio baselines for comparison.
//!
//! `cargo bench -p benches --bench events_bus`
//!
//! Every measurement runs on a tokio runtime with 2 worker threads; the publisher is a
//! task on it too. Latency percentiles are printed (criterion reports only the mean
//! time of a whole round), from rounds run after criterion's, one more round first to
//! warm up: criterion's own rounds include its warm-up.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orch_events::{Delivery, EventBus, Overflow, Subject, SubscribeOptions};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Events per round for `subscribers`, so a round is 1e6 events or about 1e7 deliveries.
fn events_for(subscribers: usize) -> u64 {
    match subscribers {
        1 => 1_000_000,
        10 => 500_000,
        _ => 100_000,
    }
}

/// One publisher, `subscribers` Block subscriptions each reading every event.
async fn bus_round(subscribers: usize, events: u64) {
    let bus: EventBus<u64> = EventBus::new();
    let subject = Subject::new("workflow.etl.task.load.completed").expect("valid");
    let readers: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut sub = bus.subscribe("workflow.*.task.>").expect("valid");
            tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(delivery) = sub.recv().await {
                    if let Delivery::Event(_) = delivery {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let publisher = tokio::spawn({
        let bus = bus.clone();
        async move {
            for i in 0..events {
                bus.publish(&subject, i).await.expect("published");
            }
            bus.close().await;
        }
    });
    publisher.await.expect("publisher");
    for reader in readers {
        assert_eq!(reader.await.expect("reader"), events);
    }
}

/// The baseline: one bounded tokio mpsc per subscriber, sent to in turn.
async fn mpsc_round(subscribers: usize, events: u64) {
    let mut senders = Vec::new();
    let readers: Vec<_> = (0..subscribers)
        .map(|_| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<u64>>(1024);
            senders.push(tx);
            tokio::spawn(async move {
                let mut n = 0u64;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                n
            })
        })
        .collect();
    let publisher = tokio::spawn(async move {
        for i in 0..events {
            let event = Arc::new(i);
            for tx in &senders {
                tx.send(Arc::clone(&event)).await.expect("sent");
            }
        }
    });
    publisher.await.expect("publisher");
    for reader in readers {
        assert_eq!(reader.await.expect("reader"), events);
    }
}

fn fanout(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("fanout_block");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for subscribers in [1, 10, 100] {
        let events = events_for(subscribers);
        group.throughput(Throughput::Elements(events * subscribers as u64));
        group.bench_function(BenchmarkId::new("orch_events", subscribers), |b| {
            b.iter(|| rt.block_on(bus_round(subscribers, events)));
        });
        group.bench_function(BenchmarkId::new("tokio_mpsc_each", subscribers), |b| {
            b.iter(|| rt.block_on(mpsc_round(subscribers, events)));
        });
    }
    group.finish();
}

/// Publishes `pings` events one at a time, each after every subscriber got the previous
/// one; returns the time from publish to the last subscriber's receipt, per event.
async fn ping_round(subscribers: usize, pings: usize) -> Vec<Duration> {
    let bus: EventBus<Instant> = EventBus::new();
    let count = Arc::new(AtomicUsize::new(0));
    let slowest = Arc::new(AtomicU64::new(0));
    let all_got_it = Arc::new(tokio::sync::Notify::new());
    let readers: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut sub = bus.subscribe("ping.>").expect("valid");
            let (count, slowest, all_got_it) = (
                Arc::clone(&count),
                Arc::clone(&slowest),
                Arc::clone(&all_got_it),
            );
            tokio::spawn(async move {
                while let Some(event) = sub.recv_event().await {
                    let nanos = event.payload().elapsed().as_nanos() as u64;
                    slowest.fetch_max(nanos, Ordering::AcqRel);
                    if count.fetch_add(1, Ordering::AcqRel) + 1 == subscribers {
                        all_got_it.notify_one();
                    }
                }
            })
        })
        .collect();
    let publisher = tokio::spawn({
        let bus = bus.clone();
        async move {
            let subject = Subject::new("ping.pong").expect("valid");
            let mut latencies = Vec::with_capacity(pings);
            for _ in 0..pings {
                count.store(0, Ordering::Release);
                slowest.store(0, Ordering::Release);
                bus.publish(&subject, Instant::now())
                    .await
                    .expect("published");
                all_got_it.notified().await;
                latencies.push(Duration::from_nanos(slowest.load(Ordering::Acquire)));
            }
            bus.close().await;
            latencies
        }
    });
    let latencies = publisher.await.expect("publisher");
    for reader in readers {
        reader.await.expect("reader");
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn latency(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("latency_to_last");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    const PINGS: usize = 2_000;
    /// Rounds the percentiles are taken from.
    const ROUNDS: usize = 5;
    for subscribers in [1, 100] {
        group.throughput(Throughput::Elements(PINGS as u64));
        // Whether criterion ran the case (a filter may leave it out).
        let mut measured = false;
        group.bench_function(BenchmarkId::new("ping", subscribers), |b| {
            measured = true;
            b.iter(|| rt.block_on(ping_round(subscribers, PINGS)));
        });
        if !measured {
            continue;
        }
        rt.block_on(ping_round(subscribers, PINGS));
        let mut samples: Vec<Duration> = (0..ROUNDS)
            .flat_map(|_| rt.block_on(ping_round(subscribers, PINGS)))
            .collect();
        samples.sort_unstable();
        println!(
            "latency to the last of {subscribers} subscriber(s), {} events: p50 {:?}, p99 {:?}, max {:?}",
            samples.len(),
            percentile(&samples, 0.50),
            percentile(&samples, 0.99),
            percentile(&samples, 1.0),
        );
    }
    group.finish();
}

/// 10^4 subscriptions with distinct wildcard patterns; each published subject matches
/// two of them. Subscriptions are DropOldest and unread, so this is routing plus
/// queueing (and dropping) only. With 4096 distinct subjects the bus's route cache
/// (8192 subjects) holds them all; with 65536 it mostly misses and the trie does the work.
fn routing(c: &mut Criterion) {
    const SUBSCRIPTIONS: usize = 10_000;
    const PUBLISHES: u64 = 1_000_000;
    let rt = runtime();
    let bus: EventBus<u64> = EventBus::new();
    let options = SubscribeOptions::new()
        .capacity(8)
        .overflow(Overflow::DropOldest);
    let subs: Vec<_> = (0..SUBSCRIPTIONS / 2)
        .flat_map(|i| [format!("tenant.{i}.*.done"), format!("tenant.*.job{i}.>")])
        .map(|pattern| {
            bus.subscribe_with(&pattern, options.clone())
                .expect("valid")
        })
        .collect();
    assert_eq!(bus.subscription_count(), SUBSCRIPTIONS);
    let mut group = c.benchmark_group("routing_10k_patterns");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(PUBLISHES));
    for distinct in [4096, 65536] {
        // A fixed pseudo-random set of subjects, built (and validated) once.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let subjects: Vec<Subject> = (0..distinct)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (t, j) = (x % 5_000, (x >> 32) % 5_000);
                Subject::new(&format!("tenant.{t}.job{j}.done")).expect("valid")
            })
            .collect();
        let subjects = Arc::new(subjects);
        group.bench_function(
            BenchmarkId::new("publish_distinct_subjects", distinct),
            |b| {
                b.iter(|| {
                    let (bus, subjects) = (bus.clone(), Arc::clone(&subjects));
                    rt.block_on(async move {
                        tokio::spawn(async move {
                            for i in 0..PUBLISHES {
                                let subject = &subjects[i as usize % subjects.len()];
                                bus.publish(subject, i).await.expect("published");
                            }
                        })
                        .await
                        .expect("publisher");
                    });
                });
            },
        );
    }
    group.finish();
    let delivered: u64 = subs
        .iter()
        .map(|s| s.stats().dropped + s.stats().queued as u64)
        .sum();
    println!("routing: {delivered} deliveries queued or dropped over all rounds");
}

/// The engine's pattern: `try_publish_batch` with 512 events per batch, each on a subject
/// of its own under one prefix, to one lossless `workflow.>` subscriber that reads them.
/// Routing is looked up once per batch (the subjects share the deciding token).
fn unique_subject_batches(c: &mut Criterion) {
    const EVENTS: usize = 1 << 19;
    const BATCH: usize = 512;
    let rt = runtime();
    let subjects: Arc<Vec<Subject>> = Arc::new(
        (0..EVENTS)
            .map(|i| Subject::new(&format!("workflow.etl.task.t{i}.completed")).expect("valid"))
            .collect(),
    );
    let mut group = c.benchmark_group("unique_subject_batches");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("try_publish_batch_512", |b| {
        b.iter(|| {
            let subjects = Arc::clone(&subjects);
            rt.block_on(async move {
                let bus: EventBus<u64> = EventBus::new();
                let mut sub = bus.subscribe("workflow.>").expect("valid");
                let reader = tokio::spawn(async move {
                    let mut n = 0usize;
                    while sub.recv().await.is_some() {
                        n += 1;
                    }
                    n
                });
                let publisher = tokio::spawn({
                    let bus = bus.clone();
                    async move {
                        let mut events = std::collections::VecDeque::with_capacity(BATCH);
                        for chunk in subjects.chunks(BATCH) {
                            events.extend(chunk.iter().cloned().zip(0u64..));
                            while !events.is_empty() {
                                bus.try_publish_batch(&mut events).expect("open");
                                if let Some((subject, n)) = events.pop_front() {
                                    bus.publish(subject, n).await.expect("open");
                                }
                            }
                        }
                    }
                });
                publisher.await.expect("publisher");
                bus.close().await;
                assert_eq!(reader.await.expect("reader"), EVENTS);
            });
        });
    });
    group.finish();
}

/// Ending `SUBSCRIPTIONS` subscriptions to one pattern one by one (each dropped), in the
/// order they were made and in reverse, as a service with many listeners shuts down.
fn unsubscribing(c: &mut Criterion) {
    const SUBSCRIPTIONS: usize = 20_000;
    let mut group = c.benchmark_group("unsubscribe_one_pattern");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(SUBSCRIPTIONS as u64));
    for (name, reverse) in [("in_order", false), ("reversed", true)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let bus: EventBus<u64> = EventBus::new();
                    let mut subscriptions: Vec<_> = (0..SUBSCRIPTIONS)
                        .map(|_| bus.subscribe("jobs.done").expect("subscribes"))
                        .collect();
                    if reverse {
                        subscriptions.reverse();
                    }
                    (bus, subscriptions)
                },
                |(bus, subscriptions)| {
                    for subscription in subscriptions {
                        drop(subscription);
                    }
                    bus
                },
                criterion::BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    fanout,
    latency,
    routing,
    unique_subject_batches,
    unsubscribing
);
criterion_main!(benches);
