//! Taking tasks of one type: pull requests for only as many tasks as the worker has room
//! for, so that no task waits in a worker that cannot start it while another is idle.
//!
//! A type whose last request brought nothing (idle) asks for one task holding no slot:
//! its request waits on the server for up to [`PULL_EXPIRES`], and slots held by idle
//! types for that long would be kept from the busy ones. It asks only while the worker
//! has a free slot; if the slot is gone when its task comes, the task waits for one for
//! as long as a request waits, then goes back for another worker ([`slot_for`]), and the
//! type asks again as a busy one, holding a slot. A
//! request holding slots ends sooner ([`HOLDING_EXPIRES`]): a type whose tasks ran out
//! soon gives its slots back.

use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use async_nats::{Message, StatusCode};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::queue::ProgressDue;
use super::{Shared, TypeQueue, acks, attempt};
use crate::setup;

/// How long one pull request waits on the server for tasks.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// How long a pull request holding slots waits on the server for tasks.
const HOLDING_EXPIRES: Duration = Duration::from_millis(250);

/// When a stopping worker's last request for tasks has surely ended: what it hands back
/// is delivered again after that, never to that request.
const REQUEST_ENDED: Duration = Duration::from_secs(PULL_EXPIRES.as_secs() + 1);

/// The most tasks one pull request asks for: a worker with room for more asks again, and
/// the slots a request holds are kept in a list as long as it.
const MAX_REQUEST: usize = 4096;

/// The worker's slots, shared by its task types.
pub(crate) struct Slots {
    /// One permit per handler that may run.
    pub(crate) permits: Arc<Semaphore>,
    /// How many task types the worker serves: a busy type asks for its share of the
    /// free slots, so that the others find room too.
    pub(crate) types: usize,
}

/// Takes and runs tasks of `queue`'s type until `stop`; returns once the tasks it took
/// have finished (or were handed back when `hand_back` fired).
pub(crate) async fn serve(
    shared: Arc<Shared>,
    queue: Arc<TypeQueue>,
    slots: Arc<Slots>,
    stop: CancellationToken,
    hand_back: CancellationToken,
) {
    let permits = &slots.permits;
    let mut running = JoinSet::new();
    let request_subject = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
        shared.names.tasks_stream(),
        queue.consumer
    );
    let mut refusals = Refusals::default();
    // The open pull request's deliveries, if one may still deliver tasks.
    let mut outstanding = None;
    // Idle until a task comes: then it asks for a share of the free slots, holding them.
    let mut busy = false;
    'requests: while !stop.is_cancelled() {
        while running.try_join_next().is_some() {}
        let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
        // Room for at least one task: held by a busy type (with a fair share of what is
        // free), only waited for by an idle one (a task given to a full worker would
        // wait in it while another worker may have room).
        let first = tokio::select! {
            permit = Arc::clone(permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
            () = shared.closed.cancelled() => {
                closed(&queue, &hand_back, &"the worker's subscriptions ended");
                break;
            }
        };
        let settings = queue.settings();
        match busy {
            true => {
                held.push(first);
                let share = ((permits.available_permits() + 1) / slots.types)
                    .min(MAX_REQUEST)
                    .min(settings.max_batch);
                while held.len() < share.max(1) {
                    match Arc::clone(permits).try_acquire_owned() {
                        Ok(permit) => held.push(permit),
                        Err(_) => break,
                    }
                }
            }
            false => drop(first),
        }
        // One task at least, whether slots are held for it or not.
        let asked_for = held.len().max(1);
        let expires = match held.is_empty() {
            true => PULL_EXPIRES,
            false => HOLDING_EXPIRES,
        };
        let expires = expires.min(settings.max_expires.unwrap_or(expires));
        let mut delivered = 0;
        // Each request has an inbox of its own: what an earlier request delivers late
        // (after the worker gave up on it) finds no subscriber, and the server delivers
        // it again after `ack_wait`, instead of it waiting here unacknowledged for a
        // permit.
        let inbox = shared.client.new_inbox();
        // Each send gives way to the stop: with the server gone for long, it waits for
        // room on a full connection until the server is back.
        let Some(subscribed) = stop
            .run_until_cancelled(shared.client.subscribe(inbox.clone()))
            .await
        else {
            break;
        };
        // Subscribing only queues a command (the inbox is a valid subject): it fails
        // only on a connection closed for good.
        let deliveries = match subscribed {
            Ok(subscriber) => outstanding.insert(subscriber),
            Err(error) => {
                closed(&queue, &hand_back, &error);
                break;
            }
        };
        let request = format!(
            r#"{{"batch":{asked_for},"expires":{}}}"#,
            expires.as_nanos()
        );
        let asked = shared.client.publish_with_reply(
            request_subject.clone(),
            inbox.clone(),
            request.into(),
        );
        let Some(asked) = stop.run_until_cancelled(asked).await else {
            // Never sent: nothing will come to hand back.
            outstanding = None;
            break;
        };
        // The same for the request: its subject is valid and it is small.
        if let Err(error) = asked {
            closed(&queue, &hand_back, &error);
            outstanding = None;
            break;
        }
        // The server answers within its expiry; past that (a lost connection), ask again.
        // A request that gets no answer at all went to a consumer that is not there (it
        // was deleted with its stream while no request was open, and the server answers
        // none then), or was lost with the connection.
        let give_up = tokio::time::sleep(expires + Duration::from_secs(1));
        tokio::pin!(give_up);
        let mut answered = false;
        while delivered < asked_for {
            let message = tokio::select! {
                // A task already here is taken before the request is given up on: dropped
                // with its subscription, it would wait out `ack_wait` on the server.
                biased;
                message = deliveries.next() => match message {
                    Some(message) => message,
                    None => {
                        closed(&queue, &hand_back, &"the subscription ended");
                        break 'requests;
                    }
                },
                () = &mut give_up => {
                    if answered {
                        break;
                    }
                    outstanding = None;
                    held.clear();
                    // Without a pause: this request waited already. While the connection
                    // is down, it only asks again (there is nothing to set up then).
                    let connected = shared.client.connection_state()
                        == async_nats::connection::State::Connected;
                    if connected {
                        set_up_again(&shared, &queue, &stop).await;
                    }
                    continue 'requests;
                }
                // The request stays open: what it still delivers is handed back below.
                () = stop.cancelled() => break 'requests,
            };
            answered = true;
            let delivery = delivery(&message, &queue.task_type);
            refusals.heard(&delivery);
            match delivery {
                // Taken up after `stop` (it waited while the worker was busy): handed back
                // as what the request delivers after it, or at once if it filled the
                // request (no request of this worker is left to take it).
                Delivery::Task if stop.is_cancelled() => {
                    if delivered + 1 == asked_for {
                        acks::hand_back(&shared, &message, Duration::ZERO).await;
                        outstanding = None;
                    } else {
                        acks::hand_back(&shared, &message, REQUEST_ENDED).await;
                    }
                    break 'requests;
                }
                Delivery::Task => {
                    delivered += 1;
                    busy = true;
                    let received = Instant::now();
                    let (permit, last_ack) = match held.pop() {
                        Some(permit) => (permit, received),
                        // Asked for holding no slot: the request is filled and over.
                        None => match slot_for(&shared, &queue, permits, &message, received, &stop)
                            .await
                        {
                            Slot::Free(permit, last_ack) => (permit, last_ack),
                            Slot::NoneFree => {
                                // Back at once, for a worker with room. This type has
                                // tasks: it asks again holding the next slot that comes
                                // free here, in turn with the other types. Asking holding
                                // none, its tasks could come back after each slot was
                                // taken again, one delivery each, until they ran out.
                                acks::hand_back(&shared, &message, Duration::ZERO).await;
                                break;
                            }
                            // The request asked for this task alone: it is over.
                            Slot::Stopping => {
                                acks::hand_back(&shared, &message, Duration::ZERO).await;
                                outstanding = None;
                                break 'requests;
                            }
                        },
                    };
                    let attempt = attempt::run(
                        Arc::clone(&shared),
                        Arc::clone(&queue),
                        message,
                        Some(permit),
                        last_ack,
                        stop.clone(),
                        hand_back.clone(),
                    );
                    start(&mut running, attempt);
                }
                Delivery::Heartbeat => {}
                Delivery::Ended => {
                    busy &= delivered > 0;
                    break;
                }
                Delivery::Refused => {
                    outstanding = None;
                    held.clear();
                    refusals.pause(&stop).await;
                    set_up_again(&shared, &queue, &stop).await;
                    continue 'requests;
                }
            }
        }
        outstanding = None;
    }
    if let Some(mut deliveries) = outstanding {
        hand_back_late_tasks(&shared, &queue, &mut deliveries).await;
    }
    queue.requests_over.cancel();
    // Runners finish, or hand their tasks back once `hand_back` fires.
    super::all_ended(&mut running).await;
}

/// Sets up the consumer of `queue`'s type again, for a pull request that was refused or
/// got no answer: the consumer is missing (deleted, or its stream was made anew) or the
/// server is not ready.
async fn set_up_again(shared: &Shared, queue: &TypeQueue, stop: &CancellationToken) {
    // With the settings the worker goes by (its progress comes every quarter of that
    // `ack_wait`; it stores the "worker lost" verdict by that `max_deliver`), not its
    // layout's.
    let settings = queue.settings();
    let layout = crate::Layout {
        ack_wait: settings.ack_wait,
        ..shared.layout.clone()
    };
    let ensured = stop.run_until_cancelled(setup::ensure_consumer_delivering(
        &shared.js,
        &layout,
        &queue.task_type,
        settings.max_deliver,
    ));
    match ensured.await {
        // Made again by another (a coordinator, say), perhaps with other settings.
        Some(Ok(config)) => queue.take_up(&config),
        Some(Err(error)) => {
            tracing::warn!(task_type = %queue.task_type, %error, "cannot set up the consumer again");
        }
        None => {}
    }
}

/// What came of waiting for a slot for a task that came to a request holding none.
enum Slot {
    /// A slot, and when the task was last acknowledged as in progress (or received).
    Free(OwnedSemaphorePermit, Instant),
    /// None came free within [`PULL_EXPIRES`].
    NoneFree,
    /// The worker is stopping.
    Stopping,
}

/// A slot for `message`, a task that came (at `received`) to a request holding none:
/// waits for one for as long as a request waits, telling the server meanwhile that the
/// task is in progress (so that it is not delivered again while it waits here).
async fn slot_for(
    shared: &Shared,
    queue: &TypeQueue,
    permits: &Arc<Semaphore>,
    message: &Message,
    received: Instant,
    stop: &CancellationToken,
) -> Slot {
    if let Ok(permit) = Arc::clone(permits).try_acquire_owned() {
        return Slot::Free(permit, received);
    }
    let acquired = Arc::clone(permits).acquire_owned();
    let none_free = tokio::time::sleep(PULL_EXPIRES);
    tokio::pin!(acquired, none_free);
    let mut progress = ProgressDue::since(queue, received);
    loop {
        // A slot freed as the worker stops is not taken: the task has not started.
        tokio::select! {
            biased;
            () = stop.cancelled() => return Slot::Stopping,
            permit = &mut acquired => {
                return permit.map_or(Slot::Stopping, |permit| Slot::Free(permit, progress.last()));
            }
            () = &mut none_free => return Slot::NoneFree,
            () = progress.tick() => acks::in_progress(shared, message).await,
        }
    }
}

/// The worker's connection is closed for good: no task comes, and no result a running
/// handler gives can be sent, so the worker's running attempts (of every task type) are
/// handed back at once (`hand_back`) rather than waited for (a handler that waits for its cancellation would
/// keep the worker from returning for ever).
fn closed(queue: &TypeQueue, hand_back: &CancellationToken, error: &dyn std::fmt::Display) {
    tracing::error!(
        task_type = %queue.task_type,
        %error,
        "the worker's connection is closed; it takes no more tasks, and hands back those running"
    );
    hand_back.cancel();
}

/// Starts `attempt` here, up to its first wait, and spawns what is left of it.
///
/// Up to that wait the attempt reads its message and runs an inline handler (one that
/// only awaits; any other is spawned by the attempt) and sends its result: done here,
/// it saves the hand-over of every task to a task of its own before any of that starts.
fn start(running: &mut JoinSet<()>, attempt: impl Future<Output = ()> + Send + 'static) {
    let mut attempt = Box::pin(attempt);
    // Whatever the first poll waits on, the spawned task polls again at once and is the
    // one woken from then on.
    let mut cx = Context::from_waker(Waker::noop());
    if attempt.as_mut().poll(&mut cx).is_pending() {
        running.spawn(attempt);
    }
}

/// Hands back the tasks that an open pull request still delivers once the worker stopped
/// taking tasks, until the request ends (however long each hand-back waits). Each is
/// delivered again only once the request has ended: handed back at once, it would go
/// straight back to the same request (the server's only one waiting, maybe), delivery
/// after delivery, until it ran out of them.
async fn hand_back_late_tasks(
    shared: &Shared,
    queue: &TypeQueue,
    deliveries: &mut async_nats::Subscriber,
) {
    let until = tokio::time::sleep(REQUEST_ENDED);
    tokio::pin!(until);
    loop {
        let message = tokio::select! {
            message = deliveries.next() => match message {
                Some(message) => message,
                None => return,
            },
            () = &mut until => return,
        };
        match delivery(&message, &queue.task_type) {
            // Bounded as a whole, not each: on a connection with no room, each hand-back
            // could wait a few seconds. A task not handed back comes again after its ack
            // wait, as one of a worker gone.
            Delivery::Task => tokio::select! {
                () = acks::hand_back(shared, &message, REQUEST_ENDED) => {}
                () = &mut until => return,
            },
            Delivery::Heartbeat => {}
            Delivery::Ended | Delivery::Refused => return,
        }
    }
}

/// The pause before asking again after the server refused a pull request: 100 ms,
/// doubling up to 5 s while refusals go on, back to 100 ms once the server answers a
/// request otherwise (a task, a heartbeat or its end).
#[derive(Default)]
struct Refusals {
    in_a_row: u32,
}

impl Refusals {
    async fn pause(&mut self, stop: &CancellationToken) {
        let pause = Duration::from_millis(100) * 2u32.pow(self.in_a_row.min(6));
        self.in_a_row += 1;
        tokio::select! {
            () = tokio::time::sleep(pause.min(Duration::from_secs(5))) => {}
            () = stop.cancelled() => {}
        }
    }

    /// Takes note of what the server answered to a request.
    fn heard(&mut self, delivery: &Delivery) {
        if !matches!(delivery, Delivery::Refused) {
            self.in_a_row = 0;
        }
    }
}

/// What arrived on a pull request's inbox.
enum Delivery {
    /// A task message.
    Task,
    /// The server's sign of life while the request waits.
    Heartbeat,
    /// The request ended (expired) without filling up.
    Ended,
    /// The server refused the request (no consumer to answer it, or it was deleted).
    Refused,
}

fn delivery(message: &Message, task_type: &str) -> Delivery {
    match message.status {
        None | Some(StatusCode::OK) => Delivery::Task,
        Some(StatusCode::IDLE_HEARTBEAT) => Delivery::Heartbeat,
        Some(StatusCode::TIMEOUT | StatusCode::NOT_FOUND) => Delivery::Ended,
        Some(status) => {
            tracing::warn!(%status, description = ?message.description, task_type, "the server refused a pull request");
            Delivery::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long `refusals` pauses now.
    async fn pause_of(refusals: &mut Refusals) -> Duration {
        let start = tokio::time::Instant::now();
        refusals.pause(&CancellationToken::new()).await;
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn the_pause_after_refusals_grows_and_starts_again_once_a_request_is_answered() {
        let mut refusals = Refusals::default();
        let mut pauses = Vec::new();
        for _ in 0..8 {
            refusals.heard(&Delivery::Refused);
            pauses.push(pause_of(&mut refusals).await.as_millis());
        }
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        for answer in [Delivery::Heartbeat, Delivery::Ended, Delivery::Task] {
            refusals.heard(&Delivery::Refused);
            pause_of(&mut refusals).await;
            pause_of(&mut refusals).await;
            refusals.heard(&answer);
            let pause = pause_of(&mut refusals).await;
            assert_eq!(pause, Duration::from_millis(100));
        }
    }
}
