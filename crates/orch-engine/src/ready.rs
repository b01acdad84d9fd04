//! [`ReadySet`]: the tasks that may start, by plan position, smallest first.

/// A set of plan positions that hands out the smallest first.
///
/// A two-level bitmap: one bit per position, and one summary bit per 64-position word that
/// is not empty. Inserting is two bit sets; taking the smallest scans summary words from a
/// cursor below which no position is set. Ready tasks cluster near the front of the plan
/// order, so the scan is short, and the memory is an eighth of a byte per task.
/// Hand-written because no common collection gives "smallest first" at that memory with
/// O(1) inserts: a `BinaryHeap` or `BTreeSet` of positions takes 4 to 40 bytes per task.
pub(crate) struct ReadySet {
    words: Vec<u64>,
    summary: Vec<u64>,
    /// No word before this one has a bit set.
    cursor: usize,
    len: usize,
}

impl ReadySet {
    /// An empty set for positions `0..n`.
    pub(crate) fn new(n: usize) -> Self {
        let words = n.div_ceil(64);
        Self {
            words: vec![0; words],
            summary: vec![0; words.div_ceil(64)],
            cursor: words,
            len: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `position` (which must be below `n` and not in the set).
    #[inline]
    pub(crate) fn insert(&mut self, position: u32) {
        let position = position as usize;
        let word = position / 64;
        self.words[word] |= 1 << (position % 64);
        self.summary[word / 64] |= 1 << (word % 64);
        self.cursor = self.cursor.min(word);
        self.len += 1;
    }

    /// Removes and returns the smallest position.
    #[inline]
    pub(crate) fn pop_min(&mut self) -> Option<u32> {
        let position = self.peek_min()?;
        let word = position as usize / 64;
        self.words[word] &= self.words[word] - 1;
        if self.words[word] == 0 {
            self.summary[word / 64] &= !(1 << (word % 64));
        }
        self.len -= 1;
        Some(position)
    }

    /// The smallest position, left in the set.
    #[inline]
    pub(crate) fn peek_min(&mut self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let mut block = self.cursor / 64;
        let mut mask = u64::MAX << (self.cursor % 64);
        while let Some(&bits) = self.summary.get(block) {
            let nonempty = bits & mask;
            if nonempty != 0 {
                let word = block * 64 + nonempty.trailing_zeros() as usize;
                self.cursor = word;
                return Some((word * 64 + self.words[word].trailing_zeros() as usize) as u32);
            }
            block += 1;
            mask = u64::MAX;
        }
        None
    }

    /// Empties the set.
    pub(crate) fn clear(&mut self) {
        self.words.fill(0);
        self.summary.fill(0);
        self.cursor = self.words.len();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::ReadySet;

    proptest! {
        /// Against an ordered set: any mix of inserts and pops gives the same answers.
        #[test]
        fn pops_the_smallest_like_an_ordered_set(
            n in 1usize..5000,
            steps in proptest::collection::vec((any::<bool>(), any::<prop::sample::Index>()), 0..400),
        ) {
            let mut ready = ReadySet::new(n);
            let mut model = BTreeSet::new();
            for (insert, at) in steps {
                if insert {
                    let position = at.index(n) as u32;
                    if model.insert(position) {
                        ready.insert(position);
                    }
                } else if at.index(2) == 0 {
                    prop_assert_eq!(ready.peek_min(), model.first().copied());
                } else {
                    prop_assert_eq!(ready.pop_min(), model.pop_first());
                }
                prop_assert_eq!(ready.is_empty(), model.is_empty());
            }
            while let Some(expected) = model.pop_first() {
                prop_assert_eq!(ready.pop_min(), Some(expected));
            }
            prop_assert_eq!(ready.pop_min(), None);
        }
    }

    #[test]
    fn clear_empties_it() {
        let mut ready = ReadySet::new(200);
        ready.insert(130);
        ready.insert(7);
        ready.clear();
        assert!(ready.is_empty());
        assert_eq!(ready.pop_min(), None);
        ready.insert(199);
        assert_eq!(ready.pop_min(), Some(199));
    }
}
