//! One task type a worker serves, and the settings of its consumer that the worker goes
//! by. Those can change under a running worker (an operator edits the consumer, or it is
//! deleted and made again with other settings), so the worker looks at them now and then
//! and takes them up, in running attempts too.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer;
use orch_engine::Handler;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::Shared;

/// How often a worker looks at its consumers' settings.
const SETTINGS_LOOK_EVERY: Duration = Duration::from_secs(5);

/// One task type a worker serves: its handler, consumer and the consumer's settings.
pub(crate) struct TypeQueue {
    pub(crate) task_type: String,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) consumer: String,
    /// The consumer's settings, as the worker last read them.
    settings: watch::Sender<ConsumerSettings>,
    /// Cancelled once this type's puller has no pull request open any more (the worker
    /// stopped taking tasks): a task handed back before then could be delivered straight
    /// back to that request.
    pub(crate) requests_over: CancellationToken,
}

impl TypeQueue {
    pub(crate) fn new(
        task_type: String,
        handler: Arc<dyn Handler>,
        consumer: String,
        config: &consumer::Config,
    ) -> Self {
        Self {
            task_type,
            handler,
            consumer,
            settings: watch::Sender::new(ConsumerSettings::of(config)),
            requests_over: CancellationToken::new(),
        }
    }

    /// The consumer's settings, as the worker last read them.
    pub(crate) fn settings(&self) -> ConsumerSettings {
        *self.settings.borrow()
    }

    /// Goes by `config`, the consumer's settings as just read, from now on (running
    /// attempts included), saying so when they changed.
    pub(crate) fn take_up(&self, config: &consumer::Config) {
        let read = ConsumerSettings::of(config);
        let changed = self.settings.send_if_modified(|settings| {
            let changed = *settings != read;
            *settings = read;
            changed
        });
        if changed {
            tracing::info!(
                task_type = %self.task_type,
                ack_wait = ?read.ack_wait,
                max_deliver = read.max_deliver,
                max_batch = read.max_batch,
                max_expires = ?read.max_expires,
                "the consumer's settings changed; the worker goes by them now"
            );
        }
    }
}

/// What a worker goes by of its consumer's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConsumerSettings {
    /// How long the server waits for a sign of life before delivering a task again.
    pub(crate) ack_wait: Duration,
    /// How many times the server delivers a task (-1: any number).
    pub(crate) max_deliver: i64,
    /// The most tasks one pull request may ask for: the server refuses a request for
    /// more than the consumer's `max_ack_pending` or `max_batch` (`usize::MAX`: no
    /// limit).
    pub(crate) max_batch: usize,
    /// The longest a pull request may wait on the server: it refuses a request that
    /// would wait longer than the consumer's `max_expires` (`None`: no limit).
    pub(crate) max_expires: Option<Duration>,
}

impl ConsumerSettings {
    fn of(config: &consumer::Config) -> Self {
        let limit = |n: i64| usize::try_from(n).ok().filter(|&n| n > 0);
        let limits = [limit(config.max_ack_pending), limit(config.max_batch)];
        Self {
            ack_wait: config.ack_wait,
            max_deliver: config.max_deliver,
            max_batch: limits.into_iter().flatten().min().unwrap_or(usize::MAX),
            max_expires: Some(config.max_expires).filter(|limit| !limit.is_zero()),
        }
    }

    /// How often a running task's worker tells the server that it is still working.
    pub(crate) fn progress_every(self) -> Duration {
        (self.ack_wait / 4).max(Duration::from_millis(10))
    }

    /// How many deliveries of a task may run it: one less than `max_deliver`, whose
    /// last delivery stores the "worker lost" verdict instead (`None` when the consumer
    /// allows a single delivery, or any number).
    pub(crate) fn deliveries_to_run(self) -> Option<i64> {
        (self.max_deliver > 1).then(|| self.max_deliver - 1)
    }
}

/// When a task's next progress acknowledgement is due: a quarter of the consumer's
/// `ack_wait` after the last one, as the worker knows it at the time (a shorter
/// `ack_wait` taken up meanwhile brings the next one forward).
pub(super) struct ProgressDue {
    settings: watch::Receiver<ConsumerSettings>,
    last: Instant,
    next: Pin<Box<Sleep>>,
}

impl ProgressDue {
    /// The first acknowledgement is one period away.
    #[cfg(test)]
    pub(super) fn new(queue: &TypeQueue) -> Self {
        Self::since(queue, Instant::now())
    }

    /// The first acknowledgement is one period after `last`, when the message was last
    /// acknowledged (or received): at once if that is past.
    pub(super) fn since(queue: &TypeQueue, last: Instant) -> Self {
        let settings = queue.settings.subscribe();
        let next = Box::pin(tokio::time::sleep_until(
            last + settings.borrow().progress_every(),
        ));
        Self {
            settings,
            last,
            next,
        }
    }

    /// When the last acknowledgement was due (or the one [`Self::since`] was given).
    pub(super) fn last(&self) -> Instant {
        self.last
    }

    /// Waits until an acknowledgement is due (cancel-safe).
    pub(super) async fn tick(&mut self) {
        loop {
            tokio::select! {
                () = &mut self.next => {
                    self.last = Instant::now();
                    let every = self.settings.borrow().progress_every();
                    self.next.as_mut().reset(self.last + every);
                    return;
                }
                Ok(()) = self.settings.changed() => {
                    let every = self.settings.borrow_and_update().progress_every();
                    self.next.as_mut().reset(self.last + every);
                }
            }
        }
    }
}

/// Reads the consumer's settings every [`SETTINGS_LOOK_EVERY`] and takes them up, for
/// as long as the worker runs. A consumer that cannot be read (missing, or the server
/// away) is left to the puller, which sets it up again when its requests fail.
pub(super) async fn follow_settings(shared: Arc<Shared>, queue: Arc<TypeQueue>) {
    let stream = shared.names.tasks_stream();
    loop {
        tokio::time::sleep(SETTINGS_LOOK_EVERY).await;
        let read = shared
            .js
            .get_consumer_from_stream::<consumer::pull::Config, _, _>(&queue.consumer, stream)
            .await;
        match read {
            Ok(consumer) => queue.take_up(&consumer.cached_info().config),
            Err(error) => tracing::debug!(
                task_type = %queue.task_type,
                %error,
                "cannot read the consumer's settings; reading them again later"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_engine::{TaskContext, TaskError};

    /// A queue whose consumer waits `ack_wait` and delivers a task 6 times.
    fn queue(ack_wait: Duration) -> TypeQueue {
        let handler: Arc<dyn Handler> =
            Arc::new(|_ctx: TaskContext| async move { Ok::<_, TaskError>(()) });
        TypeQueue::new("t".into(), handler, "t".into(), &config(ack_wait, 6))
    }

    fn config(ack_wait: Duration, max_deliver: i64) -> consumer::Config {
        consumer::Config {
            ack_wait,
            max_deliver,
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn progress_comes_every_quarter_of_the_ack_wait() {
        let queue = queue(Duration::from_secs(4));
        let start = Instant::now();
        let mut due = ProgressDue::new(&queue);
        due.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        due.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    /// A message handled in steps is acknowledged a period after its last
    /// acknowledgement, not a period after each step began.
    #[tokio::test(start_paused = true)]
    async fn progress_goes_on_from_the_last_acknowledgement() {
        let queue = queue(Duration::from_secs(4));
        let start = Instant::now();
        let mut step = ProgressDue::new(&queue);
        step.tick().await;
        // The step ends 900 ms after that acknowledgement; the next step goes on.
        tokio::time::sleep(Duration::from_millis(900)).await;
        let mut step = ProgressDue::since(&queue, step.last());
        step.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        // A step that begins long after the last one is due at once.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut step = ProgressDue::since(&queue, step.last());
        step.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(step.last(), start + Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_ack_wait_taken_up_brings_the_next_progress_forward() {
        let queue = queue(Duration::from_secs(4));
        let start = Instant::now();
        let mut due = ProgressDue::new(&queue);
        tokio::time::sleep(Duration::from_millis(300)).await;
        queue.take_up(&config(Duration::from_millis(400), 6));
        // Due 100 ms after the last one (the start), so at once.
        due.tick().await;
        assert_eq!(start.elapsed(), Duration::from_millis(300));
        due.tick().await;
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn a_longer_ack_wait_taken_up_puts_the_next_progress_off() {
        let queue = queue(Duration::from_secs(4));
        let start = Instant::now();
        let mut due = ProgressDue::new(&queue);
        queue.take_up(&config(Duration::from_secs(8), 6));
        due.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn settings_taken_up_are_those_read() {
        let queue = queue(Duration::from_secs(4));
        assert_eq!(queue.settings().deliveries_to_run(), Some(5));
        queue.take_up(&config(Duration::from_secs(1), 1));
        let settings = queue.settings();
        assert_eq!(settings.ack_wait, Duration::from_secs(1));
        assert_eq!(settings.progress_every(), Duration::from_millis(250));
        assert_eq!(settings.deliveries_to_run(), None);
        queue.take_up(&config(Duration::from_secs(1), -1));
        assert_eq!(queue.settings().deliveries_to_run(), None);
        queue.take_up(&config(Duration::from_secs(1), 3));
        assert_eq!(queue.settings().deliveries_to_run(), Some(2));
    }

    #[test]
    fn a_request_asks_for_no_more_than_the_consumer_allows() {
        let queue = queue(Duration::from_secs(4));
        assert_eq!(queue.settings().max_batch, usize::MAX);
        for (max_ack_pending, max_batch, expected) in [
            (1000, 0, 1000),
            (2, 0, 2),
            (1000, 16, 16),
            (8, 16, 8),
            (-1, -1, usize::MAX),
        ] {
            queue.take_up(&consumer::Config {
                max_ack_pending,
                max_batch,
                ..config(Duration::from_secs(4), 6)
            });
            assert_eq!(
                queue.settings().max_batch,
                expected,
                "{max_ack_pending} {max_batch}"
            );
        }
    }
}
