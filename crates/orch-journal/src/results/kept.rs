//! [`Kept`]: the results a [`ResultFile`](super::ResultFile) keeps, at most so many, the
//! most recently stored.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// Results by key, in the order they were stored (storing a key again moves it last),
/// at most `capacity` of them: storing one more forgets the one stored longest ago.
#[derive(Debug)]
pub(super) struct Kept {
    capacity: usize,
    results: HashMap<u128, (u64, Value)>,
    /// The keys by when they were last stored.
    order: BTreeMap<u64, u128>,
    /// When the next result is stored.
    next: u64,
}

impl Kept {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            results: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
        }
    }

    pub(super) fn get(&self, key: u128) -> Option<&Value> {
        self.results.get(&key).map(|(_, result)| result)
    }

    pub(super) fn len(&self) -> usize {
        self.results.len()
    }

    /// Stores `result` under `key` as the most recent, forgetting the oldest result past
    /// the capacity.
    pub(super) fn insert(&mut self, key: u128, result: Value) {
        if let Some((stored, _)) = self.results.insert(key, (self.next, result)) {
            self.order.remove(&stored);
        }
        self.order.insert(self.next, key);
        self.next += 1;
        while self.results.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.results.remove(&oldest);
        }
    }

    /// The results, the one stored longest ago first.
    pub(super) fn oldest_first(&self) -> impl Iterator<Item = (u128, &Value)> {
        self.order.values().map(|key| (*key, &self.results[key].1))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn storing_past_the_capacity_forgets_the_result_stored_longest_ago() {
        let mut kept = Kept::new(2);
        kept.insert(1, json!("a"));
        kept.insert(2, json!("b"));
        kept.insert(1, json!("a2"));
        kept.insert(3, json!("c"));
        assert_eq!(kept.get(2), None);
        let order: Vec<_> = kept
            .oldest_first()
            .map(|(key, r)| (key, r.clone()))
            .collect();
        assert_eq!(order, vec![(1, json!("a2")), (3, json!("c"))]);
        let mut none = Kept::new(0);
        none.insert(1, json!(1));
        assert_eq!(none.len(), 0);
    }
}
