//! Branch choices: which of its direct dependents a completing task lets run.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The choices made by the attempts of one run, kept until their tasks complete.
#[derive(Default)]
pub(crate) struct Branches {
    /// Whether any attempt chose, so that a run without branches never takes the lock.
    any: AtomicBool,
    /// Per choice: the task's plan index, the attempt that chose and the chosen dependents.
    chosen: Mutex<Vec<(u32, u32, Vec<u32>)>>,
}

impl Branches {
    /// Keeps the choice of `attempt` of task `index`, replacing one made before by the
    /// same or an earlier attempt; a late choice of an earlier attempt (one that timed
    /// out, whose blocking handler went on) does not replace a later attempt's.
    pub(crate) fn choose(&self, index: u32, attempt: u32, dependents: Vec<u32>) {
        let mut chosen = self
            .chosen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if chosen
            .iter()
            .any(|&(i, made_in, _)| i == index && made_in > attempt)
        {
            return;
        }
        chosen.retain(|(i, _, _)| *i != index);
        chosen.push((index, attempt, dependents));
        self.any.store(true, Ordering::Release);
    }

    /// Whether some attempt of the run chose branches.
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Whether `attempt` of task `index` made the choice kept for it.
    pub(crate) fn chose(&self, index: u32, attempt: u32) -> bool {
        self.any() && self.with_choice(index, attempt, |_| ()).is_some()
    }

    /// The dependents `attempt` of task `index` chose, if it made the choice kept for it;
    /// the choice stays to be taken.
    pub(crate) fn peek(&self, index: u32, attempt: u32) -> Option<Vec<u32>> {
        self.with_choice(index, attempt, <[u32]>::to_vec)
    }

    /// `read` of the dependents `attempt` of task `index` chose, if it made the choice
    /// kept for it.
    fn with_choice<T>(
        &self,
        index: u32,
        attempt: u32,
        read: impl FnOnce(&[u32]) -> T,
    ) -> Option<T> {
        let chosen = self
            .chosen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        chosen
            .iter()
            .find(|&&(i, made_in, _)| i == index && made_in == attempt)
            .map(|(_, _, dependents)| read(dependents))
    }

    /// Takes the choice task `index` made in `attempt` (the one that completed), if any;
    /// a choice made by an earlier, failed attempt is dropped. Callers look at
    /// [`Branches::any`] first, which spares a run without branches the lock.
    pub(crate) fn take(&self, index: u32, attempt: u32) -> Option<Vec<u32>> {
        let mut chosen = self
            .chosen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = chosen.iter().position(|(i, _, _)| *i == index)?;
        let (_, made_in, dependents) = chosen.swap_remove(at);
        (made_in == attempt).then_some(dependents)
    }
}

#[cfg(test)]
mod tests {
    use super::Branches;

    #[test]
    fn a_late_choice_of_an_earlier_attempt_does_not_replace_a_later_ones() {
        let branches = Branches::default();
        branches.choose(3, 2, vec![5]);
        branches.choose(3, 1, vec![6]);
        assert_eq!(branches.take(3, 2), Some(vec![5]));
        branches.choose(4, 1, vec![7]);
        branches.choose(4, 2, vec![8]);
        assert_eq!(branches.take(4, 2), Some(vec![8]));
    }
}
