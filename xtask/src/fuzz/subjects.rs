//! The `subjects` target: subscribe, publish and drop on an `EventBus`.
//!
//! An input is a script, one operation per line:
//!
//! ```text
//! sub a.*.c 16          subscribe to a pattern (queue capacity 16, default 64)
//! sub a.> 4 oldest      ... whose queue drops its oldest event when full (`newest`:
//!                       the new one; the default waits)
//! pub a.b.c             publish on a subject
//! burst 40 a.b.c        publish on a subject 40 times before anyone reads
//! drop 2                drop live subscription number 2 (modulo their count)
//! twice 500 big.[x~65536]   publish on big.<x...>.0 to .499, each twice
//! ```
//!
//! In a pattern or subject, `[w^n]` stands for `n` tokens `w` (`a.a.a...`) and `[w~n]` for
//! one token of `w` repeated to `n` bytes, so long chains stay short in a saved case.
//! Lines that do not parse are skipped.
//!
//! Invariants: no panic or crash, on a thread with a tokio worker's stack; subscribe and
//! publish accept exactly what a reference validator accepts (except that very long
//! subjects and patterns, over [`LONG_TOKENS`] tokens or [`LONG_BYTES`] bytes, may be
//! refused with a typed error); after each publish every subscription has received the
//! event exactly when a reference matcher (`*` one token, `>` the rest) says it matches;
//! after a burst, each subscription holds what a model of its queue holds (see
//! [`burst`]);
//! once every event is received, the bus holds at most [`RETAINED`] bytes beyond what
//! its live patterns and queues need (1 kB per token and 64 bytes per byte of pattern,
//! 32 bytes per queue slot, 4 kB per subscription); dropping the bus frees everything.

use fastrand::Rng;
use orch_events::{
    EventBus, Overflow, Pattern, Subject, SubscribeError, SubscribeOptions, Subscription,
    TryPublishErrorKind,
};

use super::{Input, Target, Violation, live_heap, mutate};

mod burst;

/// Subjects and patterns with more tokens than this may be refused.
pub(crate) const LONG_TOKENS: usize = 64;

/// Subjects and patterns longer than this (in bytes) may be refused.
pub(crate) const LONG_BYTES: usize = 4096;

/// What the bus may keep after every event was received, beyond its patterns and queues.
pub(crate) const RETAINED: usize = 8 << 20;

/// Heap that may stay allocated after the bus is dropped (lazily built statics).
const LEFT_AFTER_DROP: usize = 64 << 10;

const MAX_EXPANDED: usize = 4 << 20;

/// Events one script may publish.
const MAX_EVENTS: usize = 8192;

/// Subscriptions one script may make.
const MAX_SUBSCRIPTIONS: usize = 64;

#[derive(Debug, PartialEq)]
enum Op {
    Sub(String, usize, Overflow),
    Pub(String),
    Burst(usize, String),
    Drop(usize),
    Twice(usize, String),
}

pub(crate) struct Subjects;

const WORDS: &[&str] = &[
    "sub ",
    "pub ",
    "drop ",
    "twice ",
    "burst ",
    " oldest",
    " newest",
    ".*",
    ".>",
    "[a^100000]",
    "[x~65536]",
    " ",
    "..",
    "\u{a0}",
];

impl Target for Subjects {
    fn generate(&mut self, rng: &mut Rng) -> Input {
        let mut text = String::new();
        for _ in 0..rng.usize(1..16) {
            let line = match rng.u8(..20) {
                0..=7 => match rng.u8(..6) {
                    0 => format!("sub {} {}", pattern(rng, true), rng.usize(1..256)),
                    1 => {
                        let how = rng.choice(["block", "oldest", "newest"]).unwrap_or("block");
                        format!("sub {} {} {how}", pattern(rng, true), rng.usize(1..16))
                    }
                    _ => format!("sub {}", pattern(rng, true)),
                },
                8..=13 => format!("pub {}", pattern(rng, false)),
                14 | 15 => format!("burst {} {}", rng.usize(1..40), pattern(rng, false)),
                16..=18 => format!("drop {}", rng.usize(..8)),
                // Many distinct long subjects, each published twice: what a route cache
                // would keep.
                _ if rng.u8(..16) == 0 => format!(
                    "twice {} {}.[x~{}]",
                    rng.usize(100..400),
                    pattern(rng, false),
                    rng.usize(30_000..65_536)
                ),
                _ => format!("twice {} {}", rng.usize(1..200), pattern(rng, false)),
            };
            text.push_str(&line);
            text.push('\n');
        }
        Input::new(text, "txt")
    }

    fn mutate(&mut self, rng: &mut Rng, input: &Input, other: &Input) -> Input {
        Input::new(
            mutate::bytes_with(rng, &input.bytes, &other.bytes, WORDS),
            "txt",
        )
    }

    fn check(&mut self, input: &Input) -> Result<(), Violation> {
        let ops = parse(&String::from_utf8_lossy(&input.bytes));
        let before = live_heap();
        run(&ops)?;
        let left = live_heap().saturating_sub(before);
        if left > LEFT_AFTER_DROP {
            return Err(Violation::new(
                "leak",
                format!("{} kB stay allocated after the bus is dropped", left >> 10),
                None,
            ));
        }
        Ok(())
    }
}

/// A pattern (or, without wildcards, a subject) over a small alphabet, so they match.
fn pattern(rng: &mut Rng, wildcards: bool) -> String {
    let long = rng.u8(..200) == 0;
    let count = rng.usize(1..6);
    let mut tokens: Vec<String> = (0..count)
        .map(|_| {
            let plain = ["a", "b", "c", "ab", "é", "a*", ">>", "x-y"];
            match rng.u8(..60) {
                0..=3 if wildcards => "*".to_owned(),
                4 if wildcards => ">".to_owned(),
                5 => "".to_owned(),
                6 => " ".to_owned(),
                7 => "*".to_owned(),
                8 => format!("[x~{}]", rng.usize(1000..70_000)),
                _ => rng.choice(plain).unwrap_or("a").to_owned(),
            }
        })
        .collect();
    if long {
        let at = rng.usize(..=tokens.len());
        tokens.insert(at, format!("[a^{}]", rng.usize(1000..150_000)));
    }
    tokens.join(".")
}

/// Reads a script, within budgets: 16 MiB of subjects and patterns, [`MAX_EVENTS`]
/// events, [`MAX_SUBSCRIPTIONS`] subscriptions.
fn parse(text: &str) -> Vec<Op> {
    let mut budget = 16 << 20;
    let (mut events, mut subscriptions) = (0, 0);
    let mut ops = Vec::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        let op = match (words.next(), words.next(), words.next()) {
            (Some("sub"), Some(p), capacity) => {
                let capacity = capacity
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(64usize)
                    .clamp(1, 4096);
                let overflow = match words.next() {
                    Some("oldest") => Overflow::DropOldest,
                    Some("newest") => Overflow::DropNewest,
                    _ => Overflow::Block,
                };
                expand(p).map(|p| Op::Sub(p, capacity, overflow))
            }
            (Some("burst"), Some(n), Some(s)) => match (n.parse::<usize>(), expand(s)) {
                (Ok(n), Some(s)) => Some(Op::Burst(n.min(MAX_EVENTS), s)),
                _ => None,
            },
            (Some("pub"), Some(s), None) => expand(s).map(Op::Pub),
            (Some("drop"), Some(n), None) => n.parse().ok().map(Op::Drop),
            (Some("twice"), Some(n), Some(s)) => match (n.parse::<usize>(), expand(s)) {
                (Ok(n), Some(s)) => Some(Op::Twice(n.min(MAX_EVENTS / 2), s)),
                _ => None,
            },
            _ => None,
        };
        if let Some(op) = op {
            let (cost, published, subscribed) = match &op {
                Op::Sub(p, ..) => (p.len(), 0, 1),
                Op::Pub(p) => (p.len(), 1, 0),
                Op::Burst(n, s) => (s.len(), *n, 0),
                Op::Twice(n, s) => (n * s.len(), 2 * n, 0),
                Op::Drop(_) => (0, 0, 0),
            };
            if cost > budget
                || events + published > MAX_EVENTS
                || subscriptions + subscribed > MAX_SUBSCRIPTIONS
            {
                break;
            }
            (budget, events, subscriptions) = (
                budget - cost,
                events + published,
                subscriptions + subscribed,
            );
            ops.push(op);
        }
    }
    ops
}

/// Expands `[w^n]` and `[w~n]`; `None` when the result would be too long.
fn expand(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let close = after.find(']');
        let spec = close.and_then(|c| {
            let inner = &after[1..c];
            let at = inner.rfind(['^', '~'])?;
            let count: usize = inner[at + 1..].parse().ok()?;
            Some((c, &inner[..at], &inner[at..=at], count))
        });
        match spec {
            Some((c, word, how, count)) if count.saturating_mul(word.len() + 1) <= MAX_EXPANDED => {
                if how == "^" {
                    out.push_str(&vec![word; count].join("."));
                } else if !word.is_empty() {
                    out.push_str(&word.repeat(count.div_ceil(word.len())));
                }
                rest = &after[c + 1..];
            }
            Some(_) => return None,
            None => {
                out.push('[');
                rest = &after[1..];
            }
        }
        if out.len() > MAX_EXPANDED {
            return None;
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Whether `text` is a valid subject (or, with `pattern`, pattern), by the NATS rules.
fn valid(text: &str, pattern: bool) -> bool {
    let tokens: Vec<&str> = text.split('.').collect();
    !text.is_empty()
        && tokens.iter().enumerate().all(|(i, token)| {
            !token.is_empty()
                && !token.chars().any(char::is_whitespace)
                && (pattern || (*token != "*" && *token != ">"))
                && (*token != ">" || i + 1 == tokens.len())
        })
}

/// [`matches_tokens`] on text.
#[cfg(test)]
fn matches(pattern: &str, subject: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let subject: Vec<&str> = subject.split('.').collect();
    matches_tokens(&pattern, &subject)
}

/// The reference matcher: whether `pattern` matches `subject`, both split into tokens
/// (once, by the caller: a script may publish thousands of times to live patterns of
/// tens of kilobytes); `*` is one token, `>` one or more.
fn matches_tokens<P: AsRef<str>>(pattern: &[P], subject: &[&str]) -> bool {
    let mut rest = subject.iter();
    for p in pattern {
        match (p.as_ref(), rest.next()) {
            (">", Some(_)) => return true,
            (a, Some(b)) if a == "*" || a == *b => {}
            _ => return false,
        }
    }
    rest.next().is_none()
}

fn long(text: &str) -> bool {
    text.len() > LONG_BYTES || text.split('.').count() > LONG_TOKENS
}

/// A live subscription, with its pattern split and parsed once.
struct Live {
    pattern: String,
    tokens: Vec<String>,
    parsed: Option<Pattern>,
    capacity: usize,
    overflow: Overflow,
    subscription: Subscription<u64>,
}

impl Live {
    fn new(
        pattern: &str,
        capacity: usize,
        overflow: Overflow,
        subscription: Subscription<u64>,
    ) -> Self {
        Self {
            pattern: pattern.to_owned(),
            tokens: pattern.split('.').map(str::to_owned).collect(),
            parsed: Pattern::new(pattern).ok(),
            capacity,
            overflow,
            subscription,
        }
    }
}

fn run(ops: &[Op]) -> Result<(), Violation> {
    let bus: EventBus<u64> = EventBus::new();
    let base = live_heap();
    let mut live: Vec<Live> = Vec::new();
    let mut seq = 0;
    for op in ops {
        match op {
            Op::Sub(pattern, capacity, overflow) => {
                let options = SubscribeOptions::new()
                    .capacity(*capacity)
                    .overflow(*overflow);
                let reference = valid(pattern, true);
                match bus.subscribe_with(pattern, options) {
                    Ok(subscription) if reference => {
                        live.push(Live::new(pattern, *capacity, *overflow, subscription));
                    }
                    Ok(_) => return Err(violation("accepts an invalid pattern", pattern)),
                    Err(SubscribeError::InvalidPattern(_)) if !reference || long(pattern) => {}
                    Err(e) => {
                        return Err(violation(
                            &format!("refuses a valid pattern ({e})"),
                            pattern,
                        ));
                    }
                }
            }
            Op::Pub(subject) => publish(&bus, &mut live, subject, valid(subject, false), &mut seq)?,
            Op::Burst(count, subject) if valid(subject, false) && !long(subject) => {
                burst::burst(&bus, &mut live, subject, *count, &mut seq)?;
            }
            Op::Burst(..) => {}
            Op::Drop(n) if !live.is_empty() => drop(live.remove(n % live.len())),
            Op::Drop(_) => {}
            Op::Twice(count, prefix) => {
                // A number is a valid last token: the prefix decides.
                let reference = valid(prefix, false);
                for i in 0..*count {
                    let subject = format!("{prefix}.{i}");
                    publish(&bus, &mut live, &subject, reference, &mut seq)?;
                    publish(&bus, &mut live, &subject, reference, &mut seq)?;
                }
            }
        }
    }
    let needed: usize = live
        .iter()
        .map(|l| {
            1024 * l.pattern.split('.').count() + 64 * l.pattern.len() + 32 * l.capacity + 4096
        })
        .sum();
    let retained = live_heap().saturating_sub(base);
    if retained > RETAINED + needed {
        let long_subjects = ops
            .iter()
            .any(|op| matches!(op, Op::Twice(_, s) if s.len() > 1000));
        return Err(Violation::new(
            "retained memory",
            format!(
                "after every event was received the bus holds {} kB; its {} live subscriptions need about {} kB",
                retained >> 10,
                live.len(),
                needed >> 10
            ),
            long_subjects.then_some(6),
        ));
    }
    Ok(())
}

fn violation(what: &str, text: &str) -> Violation {
    let shown: String = text.chars().take(80).collect();
    let tokens = text.split('.').count();
    Violation::new(
        what,
        format!("{what}: {shown:?} ({} bytes, {tokens} tokens)", text.len()),
        None,
    )
}

/// Publishes on `subject` (`reference`: whether it is valid) and checks who received it.
fn publish(
    bus: &EventBus<u64>,
    live: &mut [Live],
    subject: &str,
    reference: bool,
    seq: &mut u64,
) -> Result<(), Violation> {
    match bus.try_publish(subject, *seq) {
        Ok(_) if reference => {}
        Ok(_) => return Err(violation("publishes on an invalid subject", subject)),
        Err(e) => match e.kind() {
            TryPublishErrorKind::InvalidSubject(_) if !reference || long(subject) => return Ok(()),
            kind => {
                return Err(violation(
                    &format!("refuses a valid subject ({kind})"),
                    subject,
                ));
            }
        },
    }
    // The direct matcher is checked on subjects of ordinary length (validating long ones
    // again for it would cost more than the rest of the check).
    let direct = Subject::new(subject)
        .ok()
        .filter(|_| subject.len() <= LONG_BYTES);
    let subject_tokens: Vec<&str> = subject.split('.').collect();
    for entry in live.iter_mut() {
        let expected = matches_tokens(&entry.tokens, &subject_tokens);
        let got = drain(&mut entry.subscription)?;
        if got != expected.then_some(*seq).into_iter().collect::<Vec<_>>() {
            let shown: String = subject.chars().take(80).collect();
            return Err(Violation::new(
                "matching",
                format!(
                    "pattern {:?} and subject {shown:?}: the reference says {expected}, the subscription received {got:?}",
                    entry.pattern
                ),
                None,
            ));
        }
        let by_pattern = entry
            .parsed
            .as_ref()
            .zip(direct.as_ref())
            .map(|(p, s)| p.matches(s));
        if by_pattern.is_some_and(|m| m != expected) {
            return Err(violation(
                &format!(
                    "Pattern::matches disagrees with the reference for {:?}",
                    entry.pattern
                ),
                subject,
            ));
        }
    }
    *seq += 1;
    Ok(())
}

/// Everything a subscription has received so far, without waiting: a queue is drained
/// after every publish, so none is ever full and none may lag.
fn drain(subscription: &mut Subscription<u64>) -> Result<Vec<u64>, Violation> {
    (burst::drain_all(subscription).into_iter())
        .map(|got| match got {
            burst::Got::Event(payload) => Ok(payload),
            burst::Got::Lagged(n) => Err(Violation::new(
                "lagged",
                format!("a subscription drained after every publish lagged by {n}"),
                None,
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_matcher_follows_the_nats_rules() {
        assert!(matches("a.>", "a.b.c") && matches("a.*", "a.b") && matches("*.b", "a.b"));
        assert!(!matches("a.>", "a") && !matches("a.*", "a.b.c") && !matches("a", "a.b"));
        assert!(valid("a.*.>", true) && !valid("a.*", false) && !valid("a.>.b", true));
        assert!(!valid("", true) && !valid("a..b", true) && !valid("a. b", true));
    }

    #[test]
    fn scripts_expand_long_chains_and_skip_what_does_not_parse() {
        let ops = parse("sub [a^3].> 8\npub x.[b~4]\nnonsense\ndrop 1\ntwice 2 p\n");
        assert_eq!(
            ops,
            [
                Op::Sub("a.a.a.>".into(), 8, Overflow::Block),
                Op::Pub("x.bbbb".into()),
                Op::Drop(1),
                Op::Twice(2, "p".into())
            ]
        );
        assert_eq!(expand("[a^99999999999]"), None);
        assert_eq!(expand("a[b").as_deref(), Some("a[b"));
    }

    #[test]
    fn a_short_script_passes_and_a_wrong_expectation_is_caught() {
        let fine = parse("sub a.*\nsub a.>\nsub b\npub a.b\npub a.b.c\ndrop 0\npub b\n");
        assert_eq!(run(&fine), Ok(()));
        // A reference that disagrees with the bus is reported.
        assert!(!matches("a.*", "a.b.c"));
        let bus: EventBus<u64> = EventBus::new();
        let mut live = vec![Live::new(
            "a.b.c",
            4,
            Overflow::Block,
            bus.subscribe("a.*.c").expect("valid"),
        )];
        let err = publish(&bus, &mut live, "a.x.c", true, &mut 0).expect_err("reference says no");
        assert_eq!(err.kind, "matching");
    }
}
