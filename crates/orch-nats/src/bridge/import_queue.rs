//! The messages an import took from its subscription and has not published on its bus
//! yet, bounded in count and bytes: the subscription is read at once, whatever the bus
//! does, so that the client never holds more (it would hold up to 65,536 messages of
//! up to the server's largest size), and the oldest are dropped when the bus is behind.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

/// A message taken from the subscription: its subject (less the prefix) and payload.
pub(super) type Taken = (String, Bytes);

/// The bytes `taken` holds: its subject's as well as its payload's (a flood of empty
/// messages on long subjects is bounded as well).
fn size_of(taken: &Taken) -> usize {
    taken.0.len() + taken.1.len()
}

pub(super) struct ImportQueue {
    most_messages: usize,
    most_bytes: usize,
    state: Mutex<State>,
    /// Told when a message is queued, or the queue is closed.
    changed: Notify,
}

#[derive(Default)]
struct State {
    messages: VecDeque<Taken>,
    bytes: usize,
    /// Dropped since the last time this was reported.
    dropped: u64,
    closed: bool,
}

impl ImportQueue {
    pub(super) fn new(most_messages: usize, most_bytes: usize) -> Self {
        Self {
            most_messages,
            most_bytes,
            state: Mutex::default(),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `taken`, dropping the oldest messages while there would be too many, or
    /// too many bytes (a message larger than the whole room is dropped itself).
    pub(super) fn push(&self, taken: Taken) {
        let size = size_of(&taken);
        {
            let mut state = self.state();
            if size > self.most_bytes {
                state.dropped += 1;
                return;
            }
            while state.messages.len() >= self.most_messages || state.bytes + size > self.most_bytes
            {
                let Some(oldest) = state.messages.pop_front() else {
                    break;
                };
                state.bytes -= size_of(&oldest);
                state.dropped += 1;
            }
            state.bytes += size;
            state.messages.push_back(taken);
        }
        self.changed.notify_one();
    }

    /// No more messages will come: [`ImportQueue::next`] ends once the queue is empty.
    pub(super) fn close(&self) {
        self.state().closed = true;
        self.changed.notify_one();
    }

    /// The oldest message queued, with how many were dropped since the last call that
    /// reported drops; waits for one; none once the queue is closed and empty.
    pub(super) async fn next(&self) -> Option<(Taken, u64)> {
        loop {
            let changed = self.changed.notified();
            {
                let mut state = self.state();
                if let Some(taken) = state.messages.pop_front() {
                    state.bytes -= size_of(&taken);
                    let dropped = std::mem::take(&mut state.dropped);
                    return Some((taken, dropped));
                }
                if state.closed {
                    return None;
                }
            }
            changed.await;
        }
    }

    /// How many messages were dropped and not reported yet.
    pub(super) fn dropped(&self) -> u64 {
        std::mem::take(&mut self.state().dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(n: usize, bytes: usize) -> Taken {
        (format!("s{n}"), Bytes::from(vec![0; bytes]))
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread().build();
        runtime.expect("a runtime").block_on(future)
    }

    #[test]
    fn the_oldest_go_when_the_count_or_the_bytes_would_pass_the_limits() {
        let queue = ImportQueue::new(3, 100);
        for n in 0..5 {
            queue.push(taken(n, 10));
        }
        // Three kept of five: 0 and 1 dropped.
        let (first, dropped) = block_on(queue.next()).expect("one");
        assert_eq!((first.0.as_str(), dropped), ("s2", 2));
        // Each holds its subject's 2 bytes too: 12 + 12 + 88 is past 100 bytes: s3 goes.
        queue.push(taken(5, 86));
        let rest: Vec<_> = [queue.next(), queue.next()]
            .into_iter()
            .map(|next| block_on(next).expect("one"))
            .map(|((subject, _), dropped)| (subject, dropped))
            .collect();
        assert_eq!(rest, [("s4".to_owned(), 1), ("s5".to_owned(), 0)]);
        queue.push(taken(6, 99));
        assert_eq!(
            queue.dropped(),
            1,
            "larger than the whole room with its subject"
        );
        assert_eq!(queue.state().bytes, 0);
        // Empty messages on long subjects fill the room too.
        for n in 0..3 {
            queue.push((format!("{n}{}", "s".repeat(39)), Bytes::new()));
        }
        assert_eq!(queue.dropped(), 1);
        assert_eq!(queue.state().bytes, 80);
    }

    #[test]
    fn a_closed_queue_ends_once_empty() {
        let queue = ImportQueue::new(4, 100);
        queue.push(taken(0, 1));
        queue.close();
        assert!(block_on(queue.next()).is_some());
        assert!(block_on(queue.next()).is_none());
    }
}
