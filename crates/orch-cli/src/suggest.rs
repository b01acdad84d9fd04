//! "Did you mean ...?": the closest known name to a misspelt one.

/// The candidate closest to `wrong` by edit distance, if it is close enough to be a
/// likely typo (at most a third of the longer name, and at most 3 edits).
pub(crate) fn closest<'c>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .filter(|c| *c != wrong && within_three_in_length(wrong, c))
        .map(|c| (distance(wrong, c), c))
        .filter(|&(d, c)| d <= 3 && d * 3 <= wrong.chars().count().max(c.chars().count()))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Whether `a` and `b` differ in length by at most 3 characters, which a distance of at
/// most 3 needs: checked first, so that a long name is not compared at all. (Looked at
/// in bytes first: a character takes at most 4.)
fn within_three_in_length(a: &str, b: &str) -> bool {
    let (shorter, longer) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if longer.len() > 4 * (shorter.len() + 3) {
        return false;
    }
    a.chars().count().abs_diff(b.chars().count()) <= 3
}

/// Edit distance in characters, a swap of two neighbours counting as one edit (optimal
/// string alignment).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (previous[j - 1] + cost)
                .min(previous[j] + 1)
                .min(row[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut row);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_name_and_strangers_find_none() {
        let types = ["command", "sleep", "echo"];
        assert_eq!(closest("comand", types), Some("command"));
        assert_eq!(closest("slep", types), Some("sleep"));
        assert_eq!(closest("ecoh", types), Some("echo"));
        assert_eq!(closest("python", types), None);
        assert_eq!(closest("command", types), None);
    }

    /// A name far longer than every candidate is not compared with them: the edit
    /// distance of a name of millions of characters would take seconds.
    #[test]
    fn lengths_too_far_apart_are_not_compared() {
        let long = "x".repeat(20_000_000);
        assert!(!within_three_in_length(&long, "program"));
        assert!(!within_three_in_length("program", &long));
        assert!(within_three_in_length("naïve", "naive"));
        assert!(within_three_in_length("ab", "abcde"));
        assert!(!within_three_in_length("ab", "abcdef"));
        assert!(!within_three_in_length("読読読読読読", "読"));
        assert_eq!(closest(&long, ["program"]), None);
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("naïve", "naive"), 1);
        assert_eq!(distance("ecoh", "echo"), 1);
    }
}
