//! The `runs` target: random workflows run by the engine, under tokio's paused clock.
//!
//! Inputs are runs in the format of [`model`]: a DAG whose handlers succeed,
//! fail, panic, hang, sleep past their timeout, panic when dropped, fail on hearing of
//! their cancellation or cancel the run themselves, with random
//! concurrency, pools, priorities, retries, cancellation, event subscribers that read or never read, and
//! sometimes a runtime without a time driver. Each run gets a fresh current-thread runtime
//! (paused clock, so hours of timeouts take no real time).
//!
//! Invariants: no panic leaves the engine; validation accepts exactly the valid workflows
//! (a runtime without a time driver may refuse timers with a typed error); every task has
//! a record, in order, with a final status (none pending or running); the skipped tasks
//! are exactly those with a failed or skipped dependency; a completed or failed task's
//! dependencies all completed; uncancelled, every status and attempt count is the
//! reference model's and the run's status follows from them; cancelled, no task is
//! failed that could only fail on hearing of the cancellation; a run cancelled before it
//! is polled starts no task (each is cancelled, with no attempt); a cancelled run returns
//! within its grace period; a subscriber that reads gets one final event per task,
//! matching its record; no handler starts while `max_concurrent` handlers run, or its
//! pool's limit (a handler past its timeout counting as ended); and the run leaves no
//! heap behind.

mod harness;
mod limits;
mod model;
mod verify;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use fastrand::Rng;

use super::worker::{last_panic_location, panic_text};
use super::{Input, Target, Violation, live_heap, mutate};
use harness::{DROP_PANIC, observe};
use model::{Kind, RunPlan, TaskPlan};

/// Heap a run may leave allocated after everything it made is dropped.
const LEFT_AFTER_RUN: usize = 64 << 10;

pub(crate) struct Runs;

impl Runs {
    /// The target, after one run of every handler kind (so lazily built statics are not
    /// counted as a leak of the first input).
    pub(crate) fn new() -> Self {
        let warm_up = "concurrency 4\ncancel 30ms\nbus reader\ntask a ok\ntask b fail retries=1 backoff=1ms\ntask c sleep=5 timeout=1ms\ntask d panic\ntask e flaky=1 retries=1\ntask f slowcancel=1\ntask g permanent after=a\ntask h quitfail\ntask i cancels=40\n";
        let _ = catch_unwind(|| observe(&RunPlan::parse(warm_up)));
        Self
    }
}

const WORDS: &[&str] = &[
    "quitfail",
    "cancels=0",
    "task x ok\n",
    " after=t0",
    " retries=4294967295",
    " timeout=1ms",
    "cancel 0ms\n",
    "bus stalled 1\n",
    "timer off\n",
    "droppanic",
    "hang",
];

impl Target for Runs {
    fn generate(&mut self, rng: &mut fastrand::Rng) -> Input {
        Input::new(generate(rng).print(), "txt")
    }

    fn mutate(&mut self, rng: &mut fastrand::Rng, input: &Input, other: &Input) -> Input {
        if rng.bool() {
            return Input::new(
                mutate::bytes_with(rng, &input.bytes, &other.bytes, WORDS),
                "txt",
            );
        }
        let mut plan = RunPlan::parse(&String::from_utf8_lossy(&input.bytes));
        let fresh = generate(rng);
        match rng.u8(..6) {
            0 if !plan.tasks.is_empty() => {
                let i = rng.usize(..plan.tasks.len());
                plan.tasks[i] = TaskPlan {
                    id: plan.tasks[i].id.clone(),
                    after: plan.tasks[i].after.clone(),
                    ..fresh.tasks[0].clone()
                };
            }
            1 => plan.cancel_ms = fresh.cancel_ms,
            2 => (plan.reader, plan.stalled) = (fresh.reader, fresh.stalled),
            3 => plan.concurrency = fresh.concurrency,
            4 if !plan.tasks.is_empty() => {
                // A dependency on any task: a cycle, itself, or a duplicate, at times.
                let (i, j) = (rng.usize(..plan.tasks.len()), rng.usize(..plan.tasks.len()));
                let id = plan.tasks[j].id.clone();
                plan.tasks[i].after.push(id);
            }
            _ => plan.tasks.extend(fresh.tasks.into_iter().map(|t| TaskPlan {
                id: format!("{}x", t.id),
                ..t
            })),
        }
        Input::new(plan.print(), "txt")
    }

    fn check(&mut self, input: &Input) -> Result<(), Violation> {
        let plan = RunPlan::parse(&String::from_utf8_lossy(&input.bytes));
        let before = live_heap();
        let observed = catch_unwind(AssertUnwindSafe(|| observe(&plan)));
        let observed = observed.map_err(|payload| {
            let message = panic_text(payload.as_ref());
            let at = last_panic_location();
            let known = self.known_panic(&message);
            Violation::new(
                &format!("panic escaped at {at}"),
                format!("a panic left the engine (at {at}): {message}"),
                known,
            )
        })?;
        verify::verify(&plan, &observed)?;
        drop(observed);
        let left = live_heap().saturating_sub(before);
        if left > LEFT_AFTER_RUN {
            return Err(Violation::new(
                "leak",
                format!(
                    "{} kB stay allocated after the run and its runtime are dropped",
                    left >> 10
                ),
                None,
            ));
        }
        Ok(())
    }

    fn known_panic(&self, message: &str) -> Option<u8> {
        if message.contains(DROP_PANIC) {
            Some(3)
        } else if message.contains("timers are disabled") || message.contains("time driver") {
            Some(7)
        } else {
            None
        }
    }
}

/// A random run.
fn generate(rng: &mut Rng) -> RunPlan {
    let timer = rng.u8(..20) != 0;
    let count = if rng.u8(..10) == 0 {
        rng.usize(12..80)
    } else {
        rng.usize(1..12)
    };
    let tasks = (0..count)
        .map(|i| {
            let kind = match rng.u8(..22) {
                0..=6 => Kind::Ok,
                7 | 8 => Kind::Fail,
                9 => Kind::Permanent,
                10 | 11 => Kind::Panic,
                12 | 13 => Kind::Sleep(rng.u64(..300)),
                14 | 15 => Kind::Flaky(rng.u32(..4)),
                16 => Kind::Hang,
                17 => Kind::DropPanic(rng.bool().then(|| rng.u64(..300))),
                18 => Kind::QuitFail(rng.u64(..50) * u64::from(rng.bool())),
                19 => Kind::Cancels(rng.u64(..300)),
                _ => Kind::SlowCancel(rng.u64(..300)),
            };
            let waits = kind.needs_timer() && !matches!(kind, Kind::Sleep(_));
            let after = (0..rng.usize(..=i.min(3)))
                .map(|_| format!("t{}", rng.usize(..i)))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let huge = rng.u8(..50) == 0;
            TaskPlan {
                id: format!("t{i}"),
                kind,
                retries: if huge {
                    u32::MAX
                } else {
                    rng.u32(..4) * u32::from(rng.bool())
                },
                timeout_ms: (rng.u8(..10) < if waits { 7 } else { 4 }).then(|| rng.u64(1..400)),
                backoff_ms: if huge {
                    rng.u64(1..50)
                } else {
                    rng.u64(..50) * u64::from(rng.bool())
                },
                after,
                pool: (rng.u8(..3) == 0).then(|| rng.u8(..4)),
                priority: if rng.u8(..3) == 0 { rng.i32(-3..=3) } else { 0 },
            }
        })
        .collect();
    RunPlan {
        concurrency: rng.usize(1..9),
        grace_ms: rng.u64(..500),
        cancel_ms: (rng.u8(..10) < 3).then(|| if timer { rng.u64(..2000) } else { 0 }),
        timer,
        reader: rng.u8(..10) < 3,
        stalled: (rng.u8(..10) == 0).then(|| rng.usize(1..5)),
        pool_limit: rng.usize(1..4),
        tasks,
    }
}
