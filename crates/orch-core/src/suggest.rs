//! "Did you mean ...?": the known name closest to a name that is not known.

/// How much work one search for suggestions may do, in steps: one per candidate looked at,
/// one per byte of a candidate read (to count its characters) and one per pair of
/// characters compared. Enough for every typo in a hand-written workflow; a generated one
/// with many unknown names gets suggestions for the first few.
pub(crate) const BUDGET: usize = 1 << 24;

/// The longest candidate, in bytes, compared with a name: a longer one is passed over
/// unread.
const MAX_CANDIDATE_BYTES: usize = 4 * 1024;

/// What is left of a search's [`BUDGET`].
#[derive(Debug)]
pub(crate) struct Budget(usize);

impl Budget {
    pub(crate) fn new() -> Self {
        Self(BUDGET)
    }

    /// Takes `steps` from the budget; `false` (and nothing taken) when too few are left.
    fn spend(&mut self, steps: usize) -> bool {
        match self.0.checked_sub(steps) {
            Some(left) => {
                self.0 = left;
                true
            }
            None => false,
        }
    }
}

/// The candidate closest to `name`, if one is close enough to be a likely typo: at most one
/// edit (insert, delete, replace or swap two neighbours) per three characters of `name`
/// (so none for a name shorter than three: one edit makes `c` any other letter). Among
/// equally close candidates, the first wins. `itself`, the name of what the search is
/// for when it is among the candidates, is never suggested (telling it apart is paid for
/// as reading the candidate). Stops, with the best found so far, when `budget` runs out.
pub(crate) fn closest<'c>(
    name: &str,
    itself: Option<&str>,
    candidates: impl IntoIterator<Item = &'c str>,
    budget: &mut Budget,
) -> Option<&'c str> {
    let name: Vec<char> = name.chars().collect();
    let limit = name.len() / 3;
    if limit == 0 {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if !budget.spend(1) {
            break;
        }
        if candidate.len() > MAX_CANDIDATE_BYTES {
            continue;
        }
        // Counting its characters reads the whole candidate.
        if !budget.spend(candidate.len()) {
            break;
        }
        if itself == Some(candidate) {
            continue;
        }
        let length = candidate.chars().count();
        if length.abs_diff(name.len()) > limit {
            continue;
        }
        if !budget.spend(length * name.len()) {
            break;
        }
        let other: Vec<char> = candidate.chars().collect();
        let distance = edit_distance(&name, &other);
        let better = best.is_none_or(|(d, _)| distance < d);
        if distance > 0 && distance <= limit && better {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// The fewest single-character inserts, deletes, replacements and swaps of neighbours that
/// turn `a` into `b` (optimal string alignment distance).
pub(crate) fn edit_distance(a: &[char], b: &[char]) -> usize {
    // Three rows of the table: two back (for swaps), one back, and the one being filled.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let replace = usize::from(a[i - 1] != b[j - 1]);
            let mut cost = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + replace);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cost = cost.min(before[j - 2] + 1);
            }
            current[j] = cost;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// `; did you mean `x`?` for a suggestion, nothing without one.
pub(crate) fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!("; did you mean `{}`?", crate::error::shown_id(s)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::{BUDGET, Budget, MAX_CANDIDATE_BYTES, closest, edit_distance};

    fn distance(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        edit_distance(&a, &b)
    }

    /// The distance by its definition, by recursion over prefixes (memoised).
    fn reference(a: &[char], b: &[char]) -> usize {
        fn go(
            a: &[char],
            b: &[char],
            i: usize,
            j: usize,
            memo: &mut HashMap<(usize, usize), usize>,
        ) -> usize {
            if i == 0 || j == 0 {
                return i + j;
            }
            if let Some(&known) = memo.get(&(i, j)) {
                return known;
            }
            let mut best = (go(a, b, i - 1, j, memo) + 1)
                .min(go(a, b, i, j - 1, memo) + 1)
                .min(go(a, b, i - 1, j - 1, memo) + usize::from(a[i - 1] != b[j - 1]));
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(go(a, b, i - 2, j - 2, memo) + 1);
            }
            memo.insert((i, j), best);
            best
        }
        go(a, b, a.len(), b.len(), &mut HashMap::new())
    }

    #[test]
    fn distances_of_typical_typos() {
        assert_eq!(distance("extract_ordr", "extract_order"), 1);
        assert_eq!(distance("laod", "load"), 1);
        assert_eq!(distance("load", "load"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_takes_the_nearest_and_refuses_far_names() {
        let known = ["extract_order", "extract_orders", "load"];
        let mut budget = Budget::new();
        assert_eq!(
            closest("extract_ordr", None, known, &mut budget),
            Some("extract_order")
        );
        assert_eq!(closest("laod", None, known, &mut budget), Some("load"));
        assert_eq!(closest("zzzz", None, known, &mut budget), None);
        assert_eq!(
            closest("load", None, known, &mut budget),
            None,
            "not itself"
        );
    }

    #[test]
    fn a_comparison_the_budget_cannot_pay_for_leaves_the_budget_to_the_next_search() {
        let long = "a".repeat(40);
        let mut budget = Budget(1000);
        assert_eq!(
            closest(&long, None, [long.replace('a', "b").as_str()], &mut budget),
            None
        );
        assert_eq!(closest("laod", None, ["load"], &mut budget), Some("load"));
    }

    /// The steps `closest("abcd", None, [candidate])` takes from a full budget.
    fn steps_to_look_at(candidate: &str) -> usize {
        let mut budget = Budget::new();
        assert_eq!(closest("abcd", None, [candidate], &mut budget), None);
        BUDGET - budget.0
    }

    #[test]
    fn reading_a_candidate_is_paid_for_by_the_byte() {
        // Far too long to be a typo of `abcd`, but telling so takes counting its
        // characters.
        let long = "x".repeat(MAX_CANDIDATE_BYTES);
        assert!(steps_to_look_at(&long) > MAX_CANDIDATE_BYTES);
        assert!(steps_to_look_at(&"é".repeat(MAX_CANDIDATE_BYTES / 2)) > MAX_CANDIDATE_BYTES);
    }

    #[test]
    fn a_candidate_too_long_to_compare_is_passed_over_for_one_step() {
        assert_eq!(steps_to_look_at(&"x".repeat(1 << 20)), 1);
    }

    #[test]
    fn passing_over_the_searcher_itself_is_paid_for_by_the_byte() {
        // Telling a candidate from `itself` reads both: with long ids that differ only
        // at the end, a search per unknown name would otherwise read them for free.
        let itself = format!("{}a", "x".repeat(MAX_CANDIDATE_BYTES - 1));
        let other = format!("{}b", "x".repeat(MAX_CANDIDATE_BYTES - 1));
        let mut budget = Budget::new();
        let found = closest(
            "abcd",
            Some(&itself),
            [itself.as_str(), &other],
            &mut budget,
        );
        assert_eq!(found, None);
        assert!(BUDGET - budget.0 > 2 * MAX_CANDIDATE_BYTES);
        // Once the budget is spent, a search reads no candidate at all.
        let mut budget = Budget(MAX_CANDIDATE_BYTES);
        let found = closest(
            "abcd",
            Some(&itself),
            [itself.as_str(), &other],
            &mut budget,
        );
        assert_eq!((found, budget.0), (None, MAX_CANDIDATE_BYTES - 1));
    }

    #[test]
    fn itself_is_never_suggested() {
        let known = ["load", "laod2"];
        let found = closest("laod", Some("load"), known, &mut Budget::new());
        assert_eq!(found, Some("laod2"));
    }

    #[test]
    fn an_empty_budget_suggests_nothing() {
        let mut budget = Budget(0);
        assert_eq!(closest("laod", None, ["load"], &mut budget), None);
    }

    proptest! {
        #[test]
        fn edit_distance_matches_its_definition(a in "[abc]{0,8}", b in "[abc]{0,8}") {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            prop_assert_eq!(edit_distance(&a, &b), reference(&a, &b));
        }
    }
}
