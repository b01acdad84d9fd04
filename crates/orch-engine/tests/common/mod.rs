//! Helpers shared by the engine's test files: runtimes and record lookups. Each test file
//! uses some of them, so the rest are unused there.
#![allow(dead_code)]

use orch_core::{TaskRecord, TaskStatus, WorkflowResult};

/// A current-thread runtime with its clock paused: timers fire as soon as nothing else
/// can run, so tests of timeouts and backoff take no real time.
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

/// A current-thread runtime on the real clock.
pub(crate) fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A multi-threaded runtime with two workers.
pub(crate) fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The record of task `id` in `result`.
pub(crate) fn record<'r>(result: &'r WorkflowResult, id: &str) -> &'r TaskRecord {
    result.task(id).expect("recorded")
}

/// The status and error of task `id` in `result`.
pub(crate) fn error_of<'r>(result: &'r WorkflowResult, id: &str) -> (TaskStatus, Option<&'r str>) {
    let record = record(result, id);
    (record.status, record.error.as_deref())
}
