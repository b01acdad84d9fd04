//! [`Values`]: the values that end at one place of the trie, in a list that routing
//! walks, and found by key when one is removed.

use std::collections::HashMap;

use super::MOST_SPARE;

/// A value's own key: what removes it again (a subscription's queue id).
pub(crate) trait Keyed {
    fn key(&self) -> u64;
}

/// Past this many values, their places are also kept by key: removing one then needs no
/// search of the list (a search per removal made ending many subscriptions to one pattern
/// quadratic), while the few values most places hold cost no map.
const INDEXED: usize = 32;

/// Values with distinct keys, in no particular order.
pub(super) struct Values<V> {
    list: Vec<V>,
    /// Each value's place in `list` by its key, while the list is long. Boxed: every
    /// node of the trie has two of these, nearly all without a map, and the walk through
    /// the trie reads fewer cache lines the smaller its nodes are.
    #[allow(clippy::box_collection)]
    places: Option<Box<HashMap<u64, usize, foldhash::fast::RandomState>>>,
}

impl<V> Default for Values<V> {
    fn default() -> Self {
        Self {
            list: Vec::new(),
            places: None,
        }
    }
}

impl<V> Values<V> {
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, V> {
        self.list.iter()
    }

    /// Takes every value out.
    pub(super) fn take(&mut self) -> Vec<V> {
        self.places = None;
        std::mem::take(&mut self.list)
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.list.capacity()
    }
}

impl<V: Keyed> Values<V> {
    /// Adds `value`, whose key none of the values has.
    pub(super) fn insert(&mut self, value: V) {
        if let Some(places) = &mut self.places {
            places.insert(value.key(), self.list.len());
        }
        self.list.push(value);
        if self.places.is_none() && self.list.len() > INDEXED {
            let places = self.list.iter().enumerate().map(|(i, v)| (v.key(), i));
            self.places = Some(Box::new(places.collect()));
        }
    }

    /// Removes the value with `key`, if there is one; the last value takes its place.
    pub(super) fn remove(&mut self, key: u64) -> Option<V> {
        let place = match &mut self.places {
            Some(places) => places.remove(&key)?,
            None => self.list.iter().position(|v| v.key() == key)?,
        };
        let removed = self.list.swap_remove(place);
        if let (Some(places), Some(moved)) = (&mut self.places, self.list.get(place)) {
            places.insert(moved.key(), place);
        }
        // Dropped well below the bound, so that a list around it does not build its map
        // again and again.
        if self.list.len() < INDEXED / 2 {
            self.places = None;
        }
        if self.list.capacity() > MOST_SPARE * (self.list.len() + 8) {
            self.list.shrink_to_fit();
            if let Some(places) = &mut self.places {
                places.shrink_to_fit();
            }
        }
        Some(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Keyed for u32 {
        fn key(&self) -> u64 {
            u64::from(*self)
        }
    }

    proptest::proptest! {
        /// Inserting and removing by key agree with a plain list, across the length at
        /// which places are kept by key, both ways.
        #[test]
        fn removing_by_key_agrees_with_a_list(
            ops in proptest::collection::vec((proptest::bool::weighted(0.55), 0..80u32), 1..400),
        ) {
            let mut values = Values::default();
            let mut list: Vec<u32> = Vec::new();
            for (insert, key) in ops {
                if insert && !list.contains(&key) {
                    values.insert(key);
                    list.push(key);
                } else {
                    let expected = list.iter().position(|&v| v == key).map(|i| list.remove(i));
                    proptest::prop_assert_eq!(values.remove(key.into()), expected);
                }
                let mut held: Vec<u32> = values.iter().copied().collect();
                held.sort_unstable();
                let mut wanted = list.clone();
                wanted.sort_unstable();
                proptest::prop_assert_eq!(held, wanted);
            }
        }
    }
}
