//! Helpers shared by the journal's tests: running a future, and proptest strategies for
//! workflows and task records.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orch_core::{Task, TaskRecord, TaskStatus, Workflow};
use proptest::prelude::*;
use serde_json::Value;

/// Runs `future` on a fresh single-threaded runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A workflow of independent tasks with the given ids.
pub fn workflow_of(id: &str, tasks: &[String]) -> Workflow {
    tasks.iter().fold(Workflow::new(id, "W"), |w, t| {
        w.task(Task::new(t.as_str(), "t"))
    })
}

pub fn status() -> impl Strategy<Value = TaskStatus> {
    prop_oneof![
        Just(TaskStatus::Pending),
        Just(TaskStatus::Running),
        Just(TaskStatus::Completed),
        Just(TaskStatus::Failed),
        Just(TaskStatus::Skipped),
        Just(TaskStatus::Cancelled),
    ]
}

/// JSON values whose text form reads back equal (floats are multiples of 1/4).
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 4.0)),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Times RFC 3339 can write: 1970 to 9999, to the nanosecond.
pub fn time() -> impl Strategy<Value = SystemTime> {
    (0u64..=253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n))
}

pub fn record() -> impl Strategy<Value = TaskRecord> {
    (
        status(),
        prop::option::of(json()),
        prop::option::of("\\PC{0,20}"),
        prop::option::of(time()),
        prop::option::of(time()),
        (any::<u32>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(status, result, error, start_time, end_time, (attempts, shared_output, cached))| {
                TaskRecord {
                    status,
                    result,
                    error,
                    start_time,
                    end_time,
                    attempts,
                    shared_output,
                    cached,
                }
            },
        )
}

/// Task ids (1 to `max` distinct, any characters), and batches of records naming them
/// by index.
pub fn run(max: usize) -> impl Strategy<Value = (Vec<String>, Vec<Vec<(usize, TaskRecord)>>)> {
    prop::collection::btree_set("\\PC{1,10}", 1..=max).prop_flat_map(|ids| {
        let n = ids.len();
        let batch = prop::collection::vec((0..n, record()), 0..5);
        (
            Just(ids.into_iter().collect::<Vec<_>>()),
            prop::collection::vec(batch, 0..5),
        )
    })
}

/// The record in force for task `id` by the documented rule: its first completed record,
/// or else its last one.
pub fn in_force<'a>(
    records: &'a [(orch_core::TaskId, TaskRecord)],
    id: &str,
) -> Option<&'a TaskRecord> {
    let mut mine = records.iter().filter(|(t, _)| t == id).map(|(_, r)| r);
    let mut last = None;
    for record in mine.by_ref() {
        if record.status == TaskStatus::Completed {
            return Some(record);
        }
        last = Some(record);
    }
    last
}
