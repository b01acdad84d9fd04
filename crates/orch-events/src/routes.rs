//! Routing state: the subject trie plus a cache of its answers by subject.

use std::sync::{Arc, Mutex, PoisonError};

use crate::{
    Pattern, Subject,
    queue::Queue,
    route_cache::{Queues, RouteCache},
    trie::{Keyed, Reach, Trie},
};

impl<T> Keyed for Arc<Queue<T>> {
    fn key(&self) -> u64 {
        self.id
    }
}

/// Who gets what: guarded by the bus's `RwLock` (publishers read, subscribe and
/// unsubscribe write).
pub(crate) struct Routes<T> {
    /// The subscriptions by pattern; changed only through the methods below, which keep
    /// the cache in step.
    trie: Trie<Arc<Queue<T>>>,
    /// Set by `close`: no more publishes or subscriptions.
    pub(crate) closed: bool,
    /// Trie results by subject, cleared on every subscribe and unsubscribe.
    cache: Mutex<RouteCache<T>>,
}

/// The queues an event on one subject goes to, in trie order: shared with the cache, or
/// (for a subject not cached) borrowed from the trie for as long as the routing lock is
/// held, so that looking a route up touches no queue's reference count (a count that
/// would share its cache line with the queue's lock, which the subscriber takes).
pub(crate) enum Matches<'a, T> {
    Cached(Queues<T>),
    Walked(Vec<&'a Arc<Queue<T>>>),
}

impl<'a, T> Matches<'a, T> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Matches::Cached(queues) => queues.len(),
            Matches::Walked(queues) => queues.len(),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Queue<T>>> {
        let (cached, walked) = match self {
            Matches::Cached(queues) => (&queues[..], &[][..]),
            Matches::Walked(queues) => (&[][..], &queues[..]),
        };
        cached.iter().chain(walked.iter().copied())
    }

    /// The list of a walked answer, emptied for [`Routes::matches_reusing`].
    pub(crate) fn into_spare(self) -> Option<Vec<&'a Arc<Queue<T>>>> {
        match self {
            Matches::Cached(_) => None,
            Matches::Walked(mut queues) => {
                queues.clear();
                Some(queues)
            }
        }
    }

    /// Whether both go to the same queues, in the same order.
    pub(crate) fn same_queues(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl<T> Routes<T> {
    pub(crate) fn new() -> Self {
        Self {
            trie: Trie::default(),
            closed: false,
            cache: Mutex::default(),
        }
    }

    /// The queues matching `subject`: from the cache, or from the trie (and then cached).
    /// A publisher finding the cache busy walks the trie rather than wait.
    pub(crate) fn matches(&self, subject: &Subject) -> Matches<'_, T> {
        self.matches_reusing(subject, Vec::new()).0
    }

    /// [`Routes::matches`], writing a walked answer into `spare` (an empty list, from
    /// [`Matches::into_spare`]) rather than a new one, and saying how much of the subject
    /// decided the answer.
    pub(crate) fn matches_reusing<'a>(
        &'a self,
        subject: &Subject,
        spare: Vec<&'a Arc<Queue<T>>>,
    ) -> (Matches<'a, T>, Reach) {
        let Ok(mut cache) = self.cache.try_lock() else {
            let (walked, reach) = self.walk(subject, spare);
            return (Matches::Walked(walked), reach);
        };
        let miss = match cache.get(subject) {
            Ok((queues, reach)) => return (Matches::Cached(queues), reach),
            Err(miss) => miss,
        };
        let (walked, reach) = self.walk(subject, spare);
        match cache.remember(miss, subject, &walked, reach) {
            Some(shared) => (Matches::Cached(shared), reach),
            None => (Matches::Walked(walked), reach),
        }
    }

    fn walk<'a>(
        &'a self,
        subject: &Subject,
        mut matches: Vec<&'a Arc<Queue<T>>>,
    ) -> (Vec<&'a Arc<Queue<T>>>, Reach) {
        let reach = self
            .trie
            .for_each_match_reach(subject.as_str(), |queue| matches.push(queue));
        (matches, reach)
    }

    /// How many subscriptions there are.
    pub(crate) fn len(&self) -> usize {
        self.trie.len()
    }

    /// Routes `pattern` to `queue`.
    pub(crate) fn insert(&mut self, pattern: &Pattern, queue: Arc<Queue<T>>) {
        self.trie.insert(pattern, queue);
        self.invalidate();
    }

    /// Removes the route of `pattern` to the queue with this `id`, if there is one.
    pub(crate) fn remove(&mut self, pattern: &Pattern, id: u64) {
        if self.trie.remove(pattern, id).is_some() {
            self.invalidate();
        }
    }

    /// Removes every route, returning their queues.
    pub(crate) fn take_all(&mut self) -> Vec<Arc<Queue<T>>> {
        self.invalidate();
        self.trie.take_all()
    }

    /// The routes changed: forget cached results.
    fn invalidate(&mut self) {
        self.cache
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
