//! Where a coordinator's results go: each waiting attempt registers here, and the
//! listeners on the results stream and on the server's advisories hand it what settles it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use orch_core::{RunId, TaskId};
use tokio::sync::oneshot;

use crate::lost::{LostMessages, MaxDeliveries};
use crate::protocol::{self, Names, ResultMessage};

/// One attempt of one task of one run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AttemptKey {
    pub(crate) run: RunId,
    pub(crate) task: TaskId,
    pub(crate) attempt: u32,
}

/// What ends the wait for an attempt.
#[derive(Debug)]
pub(crate) enum Settled {
    /// A worker's result.
    Result(ResultMessage),
    /// The task message ran out of deliveries: every worker that took it died or stopped
    /// acknowledging it.
    Lost { deliveries: u64 },
}

/// The attempts a coordinator waits for.
#[derive(Default)]
pub(crate) struct Routes {
    waiting: Mutex<HashMap<AttemptKey, oneshot::Sender<Settled>>>,
    by_sequence: Mutex<HashMap<u64, AttemptKey>>,
}

impl Routes {
    /// Registers a wait for `key`; a wait registered again replaces the earlier one.
    pub(crate) fn wait(&self, key: AttemptKey) -> oneshot::Receiver<Settled> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiting).insert(key, sender);
        receiver
    }

    /// Notes that `key`'s task message is stream message `sequence`.
    pub(crate) fn published(&self, key: &AttemptKey, sequence: u64) {
        lock(&self.by_sequence).insert(sequence, key.clone());
    }

    /// Forgets task message `sequence` (removed, and sent again under another one).
    pub(crate) fn unpublished(&self, sequence: u64) {
        lock(&self.by_sequence).remove(&sequence);
    }

    /// Ends the wait for `key` (settled, abandoned or dropped).
    pub(crate) fn forget(&self, key: &AttemptKey, sequence: Option<u64>) {
        lock(&self.waiting).remove(key);
        if let Some(sequence) = sequence {
            lock(&self.by_sequence).remove(&sequence);
        }
    }

    /// Hands `settled` to whoever waits for `key`; the first result for an attempt wins,
    /// later ones find nobody waiting.
    pub(crate) fn settle(&self, key: &AttemptKey, settled: Settled) {
        if let Some(sender) = lock(&self.waiting).remove(key) {
            let _ = sender.send(settled);
        }
    }

    fn settle_sequence(&self, sequence: u64, deliveries: u64) {
        let key = lock(&self.by_sequence).remove(&sequence);
        if let Some(key) = key {
            self.settle(&key, Settled::Lost { deliveries });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AttemptKey {
    pub(crate) fn of(result: &ResultMessage) -> Self {
        Self {
            run: result.run_id.clone(),
            task: result.task_id.clone(),
            attempt: result.attempt,
        }
    }
}

/// Results from stream sequence `start` on, as an ordered consumer delivers them.
async fn results_from(
    js: &jetstream::Context,
    names: &Names,
    start_sequence: u64,
) -> Result<consumer::push::Ordered, async_nats::Error> {
    let stream = js.get_stream_no_info(names.results_stream()).await?;
    let consumer = stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            filter_subject: names.all_results(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence },
            ..Default::default()
        })
        .await?;
    Ok(consumer.messages().await?)
}

/// The results stored from now on, and the sequence of the first of them.
pub(crate) async fn open_results(
    js: &jetstream::Context,
    names: &Names,
) -> Result<(consumer::push::Ordered, u64), async_nats::Error> {
    let mut stream = js.get_stream(names.results_stream()).await?;
    let next = stream.info().await?.state.last_sequence + 1;
    Ok((results_from(js, names, next).await?, next))
}

/// Reads `messages` (the results stream from sequence `next` on) for as long as the
/// coordinator lives, and settles the attempts its results end. After an interruption it
/// goes on from the result after the last one it saw.
pub(crate) async fn listen_results(
    js: jetstream::Context,
    names: Names,
    routes: Arc<Routes>,
    mut messages: consumer::push::Ordered,
    mut next: u64,
) {
    loop {
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "reading the results stream was interrupted");
                    break;
                }
            };
            if let Ok(info) = message.info() {
                next = info.stream_sequence + 1;
            }
            match protocol::read::<ResultMessage>(&message.payload) {
                Ok(result) => {
                    let key = AttemptKey::of(&result);
                    routes.settle(&key, Settled::Result(result));
                }
                Err(error) => {
                    tracing::error!(subject = %message.subject, %error, "ignoring a result that cannot be read");
                }
            }
        }
        messages = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match results_from(&js, &names, next).await {
                Ok(messages) => break messages,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the results stream; trying again")
                }
            }
        };
    }
}

/// Listens to the server's advisories about task messages that ran out of deliveries,
/// settles their attempts as lost, and notes them in `lost`.
pub(crate) async fn listen_lost(
    mut advisories: async_nats::Subscriber,
    routes: Arc<Routes>,
    lost: Arc<LostMessages>,
) {
    while let Some(message) = advisories.next().await {
        match serde_json::from_slice::<MaxDeliveries>(&message.payload) {
            Ok(advisory) => {
                lost.note(advisory.stream_seq, advisory.deliveries, None);
                routes.settle_sequence(advisory.stream_seq, advisory.deliveries);
            }
            Err(error) => tracing::warn!(%error, "ignoring an advisory that cannot be read"),
        }
    }
}
