//! Routing state: the subject trie plus a cache of its answers by subject.

use std::{
    collections::HashMap,
    hash::{BuildHasher, BuildHasherDefault, Hasher},
    sync::{Arc, Mutex, PoisonError},
};

use crate::{
    Pattern, Subject,
    queue::Queue,
    trie::{Reach, Trie},
};

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

/// Cached routes, and the subjects seen recently: a subject is cached on its second
/// publish, so a stream of unique subjects (one per task, say) costs a hash each rather
/// than filling and flushing the cache. Both are keyed by the subject's hash, computed
/// once per publish; a cached route keeps its subject to tell colliding ones apart.
struct RouteCache<T> {
    routes: HashMap<u64, CachedRoute<T>, BuildHasherDefault<Prehashed>>,
    /// The subjects seen since the last reset, as a Bloom filter over two 17-bit slices
    /// of the hash: setting bits never pushes another subject out, so two subjects that
    /// share a slot both get cached. Reset after [`ROUTE_CACHE_SUBJECTS`] insertions.
    seen: Box<[u64]>,
    seen_insertions: usize,
    hasher: foldhash::fast::RandomState,
}

impl<T> RouteCache<T> {
    /// Whether a subject with this hash was seen since the last reset; notes it if not.
    fn was_seen(&mut self, hash: u64) -> bool {
        let bits = [hash as usize % SEEN_BITS, (hash >> 32) as usize % SEEN_BITS];
        let is_set = |seen: &[u64], bit: usize| seen[bit / 64] & (1 << (bit % 64)) != 0;
        if bits.iter().all(|&bit| is_set(&self.seen, bit)) {
            return true;
        }
        if self.seen_insertions >= ROUTE_CACHE_SUBJECTS {
            self.seen.fill(0);
            self.seen_insertions = 0;
        }
        for bit in bits {
            self.seen[bit / 64] |= 1 << (bit % 64);
        }
        self.seen_insertions += 1;
        false
    }
}

/// A subject, the queues its events go to, and how much of it decided them.
type CachedRoute<T> = (Subject, Arc<[Arc<Queue<T>>]>, Reach);

impl<T> Default for RouteCache<T> {
    fn default() -> Self {
        Self {
            routes: HashMap::default(),
            seen: vec![0; SEEN_BITS / 64].into_boxed_slice(),
            seen_insertions: 0,
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

/// Hashes a key that already is a well-mixed hash: by keeping it.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// The queues an event on one subject goes to, in trie order: shared with the cache, or
/// (for a subject not cached) borrowed from the trie for as long as the routing lock is
/// held, so that looking a route up touches no queue's reference count (a count that
/// would share its cache line with the queue's lock, which the subscriber takes).
pub(crate) enum Matches<'a, T> {
    Cached(Arc<[Arc<Queue<T>>]>),
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

/// Subjects whose routes are cached; past this the cache starts over.
const ROUTE_CACHE_SUBJECTS: usize = 8192;

/// Bits of the seen-subjects filter: with as many insertions as cached subjects, about
/// one new subject in seventy passes for seen (and is cached on its first publish).
const SEEN_BITS: usize = 1 << 17;

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
        let hash = cache.hasher.hash_one(subject.as_str());
        if let Some((cached, queues, reach)) = cache.routes.get(&hash) {
            if cached == subject {
                return (Matches::Cached(Arc::clone(queues)), *reach);
            }
        }
        let (walked, reach) = self.walk(subject, spare);
        if cache.was_seen(hash) {
            if cache.routes.len() >= ROUTE_CACHE_SUBJECTS {
                cache.routes.clear();
            }
            let shared: Arc<[Arc<Queue<T>>]> = walked.into_iter().cloned().collect();
            cache
                .routes
                .insert(hash, (subject.clone(), Arc::clone(&shared), reach));
            return (Matches::Cached(shared), reach);
        }
        (Matches::Walked(walked), reach)
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
        if self.trie.remove(pattern, |q| q.id == id).is_some() {
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
        let cache = self.cache.get_mut().unwrap_or_else(PoisonError::into_inner);
        cache.routes.clear();
        cache.seen.fill(0);
        cache.seen_insertions = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::RouteCache;

    #[test]
    fn every_subject_seen_before_is_recognised_on_its_next_publish() {
        let mut cache: RouteCache<()> = RouteCache::default();
        let hashes: Vec<u64> = (0..4096)
            .map(|i| cache.hasher.hash_one(format!("tenant.{i}.done")))
            .collect();
        let first: usize = hashes.iter().filter(|&&h| cache.was_seen(h)).count();
        let second: usize = hashes.iter().filter(|&&h| cache.was_seen(h)).count();
        // A few new subjects pass for seen (a filter's false positives); none is missed.
        assert!(
            first < 4096 / 50,
            "{first} of 4096 new subjects passed for seen"
        );
        assert_eq!(second, 4096);
    }
}
