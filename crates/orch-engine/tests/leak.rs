//! No leak: 10^4 runs whose handlers allocate, fail, panic, hang past their timeout and
//! panic when dropped, at random (seeded), some of them cancelled, leave the process's
//! resident memory where it was after a warm-up.
//!
//! Memory is read from `/proc/self/statm` (a counting allocator would need `unsafe`, which
//! the workspace forbids). Every handler holds a buffer of 8 to 16 kB, and its results,
//! errors and panic messages carry 1 to 2 kB, so a leaked future, result, record or panic
//! payload per run adds over ten megabytes: far above the margin allowed for the
//! allocator's own bookkeeping.

#![cfg(target_os = "linux")]

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use orch_core::{Task, TaskStatus, Workflow, WorkflowResult};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use serde_json::{Value, json};

const RUNS: usize = 10_000;
const WARM_UP: usize = 1_000;
/// Growth allowed after the warm-up: allocator bookkeeping, never a leak's size.
const MARGIN: usize = 1 << 20;

/// What a task's handler does, from its config.
#[derive(Clone, Copy)]
enum Mode {
    Succeed,
    Fail,
    /// Panics while called, before its future exists.
    PanicAtCall,
    /// Panics while polled.
    Panic,
    /// Never finishes: its timeout ends it, and its future may panic when dropped.
    Hang {
        panic_when_dropped: bool,
    },
}

const MODES: [Mode; 6] = [
    Mode::Succeed,
    Mode::Fail,
    Mode::PanicAtCall,
    Mode::Panic,
    Mode::Hang {
        panic_when_dropped: false,
    },
    Mode::Hang {
        panic_when_dropped: true,
    },
];

/// How the handlers' panic messages begin.
const HANDLER_PANICS: [&str; 3] = ["at call: ", "polled with ", "dropped: "];

/// Panics when dropped (unless the thread is unwinding already), with its text.
struct Bomb(String);

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("dropped: {}", self.0);
        }
    }
}

fn handler(ctx: TaskContext) -> impl Future<Output = Result<Value, TaskError>> + Send {
    let mode = MODES[ctx.config()["mode"].as_u64().unwrap_or(0) as usize % MODES.len()];
    let size = ctx.config()["size"].as_u64().unwrap_or(0) as usize;
    // Results, errors and panic messages each carry a kilobyte or more.
    let text = "x".repeat(size / 8);
    if let Mode::PanicAtCall = mode {
        panic!("at call: {text}");
    }
    let buffer = vec![b'x'; size];
    async move {
        tokio::task::yield_now().await;
        match mode {
            Mode::Succeed => Ok(json!(text)),
            Mode::Fail => Err(TaskError::new(format!("failed: {text}"))),
            Mode::Panic => panic!("polled with {} bytes: {text}", buffer.len()),
            Mode::Hang { panic_when_dropped } => {
                let _bomb = panic_when_dropped.then(|| Bomb(text));
                let _buffer = buffer;
                std::future::pending::<()>().await;
                Ok(Value::Null)
            }
            Mode::PanicAtCall => unreachable!("panicked above"),
        }
    }
}

/// A random workflow of 5 to 30 tasks, each depending on up to 3 earlier ones.
fn workflow(rng: &mut TestRng) -> Workflow {
    let n = 5 + rng.random_range(0..26);
    Workflow::from_tasks(
        "leak",
        "Leak",
        (0..n).map(|i| {
            // Half succeed, so that failures leave most tasks to run.
            let mode = match rng.random_range(0..2) {
                0 => 0,
                _ => 1 + rng.random_range(0..MODES.len() - 1),
            };
            let mut task = Task::new(format!("t{i}"), "h")
                .config(json!({"mode": mode, "size": 8192 + rng.random_range(0..8192)}));
            if matches!(MODES[mode], Mode::Hang { .. }) {
                task = task.timeout(Duration::from_millis(1 + rng.random_range(0..100) as u64));
            }
            if rng.random_range(0..4) == 0 {
                task = task.retries(rng.random_range(0..3) as u32);
            }
            let dependencies: Vec<String> = (0..rng.random_range(0..4).min(i))
                .map(|_| format!("t{}", rng.random_range(0..i)))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            task.depends_on(dependencies)
        }),
    )
}

/// The process's resident memory in bytes.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("procfs");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("statm has a resident field");
    pages * 4096
}

async fn one_run(engine: &WorkflowEngine, rng: &mut TestRng) -> WorkflowResult {
    let workflow = workflow(rng);
    let run = engine.run(&workflow);
    if rng.random_range(0..5) > 0 {
        return run.await.expect("valid");
    }
    let token = run.cancellation_token();
    let runner = tokio::spawn(run);
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..50) as u64)).await;
    token.cancel();
    runner.await.expect("no panic").expect("valid")
}

#[test]
fn memory_returns_to_its_baseline_after_runs_that_allocate_and_panic() {
    // Tens of thousands of handler panics are expected: keep them quiet, and only them.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info.payload_as_str().unwrap_or("");
        if !HANDLER_PANICS.iter().any(|start| text.starts_with(start)) {
            report(info);
        }
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let builder = WorkflowEngine::builder()
            .max_concurrent(4)
            .cancel_grace_period(Duration::from_millis(5));
        // Never read: it keeps the latest events only, so the runs publish all of theirs.
        #[cfg(feature = "events")]
        let (builder, _recent) = {
            use orch_events::{EventBus, Overflow, SubscribeOptions};
            let bus = EventBus::new();
            let options = SubscribeOptions::new()
                .capacity(64)
                .overflow(Overflow::DropOldest);
            let recent = bus
                .subscribe_with("workflow.>", options)
                .expect("a valid pattern");
            (builder.event_bus(bus), recent)
        };
        let engine = builder.build().expect("valid");
        engine.register_handler("h", handler);
        let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let mut baseline = 0;
        let mut seen: HashMap<TaskStatus, usize> = HashMap::new();
        for run in 0..RUNS {
            if run == WARM_UP {
                baseline = resident();
            }
            let result = one_run(&engine, &mut rng).await;
            for (_, record) in result.tasks.iter() {
                *seen.entry(record.status).or_default() += 1;
            }
        }
        let after = resident();
        assert!(
            after <= baseline + MARGIN,
            "resident memory grew from {baseline} to {after} bytes over {} runs",
            RUNS - WARM_UP
        );
        // The runs did what they are here for.
        for status in [
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Skipped,
            TaskStatus::Cancelled,
        ] {
            let count = seen.get(&status).copied().unwrap_or(0);
            assert!(count > 1_000, "few {status:?} tasks: {seen:?}");
        }
    });
    drop(std::panic::take_hook());
}
