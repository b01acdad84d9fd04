//! The raw harnesses of the round-trip bench: async-nats work queues doing the round
//! trips orch-nats does (publish, pull, ack, reply), with nothing of orch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::common::NatsServer;
use super::{PER_WORKER, WORKERS};

/// How a raw harness's worker answers a task, and its coordinator hears the answer.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Reply {
    /// On a core subject, after acknowledging the task.
    Core,
    /// Stored on the replies stream first (then the task is acknowledged), and heard on a
    /// core subscription as it is published.
    Stored,
    /// As `Stored`, but read from the replies stream through a consumer; and each task
    /// goes out under a message id, to a subject of its own type that the workers'
    /// consumer filters on: what orch-nats' protocol asks of the server.
    Protocol,
}

impl Reply {
    fn name(self) -> &'static str {
        match self {
            Reply::Core => "raw",
            Reply::Stored => "stored",
            Reply::Protocol => "proto",
        }
    }
}

/// A raw JetStream work queue: tasks published to `<NAME>_TASKS`, pulled by workers
/// through one durable consumer, acknowledged, and answered as `reply` says.
pub(super) struct Raw {
    js: jetstream::Context,
    task_subject: String,
    /// Tasks go out under message ids.
    with_ids: bool,
    replies: tokio::sync::Mutex<futures_util::stream::BoxStream<'static, ()>>,
}

impl Raw {
    pub(super) async fn start(server: &NatsServer, stop: &CancellationToken, reply: Reply) -> Self {
        let name = reply.name();
        let stored = reply != Reply::Core;
        let stream_name = |what: &str| format!("{}_{what}", name.to_uppercase());
        let client = async_nats::connect(server.url()).await.expect("connects");
        let js = jetstream::new(client.clone());
        // The protocol's tasks stream takes every type's subject; its consumer one type.
        let (stream_subject, task_subject) = match reply {
            Reply::Protocol => (format!("{name}.task.>"), format!("{name}.task.noop")),
            _ => (format!("{name}.task"), format!("{name}.task")),
        };
        let stream = js
            .create_stream(stream::Config {
                name: stream_name("TASKS"),
                subjects: vec![stream_subject],
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .expect("the raw stream");
        let replies_stream = if stored {
            js.create_stream(stream::Config {
                name: stream_name("REPLIES"),
                subjects: vec![format!("{name}.reply.>")],
                ..Default::default()
            })
            .await
            .map(Some)
            .expect("the replies stream")
        } else {
            None
        };
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some("raw".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                max_ack_pending: 100_000,
                filter_subject: match reply {
                    Reply::Protocol => task_subject.clone(),
                    _ => String::new(),
                },
                ..Default::default()
            })
            .await
            .expect("the raw consumer");
        for _ in 0..WORKERS {
            let client = async_nats::connect(server.url()).await.expect("connects");
            let js = jetstream::new(client.clone());
            let stop = stop.clone();
            let tasks = stream_name("TASKS");
            tokio::spawn(async move {
                let consumer: consumer::PullConsumer = js
                    .get_consumer_from_stream("raw", tasks)
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
                    if stored {
                        // Stored before the task is acknowledged, as a worker's result is.
                        let js = js.clone();
                        tokio::spawn(async move {
                            store_reply(&js, name, &message.payload).await;
                            let _ = message.ack().await;
                        });
                    } else {
                        let _ = message.ack().await;
                        let _ = client.publish("raw.reply.x", message.payload.clone()).await;
                    }
                }
            });
        }
        let replies = match replies_stream {
            Some(replies_stream) if reply == Reply::Protocol => replies_stream
                .create_consumer(consumer::push::OrderedConfig {
                    deliver_subject: client.new_inbox(),
                    deliver_policy: consumer::DeliverPolicy::New,
                    ..Default::default()
                })
                .await
                .expect("the replies consumer")
                .messages()
                .await
                .expect("reads the replies")
                .map(|reply| {
                    reply.expect("a reply");
                })
                .boxed(),
            _ => client
                .subscribe(format!("{name}.reply.>"))
                .await
                .expect("subscribes")
                .map(drop)
                .boxed(),
        };
        client.flush().await.expect("flushes");
        Raw {
            js,
            task_subject,
            with_ids: reply == Reply::Protocol,
            replies: tokio::sync::Mutex::new(replies),
        }
    }

    /// Publishes one task; the future waits until it is stored.
    fn publish(&self) -> impl Future<Output = ()> + Send + '_ {
        let payload = next_payload();
        let mut publish = jetstream::message::PublishMessage::build().payload(payload.clone());
        if self.with_ids {
            publish = publish.message_id(String::from_utf8_lossy(&payload));
        }
        let ack = self.js.send_publish(self.task_subject.clone(), publish);
        async move {
            ack.await.expect("published").await.expect("stored");
        }
    }

    /// `count` tasks published at once; returns when every reply is in.
    pub(super) async fn burst(&self, count: usize) {
        let mut replies = self.replies.lock().await;
        // Acknowledgements are awaited as they come, a thousand outstanding at most (the
        // client allows 5,000 before it waits).
        let mut acks = futures_util::stream::FuturesUnordered::<BoxFuture<'_, ()>>::new();
        for _ in 0..count {
            if acks.len() >= 1000 {
                acks.next().await;
            }
            acks.push(Box::pin(self.publish()));
        }
        while acks.next().await.is_some() {}
        for _ in 0..count {
            replies.next().await.expect("a reply");
        }
    }

    /// `hops` tasks one after another; returns each round trip.
    pub(super) async fn chain(&self, hops: usize) -> Vec<Duration> {
        let mut replies = self.replies.lock().await;
        let mut times = Vec::with_capacity(hops);
        for _ in 0..hops {
            let start = Instant::now();
            self.publish().await;
            replies.next().await.expect("a reply");
            times.push(start.elapsed());
        }
        times
    }
}

/// A payload no earlier task had (so that no stored reply is de-duplicated).
fn next_payload() -> Bytes {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    Bytes::from(NEXT.fetch_add(1, Ordering::Relaxed).to_string())
}

/// Publishes a reply to the replies stream under its own subject and message id, and
/// waits until the server stored it.
async fn store_reply(js: &jetstream::Context, name: &str, payload: &Bytes) {
    let id = String::from_utf8_lossy(payload).into_owned();
    let publish = jetstream::message::PublishMessage::build()
        .payload(payload.clone())
        .message_id(format!("{id}.1"));
    js.send_publish(format!("{name}.reply.{id}"), publish)
        .await
        .expect("published")
        .await
        .expect("stored");
}
