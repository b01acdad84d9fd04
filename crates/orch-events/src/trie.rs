//! The subject trie: patterns stored token by token, so matching a subject costs a few
//! map look-ups per subject token, however many subscriptions there are.

use std::collections::HashMap;

use crate::Pattern;

/// Values (subscriptions) keyed by pattern.
pub(crate) struct Trie<V> {
    root: Node<V>,
    len: usize,
}

struct Node<V> {
    /// Children for literal tokens.
    literal: HashMap<Box<str>, Node<V>, foldhash::fast::RandomState>,
    /// Child for `*`.
    star: Option<Box<Node<V>>>,
    /// Values whose pattern ends with `>` right after this node.
    rest: Vec<V>,
    /// Values whose pattern ends at this node.
    here: Vec<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self {
            literal: HashMap::default(),
            star: None,
            rest: Vec::new(),
            here: Vec::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.star.is_none()
            && self.rest.is_empty()
            && self.here.is_empty()
    }

    /// Matches `subject`, the rest of a subject from token `depth` on.
    fn visit<'a, F: FnMut(&'a V)>(
        &'a self,
        subject: &str,
        depth: usize,
        f: &mut F,
        reach: &mut Reach,
    ) {
        let (token, rest) = match subject.split_once('.') {
            Some((token, rest)) => (token, Some(rest)),
            None => (subject, None),
        };
        // `>` after this node matches this token and everything after it.
        self.rest.iter().for_each(&mut *f);
        reach.read(depth + 1);
        if let Some(child) = self.literal.get(token) {
            child.descend(rest, depth + 1, f, reach);
        }
        if let Some(child) = self.star.as_deref() {
            child.descend(rest, depth + 1, f, reach);
        }
    }

    fn descend<'a, F: FnMut(&'a V)>(
        &'a self,
        rest: Option<&str>,
        depth: usize,
        f: &mut F,
        reach: &mut Reach,
    ) {
        match rest {
            Some(rest) => self.visit(rest, depth, f, reach),
            None => {
                // Whether the subject ends here decided the answer.
                reach.whole = true;
                self.here.iter().for_each(f);
            }
        }
    }
}

/// How much of a subject a match had to look at: its first `tokens` tokens, or (`whole`)
/// all of it, end included. When not `whole`, every subject with the same first `tokens`
/// tokens has the same matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reach {
    pub(crate) tokens: usize,
    pub(crate) whole: bool,
}

impl Reach {
    fn read(&mut self, tokens: usize) {
        self.tokens = self.tokens.max(tokens);
    }

    /// The bytes of `subject` that decided its matches, when that is a leading part of it.
    pub(crate) fn deciding_prefix(self, subject: &str) -> Option<&str> {
        if self.whole {
            return None;
        }
        let end = subject
            .match_indices('.')
            .nth(self.tokens.checked_sub(1)?)
            .map_or(subject.len(), |(dot, _)| dot);
        Some(&subject[..end])
    }
}

/// Whether `subject` begins with the whole tokens of `prefix`.
pub(crate) fn begins_with_tokens(subject: &str, prefix: &str) -> bool {
    subject.starts_with(prefix)
        && (subject.len() == prefix.len() || subject.as_bytes()[prefix.len()] == b'.')
}

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> Trie<V> {
    /// How many values are stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `value` under `pattern`.
    pub(crate) fn insert(&mut self, pattern: &Pattern, value: V) {
        let mut node = &mut self.root;
        for token in pattern.tokens() {
            match token {
                ">" => {
                    node.rest.push(value);
                    self.len += 1;
                    return;
                }
                "*" => node = node.star.get_or_insert_with(Box::default),
                _ => node = node.literal.entry(token.into()).or_default(),
            }
        }
        node.here.push(value);
        self.len += 1;
    }

    /// Removes the first value under `pattern` for which `is_it` holds, pruning
    /// branches left empty. Returns it, if any.
    pub(crate) fn remove(&mut self, pattern: &Pattern, is_it: impl Fn(&V) -> bool) -> Option<V> {
        let tokens: Vec<&str> = pattern.tokens().collect();
        let removed = remove_in(&mut self.root, &tokens, &is_it);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` on each value whose pattern matches `subject` (a valid subject), once
    /// per value.
    #[cfg(test)]
    pub(crate) fn for_each_match<'a>(&'a self, subject: &str, f: impl FnMut(&'a V)) {
        self.for_each_match_reach(subject, f);
    }

    /// [`Trie::for_each_match`], saying how much of `subject` decided the matches.
    pub(crate) fn for_each_match_reach<'a>(
        &'a self,
        subject: &str,
        mut f: impl FnMut(&'a V),
    ) -> Reach {
        let mut reach = Reach::default();
        self.root.visit(subject, 0, &mut f, &mut reach);
        reach
    }

    /// Removes and returns every value.
    pub(crate) fn take_all(&mut self) -> Vec<V> {
        let mut out = Vec::with_capacity(self.len);
        let mut stack = vec![std::mem::take(&mut self.root)];
        while let Some(mut node) = stack.pop() {
            out.append(&mut node.here);
            out.append(&mut node.rest);
            stack.extend(node.literal.into_values());
            stack.extend(node.star.map(|b| *b));
        }
        self.len = 0;
        out
    }
}

fn remove_in<V>(node: &mut Node<V>, tokens: &[&str], is_it: &impl Fn(&V) -> bool) -> Option<V> {
    let take = |values: &mut Vec<V>| values.iter().position(is_it).map(|i| values.remove(i));
    let Some((&token, rest)) = tokens.split_first() else {
        return take(&mut node.here);
    };
    match token {
        ">" => take(&mut node.rest),
        "*" => {
            let child = node.star.as_deref_mut()?;
            let removed = remove_in(child, rest, is_it);
            if child.is_empty() {
                node.star = None;
            }
            removed
        }
        _ => {
            let child = node.literal.get_mut(token)?;
            let removed = remove_in(child, rest, is_it);
            if child.is_empty() {
                node.literal.remove(token);
            }
            removed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> Pattern {
        Pattern::new(p).expect("valid pattern")
    }

    fn matches(trie: &Trie<u32>, subject: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.for_each_match(subject, |v| out.push(*v));
        out.sort_unstable();
        out
    }

    #[test]
    fn insert_match_remove_prunes() {
        let mut trie = Trie::default();
        trie.insert(&pattern("a.b"), 1);
        trie.insert(&pattern("a.*"), 2);
        trie.insert(&pattern("a.>"), 3);
        trie.insert(&pattern(">"), 4);
        trie.insert(&pattern("*.b.c"), 5);
        let long = "a.a-token-longer-than-twenty-three-bytes";
        trie.insert(&pattern(long), 6);
        assert_eq!(matches(&trie, long), [2, 3, 4, 6]);
        assert_eq!(
            matches(&trie, "a.a-token-longer-than-twenty-three-byte"),
            [2, 3, 4]
        );
        assert_eq!(trie.remove(&pattern(long), |v| *v == 6), Some(6));
        assert_eq!(trie.len(), 5);
        assert_eq!(matches(&trie, "a.b"), [1, 2, 3, 4]);
        assert_eq!(matches(&trie, "a.b.c"), [3, 4, 5]);
        assert_eq!(matches(&trie, "a"), [4]);
        assert_eq!(trie.remove(&pattern("a.*"), |v| *v == 2), Some(2));
        assert_eq!(trie.remove(&pattern("a.*"), |v| *v == 2), None);
        assert_eq!(trie.remove(&pattern("x.y"), |_| true), None);
        assert_eq!(matches(&trie, "a.b"), [1, 3, 4]);
        for (p, v) in [("a.b", 1), ("a.>", 3), (">", 4), ("*.b.c", 5)] {
            assert_eq!(trie.remove(&pattern(p), |x| *x == v), Some(v));
        }
        assert_eq!(trie.len(), 0);
        assert!(trie.root.is_empty());
    }

    #[test]
    fn the_reach_is_the_leading_tokens_that_decide() {
        let mut trie = Trie::default();
        trie.insert(&pattern("workflow.>"), 1);
        let reach = trie.for_each_match_reach("workflow.etl.task.a.started", |_| {});
        assert_eq!(
            reach,
            Reach {
                tokens: 2,
                whole: false
            }
        );
        assert_eq!(
            reach.deciding_prefix("workflow.etl.task.a.started"),
            Some("workflow.etl")
        );
        trie.insert(&pattern("workflow.etl.task.*.failed"), 2);
        let reach = trie.for_each_match_reach("workflow.etl.task.a.started", |_| {});
        assert_eq!(
            reach,
            Reach {
                tokens: 5,
                whole: false
            }
        );
        trie.insert(&pattern("workflow.etl"), 3);
        assert!(trie.for_each_match_reach("workflow.etl", |_| {}).whole);
        assert!(begins_with_tokens("a.b.c", "a.b"));
        assert!(begins_with_tokens("a.b", "a.b"));
        assert!(!begins_with_tokens("a.bc", "a.b"));
    }

    proptest::proptest! {
        /// Subjects that share the deciding tokens have the same matches.
        #[test]
        fn subjects_sharing_the_deciding_tokens_match_alike(
            patterns in proptest::collection::vec("[ab*](\\.[ab*]){0,3}(\\.>)?", 1..8),
            subject in "[ab](\\.[ab]){0,4}",
            tail in "(\\.[ab]){0,2}",
        ) {
            let mut trie = Trie::default();
            for (i, p) in patterns.iter().enumerate() {
                trie.insert(&pattern(p), i as u32);
            }
            let reach = trie.for_each_match_reach(&subject, |_| {});
            if let Some(prefix) = reach.deciding_prefix(&subject) {
                let other = format!("{prefix}{tail}");
                proptest::prop_assert_eq!(matches(&trie, &other), matches(&trie, &subject));
            }
        }
    }

    #[test]
    fn take_all_empties() {
        let mut trie = Trie::default();
        for (i, p) in ["a", "a.*", "*.>", "b.c.d"].into_iter().enumerate() {
            trie.insert(&pattern(p), i);
        }
        let mut all = trie.take_all();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3]);
        assert_eq!(trie.len(), 0);
    }
}
