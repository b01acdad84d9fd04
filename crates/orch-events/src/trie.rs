//! The subject trie: patterns stored token by token, so matching a subject costs a few
//! map look-ups per subject token and per stored pattern prefix that matches it, not
//! one per subscription.

mod values;

use std::collections::HashMap;

use arrayvec::ArrayVec;

pub(crate) use values::Keyed;
use values::Values;

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
    rest: Values<V>,
    /// Values whose pattern ends at this node.
    here: Values<V>,
}

/// How many times what a node holds its room may be before the room is given back: a
/// node that once held a million short-lived subscriptions keeps no room for them, and
/// room is given back once per so many removals.
const MOST_SPARE: usize = 4;

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self {
            literal: HashMap::default(),
            star: None,
            rest: Values::default(),
            here: Values::default(),
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

    /// Whether this node holds anything besides one child.
    fn holds_more_than_a_child(&self) -> bool {
        self.literal.len() + usize::from(self.star.is_some()) + self.rest.len() + self.here.len()
            > 1
    }

    fn child(&self, token: &str) -> Option<&Node<V>> {
        match token {
            "*" => self.star.as_deref(),
            _ => self.literal.get(token),
        }
    }

    fn child_mut(&mut self, token: &str) -> Option<&mut Node<V>> {
        match token {
            "*" => self.star.as_deref_mut(),
            _ => self.literal.get_mut(token),
        }
    }

    /// The node at the end of `path` (pattern tokens, `>` excluded) from this one.
    fn find_mut(&mut self, path: &[&str]) -> Option<&mut Node<V>> {
        let mut node = self;
        for token in path {
            node = node.child_mut(token)?;
        }
        Some(node)
    }

    /// Moves this node's children onto `nodes`.
    fn give_children(&mut self, nodes: &mut Vec<Node<V>>) {
        nodes.extend(self.literal.drain().map(|(_, child)| child));
        nodes.extend(self.star.take().map(|child| *child));
    }
}

/// Taken apart level by level: dropping each child inside its parent would recurse once
/// per pattern token.
impl<V> Drop for Node<V> {
    fn drop(&mut self) {
        if self.literal.is_empty() && self.star.is_none() {
            return;
        }
        let mut nodes = Vec::new();
        self.give_children(&mut nodes);
        while let Some(mut node) = nodes.pop() {
            node.give_children(&mut nodes);
        }
    }
}

/// Branches of a match still to visit: each a node, how many subject tokens led to it,
/// and the rest of the subject (`None` when the subject ended there). A few are kept
/// inline, so a match that forks rarely does not allocate.
struct Branches<'a, 's, V> {
    near: ArrayVec<Branch<'a, 's, V>, 8>,
    far: Vec<Branch<'a, 's, V>>,
}

type Branch<'a, 's, V> = (&'a Node<V>, usize, Option<&'s str>);

impl<'a, 's, V> Branches<'a, 's, V> {
    fn push(&mut self, branch: Branch<'a, 's, V>) {
        if let Err(full) = self.near.try_push(branch) {
            self.far.push(full.element());
        }
    }

    /// The branch pushed last.
    fn pop(&mut self) -> Option<Branch<'a, 's, V>> {
        self.far.pop().or_else(|| self.near.pop())
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

impl<V: Keyed> Trie<V> {
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
                    node.rest.insert(value);
                    self.len += 1;
                    return;
                }
                "*" => node = node.star.get_or_insert_with(Box::default),
                _ => node = node.literal.entry(token.into()).or_default(),
            }
        }
        node.here.insert(value);
        self.len += 1;
    }

    /// Removes the value with `key` under `pattern`, pruning branches left empty.
    /// Returns it, if any. (The values that share its pattern may change order.)
    pub(crate) fn remove(&mut self, pattern: &Pattern, key: u64) -> Option<V> {
        let mut path: Vec<&str> = pattern.tokens().collect();
        let rest = path.last() == Some(&">");
        if rest {
            path.pop();
        }
        let node = self.root.find_mut(&path)?;
        let values = if rest { &mut node.rest } else { &mut node.here };
        let removed = values.remove(key)?;
        self.len -= 1;
        if node.is_empty() {
            self.prune(&path);
        }
        Some(removed)
    }

    /// Cuts off the branch along `path` that holds nothing but the empty node at its end:
    /// the part below the deepest node on `path` that holds something else too (or below
    /// the root).
    fn prune(&mut self, path: &[&str]) {
        let mut keep = 0;
        let mut node = &self.root;
        for (depth, token) in path.iter().enumerate() {
            if node.holds_more_than_a_child() {
                keep = depth;
            }
            let Some(child) = node.child(token) else {
                return;
            };
            node = child;
        }
        let Some(&cut) = path.get(keep) else {
            return;
        };
        let Some(parent) = self.root.find_mut(&path[..keep]) else {
            return;
        };
        // Dropped here, level by level (see `Drop for Node`).
        match cut {
            "*" => drop(parent.star.take()),
            _ => {
                drop(parent.literal.remove(cut));
                let children = &mut parent.literal;
                if children.capacity() > MOST_SPARE * (children.len() + 8) {
                    children.shrink_to_fit();
                }
            }
        }
    }

    /// Calls `f` on each value whose pattern matches `subject` (a valid subject), once
    /// per value.
    #[cfg(test)]
    pub(crate) fn for_each_match<'a>(&'a self, subject: &str, f: impl FnMut(&'a V)) {
        self.for_each_match_reach(subject, f);
    }

    /// [`Trie::for_each_match`], saying how much of `subject` decided the matches.
    ///
    /// A depth-first walk, literal child before `*` child, without recursion: the
    /// branch not taken at a fork waits in [`Branches`].
    pub(crate) fn for_each_match_reach<'a>(
        &'a self,
        subject: &str,
        mut f: impl FnMut(&'a V),
    ) -> Reach {
        let mut reach = Reach::default();
        let mut forks = Branches {
            near: ArrayVec::new(),
            far: Vec::new(),
        };
        let mut next = Some((&self.root, 0, Some(subject)));
        while let Some((node, depth, rest)) = next.take().or_else(|| forks.pop()) {
            let Some(rest) = rest else {
                // Whether the subject ends here decided the answer.
                reach.whole = true;
                node.here.iter().for_each(&mut f);
                continue;
            };
            let (token, after) = match rest.split_once('.') {
                Some((token, after)) => (token, Some(after)),
                None => (rest, None),
            };
            // `>` after this node matches this token and everything after it.
            node.rest.iter().for_each(&mut f);
            reach.read(depth + 1);
            let literal = node.literal.get(token);
            let star = node.star.as_deref();
            if let (Some(_), Some(star)) = (literal, star) {
                forks.push((star, depth + 1, after));
            }
            next = literal.or(star).map(|child| (child, depth + 1, after));
        }
        reach
    }

    /// Removes and returns every value.
    pub(crate) fn take_all(&mut self) -> Vec<V> {
        let mut out = Vec::with_capacity(self.len);
        let mut stack = vec![std::mem::take(&mut self.root)];
        while let Some(mut node) = stack.pop() {
            out.append(&mut node.here.take());
            out.append(&mut node.rest.take());
            node.give_children(&mut stack);
        }
        self.len = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Subject;

    impl Keyed for usize {
        fn key(&self) -> u64 {
            *self as u64
        }
    }

    /// How many nodes the trie has, the root included.
    fn nodes<V>(trie: &Trie<V>) -> usize {
        let mut count = 0;
        let mut stack = vec![&trie.root];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.literal.values());
            stack.extend(node.star.as_deref());
        }
        count
    }

    fn pattern(p: &str) -> Pattern {
        Pattern::new(p).expect("valid pattern")
    }

    fn matches(trie: &Trie<u32>, subject: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.for_each_match(subject, |v| out.push(*v));
        out.sort_unstable();
        out
    }

    /// A node that keeps one subscription after many others under it went keeps no
    /// room for them.
    #[test]
    fn a_node_gives_back_the_room_of_removed_branches_and_values() {
        let mut trie = Trie::default();
        trie.insert(&pattern("run.>"), u32::MAX);
        for n in 0..10_000 {
            trie.insert(&pattern(&format!("run.{n}.>")), n);
            trie.insert(&pattern("run"), n);
        }
        for n in 0..10_000 {
            assert_eq!(
                trie.remove(&pattern(&format!("run.{n}.>")), n.into()),
                Some(n)
            );
            assert_eq!(trie.remove(&pattern("run"), n.into()), Some(n));
        }
        let run = trie.root.child("run").expect("kept for `run.>`");
        assert!(run.literal.capacity() < 64, "{}", run.literal.capacity());
        assert!(run.here.capacity() < 64, "{}", run.here.capacity());
        assert_eq!(matches(&trie, "run.1.x"), [u32::MAX]);
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
        assert_eq!(trie.remove(&pattern(long), 6), Some(6));
        assert_eq!(trie.len(), 5);
        assert_eq!(matches(&trie, "a.b"), [1, 2, 3, 4]);
        assert_eq!(matches(&trie, "a.b.c"), [3, 4, 5]);
        assert_eq!(matches(&trie, "a"), [4]);
        assert_eq!(trie.remove(&pattern("a.*"), 2), Some(2));
        assert_eq!(trie.remove(&pattern("a.*"), 2), None);
        assert_eq!(trie.remove(&pattern("x.y"), 1), None);
        assert_eq!(matches(&trie, "a.b"), [1, 3, 4]);
        for (p, v) in [("a.b", 1), ("a.>", 3), (">", 4), ("*.b.c", 5)] {
            assert_eq!(trie.remove(&pattern(p), v.into()), Some(v));
        }
        assert_eq!(trie.len(), 0);
        assert!(trie.root.is_empty());
    }

    #[test]
    fn the_reach_is_the_leading_tokens_that_decide() {
        let mut trie: Trie<u32> = Trie::default();
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

    proptest::proptest! {
        /// Inserting and removing agree with a plain list of patterns, and removing
        /// everything leaves no node behind.
        #[test]
        fn removing_agrees_with_a_list(
            ops in proptest::collection::vec(
                (proptest::bool::weighted(0.6), "[ab*](\\.[ab*]){0,3}(\\.>)?"),
                1..32,
            ),
            subjects in proptest::collection::vec("[ab](\\.[ab]){0,4}", 1..6),
        ) {
            let mut trie = Trie::default();
            let mut list: Vec<(Pattern, u32)> = Vec::new();
            for (value, (insert, text)) in (0..).zip(&ops) {
                let p = pattern(text);
                if *insert {
                    trie.insert(&p, value);
                    list.push((p, value));
                } else {
                    // The value first added under `p`, or one never added.
                    let first = list.iter().position(|(q, _)| *q == p);
                    let key = first.map_or(u32::MAX, |i| list[i].1);
                    let expected = first.map(|i| list.remove(i).1);
                    proptest::prop_assert_eq!(trie.remove(&p, key.into()), expected);
                }
            }
            proptest::prop_assert_eq!(trie.len(), list.len());
            for subject in &subjects {
                let s = Subject::new(subject).expect("valid subject");
                let mut expected: Vec<u32> =
                    list.iter().filter(|(p, _)| p.matches(&s)).map(|(_, v)| *v).collect();
                expected.sort_unstable();
                proptest::prop_assert_eq!(matches(&trie, subject), expected);
            }
            for (p, value) in list {
                proptest::prop_assert_eq!(trie.remove(&p, value.into()), Some(value));
            }
            proptest::prop_assert!(trie.root.is_empty());
        }
    }

    /// Inserting, matching, removing and dropping need no stack per token: patterns of
    /// 10^5 tokens (past the limit that subjects and patterns have, which does not
    /// protect the trie itself) on a thread with a small stack.
    #[test]
    fn deep_patterns_need_no_stack_per_token() {
        let deep_trie = || {
            let deep = vec!["a"; 100_000].join(".");
            let mut trie = Trie::default();
            trie.insert(&Pattern::unlimited(&deep), 1);
            trie.insert(&Pattern::unlimited(&format!("{deep}.>")), 2);
            trie.insert(&Pattern::unlimited(&vec!["*"; 100_000].join(".")), 3);
            let forked = format!("{}.b", vec!["a"; 50_000].join("."));
            trie.insert(&Pattern::unlimited(&forked), 4);
            assert_eq!(matches(&trie, &deep), [1, 3]);
            assert_eq!(matches(&trie, &format!("{deep}.b.c")), [2]);
            assert_eq!(trie.remove(&Pattern::unlimited(&deep), 1), Some(1));
            assert_eq!(matches(&trie, &deep), [3]);
            let rest = Pattern::unlimited(&format!("{deep}.>"));
            // Cuts the chain from where the fork to `b` was, 50,000 tokens down.
            assert_eq!(trie.remove(&rest, 2), Some(2));
            assert_eq!(matches(&trie, &deep), [3]);
            assert_eq!(matches(&trie, &forked), [4]);
            assert_eq!(trie.len(), 2);
            assert_eq!(nodes(&trie), 1 + 100_000 + 50_001);
            // Dropped with two chains of 5 * 10^4 and 10^5 nodes in it.
        };
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(deep_trie)
            .expect("thread")
            .join()
            .expect("no panic");
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
