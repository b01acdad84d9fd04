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
    // Forced inline: on every task's path, where the optimiser kept a call.
    #[inline(always)]
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
        let (word, position) = self.first_from_word(self.cursor)?;
        self.cursor = word;
        Some(position)
    }

    /// The smallest position above `position` (which must be below `n`), left in the set.
    #[inline]
    pub(crate) fn peek_after(&self, position: u32) -> Option<u32> {
        let word = position as usize / 64;
        let above = self.words[word] & ((u64::MAX << (position % 64)) << 1);
        if above != 0 {
            return Some((word * 64) as u32 + above.trailing_zeros());
        }
        Some(self.first_from_word(word + 1)?.1)
    }

    /// The first word at or after `word` with a position in the set, and its smallest
    /// position.
    #[inline]
    fn first_from_word(&self, word: usize) -> Option<(usize, u32)> {
        let mut block = word / 64;
        let mut mask = u64::MAX << (word % 64);
        while let Some(&bits) = self.summary.get(block) {
            let nonempty = bits & mask;
            if nonempty != 0 {
                let word = block * 64 + nonempty.trailing_zeros() as usize;
                let position = word * 64 + self.words[word].trailing_zeros() as usize;
                return Some((word, position as u32));
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
        /// Against an ordered set: any mix of inserts, peeks and pops gives the same answers.
        #[test]
        fn pops_the_smallest_like_an_ordered_set(
            n in 1usize..5000,
            steps in proptest::collection::vec((0u8..5, any::<prop::sample::Index>()), 0..400),
        ) {
            let mut ready = ReadySet::new(n);
            let mut model = BTreeSet::new();
            for (step, at) in steps {
                let position = at.index(n) as u32;
                match step {
                    0 | 1 => {
                        if model.insert(position) {
                            ready.insert(position);
                        }
                    }
                    2 => prop_assert_eq!(ready.peek_min(), model.first().copied()),
                    3 => prop_assert_eq!(
                        ready.peek_after(position),
                        model.range(position + 1..).next().copied()
                    ),
                    _ => prop_assert_eq!(ready.pop_min(), model.pop_first()),
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
