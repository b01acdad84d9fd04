//! Reading a stream from a given message on, for as long as a coordinator lives: its
//! results, and the advisories about task messages that ran out of deliveries. Stored
//! messages outlast a lost connection, so a reader that goes on from the message after
//! the last one it saw misses none of those stored while it was away.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;

/// The sequence the next message stored on stream `stream` will get.
pub(crate) async fn next_sequence(
    js: &jetstream::Context,
    stream: &str,
) -> Result<u64, async_nats::Error> {
    let mut stream = js.get_stream(stream).await?;
    Ok(stream.info().await?.state.last_sequence + 1)
}

/// The messages of stream `stream` from sequence `start` on, in order.
pub(crate) async fn from_sequence(
    js: &jetstream::Context,
    stream: &str,
    start: u64,
) -> Result<consumer::push::Ordered, async_nats::Error> {
    let stream = js.get_stream_no_info(stream).await?;
    let consumer = stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await?;
    Ok(consumer.messages().await?)
}

/// Hands each message of `messages` (stream `stream` from sequence `next` on) to
/// `handle`, for ever. After an interruption (a reconnect, a consumer the server
/// dropped) it goes on from the message after the last one it saw; `what` names the
/// stream in the warnings.
pub(crate) async fn follow(
    js: jetstream::Context,
    stream: String,
    mut messages: consumer::push::Ordered,
    mut next: u64,
    what: &'static str,
    mut handle: impl FnMut(&jetstream::Message) + Send,
) {
    loop {
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "reading {what} was interrupted");
                    break;
                }
            };
            if let Ok(info) = message.info() {
                next = info.stream_sequence + 1;
            }
            handle(&message);
        }
        messages = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match from_sequence(&js, &stream, next).await {
                Ok(messages) => break messages,
                Err(error) => tracing::warn!(%error, "cannot read {what}; trying again"),
            }
        };
    }
}
