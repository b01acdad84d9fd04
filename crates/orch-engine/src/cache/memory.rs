//! [`MemoryCache`], the default cache store: results in memory, at most so many of them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use super::{CacheKey, CacheStore};

/// The default [`CacheStore`]: results in memory, shared by every run of the engines it is
/// given to, and gone with them.
///
/// It keeps at most its capacity of results (10,000 unless made
/// [`with_capacity`](MemoryCache::with_capacity)), so that the cache of an engine that
/// lives as long as its service does not grow without end: storing one more forgets the
/// least recently used eighth of them, or the least recently used one when it keeps
/// fewer than 8 (a result is used when it is stored or found).
/// [`MemoryCache::clear`] forgets them all. The bound counts results, not bytes: a
/// result is as large as its task's output (a cached map's, the list of its instances'
/// outputs), so an engine whose cached tasks return large outputs wants a smaller
/// capacity, or a store of its own that counts their size.
///
/// ```
/// use orch_engine::{CacheKey, CacheStore, MemoryCache};
/// use serde_json::json;
///
/// let store = MemoryCache::with_capacity(2);
/// store.put(CacheKey(1), json!("a"));
/// store.put(CacheKey(2), json!("b"));
/// assert_eq!(store.get(&CacheKey(1)), Some(json!("a")));
/// // Full: the least recently used result, 2's, makes room.
/// store.put(CacheKey(3), json!("c"));
/// assert_eq!(store.get(&CacheKey(2)), None);
/// assert_eq!(store.len(), 2);
/// ```
pub struct MemoryCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    results: HashMap<CacheKey, Entry>,
    /// Counts uses: a result's `used` is the count at its last use.
    clock: u64,
}

struct Entry {
    result: Value,
    used: u64,
}

impl MemoryCache {
    /// How many results a [`MemoryCache::default`] keeps.
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// A store that keeps at most `results` results (none for 0).
    pub fn with_capacity(results: usize) -> Self {
        Self {
            capacity: results,
            entries: Mutex::default(),
        }
    }

    /// How many results it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many results are stored.
    pub fn len(&self) -> usize {
        self.lock().results.len()
    }

    /// Whether no result is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().results.is_empty()
    }

    /// Forgets every stored result.
    pub fn clear(&self) {
        self.lock().results.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entries {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Forgets the least recently used results past `capacity`, and an eighth of
    /// `capacity` more: a pass reads every result, so passes are that far apart.
    fn shrink_to(&mut self, capacity: usize) {
        if self.results.len() <= capacity {
            return;
        }
        let keep = capacity - capacity / 8;
        let mut uses: Vec<u64> = self.results.values().map(|entry| entry.used).collect();
        let forget = uses.len() - keep;
        // Uses are distinct: exactly `keep` results are used at or after the cut.
        let (_, &mut cut, _) = uses.select_nth_unstable(forget);
        self.results.retain(|_, entry| entry.used >= cut);
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl CacheStore for MemoryCache {
    fn get(&self, key: &CacheKey) -> Option<Value> {
        let mut entries = self.lock();
        let used = entries.tick();
        let entry = entries.results.get_mut(key)?;
        entry.used = used;
        Some(entry.result.clone())
    }

    fn put(&self, key: CacheKey, result: Value) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        let used = entries.tick();
        entries.results.insert(key, Entry { result, used });
        entries.shrink_to(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The model: results from least to most recently used; past the capacity, the
    /// least recently used go, down to seven eighths of it.
    #[derive(Default)]
    struct Model {
        results: Vec<(u128, u64)>,
    }

    impl Model {
        fn get(&mut self, key: u128) -> Option<u64> {
            let at = self.results.iter().position(|&(k, _)| k == key)?;
            let found = self.results.remove(at);
            self.results.push(found);
            Some(found.1)
        }

        fn put(&mut self, key: u128, value: u64, capacity: usize) {
            if capacity == 0 {
                return;
            }
            self.results.retain(|&(k, _)| k != key);
            self.results.push((key, value));
            if self.results.len() > capacity {
                let keep = capacity - capacity / 8;
                self.results.drain(..self.results.len() - keep);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Get(u128),
        Put(u128, u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u128..40).prop_map(Step::Get),
            (0u128..40, any::<u64>()).prop_map(|(k, v)| Step::Put(k, v)),
        ]
    }

    proptest! {
        #[test]
        fn keeps_what_the_model_keeps_and_never_more_than_its_capacity(
            capacity in 0usize..20,
            steps in proptest::collection::vec(step(), 0..300),
        ) {
            let store = MemoryCache::with_capacity(capacity);
            let mut model = Model::default();
            for step in steps {
                match step {
                    Step::Get(key) => {
                        let found = store.get(&CacheKey(key));
                        prop_assert_eq!(found, model.get(key).map(Value::from));
                    }
                    Step::Put(key, value) => {
                        store.put(CacheKey(key), Value::from(value));
                        model.put(key, value, capacity);
                    }
                }
                prop_assert!(store.len() <= capacity);
                prop_assert_eq!(store.len(), model.results.len());
            }
        }
    }

    #[test]
    fn clear_forgets_everything_and_the_store_takes_results_again() {
        let store = MemoryCache::default();
        store.put(CacheKey(1), Value::from(1));
        store.clear();
        assert!(store.is_empty());
        store.put(CacheKey(1), Value::from(2));
        assert_eq!(store.get(&CacheKey(1)), Some(Value::from(2)));
        assert_eq!(store.capacity(), MemoryCache::DEFAULT_CAPACITY);
    }
}
