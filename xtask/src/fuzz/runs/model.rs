//! The `runs` target's inputs: a small text format for a workflow run, its generator, and
//! the reference model of what the engine must do with it.
//!
//! ```text
//! concurrency 2          tasks at once (default 1)
//! grace 100ms            the engine's cancel grace period (default 50ms)
//! cancel 350ms           cancel the run at this (virtual) time
//! timer off              a runtime without a time driver
//! bus reader             a bus with a subscriber that reads every event
//! bus stalled 2          a bus with a lossless subscriber of capacity 2 that never reads
//! pools 2                pools p0 to p3, each with this limit (default 1)
//! task t1 fail retries=2 backoff=10ms timeout=50ms after=t0 pool=1 priority=3
//! ```
//!
//! Handler kinds: `ok`, `fail`, `permanent` (fails, not retried), `panic`, `hang` (never
//! finishes, ignores cancellation), `sleep=D`, `flaky=K` (fails its first K attempts),
//! `droppanic[=D]` (sleeps D, or forever, and panics if dropped before that), and
//! `slowcancel=D` (waits for cancellation, then D more, then succeeds).

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// When a run that cannot end by itself is cancelled, if its input does not say.
pub(crate) const FORCED_CANCEL_MS: u64 = 5000;

/// Attempts past which a run is cancelled rather than waited for (they take real time).
const MAX_ATTEMPTS: u64 = 20_000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    Ok,
    Fail,
    Permanent,
    Panic,
    Hang,
    Sleep(u64),
    Flaky(u32),
    DropPanic(Option<u64>),
    SlowCancel(u64),
    /// Waits for its cancellation, sleeps this long, then fails.
    QuitFail(u64),
    /// Sleeps this long, cancels the run itself, lets the handlers that woke run, and
    /// completes.
    Cancels(u64),
}

impl Kind {
    /// The handler's task type.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Permanent => "permanent",
            Kind::Panic => "panic",
            Kind::Hang => "hang",
            Kind::Sleep(_) => "sleep",
            Kind::Flaky(_) => "flaky",
            Kind::DropPanic(_) => "droppanic",
            Kind::SlowCancel(_) => "slowcancel",
            Kind::QuitFail(_) => "quitfail",
            Kind::Cancels(_) => "cancels",
        }
    }

    /// The number the handler reads from its config (milliseconds, or failures).
    pub(crate) fn param(self) -> Option<u64> {
        match self {
            Kind::Sleep(n)
            | Kind::SlowCancel(n)
            | Kind::QuitFail(n)
            | Kind::Cancels(n)
            | Kind::DropPanic(Some(n)) => Some(n),
            Kind::Flaky(k) => Some(u64::from(k)),
            _ => None,
        }
    }

    pub(crate) fn needs_timer(self) -> bool {
        matches!(
            self,
            Kind::Hang
                | Kind::Sleep(_)
                | Kind::DropPanic(_)
                | Kind::SlowCancel(_)
                | Kind::QuitFail(_)
                | Kind::Cancels(_)
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TaskPlan {
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) retries: u32,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) backoff_ms: u64,
    pub(crate) after: Vec<String>,
    /// The pool it runs in (`p0` to `p3`), if any.
    pub(crate) pool: Option<u8>,
    pub(crate) priority: i32,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RunPlan {
    pub(crate) concurrency: usize,
    pub(crate) grace_ms: u64,
    pub(crate) cancel_ms: Option<u64>,
    pub(crate) timer: bool,
    pub(crate) reader: bool,
    pub(crate) stalled: Option<usize>,
    /// The limit of each of the engine's pools `p0` to `p3`.
    pub(crate) pool_limit: usize,
    pub(crate) tasks: Vec<TaskPlan>,
}

/// What a task's own handler does over its attempts, when its dependencies completed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Own {
    Succeeds {
        attempts: u64,
    },
    /// `attempts` is `None` where it is not pinned down.
    Fails {
        attempts: Option<u64>,
    },
    /// On a tie between a sleep and a timeout: either.
    Either,
    /// Never finishes: only cancellation ends it.
    Never,
}

fn ms(text: &str) -> Option<u64> {
    text.trim_end_matches("ms")
        .parse()
        .ok()
        .map(|n: u64| n.min(10_000_000))
}

impl RunPlan {
    /// Reads a run; what does not parse is skipped, and values are kept in bounds (so a
    /// mutated input still describes a run that ends).
    pub(crate) fn parse(text: &str) -> Self {
        let mut plan = RunPlan {
            concurrency: 1,
            grace_ms: 50,
            cancel_ms: None,
            timer: true,
            reader: false,
            stalled: None,
            pool_limit: 1,
            tasks: Vec::new(),
        };
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["concurrency", n] => plan.concurrency = n.parse().unwrap_or(1usize).clamp(1, 64),
                ["grace", d] => plan.grace_ms = ms(d).unwrap_or(50).min(10_000),
                ["cancel", d] => plan.cancel_ms = ms(d),
                ["timer", "off"] => plan.timer = false,
                ["bus", "reader"] => plan.reader = true,
                ["bus", "stalled", n] => {
                    plan.stalled = n.parse().ok().map(|n: usize| n.clamp(1, 1024))
                }
                ["pools", n] => plan.pool_limit = n.parse().unwrap_or(1usize).clamp(1, 64),
                ["task", id, kind, options @ ..] if plan.tasks.len() < 500 => {
                    if let Some(task) = task(id, kind, options) {
                        plan.tasks.push(task);
                    }
                }
                _ => {}
            }
        }
        plan.keep_ending();
        plan
    }

    /// Changes what would keep the run from ending, or need a clock it does not have.
    fn keep_ending(&mut self) {
        if !self.timer {
            // Without a time driver nothing can sleep: such handlers become `ok`, and a
            // cancellation can only come before the run starts.
            for task in &mut self.tasks {
                if task.kind.needs_timer() {
                    task.kind = Kind::Ok;
                }
            }
            self.cancel_ms = self.cancel_ms.map(|_| 0);
            // Nor could anything end a run held by a subscriber that never reads.
            self.stalled = None;
        }
        for task in &mut self.tasks {
            // Billions of immediate retries would take real time without end; with a pause,
            // a cancellation ends them.
            if task.retries > 10_000 && task.backoff_ms == 0 {
                task.backoff_ms = 1;
            }
        }
    }

    pub(crate) fn print(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "concurrency {}\ngrace {}ms",
            self.concurrency, self.grace_ms
        );
        if let Some(c) = self.cancel_ms {
            let _ = writeln!(out, "cancel {c}ms");
        }
        if !self.timer {
            out.push_str("timer off\n");
        }
        if self.reader {
            out.push_str("bus reader\n");
        }
        if let Some(n) = self.stalled {
            let _ = writeln!(out, "bus stalled {n}");
        }
        if self.tasks.iter().any(|t| t.pool.is_some()) {
            let _ = writeln!(out, "pools {}", self.pool_limit);
        }
        for t in &self.tasks {
            let _ = write!(out, "task {} {}", t.id, t.kind.name());
            if let Some(p) = t.kind.param() {
                let _ = write!(out, "={p}");
            }
            if t.retries > 0 {
                let _ = write!(out, " retries={}", t.retries);
            }
            if let Some(timeout) = t.timeout_ms {
                let _ = write!(out, " timeout={timeout}ms");
            }
            if t.backoff_ms > 0 {
                let _ = write!(out, " backoff={}ms", t.backoff_ms);
            }
            if !t.after.is_empty() {
                let _ = write!(out, " after={}", t.after.join(","));
            }
            if let Some(pool) = t.pool {
                let _ = write!(out, " pool={pool}");
            }
            if t.priority != 0 {
                let _ = write!(out, " priority={}", t.priority);
            }
            out.push('\n');
        }
        out
    }

    /// Each task's position by id.
    pub(crate) fn index(&self) -> HashMap<&str, usize> {
        self.tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect()
    }

    /// Whether validation must accept the workflow: tasks, unique ids without control
    /// characters (bidirectional controls too), known and distinct dependencies that are not the task itself, no
    /// cycle, no zero timeout, no more retries than the cap.
    pub(crate) fn valid(&self) -> bool {
        let index = self.index();
        let sound = |t: &TaskPlan| {
            let distinct: HashSet<&String> = t.after.iter().collect();
            distinct.len() == t.after.len()
                && t.after
                    .iter()
                    .all(|d| *d != t.id && index.contains_key(d.as_str()))
                && t.timeout_ms != Some(0)
                && t.retries <= orch_core::Task::MAX_RETRIES
                && !t.id.chars().any(hidden)
        };
        !self.tasks.is_empty()
            && index.len() == self.tasks.len()
            && self.tasks.iter().all(sound)
            && self.order().is_some()
    }

    /// Task indices with every task after its dependencies; `None` on a cycle.
    pub(crate) fn order(&self) -> Option<Vec<usize>> {
        let index = self.index();
        let deps: Vec<Vec<usize>> = self
            .tasks
            .iter()
            .map(|t| {
                t.after
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect()
            })
            .collect();
        let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut dependents = vec![Vec::new(); self.tasks.len()];
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..self.tasks.len()).filter(|&i| waiting[i] == 0).collect();
        let mut order = Vec::new();
        while let Some(i) = ready.pop() {
            order.push(i);
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.push(d);
                }
            }
        }
        (order.len() == self.tasks.len()).then_some(order)
    }

    /// Whether the engine needs a time driver for this run: by the engine's documented
    /// rule, a timeout or a pause before retries does (retries without one do not), and
    /// so do the harness's own waits (a delayed cancellation, sleeping handlers).
    pub(crate) fn needs_timer(&self) -> bool {
        self.cancel_ms.is_some_and(|c| c > 0)
            || self.tasks.iter().any(|t| {
                t.timeout_ms.is_some()
                    || (t.retries > 0 && t.backoff_ms > 0)
                    || t.kind.needs_timer()
            })
    }

    /// An upper bound on how long the run takes uncancelled (virtual ms), if it ends.
    pub(crate) fn finite_bound_ms(&self) -> Option<u64> {
        let mut total: u64 = 1000;
        for t in &self.tasks {
            let handler = match t.kind {
                Kind::Ok | Kind::Fail | Kind::Permanent | Kind::Panic | Kind::Flaky(_) => Some(0),
                Kind::Sleep(d) | Kind::Cancels(d) | Kind::DropPanic(Some(d)) => {
                    Some(t.timeout_ms.map_or(d, |limit| limit.min(d)))
                }
                Kind::Hang | Kind::SlowCancel(_) | Kind::QuitFail(_) | Kind::DropPanic(None) => {
                    t.timeout_ms
                }
            }?;
            let attempts = u64::from(t.retries) + 1;
            total = total.saturating_add(attempts.saturating_mul(handler + t.backoff_ms));
        }
        (total < 100_000_000).then_some(total)
    }

    /// When the harness cancels the run: as the input says, or (for a run that could not
    /// end by itself, would take over [`MAX_ATTEMPTS`] attempts, or is held by a stalled
    /// subscriber) after [`FORCED_CANCEL_MS`].
    pub(crate) fn cancel_at(&self) -> Option<u64> {
        let attempts: u64 = self.tasks.iter().map(|t| u64::from(t.retries) + 1).sum();
        let many = attempts > MAX_ATTEMPTS;
        let endless = self.stalled.is_some() || self.finite_bound_ms().is_none() || many;
        match self.cancel_ms {
            Some(at) if many => Some(at.min(FORCED_CANCEL_MS)),
            Some(at) => Some(at),
            None => (self.timer && endless).then_some(FORCED_CANCEL_MS),
        }
    }
}

/// What validation refuses in an id: control characters, line and paragraph
/// separators, bidirectional controls and the characters Unicode says to show as
/// nothing (Default_Ignorable_Code_Point), except the joiners and variation selectors.
/// Written out here rather than taken from `orch_core::is_hidden_control`, so that the
/// model does not share the code it checks.
fn hidden(c: char) -> bool {
    let ignorable = matches!(
        c,
        '\u{AD}'
            | '\u{34F}'
            | '\u{61C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    );
    let needed = matches!(
        c,
        '\u{200C}' | '\u{200D}' | '\u{180B}'..='\u{180D}' | '\u{180F}'
    ) || matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}');
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FFF9}'..='\u{FFFB}')
        || (ignorable && !needed)
}

fn task(id: &str, kind: &str, options: &[&str]) -> Option<TaskPlan> {
    let (name, param) = match kind.split_once('=') {
        Some((name, param)) => (name, param.trim_end_matches("ms").parse::<u64>().ok()),
        None => (kind, None),
    };
    let param = param.map(|p| p.min(10_000_000));
    let kind = match name {
        "ok" => Kind::Ok,
        "fail" => Kind::Fail,
        "permanent" => Kind::Permanent,
        "panic" => Kind::Panic,
        "hang" => Kind::Hang,
        "sleep" => Kind::Sleep(param.unwrap_or(10)),
        "flaky" => Kind::Flaky(param.unwrap_or(1).min(1000) as u32),
        "droppanic" => Kind::DropPanic(param),
        "slowcancel" => Kind::SlowCancel(param.unwrap_or(10)),
        "quitfail" => Kind::QuitFail(param.unwrap_or(0)),
        "cancels" => Kind::Cancels(param.unwrap_or(10)),
        _ => return None,
    };
    let mut task = TaskPlan {
        id: id.to_owned(),
        kind,
        retries: 0,
        timeout_ms: None,
        backoff_ms: 0,
        after: Vec::new(),
        pool: None,
        priority: 0,
    };
    for option in options {
        match option.split_once('=') {
            Some(("retries", n)) => task.retries = n.parse().unwrap_or(0),
            Some(("timeout", d)) => task.timeout_ms = ms(d),
            Some(("backoff", d)) => task.backoff_ms = ms(d).unwrap_or(0).min(60_000),
            Some(("pool", n)) => task.pool = n.parse::<u8>().ok().map(|n| n % 4),
            Some(("priority", n)) => task.priority = n.parse::<i32>().unwrap_or(0).clamp(-9, 9),
            Some(("after", list)) => {
                task.after = list
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            _ => {}
        }
    }
    Some(task)
}

/// What `task`'s handler does over its attempts.
pub(crate) fn own(task: &TaskPlan) -> Own {
    let all = u64::from(task.retries) + 1;
    let by_timeout = |limit: Option<u64>| {
        limit.map_or(Own::Never, |_| Own::Fails {
            attempts: Some(all),
        })
    };
    match task.kind {
        Kind::Ok => Own::Succeeds { attempts: 1 },
        Kind::Fail | Kind::Panic => Own::Fails {
            attempts: Some(all),
        },
        Kind::Permanent => Own::Fails { attempts: Some(1) },
        Kind::Hang | Kind::SlowCancel(_) | Kind::QuitFail(_) => by_timeout(task.timeout_ms),
        Kind::Sleep(d) | Kind::Cancels(d) => match task.timeout_ms {
            Some(limit) if limit < d => Own::Fails {
                attempts: Some(all),
            },
            Some(limit) if limit == d => Own::Either,
            _ => Own::Succeeds { attempts: 1 },
        },
        Kind::Flaky(k) if u64::from(k) < all => Own::Succeeds {
            attempts: u64::from(k) + 1,
        },
        Kind::Flaky(_) => Own::Fails {
            attempts: Some(all),
        },
        // Whether a timed-out attempt is retried once the drop panic is caught is not
        // pinned down: the attempts are not checked.
        Kind::DropPanic(d) => match (task.timeout_ms, d) {
            (None, None) => Own::Never,
            (Some(_), None) => Own::Fails { attempts: None },
            (Some(limit), Some(d)) if limit < d => Own::Fails { attempts: None },
            (Some(limit), Some(d)) if limit == d => Own::Either,
            (_, Some(_)) => Own::Succeeds { attempts: 1 },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::runs::generate;
    use fastrand::Rng;

    /// A generated run, as reading it keeps it in bounds (see [`RunPlan::parse`]).
    fn in_bounds(mut plan: RunPlan) -> RunPlan {
        plan.keep_ending();
        if plan.tasks.iter().all(|task| task.pool.is_none()) {
            plan.pool_limit = 1; // not printed: nothing runs in a pool
        }
        plan
    }

    /// Saved cases are stored printed: printing loses nothing of a generated run.
    #[test]
    fn a_run_prints_and_parses_back() {
        let mut rng = Rng::with_seed(3);
        for _ in 0..500 {
            let generated = generate(&mut rng);
            let read = RunPlan::parse(&generated.print());
            assert_eq!(read, in_bounds(generated.clone()), "{}", generated.print());
            assert_eq!(RunPlan::parse(&read.print()), read);
        }
    }

    #[test]
    fn the_reference_knows_validity_and_outcomes() {
        let plan = RunPlan::parse(
            "task a ok\ntask b fail retries=2 after=a\ntask c sleep=30 timeout=20ms\n",
        );
        assert!(plan.valid());
        assert_eq!(own(&plan.tasks[1]), Own::Fails { attempts: Some(3) });
        assert_eq!(own(&plan.tasks[2]), Own::Fails { attempts: Some(1) });
        assert!(
            !RunPlan::parse("task a ok after=b\ntask b ok after=a\n").valid(),
            "a cycle"
        );
        assert!(
            !RunPlan::parse("task a ok after=a\n").valid(),
            "depends on itself"
        );
        assert!(
            !RunPlan::parse("task a ok\ntask a ok\n").valid(),
            "duplicate id"
        );
        assert_eq!(
            RunPlan::parse("task a hang\n").cancel_at(),
            Some(FORCED_CANCEL_MS)
        );
        assert_eq!(
            RunPlan::parse("task a flaky=2 retries=2\n").tasks[0].kind,
            Kind::Flaky(2)
        );
    }
}
