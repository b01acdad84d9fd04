//! The `results` target: `WorkflowResult` JSON files.
//!
//! Inputs are result files (as `WorkflowResult::to_json` writes them, then mutated), or a
//! result wrapped as `{"shift_secs": S, "result": {...}}`: the result with every time
//! moved by S seconds, as a program may build one (say, from a clock before 1970).
//!
//! Invariants: reading never panics and stays within the `files` memory bound; writing a
//! result (`to_json`, `to_json_pretty`, `to_value`, and an event at its start time) never
//! panics; a result read, written and read again is equal to the first read with its
//! times cut to microseconds, toward the past (the precision results are written with),
//! whatever their year; its figures (`metrics`) never panic, count the records by status
//! as they are, and give finite, non-negative durations in order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fastrand::Rng;
use orch_core::{
    EngineEvent, EngineEventKind, TaskRecord, TaskStatus, WorkflowResult, WorkflowStatus,
};
use serde_json::Value;

use super::doc::Syntax;
use super::formats::{PEAK_BASE, peak_per_byte};
use super::worker::panic_text;
use super::{Input, Target, Violation, mutate, peak_heap};

/// The first second RFC 3339 text cannot hold (year 10000).
const YEAR_10000: u64 = 253_402_300_800;

pub(crate) struct Results;

const WORDS: &[&str] = &[
    "\"1969-12-31T23:59:59Z\"",
    "\"9999-12-31T23:59:59.999999999Z\"",
    "\"10000-01-01T00:00:00Z\"",
    "\"1970-01-01T00:00:00.123456789Z\"",
    "\"2024-02-30T00:00:00Z\"",
    "\"2024-01-01 00:00:00\"",
    "\"status\": \"pending\", ",
    "\"attempts\": 4294967296, ",
    "\"max_concurrent\": 18446744073709551615, ",
];

impl Target for Results {
    fn generate(&mut self, rng: &mut Rng) -> Input {
        let result = random_result(rng);
        let json = if rng.bool() {
            result.to_json()
        } else {
            result.to_json_pretty()
        };
        let text = match rng.u8(..4) {
            0 => {
                let start = secs(result.start_time);
                let shift: i128 = match rng.u8(..3) {
                    0 => -(start as i128) - i128::from(rng.u64(1..100_000_000_000)),
                    1 => {
                        i128::from(YEAR_10000) - start as i128
                            + i128::from(rng.u64(..100_000_000_000))
                    }
                    _ => i128::from(rng.i64(-1_000_000..1_000_000)),
                };
                format!("{{\"shift_secs\": {shift}, \"result\": {json}}}")
            }
            _ => json,
        };
        Input::new(text, "json")
    }

    fn mutate(&mut self, rng: &mut Rng, input: &Input, other: &Input) -> Input {
        Input::new(
            mutate::bytes_with(rng, &input.bytes, &other.bytes, WORDS),
            "json",
        )
    }

    fn check(&mut self, input: &Input) -> Result<(), Violation> {
        let (shift, text) = unwrap_shift(&input.bytes);
        let text = text.as_deref().unwrap_or(&input.bytes);
        let (read, peak) = peak_heap(|| serde_json::from_slice::<WorkflowResult>(text));
        let bound = PEAK_BASE + peak_per_byte(Syntax::Json) * text.len();
        if peak > bound {
            return Err(Violation::new(
                "memory",
                format!(
                    "reading {} bytes took {} kB of heap (bound {} kB)",
                    text.len(),
                    peak >> 10,
                    bound >> 10
                ),
                None,
            ));
        }
        let Ok(mut result) = read else {
            return Ok(());
        };
        if shift != 0 && !shift_times(&mut result, shift) {
            return Ok(());
        }
        let written = catch_unwind(AssertUnwindSafe(|| {
            let event = EngineEvent::new(
                EngineEventKind::WorkflowStarted,
                Arc::from("w"),
                orch_core::RunId::new(),
                result.start_time,
            );
            let _ = serde_json::to_string(&event);
            let _ = result.to_value();
            let _ = result.to_json_pretty();
            result.to_json()
        }));
        let json = match written {
            Ok(json) => json,
            Err(payload) => {
                let out_of_range = times(&result).any(|t| !in_range(t));
                return Err(Violation::new(
                    "writing panics",
                    format!(
                        "writing a result (or an event) panicked: {}",
                        panic_text(payload.as_ref())
                    ),
                    out_of_range.then_some(8),
                ));
            }
        };
        round_trip(&result, &json)?;
        figures_hold(&result)
    }

    fn known_panic(&self, message: &str) -> Option<u8> {
        (message.contains("after the epoch") || message.contains("Display implementation"))
            .then_some(8)
    }
}

/// The run's figures never panic, count the records by status as they are, and give
/// durations that are finite, not negative and in order (shortest, median, 95th and
/// 99th percentiles, longest; the mean between the shortest and the longest).
fn figures_hold(result: &WorkflowResult) -> Result<(), Violation> {
    let violation = |what: String| Err(Violation::new("figures", what, None));
    let metrics = match catch_unwind(AssertUnwindSafe(|| result.metrics())) {
        Ok(metrics) => metrics,
        Err(payload) => {
            let text = panic_text(payload.as_ref());
            return violation(format!("working out a result's figures panicked: {text}"));
        }
    };
    let count = |status| {
        result
            .tasks
            .iter()
            .filter(|(_, r)| r.status == status)
            .count()
    };
    let counted = [
        metrics.total_tasks,
        metrics.completed_tasks,
        metrics.failed_tasks,
        metrics.skipped_tasks,
        metrics.cancelled_tasks,
    ];
    let expected = [
        result.tasks.len(),
        count(TaskStatus::Completed),
        count(TaskStatus::Failed),
        count(TaskStatus::Skipped),
        count(TaskStatus::Cancelled),
    ];
    if counted != expected {
        return violation(format!("counts {counted:?}, records say {expected:?}"));
    }
    let ordered = [
        metrics.min_task_duration,
        metrics.p50_task_duration,
        metrics.p95_task_duration,
        metrics.p99_task_duration,
        metrics.max_task_duration,
    ];
    let durations = ordered.iter().chain([&metrics.avg_task_duration]).flatten();
    let plain = [metrics.total_duration, metrics.critical_path_duration];
    let all = durations.chain(&plain).chain(&metrics.parallel_efficiency);
    if let Some(bad) = all.copied().find(|d| !d.is_finite() || *d < 0.0) {
        return violation(format!("a figure of {bad} in {metrics:?}"));
    }
    let known: Vec<f64> = ordered.iter().flatten().copied().collect();
    let in_order = known.windows(2).all(|pair| pair[0] <= pair[1]);
    let mean_within = match (metrics.avg_task_duration, known.first(), known.last()) {
        // Summing can round the mean past the ends by a few units in the last place.
        (Some(mean), Some(min), Some(max)) => {
            let slack = max.abs() * 1e-9;
            *min - slack <= mean && mean <= *max + slack
        }
        _ => known.is_empty() && metrics.avg_task_duration.is_none(),
    };
    if !in_order || !mean_within {
        return violation(format!("durations out of order: {metrics:?}"));
    }
    Ok(())
}

fn round_trip(result: &WorkflowResult, json: &str) -> Result<(), Violation> {
    let again: WorkflowResult = serde_json::from_str(json).map_err(|e| {
        Violation::new(
            "round trip",
            format!("a written result does not read back: {e}\n{json:.600}"),
            None,
        )
    })?;
    let mut expected = result.clone();
    if !map_times(&mut expected, to_micros) {
        // A time within a microsecond of the earliest `SystemTime`: its written form
        // names a time before it.
        return Ok(());
    }
    if again != expected {
        return Err(Violation::new(
            "round trip",
            format!(
                "written and read back, the result differs:\n  {expected:?}\n  became {again:?}"
            ),
            None,
        ));
    }
    Ok(())
}

/// The shift and the inner result's text, for an input of the form `{"shift_secs", "result"}`.
fn unwrap_shift(bytes: &[u8]) -> (i128, Option<Vec<u8>>) {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) else {
        return (0, None);
    };
    match (
        map.len(),
        map.get("shift_secs").and_then(Value::as_i64),
        map.get("result"),
    ) {
        (2, Some(shift), Some(result)) => {
            (i128::from(shift), Some(result.to_string().into_bytes()))
        }
        _ => (0, None),
    }
}

/// Moves every time of `result` by `shift` seconds; false if one leaves `SystemTime`'s range.
fn shift_times(result: &mut WorkflowResult, shift: i128) -> bool {
    let by = Duration::from_secs(shift.unsigned_abs().min(u128::from(u64::MAX)) as u64);
    map_times(result, |time| {
        if shift < 0 {
            time.checked_sub(by)
        } else {
            time.checked_add(by)
        }
    })
}

/// Replaces every time of `result` by `f` of it; false (and `result` unchanged) if `f`
/// gives `None` for one.
fn map_times(
    result: &mut WorkflowResult,
    mut f: impl FnMut(SystemTime) -> Option<SystemTime>,
) -> bool {
    // `Some(moved)` where `f` succeeds (a missing time stays missing), `None` where not.
    let mut map = |time: Option<SystemTime>| match time {
        None => Some(None),
        Some(time) => f(time).map(Some),
    };
    let (Some(Some(start)), Some(Some(end))) =
        (map(Some(result.start_time)), map(Some(result.end_time)))
    else {
        return false;
    };
    let mut tasks = Vec::with_capacity(result.tasks.len());
    for (id, record) in result.tasks.iter() {
        let (Some(start_time), Some(end_time)) = (map(record.start_time), map(record.end_time))
        else {
            return false;
        };
        tasks.push((
            id.clone(),
            TaskRecord {
                start_time,
                end_time,
                ..record.clone()
            },
        ));
    }
    (result.start_time, result.end_time) = (start, end);
    result.tasks = tasks.into_iter().collect();
    true
}

fn times(result: &WorkflowResult) -> impl Iterator<Item = SystemTime> + '_ {
    let tasks = result
        .tasks
        .records()
        .iter()
        .flat_map(|r| [r.start_time, r.end_time])
        .flatten();
    [result.start_time, result.end_time]
        .into_iter()
        .chain(tasks)
}

fn in_range(time: SystemTime) -> bool {
    time.duration_since(UNIX_EPOCH)
        .is_ok_and(|d| d.as_secs() < YEAR_10000)
}

fn secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `time` as written: cut to the microsecond, toward the past (a time before 1970
/// too), or `None` when that is before the earliest `SystemTime`.
fn to_micros(time: SystemTime) -> Option<SystemTime> {
    const NANOS: i128 = 1_000_000_000;
    let nanos = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).ok()?,
        Err(before) => -i128::try_from(before.duration().as_nanos()).ok()?,
    };
    let cut = nanos.div_euclid(1_000) * 1_000;
    let whole = |n: i128| {
        let secs = u64::try_from(n / NANOS).ok()?;
        let sub = u32::try_from(n % NANOS).ok()?;
        Some(Duration::new(secs, sub))
    };
    match cut >= 0 {
        true => UNIX_EPOCH.checked_add(whole(cut)?),
        false => UNIX_EPOCH.checked_sub(whole(-cut)?),
    }
}

fn random_time(rng: &mut Rng) -> SystemTime {
    UNIX_EPOCH + Duration::new(rng.u64(..YEAR_10000), rng.u32(..1_000_000_000))
}

fn random_result(rng: &mut Rng) -> WorkflowResult {
    let count = if rng.u8(..20) == 0 {
        rng.usize(100..2000)
    } else {
        rng.usize(..6)
    };
    let statuses = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Skipped,
        TaskStatus::Cancelled,
    ];
    let tasks = (0..count)
        .map(|i| {
            let record = TaskRecord {
                status: *rng.choice(&statuses).unwrap_or(&TaskStatus::Pending),
                result: rng.bool().then(|| Value::from(rng.i64(..))),
                error: rng.bool().then(|| "boom: \"quoted\"\n".to_owned()),
                start_time: rng.bool().then(|| random_time(rng)),
                end_time: rng.bool().then(|| random_time(rng)),
                attempts: if rng.u8(..10) == 0 {
                    u32::MAX
                } else {
                    rng.u32(..4)
                },
                shared_output: rng.u8(..10) == 0,
                cached: rng.u8(..10) == 0,
                chosen_branches: (rng.u8(..10) == 0).then(|| {
                    (0..rng.usize(..3))
                        .map(|b| format!("b{b}").into())
                        .collect()
                }),
            };
            (
                format!("t{i}{}", if rng.u8(..10) == 0 { ".é" } else { "" }).into(),
                record,
            )
        })
        .collect();
    WorkflowResult {
        workflow_id: "w".repeat(rng.usize(1..4)),
        run_id: orch_core::RunId::new(),
        name: "Name".into(),
        status: *rng
            .choice(&[
                WorkflowStatus::Completed,
                WorkflowStatus::Failed,
                WorkflowStatus::Cancelled,
            ])
            .unwrap_or(&WorkflowStatus::Completed),
        start_time: random_time(rng),
        end_time: random_time(rng),
        max_concurrent: if rng.bool() {
            usize::MAX
        } else {
            rng.usize(1..16)
        },
        tasks,
    }
}
