//! A bounded memory of the keys heard last, each with a value: a key heard again has
//! its values merged and counts as heard last, so that it outlasts those heard between.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// The `most` keys heard last, and of them no more than `max_bytes` (as `size` counts
/// a key), each with its value.
pub(super) struct Remembered<K, V> {
    /// Each hearing, oldest first, with its number: one that is not its key's last is
    /// stale, and passed over.
    heard: VecDeque<(K, u64)>,
    /// Each key remembered, with its value and the number of its last hearing.
    values: HashMap<K, (V, u64)>,
    /// Bytes of the keys remembered.
    bytes: usize,
    /// Bytes of the stale hearings, dropped once they reach `max_bytes` (or once they
    /// are more than `most`), so that they take at most as much again.
    stale_bytes: usize,
    next_hearing: u64,
    most: usize,
    max_bytes: usize,
    size: fn(&K) -> usize,
}

impl<K: Clone + Eq + Hash, V> Remembered<K, V> {
    pub(super) fn new(most: usize, max_bytes: usize, size: fn(&K) -> usize) -> Self {
        Self {
            heard: VecDeque::new(),
            values: HashMap::new(),
            bytes: 0,
            stale_bytes: 0,
            next_hearing: 0,
            most,
            max_bytes,
            size,
        }
    }

    /// The value remembered for `key`, if it is.
    pub(super) fn get(&self, key: &K) -> Option<&V> {
        self.values.get(key).map(|(value, _)| value)
    }

    /// Remembers `value` for `key`, merged into the value it has (`merge`) if it has one;
    /// forgets the keys heard longest ago past the bounds.
    pub(super) fn remember(&mut self, key: K, value: V, merge: impl FnOnce(&mut V, V)) {
        let hearing = self.next_hearing;
        self.next_hearing += 1;
        let size = (self.size)(&key);
        match self.values.get_mut(&key) {
            Some((known, last)) => {
                merge(known, value);
                *last = hearing;
                self.stale_bytes += size;
            }
            None => {
                self.values.insert(key.clone(), (value, hearing));
                self.bytes += size;
            }
        }
        self.heard.push_back((key, hearing));
        while self.values.len() > self.most || self.bytes > self.max_bytes {
            let Some((oldest, hearing)) = self.heard.pop_front() else {
                break;
            };
            let size = (self.size)(&oldest);
            match self.values.get(&oldest) {
                Some(&(_, last)) if last == hearing => {
                    self.values.remove(&oldest);
                    self.bytes -= size;
                }
                _ => self.stale_bytes -= size,
            }
        }
        let stale = self.heard.len() - self.values.len();
        if stale > self.most || self.stale_bytes > self.max_bytes {
            let values = &self.values;
            (self.heard).retain(|(key, hearing)| values.get(key).is_some_and(|v| v.1 == *hearing));
            self.stale_bytes = 0;
        }
    }

    /// How many keys are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.values.len()
    }

    /// The bytes of the keys remembered, and of all hearings kept.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> (usize, usize) {
        let heard = self.heard.iter().map(|(key, _)| (self.size)(key)).sum();
        (self.bytes, heard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The same memory kept plainly: keys in the order last heard, oldest first.
    struct Model {
        keys: Vec<(u8, Vec<u8>)>,
        most: usize,
        max_bytes: usize,
    }

    impl Model {
        fn remember(&mut self, key: u8, value: u8) {
            let mut values = vec![value];
            if let Some(at) = self.keys.iter().position(|(k, _)| *k == key) {
                values = self.keys.remove(at).1;
                values.push(value);
            }
            self.keys.push((key, values));
            while self.keys.len() > self.most || self.bytes() > self.max_bytes {
                self.keys.remove(0);
            }
        }

        fn bytes(&self) -> usize {
            self.keys.iter().map(|(key, _)| size(key)).sum()
        }
    }

    /// Keys of a few sizes, so that the byte bound is met before the count some times.
    fn size(key: &u8) -> usize {
        usize::from(key % 4) + 1
    }

    proptest! {
        #[test]
        fn agrees_with_a_list_in_the_order_heard(
            most in 1usize..6,
            max_bytes in 1usize..16,
            heard in proptest::collection::vec((0u8..10, any::<u8>()), 0..200),
        ) {
            let mut remembered = Remembered::new(most, max_bytes, size);
            let mut model = Model { keys: Vec::new(), most, max_bytes };
            for (key, value) in heard {
                remembered.remember(key, vec![value], |known, more| known.extend(more));
                model.remember(key, value);
                for key in 0..10 {
                    let expected = model.keys.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
                    prop_assert_eq!(remembered.get(&key), expected);
                }
                let (bytes, heard_bytes) = remembered.bytes();
                prop_assert_eq!(bytes, model.bytes());
                prop_assert!(heard_bytes <= 2 * max_bytes.max(bytes) + size(&key));
                prop_assert!(remembered.heard.len() <= 2 * most + 1);
            }
        }
    }
}
