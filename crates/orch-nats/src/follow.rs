//! Reading a stream from a given message on, for as long as a process lives: a
//! coordinator's results and advisories about task messages that ran out of deliveries,
//! a worker's cancellations. Stored messages outlast a lost connection, so a reader that
//! goes on from the message after the last one it saw misses none of those stored while
//! it was away.

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

/// The messages of stream `stream` on subject `filter` from sequence `start` on, in order.
pub(crate) async fn from_sequence(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    start: u64,
) -> Result<consumer::push::Ordered, async_nats::Error> {
    let stream = js.get_stream_no_info(stream).await?;
    let consumer = stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            filter_subject: filter.to_owned(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await?;
    Ok(consumer.messages().await?)
}

/// The messages `followed` keeps from now on, and the sequence of the first of them;
/// none (with a warning) when the stream cannot be followed, and its messages are to be
/// heard live instead.
pub(crate) async fn from_now(
    js: &jetstream::Context,
    followed: &Followed,
) -> Option<(consumer::push::Ordered, u64)> {
    let stream = &followed.stream;
    let messages = async {
        let next = next_sequence(js, stream).await?;
        let messages = from_sequence(js, stream, &followed.filter, next).await?;
        Ok::<_, async_nats::Error>((messages, next))
    };
    match messages.await {
        Ok(messages) => Some(messages),
        Err(error) => {
            let what = followed.what;
            tracing::warn!(%error, "cannot follow {what}; hearing its messages live instead");
            None
        }
    }
}

/// A stream to follow: its name and the subject read from it.
pub(crate) struct Followed {
    pub(crate) stream: String,
    pub(crate) filter: String,
    /// Names the stream in warnings.
    pub(crate) what: &'static str,
}

/// Hands each message of `messages` (`followed`'s from sequence `next` on) to `handle`,
/// for ever. After an interruption (a reconnect, a consumer the server dropped) it goes
/// on from the message after the last one it saw.
pub(crate) async fn follow(
    js: jetstream::Context,
    followed: Followed,
    mut messages: consumer::push::Ordered,
    mut next: u64,
    mut handle: impl FnMut(&jetstream::Message) + Send,
) {
    let what = followed.what;
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
                if info.stream_sequence < next {
                    // The client rebuilds its consumer by itself after a reconnect, from
                    // the stream's first message when it has seen none: read from
                    // `next` again instead of taking old messages as new.
                    tracing::debug!("{what} started over; following it again");
                    break;
                }
                next = info.stream_sequence + 1;
            }
            handle(&message);
        }
        let mut pause = FIRST_PAUSE;
        messages = loop {
            tokio::time::sleep(pause).await;
            match read_again(&js, &followed, &mut next).await {
                Ok(messages) => break messages,
                Err(error) => {
                    pause = (pause * 2).min(LONGEST_PAUSE);
                    tracing::warn!(%error, "cannot read {what}; trying again in {pause:?}");
                }
            }
        };
    }
}

/// The pause before following a stream again after an interruption; it doubles after
/// each failure, up to [`LONGEST_PAUSE`] (a stream deleted while followed is looked up
/// that often).
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// The messages of `followed` from `next` on, or from its first message if the stream
/// was created anew since (its next sequence is lower than `next`, so waiting for `next`
/// would skip every message until the new stream reached it).
async fn read_again(
    js: &jetstream::Context,
    followed: &Followed,
    next: &mut u64,
) -> Result<consumer::push::Ordered, async_nats::Error> {
    let stream_next = next_sequence(js, &followed.stream).await?;
    if stream_next < *next {
        let what = followed.what;
        tracing::warn!("{what} was created anew; reading it from its first message");
        *next = 1;
    }
    from_sequence(js, &followed.stream, &followed.filter, *next).await
}
