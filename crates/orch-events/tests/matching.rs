//! Wildcard matching, through the bus: a table of cases and a property test against a
//! naive matcher.

use std::collections::BTreeSet;

use orch_events::{Delivery, EventBus, Overflow, Pattern, Subject, SubscribeOptions};
use proptest::prelude::*;

/// Which of `patterns` (by index) receive an event published on `subject`, per the bus.
fn routed(patterns: &[String], subjects: &[String]) -> Vec<BTreeSet<usize>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let bus: EventBus<usize> = EventBus::new();
        let options = SubscribeOptions::new()
            .capacity(subjects.len() + 1)
            .overflow(Overflow::DropNewest);
        let mut subs: Vec<_> = patterns
            .iter()
            .map(|p| {
                bus.subscribe_with(p, options.clone())
                    .expect("valid pattern")
            })
            .collect();
        for (i, subject) in subjects.iter().enumerate() {
            bus.try_publish(subject.as_str(), i).expect("published");
        }
        bus.close().await;
        let mut got = vec![BTreeSet::new(); subjects.len()];
        for (p, sub) in subs.iter_mut().enumerate() {
            while let Some(delivery) = sub.recv().await {
                let Delivery::Event(event) = delivery else {
                    panic!("nothing may be dropped here");
                };
                got[*event.payload()].insert(p);
            }
        }
        got
    })
}

/// The reference: recursive, on token slices.
fn naive(pattern: &[&str], subject: &[&str]) -> bool {
    match (pattern.split_first(), subject.split_first()) {
        (Some((&">", _)), Some(_)) => true,
        (Some((&p, prest)), Some((&s, srest))) => (p == "*" || p == s) && naive(prest, srest),
        (None, None) => true,
        _ => false,
    }
}

fn naive_str(pattern: &str, subject: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    naive(&p, &s)
}

#[test]
fn wildcard_table() {
    let table: &[(&str, &str, bool)] = &[
        (">", "a", true),
        (">", "a.b.c", true),
        ("*", "a", true),
        ("*", "a.b", false),
        ("a", "a", true),
        ("a", "a.b", false),
        ("a.b", "a", false),
        ("a.*", "a", false),
        ("a.*", "a.b", true),
        ("a.*", "a.b.c", false),
        ("a.>", "a", false),
        ("a.>", "a.b", true),
        ("a.>", "a.b.c.d", true),
        ("a.>", "b.c", false),
        ("*.>", "a", false),
        ("*.>", "a.b", true),
        ("*.b", "a.b", true),
        ("*.b", "a.c", false),
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a.b.d", false),
        ("*.*.*", "a.b.c", true),
        ("*.*.*", "a.b", false),
        ("a.*.>", "a.b", false),
        ("a.*.>", "a.b.c", true),
        ("a*", "ab", false),
        ("a*", "a*", true),
        ("a.b>", "a.b>", true),
        (
            "workflow.*.task.*.completed",
            "workflow.etl.task.load.completed",
            true,
        ),
        ("workflow.>", "workflow.etl.task.load.completed", true),
        (
            "workflow.*.completed",
            "workflow.etl.task.load.completed",
            false,
        ),
    ];
    let patterns: Vec<String> = table.iter().map(|(p, _, _)| p.to_string()).collect();
    let subjects: Vec<String> = table.iter().map(|(_, s, _)| s.to_string()).collect();
    let got = routed(&patterns, &subjects);
    for (row, &(pattern, subject, expected)) in table.iter().enumerate() {
        // Row `row` published `subject`; did the subscription for row `row` get it?
        assert_eq!(
            got[row].contains(&row),
            expected,
            "bus: {pattern} vs {subject}"
        );
        let p = Pattern::new(pattern).expect("valid pattern");
        let s = Subject::new(subject).expect("valid subject");
        assert_eq!(
            p.matches(&s),
            expected,
            "Pattern::matches: {pattern} vs {subject}"
        );
        assert_eq!(
            naive_str(pattern, subject),
            expected,
            "naive: {pattern} vs {subject}"
        );
        // And every other row's pattern against this subject agrees with the reference.
        for (other, other_pattern) in patterns.iter().enumerate() {
            assert_eq!(
                got[row].contains(&other),
                naive_str(other_pattern, subject),
                "bus: {other_pattern} vs {subject}"
            );
        }
    }
}

fn subject_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..5).prop_map(|t| t.join("."))
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "*"]), 0..5),
        any::<bool>(),
    )
        .prop_filter_map("empty pattern", |(mut tokens, tail)| {
            if tail {
                tokens.push(">");
            }
            (!tokens.is_empty()).then(|| tokens.join("."))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn trie_agrees_with_naive_matcher(
        patterns in prop::collection::vec(pattern_strategy(), 1..40),
        subjects in prop::collection::vec(subject_strategy(), 1..40),
    ) {
        let got = routed(&patterns, &subjects);
        for (i, subject) in subjects.iter().enumerate() {
            let expected: BTreeSet<usize> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| naive_str(p, subject))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(&got[i], &expected, "subject {}", subject);
        }
    }
}

/// What each subscription received, `Err(n)` for a notice of `n` dropped events.
type Received = Vec<Vec<Result<usize, u64>>>;

/// Publishes `subjects` (payload: the index) to subscriptions on `patterns` with the given
/// policies (`None`: lossless with room for all), in one batch or one by one, stopping
/// at the first event a full lossless subscription cannot take. Returns how many were
/// published and what each subscription received.
fn deliveries(
    patterns: &[(String, Option<(Overflow, usize)>)],
    subjects: &[String],
    batch: bool,
) -> (usize, Received) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let bus: EventBus<usize> = EventBus::new();
        let mut subs: Vec<_> = patterns
            .iter()
            .map(|(p, policy)| {
                let options = match policy {
                    None => SubscribeOptions::new().capacity(subjects.len() + 1),
                    Some((overflow, capacity)) => SubscribeOptions::new()
                        .capacity(*capacity)
                        .overflow(*overflow),
                };
                bus.subscribe_with(p, options).expect("valid pattern")
            })
            .collect();
        let published = if batch {
            let mut events: std::collections::VecDeque<_> = subjects
                .iter()
                .enumerate()
                .map(|(i, s)| (Subject::new(s).expect("valid"), i))
                .collect();
            let published = bus.try_publish_batch(&mut events).expect("open");
            assert_eq!(published + events.len(), subjects.len(), "the rest stays");
            published
        } else {
            subjects
                .iter()
                .enumerate()
                .take_while(|(i, subject)| bus.try_publish(subject.as_str(), *i).is_ok())
                .count()
        };
        bus.close().await;
        let mut received = Vec::new();
        for sub in &mut subs {
            let mut got = Vec::new();
            while let Some(delivery) = sub.recv().await {
                got.push(match delivery {
                    Delivery::Event(event) => Ok(*event.payload()),
                    Delivery::Lagged(n) => Err(n),
                });
            }
            received.push(got);
        }
        (published, received)
    })
}

fn policy_strategy() -> impl Strategy<Value = Option<(Overflow, usize)>> {
    prop_oneof![
        Just(None),
        (1..4usize).prop_map(|c| Some((Overflow::Block, c))),
        (1..4usize).prop_map(|c| Some((Overflow::DropOldest, c))),
        (1..4usize).prop_map(|c| Some((Overflow::DropNewest, c))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Grouping a batch by route, and reusing a route for subjects that share its deciding
    /// tokens, changes nothing that any subscription sees, nor where a full lossless
    /// subscription stops the batch.
    #[test]
    fn a_batch_delivers_what_single_publishes_deliver(
        patterns in prop::collection::vec((pattern_strategy(), policy_strategy()), 1..30),
        subjects in prop::collection::vec(subject_strategy(), 1..60),
    ) {
        prop_assert_eq!(
            deliveries(&patterns, &subjects, true),
            deliveries(&patterns, &subjects, false)
        );
    }
}

#[test]
fn subjects_patterns_and_subscription_ids_pad_when_displayed() {
    let subject = Subject::new("a.b").expect("valid");
    let pattern = Pattern::new("a.*").expect("valid");
    assert_eq!(format!("[{subject:<6}]"), "[a.b   ]");
    assert_eq!(format!("[{pattern:>6}]"), "[   a.*]");
    let bus: EventBus = EventBus::new();
    let subscription = bus.subscribe("a.>").expect("valid");
    let id = subscription.id().to_string();
    assert_eq!(
        format!("[{:<12}]", subscription.id()),
        format!("[{id:<12}]")
    );
    assert!(
        format!("{:>12}", subscription.id()).starts_with(' '),
        "{id}"
    );
}
