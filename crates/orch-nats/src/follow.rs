//! Reading a stream from a given message on, for as long as a process lives: a
//! coordinator's results and advisories about task messages that ran out of deliveries,
//! a worker's cancellations. Stored messages outlast a lost connection, so a reader that
//! goes on from the message after the last one it saw misses none of those stored while
//! it was away.

use std::time::Duration;

use async_nats::datetime::DateTime;
use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;

/// Where a reader of a stream stands: the sequence of the next message it takes, in the
/// stream made at `made` (a stream deleted and made again under the same name numbers
/// its messages from 1 again).
#[derive(Clone, Copy)]
pub(crate) struct Place {
    pub(crate) next: u64,
    made: DateTime,
}

impl Place {
    /// Whether `other` is a place in the same stream, not one made anew since.
    pub(crate) fn same_stream(&self, other: &Place) -> bool {
        self.made == other.made
    }
}

/// Where the next message stored on stream `stream` will be.
pub(crate) async fn place_now(
    js: &jetstream::Context,
    stream: &str,
) -> Result<Place, async_nats::Error> {
    let stream = js.get_stream(stream).await?;
    let info = stream.cached_info();
    Ok(Place {
        next: info.state.last_sequence + 1,
        made: info.created,
    })
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

/// The messages `followed` keeps from now on, and where the first of them is;
/// none (with a warning) when the stream cannot be followed, and its messages are to be
/// heard live instead.
pub(crate) async fn from_now(
    js: &jetstream::Context,
    followed: &Followed,
) -> Option<(consumer::push::Ordered, Place)> {
    let stream = &followed.stream;
    let messages = async {
        let place = place_now(js, stream).await?;
        let messages = from_sequence(js, stream, &followed.filter, place.next).await?;
        Ok::<_, async_nats::Error>((messages, place))
    };
    heard_live_unless(messages.await, followed)
}

/// The messages `followed` keeps, from its first on; where the reader stands (before
/// its first message), and the sequence of the last message kept now (0 when it keeps
/// none); none (with a warning) when the stream cannot be followed.
pub(crate) async fn from_first(
    js: &jetstream::Context,
    followed: &Followed,
) -> Option<(consumer::push::Ordered, Place, u64)> {
    let stream = &followed.stream;
    let messages = async {
        let info = js.get_stream(stream).await?.cached_info().clone();
        let last = last_kept_in(&info);
        let messages = from_sequence(js, stream, &followed.filter, 1).await?;
        let place = Place {
            next: 1,
            made: info.created,
        };
        Ok::<_, async_nats::Error>((messages, place, last))
    };
    heard_live_unless(messages.await, followed)
}

/// The sequence of the last message `stream` keeps now (0 when it keeps none), if it is
/// still the stream `place` is in (not one made anew since) and can be read within
/// `patience`.
pub(crate) async fn last_kept(
    js: &jetstream::Context,
    stream: &str,
    place: &Place,
    patience: std::time::Duration,
) -> Option<u64> {
    let found = tokio::time::timeout(patience, js.get_stream(stream)).await;
    let found = found.ok()?.ok()?;
    let info = found.cached_info();
    (info.created == place.made).then(|| last_kept_in(info))
}

/// The sequence of the last message a stream (its `info`) keeps; 0 when it keeps none.
fn last_kept_in(info: &jetstream::stream::Info) -> u64 {
    match info.state.messages {
        0 => 0,
        _ => info.state.last_sequence,
    }
}

/// The messages to follow, or none (with a warning) when `followed` cannot be followed
/// and its messages are to be heard live instead.
fn heard_live_unless<T>(messages: Result<T, async_nats::Error>, followed: &Followed) -> Option<T> {
    match messages {
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

/// Hands each message of `messages` (`followed`'s from `place` on) to `handle`, with
/// the place after it, until the connection is closed for good. After an interruption
/// (a reconnect, a consumer the server dropped) it goes on from the message after the
/// last one it saw; from the first message when the stream was made anew meanwhile,
/// which it also looks for (see [`Looks`]): the client may set its consumer up again by
/// itself on the new stream, from the old stream's place.
pub(crate) async fn follow(
    js: jetstream::Context,
    followed: Followed,
    mut messages: consumer::push::Ordered,
    mut place: Place,
    mut handle: impl FnMut(&jetstream::Message, &Place) + Send,
) {
    let what = followed.what;
    let mut looks = Looks::new(&js.client());
    let mut check = tokio::time::interval(Looks::CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = check.tick() => {
                    if !looks.due() {
                        continue;
                    }
                    match made_anew(&js, &followed, &mut place).await {
                        Ok(true) => break,
                        Ok(false) => continue,
                        Err(error) => {
                            tracing::debug!(%error, "cannot look at {what}; looking again soon");
                            looks.again_soon();
                            continue;
                        }
                    }
                }
            };
            let message = match message {
                Some(Ok(message)) => message,
                _ if closed_for_good(&js.client()).await => {
                    tracing::debug!("the connection is closed: no more following {what}");
                    return;
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "reading {what} was interrupted");
                    break;
                }
                None => break,
            };
            if let Ok(info) = message.info() {
                if info.stream_sequence < place.next {
                    // The client rebuilds its consumer by itself after a reconnect, from
                    // the stream's first message when it has seen none: read from
                    // `next` again instead of taking old messages as new.
                    tracing::debug!("{what} started over; following it again");
                    break;
                }
                place.next = info.stream_sequence + 1;
            }
            handle(&message, &place);
        }
        let mut pause = FIRST_PAUSE;
        messages = loop {
            tokio::time::sleep(pause).await;
            match read_again(&js, &followed, &mut place).await {
                Ok(messages) => break messages,
                Err(_) if closed_for_good(&js.client()).await => {
                    tracing::debug!("the connection is closed: no more following {what}");
                    return;
                }
                Err(error) => {
                    pause = (pause * 2).min(LONGEST_PAUSE);
                    tracing::warn!(%error, "cannot read {what}; trying again in {pause:?}");
                }
            }
        };
    }
}

/// Whether `client`'s connection was closed for good (drained, or closed with the
/// process's runtime): nothing sent through it reaches a connection any more. A
/// connection that is only down takes the flush and holds it until it is back.
async fn closed_for_good(client: &async_nats::Client) -> bool {
    use async_nats::client::FlushErrorKind;
    let flushed = tokio::time::timeout(Duration::from_millis(100), client.flush()).await;
    // Both errors say the connection's handler is gone: it keeps a flush across
    // reconnects, and drops it only when it ends.
    matches!(flushed, Ok(Err(error))
        if matches!(error.kind(), FlushErrorKind::SendError | FlushErrorKind::FlushError))
}

/// When a follower looks whether its stream was made anew: soon after its connection
/// came back (the client then sets its consumer up again by itself, on whatever stream
/// has the name), and otherwise about every half minute (a stream deleted and made
/// again while the connection stayed up), each follower at a moment of its own, so that
/// a fleet's followers do not all ask the server at once.
struct Looks {
    client: async_nats::Client,
    connects_seen: u64,
    every: Duration,
    next_look: tokio::time::Instant,
}

impl Looks {
    /// How often a follower checks (locally) whether a look is due.
    const CHECK_EVERY: Duration = Duration::from_secs(1);

    fn new(client: &async_nats::Client) -> Self {
        // 30 to 40 s, differing from one follower to the next.
        let jitter = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u8);
        let every = Duration::from_secs(30) + Duration::from_millis(jitter % 10_000);
        Self {
            client: client.clone(),
            connects_seen: Self::connects(client),
            every,
            next_look: tokio::time::Instant::now() + every,
        }
    }

    fn connects(client: &async_nats::Client) -> u64 {
        (client.statistics().connects).load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether to look now: the connection came back since the last check, or the
    /// follower's period is over.
    fn due(&mut self) -> bool {
        let connects = Self::connects(&self.client);
        let reconnected = std::mem::replace(&mut self.connects_seen, connects) != connects;
        let now = tokio::time::Instant::now();
        let due = reconnected || now >= self.next_look;
        if due {
            self.next_look = now + self.every;
        }
        due
    }

    /// A look that could not be made is made again after [`LONGEST_PAUSE`].
    fn again_soon(&mut self) {
        self.next_look = tokio::time::Instant::now() + LONGEST_PAUSE;
    }
}

/// The pause before following a stream again after an interruption; it doubles after
/// each failure, up to [`LONGEST_PAUSE`] (a stream deleted while followed is looked up
/// that often).
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// Whether `followed` was made anew since `place` was taken (then `place` is its first
/// message): it holds fewer messages than were read, or it was created at another time.
/// (A server that reported another creation time for the same stream would have it read
/// again from its first message: results and cancellations read twice change nothing.
/// The messages read from a stream made anew cannot tell it apart: the client may
/// already have read the new stream from the old one's place.)
async fn made_anew(
    js: &jetstream::Context,
    followed: &Followed,
    place: &mut Place,
) -> Result<bool, async_nats::Error> {
    let now = place_now(js, &followed.stream).await?;
    let anew = now.made != place.made || now.next < place.next;
    if anew {
        let what = followed.what;
        tracing::warn!("{what} was made anew; reading it from its first message");
        *place = Place {
            next: 1,
            made: now.made,
        };
    }
    Ok(anew)
}

/// The messages of `followed` from `place` on, or from its first message if the stream
/// was made anew since (waiting for `place` in the new stream would skip every message
/// before it).
async fn read_again(
    js: &jetstream::Context,
    followed: &Followed,
    place: &mut Place,
) -> Result<consumer::push::Ordered, async_nats::Error> {
    made_anew(js, followed, place).await?;
    from_sequence(js, &followed.stream, &followed.filter, place.next).await
}
