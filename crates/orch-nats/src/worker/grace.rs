//! The cancel grace of a handler on a worker: the time a cancelled handler has to stop.

use async_nats::jetstream;

use super::acks::progress_while;
use super::queue::ProgressDue;

/// Lets a cancelled handler, `running`, finish until `grace_end`, acknowledging progress
/// all the while (no other worker may get the task while its handler may still run); its
/// result, if it finished.
pub(super) async fn wind_down<F: std::future::Future>(
    running: std::pin::Pin<&mut F>,
    grace_end: tokio::time::Instant,
    progress: &mut ProgressDue,
    message: &jetstream::Message,
) -> Option<F::Output> {
    progress_while(progress, message, finish_by(running, grace_end)).await
}

/// The output of `running` if it finishes by `end`. One that finishes in the same
/// wake-up as `end` comes is taken as finished.
async fn finish_by<F: std::future::Future>(
    running: std::pin::Pin<&mut F>,
    end: tokio::time::Instant,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        output = running => Some(output),
        () = tokio::time::sleep_until(end) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_handler_done_as_its_grace_ends_is_taken_as_done() {
        // The handler and the grace end in one wake-up, many times over: a choice left
        // to chance would give up about half of them.
        for round in 0..64 {
            let end = tokio::time::Instant::now() + Duration::from_millis(10);
            let running = async move {
                tokio::time::sleep_until(end).await;
                round
            };
            tokio::pin!(running);
            assert_eq!(finish_by(running, end).await, Some(round), "round {round}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_not_done_by_the_end_is_given_up_at_the_end() {
        let end = tokio::time::Instant::now() + Duration::from_millis(100);
        let running = std::future::pending::<()>();
        tokio::pin!(running);
        assert_eq!(finish_by(running, end).await, None);
        assert_eq!(tokio::time::Instant::now(), end);
    }
}
