//! Where a coordinator's results go: each waiting attempt registers here, and the
//! listeners on the results stream and on the server's advisories hand it what settles it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use futures_util::StreamExt;
use orch_core::{RunId, TaskId};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::follow::{self, Followed};
use crate::lost::{self, LostMessages, MaxDeliveries};
use crate::protocol::{Names, ResultMessage};
use crate::{ConnectError, setup};

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
    /// The run was cancelled through [`RemoteHandler::cancel_run`](crate::RemoteHandler::cancel_run):
    /// the workers drop its attempts without a result.
    RunCancelled,
}

/// The attempts a coordinator waits for.
#[derive(Default)]
pub(crate) struct Routes {
    waiting: Mutex<HashMap<AttemptKey, oneshot::Sender<Settled>>>,
    /// Each task message's attempt, and when its publish began (unknown for a message the
    /// server had before it was sent again).
    by_sequence: Mutex<HashMap<u64, (AttemptKey, Option<tokio::time::Instant>)>>,
    /// The latest runs cancelled by [`Routes::cancel_run`], each with the last stream
    /// message the cancellation covers and when the stream was read for it: a message of
    /// theirs sent before then and stored up to that one, whose sequence is learnt only
    /// after the cancellation, is cancelled then.
    cancelled: Mutex<VecDeque<Cancelled>>,
}

/// A run cancelled through [`Routes::cancel_run`]: the last stream message it covers,
/// and when the stream was read for it.
struct Cancelled {
    run: RunId,
    up_to: u64,
    read_at: tokio::time::Instant,
}

/// How many cancellations [`Routes`] remembers for messages whose sequence comes late
/// (a publish's acknowledgement is in flight for moments, not for many cancellations).
const REMEMBERED_CANCELLATIONS: usize = 64;

impl Routes {
    /// Registers a wait for `key`; a wait registered again replaces the earlier one.
    pub(crate) fn wait(&self, key: AttemptKey) -> oneshot::Receiver<Settled> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiting).insert(key, sender);
        receiver
    }

    /// Notes that `key`'s task message, whose publish began at `began`, is stream message
    /// `sequence`; ends its wait as [`Settled::RunCancelled`] if a cancellation of its run
    /// already covered it: one whose read of the stream came after the publish began and
    /// covers the stream up to `sequence` or past it. (A message sent after that read is
    /// not covered, also when a tasks stream made anew gave it a sequence the
    /// cancellation's reaches.) A duplicate `sent_before` (the server had the message
    /// from a coordinator that stopped) is left to the look-up of what became of it: sent
    /// again after the cancellation, by a resumed run, it is sent anew once found
    /// removed. Returns whether a cancellation covered it.
    pub(crate) fn published(
        &self,
        key: &AttemptKey,
        sequence: u64,
        sent_before: bool,
        began: tokio::time::Instant,
    ) -> bool {
        // The message was stored after its publish began, unless the server had it before.
        let stored_after = (!sent_before).then_some(began);
        lock(&self.by_sequence).insert(sequence, (key.clone(), stored_after));
        if sent_before {
            return false;
        }
        let covered = (lock(&self.cancelled).iter())
            .any(|c| c.run == key.run && sequence <= c.up_to && began <= c.read_at);
        if covered {
            self.settle(key, Settled::RunCancelled);
        }
        covered
    }

    /// Forgets task message `sequence` of attempt `key` (removed, and sent again under
    /// another one).
    pub(crate) fn unpublished(&self, key: &AttemptKey, sequence: u64) {
        self.unmap(key, sequence);
    }

    /// Ends the wait for `key` (settled, abandoned or dropped).
    pub(crate) fn forget(&self, key: &AttemptKey, sequence: Option<u64>) {
        lock(&self.waiting).remove(key);
        if let Some(sequence) = sequence {
            self.unmap(key, sequence);
        }
    }

    /// Forgets that stream sequence `sequence` is `key`'s message, if it still is: in a
    /// tasks stream made anew, another attempt's message may have that sequence now.
    fn unmap(&self, key: &AttemptKey, sequence: u64) {
        let mut by_sequence = lock(&self.by_sequence);
        if by_sequence
            .get(&sequence)
            .is_some_and(|(mapped, _)| mapped == key)
        {
            by_sequence.remove(&sequence);
        }
    }

    /// Hands `settled` to whoever waits for `key`; the first result for an attempt wins,
    /// later ones find nobody waiting.
    pub(crate) fn settle(&self, key: &AttemptKey, settled: Settled) {
        if let Some(sender) = lock(&self.waiting).remove(key) {
            let _ = sender.send(settled);
        }
    }

    /// Ends as [`Settled::RunCancelled`] the wait of every attempt of run `run` whose task
    /// message is stream message `up_to` or an earlier one (every attempt of the run when
    /// `up_to` is unknown): those a cancellation covering the stream up to `up_to`, read
    /// at `read_at`, reaches. An attempt sent later waits for its result as usual.
    pub(crate) fn cancel_run(
        &self,
        run: &RunId,
        up_to: Option<u64>,
        read_at: tokio::time::Instant,
    ) {
        if let Some(up_to) = up_to {
            let mut cancelled = lock(&self.cancelled);
            if cancelled.len() == REMEMBERED_CANCELLATIONS {
                cancelled.pop_front();
            }
            let run = run.clone();
            cancelled.push_back(Cancelled {
                run,
                up_to,
                read_at,
            });
        }
        let covered: Vec<AttemptKey> = match up_to {
            Some(up_to) => lock(&self.by_sequence)
                .iter()
                .filter(|(sequence, (key, _))| **sequence <= up_to && key.run == *run)
                .map(|(_, (key, _))| key.clone())
                .collect(),
            None => (lock(&self.waiting).keys())
                .filter(|key| key.run == *run)
                .cloned()
                .collect(),
        };
        let cancelled: Vec<_> = {
            let mut waiting = lock(&self.waiting);
            covered
                .iter()
                .filter_map(|key| waiting.remove(key))
                .collect()
        };
        for sender in cancelled {
            let _ = sender.send(Settled::RunCancelled);
        }
    }

    /// Settles as lost the attempt whose task message is `sequence`, told by an advisory
    /// kept at `at`. An advisory kept before the message was sent (by more than the clocks'
    /// slack) is about an earlier message of that sequence, in a tasks stream since made
    /// anew, and is not taken.
    fn settle_sequence(&self, sequence: u64, deliveries: u64, at: SystemTime) {
        let key = {
            let mut by_sequence = lock(&self.by_sequence);
            // On the wall clock only now: advisories are rare, messages are not.
            let sent_at =
                |began: &tokio::time::Instant| SystemTime::now().checked_sub(began.elapsed());
            match by_sequence.get(&sequence) {
                Some((_, Some(began)))
                    if sent_at(began).is_some_and(|sent| lost::kept_before(at, sent)) =>
                {
                    return;
                }
                Some(_) => by_sequence.remove(&sequence).map(|(key, _)| key),
                None => None,
            }
        };
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

/// Settles the attempt whose result `message` (of the results stream) holds.
pub(crate) fn take_result(routes: &Routes, message: &jetstream::Message) {
    match ResultMessage::read_or_failure(&message.payload) {
        Ok(result) => {
            let key = AttemptKey::of(&result);
            routes.settle(&key, Settled::Result(result));
        }
        Err(error) => {
            tracing::error!(subject = %message.subject, %error, "ignoring a result that cannot be read");
        }
    }
}

/// Takes the server's advisory that a task message ran out of deliveries (kept on the
/// lost-tasks stream at `at`, or heard live: as if kept now): notes it in `lost` and
/// settles the attempt as lost.
pub(crate) fn take_advisory(
    routes: &Routes,
    lost: &LostMessages,
    payload: &[u8],
    at: Option<SystemTime>,
) {
    match serde_json::from_slice::<MaxDeliveries>(payload) {
        Ok(advisory) => {
            let at = at.unwrap_or_else(SystemTime::now);
            lost.note(advisory.stream_seq, advisory.deliveries, at);
            routes.settle_sequence(advisory.stream_seq, advisory.deliveries, at);
        }
        Err(error) => tracing::warn!(%error, "ignoring an advisory that cannot be read"),
    }
}

/// Listens to the advisories live, for a coordinator that has no lost-tasks stream to
/// follow (one heard while its connection was down is missed).
pub(crate) async fn listen_lost(
    mut advisories: async_nats::Subscriber,
    routes: Arc<Routes>,
    lost: Arc<LostMessages>,
) {
    while let Some(message) = advisories.next().await {
        take_advisory(&routes, &lost, &message.payload, None);
    }
}

/// A coordinator's listeners, stopped when this is dropped: also when the start that
/// began them is itself dropped before it ends (given up after a time limit, say).
#[derive(Default)]
pub(crate) struct Listeners(Vec<JoinHandle<()>>);

impl Drop for Listeners {
    fn drop(&mut self) {
        for listener in &self.0 {
            listener.abort();
        }
    }
}

/// Starts a coordinator's listeners: on the results stream, and on the advisories about
/// task messages that ran out of deliveries (followed on the lost-tasks stream when it
/// is `kept`, so that none stored while the connection was down is missed; heard live
/// otherwise). Both are in place before the first task goes out, so no result goes
/// unseen; the advisories kept before are read into `lost` before this returns.
pub(crate) async fn listen(
    client: &async_nats::Client,
    js: &jetstream::Context,
    names: &Names,
    kept: bool,
    routes: &Arc<Routes>,
    lost: &Arc<LostMessages>,
) -> Result<Listeners, ConnectError> {
    let failed = |what: &str, error: async_nats::Error| setup::setup(what.to_owned(), &error);
    let results = Followed {
        stream: names.results_stream().to_owned(),
        filter: names.all_results(),
        what: "the results stream",
    };
    let results_from = follow::place_now(js, &results.stream)
        .await
        .map_err(|e| failed("the results stream", e))?;
    let result_messages =
        follow::from_sequence(js, &results.stream, &results.filter, results_from.next)
            .await
            .map_err(|e| failed("a consumer of the results stream", e))?;
    let advisories = Followed {
        stream: names.lost_stream(),
        filter: names.max_deliveries_advisory(),
        what: "the lost-tasks stream",
    };
    let kept_from = if kept {
        follow::from_now(js, &advisories).await
    } else {
        None
    };
    let live = match kept_from {
        Some(_) => None,
        None => Some(
            client
                .subscribe(names.max_deliveries_advisory())
                .await
                .map_err(|e| failed("the subscription to delivery advisories", e.into()))?,
        ),
    };
    setup::subscriptions_in_place(
        client,
        names.tasks_stream_info(),
        "the coordinator's subscriptions",
    )
    .await?;
    let settles = Arc::clone(routes);
    let mut listeners = Listeners::default();
    listeners.0.push(tokio::spawn(follow::follow(
        js.clone(),
        results,
        result_messages,
        results_from,
        move |message, _| take_result(&settles, message),
    )));
    let recall_up_to = match (kept_from, live) {
        (Some((messages, place)), _) => {
            let (settles, notes) = (Arc::clone(routes), Arc::clone(lost));
            listeners.0.push(tokio::spawn(follow::follow(
                js.clone(),
                advisories,
                messages,
                place,
                move |message, _| {
                    let at = message.info().ok().map(|i| SystemTime::from(i.published));
                    take_advisory(&settles, &notes, &message.payload, at);
                },
            )));
            // Followed from `next` on; before it, kept on the stream.
            Some(place.next - 1)
        }
        (None, Some(live)) => {
            listeners.0.push(tokio::spawn(listen_lost(
                live,
                Arc::clone(routes),
                Arc::clone(lost),
            )));
            // Heard from now on; before now, kept on the stream if it is there.
            kept.then_some(u64::MAX)
        }
        (None, None) => None,
    };
    if let Some(up_to) = recall_up_to {
        lost::recall(js, names, lost, up_to, Duration::from_secs(10)).await;
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(run: &str, task: &str) -> AttemptKey {
        AttemptKey {
            run: RunId::parse(run).expect("a run id"),
            task: TaskId::from(task),
            attempt: 1,
        }
    }

    #[test]
    fn a_message_stored_before_a_cancellation_but_acknowledged_after_is_cancelled() {
        let routes = Routes::default();
        let (early, late, other) = (key("r", "early"), key("r", "late"), key("s", "early"));
        let again = key("r", "again");
        let anew = key("r", "anew");
        let keys = [&early, &late, &other, &again, &anew];
        let mut waits = keys.map(|k| routes.wait(k.clone()));
        let before = tokio::time::Instant::now();
        let cancelled_at = before + Duration::from_millis(1);
        let after = cancelled_at + Duration::from_millis(1);
        routes.cancel_run(&early.run, Some(10), cancelled_at);
        // Sequences learnt after the cancellation: 5, 6 and 7 were stored before it.
        assert!(routes.published(&early, 5, false, before), "covered");
        assert!(!routes.published(&other, 7, false, before));
        assert!(!routes.published(&late, 11, false, before));
        // The server had this one already: a resumed run sends it again, and it is sent
        // anew if the cancellation removed it.
        assert!(!routes.published(&again, 6, true, before));
        // Sent after the cancellation began, to a tasks stream made anew since: its
        // sequence is one the cancellation reaches, but not its message.
        assert!(!routes.published(&anew, 4, false, after));
        assert!(matches!(waits[0].try_recv(), Ok(Settled::RunCancelled)));
        assert!(waits[1].try_recv().is_err(), "sent after the cancellation");
        assert!(waits[2].try_recv().is_err(), "another run");
        assert!(waits[3].try_recv().is_err(), "sent again by a resumed run");
        assert!(waits[4].try_recv().is_err(), "sent after the cancellation");
    }

    /// An advisory heard live is about a message stored before it was heard: not about
    /// one given its sequence later, in a tasks stream made anew.
    #[test]
    fn an_advisory_heard_live_is_not_taken_for_a_message_stored_after_it() {
        let (routes, lost) = (
            Routes::default(),
            LostMessages::new(Duration::from_secs(60)),
        );
        let advisory = br#"{"stream_seq": 7, "deliveries": 3}"#;
        take_advisory(&routes, &lost, advisory, None);
        let before = SystemTime::now() - Duration::from_secs(5);
        assert_eq!(lost.deliveries(7, Some(before)), Some(3));
        let after = SystemTime::now() + Duration::from_secs(5);
        assert_eq!(lost.deliveries(7, Some(after)), None);
    }

    /// An advisory kept before an attempt's message was sent is about an earlier message
    /// of its sequence (a tasks stream made anew), and does not settle the attempt; one
    /// about a message the server had before it was sent again (a resumed run's) does.
    #[test]
    fn an_advisory_kept_before_a_message_was_sent_does_not_settle_it() {
        let (routes, lost) = (
            Routes::default(),
            LostMessages::new(Duration::from_secs(60)),
        );
        let (fresh, again) = (key("r", "fresh"), key("r", "again"));
        let (mut fresh_wait, mut again_wait) =
            (routes.wait(fresh.clone()), routes.wait(again.clone()));
        let sent = tokio::time::Instant::now();
        routes.published(&fresh, 7, false, sent);
        routes.published(&again, 8, true, sent);
        let long_before = SystemTime::now() - Duration::from_secs(10);
        take_advisory(
            &routes,
            &lost,
            br#"{"stream_seq": 7, "deliveries": 3}"#,
            Some(long_before),
        );
        assert!(
            fresh_wait.try_recv().is_err(),
            "an advisory about an earlier message"
        );
        take_advisory(
            &routes,
            &lost,
            br#"{"stream_seq": 8, "deliveries": 3}"#,
            Some(long_before),
        );
        assert!(matches!(
            again_wait.try_recv(),
            Ok(Settled::Lost { deliveries: 3 })
        ));
        // Its own advisory, kept after it was sent, still settles it.
        take_advisory(
            &routes,
            &lost,
            br#"{"stream_seq": 7, "deliveries": 4}"#,
            None,
        );
        assert!(matches!(
            fresh_wait.try_recv(),
            Ok(Settled::Lost { deliveries: 4 })
        ));
    }

    /// In a tasks stream made anew, an attempt's message can take the sequence an older
    /// attempt's lost message had: forgetting the old one leaves the new one's.
    #[test]
    fn forgetting_a_lost_message_leaves_another_attempts_at_its_sequence() {
        let routes = Routes::default();
        let (old, new) = (key("r", "old"), key("r", "new"));
        let _old_wait = routes.wait(old.clone());
        let mut new_wait = routes.wait(new.clone());
        let sent = tokio::time::Instant::now();
        routes.published(&old, 3, false, sent);
        routes.published(&new, 3, false, sent);
        routes.unpublished(&old, 3);
        routes.forget(&old, Some(3));
        // A cancellation covering sequence 3 still reaches the new attempt.
        routes.cancel_run(&new.run, Some(3), tokio::time::Instant::now());
        assert!(matches!(new_wait.try_recv(), Ok(Settled::RunCancelled)));
    }
}
