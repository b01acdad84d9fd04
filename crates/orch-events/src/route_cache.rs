//! The route cache: the subscriptions that recently published subjects go to, so that a
//! subject published again skips the trie.
//!
//! Invariants:
//! - An entry is a subject, the queues its events go to (in trie order) and the [`Reach`]
//!   of that answer. It is right as long as the subscriptions do not change: the owner
//!   calls [`RouteCache::clear`] on every subscribe and unsubscribe.
//! - A subject is remembered on its second publish since the last reset of the
//!   seen-subjects filter, so a stream of unique subjects (one per task, say) costs a hash
//!   each rather than filling and flushing the cache.
//! - At most [`ROUTE_CACHE_SUBJECTS`] entries, holding at most [`ROUTE_CACHE_BYTES`]
//!   outside the table (a long subject's text, the list of queues); an entry that would
//!   hold more than [`ROUTE_CACHE_ENTRY_BYTES`] is never made. When either bound would be
//!   passed the cache starts over.

use std::{
    collections::HashMap,
    hash::{BuildHasher, BuildHasherDefault, Hasher},
    sync::Arc,
};

use crate::{Subject, queue::Queue, trie::Reach};

// The three bounds below are stated in the crate docs (lib.rs, Limits).

/// Subjects whose routes are cached; past this the cache starts over.
pub(crate) const ROUTE_CACHE_SUBJECTS: usize = 8192;

/// The most bytes the cached routes hold outside the cache's table: the text of subjects
/// too long to be stored inline, and the lists of subscriptions.
pub(crate) const ROUTE_CACHE_BYTES: usize = 1 << 20;

/// The most bytes one cached route may hold: longer subjects (and longer lists of
/// subscriptions) are routed through the trie each time, so that no subject can flush
/// more than a sixty-fourth of the cache.
pub(crate) const ROUTE_CACHE_ENTRY_BYTES: usize = ROUTE_CACHE_BYTES / 64;

/// Bits of the seen-subjects filter: with as many insertions as cached subjects, about
/// one new subject in seventy passes for seen (and is cached on its first publish).
const SEEN_BITS: usize = 1 << 17;

/// The queues an event goes to, shared between the cache and the publishers using them.
pub(crate) type Queues<T> = Arc<[Arc<Queue<T>>]>;

/// Cached routes by the subject's hash, computed once per look-up; an entry keeps its
/// subject to tell colliding ones apart.
pub(crate) struct RouteCache<T> {
    routes: HashMap<u64, Entry<T>, BuildHasherDefault<Prehashed>>,
    /// What the entries hold outside the table: the sum of their [`Entry::bytes`].
    bytes: usize,
    /// The subjects seen since the last reset, as a Bloom filter over two 17-bit slices
    /// of the hash: setting bits never pushes another subject out, so two subjects that
    /// share a slot both get cached. Reset after [`ROUTE_CACHE_SUBJECTS`] insertions.
    seen: Box<[u64]>,
    seen_insertions: usize,
    hasher: foldhash::fast::RandomState,
}

struct Entry<T> {
    subject: Subject,
    queues: Queues<T>,
    reach: Reach,
}

impl<T> Entry<T> {
    /// The bytes held outside the table.
    fn bytes(&self) -> usize {
        route_bytes(&self.subject, self.queues.len())
    }
}

/// The bytes a route to `queues` queues on `subject` holds outside the table: a long
/// subject's text, and the shared list (two counts, then a pointer per queue).
fn route_bytes(subject: &Subject, queues: usize) -> usize {
    subject.heap_bytes() + (2 + queues) * size_of::<usize>()
}

/// A look-up that found nothing, and whether to remember the answer: the hash to file it
/// under, if so.
pub(crate) struct Miss(Option<u64>);

impl<T> Default for RouteCache<T> {
    fn default() -> Self {
        Self {
            routes: HashMap::default(),
            bytes: 0,
            seen: vec![0; SEEN_BITS / 64].into_boxed_slice(),
            seen_insertions: 0,
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<T> RouteCache<T> {
    /// The cached route of `subject`, or a [`Miss`] to give to [`RouteCache::remember`]
    /// with the answer.
    pub(crate) fn get(&mut self, subject: &Subject) -> Result<(Queues<T>, Reach), Miss> {
        if subject.as_str().len() > ROUTE_CACHE_ENTRY_BYTES {
            // Never cached: not even worth hashing.
            return Err(Miss(None));
        }
        let hash = self.hasher.hash_one(subject.as_str());
        if let Some(entry) = self.routes.get(&hash)
            && entry.subject == *subject
        {
            return Ok((Arc::clone(&entry.queues), entry.reach));
        }
        Err(Miss(self.was_seen(hash).then_some(hash)))
    }

    /// Remembers the answer to a look-up that missed, if it is worth it (the subject's
    /// second publish) and small enough; returns the shared list of queues if it did.
    pub(crate) fn remember(
        &mut self,
        miss: Miss,
        subject: &Subject,
        queues: &[&Arc<Queue<T>>],
        reach: Reach,
    ) -> Option<Queues<T>> {
        let hash = miss.0?;
        let bytes = route_bytes(subject, queues.len());
        if bytes > ROUTE_CACHE_ENTRY_BYTES {
            return None;
        }
        if self.routes.len() >= ROUTE_CACHE_SUBJECTS || self.bytes + bytes > ROUTE_CACHE_BYTES {
            self.routes.clear();
            self.bytes = 0;
        }
        let shared: Queues<T> = queues.iter().copied().cloned().collect();
        let entry = Entry {
            subject: subject.clone(),
            queues: Arc::clone(&shared),
            reach,
        };
        self.bytes += bytes;
        if let Some(collided) = self.routes.insert(hash, entry) {
            self.bytes -= collided.bytes();
        }
        Some(shared)
    }

    /// Forgets every route. The subjects seen stay seen: which subjects come again does
    /// not change with the subscriptions (and forgetting them would cost clearing the
    /// filter on every subscribe and unsubscribe).
    pub(crate) fn clear(&mut self) {
        self.routes.clear();
        self.bytes = 0;
    }

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

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;
    use crate::Overflow;

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

    /// Looks `subject` up, remembering `queues` on a miss; whether it was a hit.
    fn publish(cache: &mut RouteCache<()>, subject: &Subject, queues: &[&Arc<Queue<()>>]) -> bool {
        match cache.get(subject) {
            Ok(_) => true,
            Err(miss) => {
                cache.remember(miss, subject, queues, Reach::default());
                false
            }
        }
    }

    /// What the entries hold, counted afresh.
    fn held(cache: &RouteCache<()>) -> usize {
        cache.routes.values().map(Entry::bytes).sum()
    }

    #[test]
    fn the_cache_holds_at_most_its_bytes() {
        let queue = Arc::new(Queue::new(0, Overflow::Block, 1));
        let many = vec![&queue; 300];
        let mut cache: RouteCache<()> = RouteCache::default();
        let mut most = 0;
        for size in [10, 100, 1000, 10_000, 20_000] {
            for i in 0..2000 {
                let subject = Subject::new(&format!("{i}.{}", "x".repeat(size))).expect("valid");
                let queues = if i % 2 == 0 { &many[..] } else { &many[..1] };
                for _ in 0..2 {
                    publish(&mut cache, &subject, queues);
                }
                assert_eq!(cache.bytes, held(&cache));
                most = most.max(cache.bytes);
            }
        }
        assert!(most <= ROUTE_CACHE_BYTES, "{most} bytes held");
        let bounds = (
            ROUTE_CACHE_SUBJECTS,
            ROUTE_CACHE_BYTES,
            ROUTE_CACHE_ENTRY_BYTES,
        );
        assert_eq!(bounds, (8192, 1 << 20, 16 << 10), "as the crate docs say");
        assert!(
            most > ROUTE_CACHE_BYTES / 2,
            "the cache was used: {most} bytes"
        );
        let long = Subject::new(&"x".repeat(ROUTE_CACHE_ENTRY_BYTES + 1)).expect("valid");
        let short = Subject::new("short").expect("valid");
        for _ in 0..3 {
            assert!(!publish(&mut cache, &long, &many[..1]), "never cached");
            assert!(
                !publish(&mut cache, &short, &vec![&queue; 2048]),
                "never cached"
            );
        }
        cache.clear();
        assert_eq!((cache.routes.len(), cache.bytes), (0, 0));
    }

    #[test]
    fn a_collision_replaces_the_entry_and_its_bytes() {
        let queue = Arc::new(Queue::new(0, Overflow::Block, 1));
        let mut cache: RouteCache<()> = RouteCache::default();
        let (a, b) = (
            Subject::new(&"a".repeat(100)).expect("valid"),
            Subject::new(&"b".repeat(200)).expect("valid"),
        );
        // Filed under one hash, as two colliding subjects would be.
        cache.remember(Miss(Some(7)), &a, &[&queue], Reach::default());
        cache.remember(Miss(Some(7)), &b, &[&queue, &queue], Reach::default());
        assert_eq!(cache.routes.len(), 1);
        assert_eq!(cache.bytes, route_bytes(&b, 2));
        assert_eq!(cache.bytes, held(&cache));
    }
}
