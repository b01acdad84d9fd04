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

/// A file journal whose run writers `wrap` wraps, so that a test can change what a commit
/// does (hold it, fail it, note it).
#[cfg(feature = "journal")]
#[derive(Clone)]
pub(crate) struct WrappedJournal {
    inner: orch_engine::FileJournal,
    wrap: WrapWriter,
}

/// Wraps the writer of a run the journal opens.
#[cfg(feature = "journal")]
type WrapWriter = std::sync::Arc<
    dyn Fn(Box<dyn orch_engine::journal::RunWriter>) -> Box<dyn orch_engine::journal::RunWriter>
        + Send
        + Sync,
>;

#[cfg(feature = "journal")]
impl WrappedJournal {
    pub(crate) fn new(
        inner: orch_engine::FileJournal,
        wrap: impl Fn(
            Box<dyn orch_engine::journal::RunWriter>,
        ) -> Box<dyn orch_engine::journal::RunWriter>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self {
            inner,
            wrap: std::sync::Arc::new(wrap),
        }
    }
}

#[cfg(feature = "journal")]
impl std::fmt::Debug for WrappedJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WrappedJournal").field(&self.inner).finish()
    }
}

#[cfg(feature = "journal")]
#[async_trait::async_trait]
impl orch_engine::Journal for WrappedJournal {
    async fn open(
        &self,
        run: &orch_core::RunId,
        workflow: &orch_core::Workflow,
    ) -> Result<orch_engine::journal::OpenRun, orch_engine::journal::JournalError> {
        let mut opened = self.inner.open(run, workflow).await?;
        opened.writer = (self.wrap)(opened.writer);
        Ok(opened)
    }

    async fn load(
        &self,
        run: &orch_core::RunId,
    ) -> Result<Option<orch_engine::journal::LoadedRun>, orch_engine::journal::JournalError> {
        self.inner.load(run).await
    }

    async fn list(
        &self,
        filter: &orch_engine::journal::RunFilter,
    ) -> Result<Vec<orch_engine::journal::RunSummary>, orch_engine::journal::JournalError> {
        self.inner.list(filter).await
    }
}

/// A PostgreSQL server of the test's own, or `None` (with the reason printed) when
/// PostgreSQL is not installed; under `CI=true` a missing server fails the test.
#[cfg(feature = "postgres")]
pub(crate) fn postgres_server() -> Option<orch_engine::journal::postgres::TempServer> {
    use orch_engine::journal::postgres::{TempServer, TempServerError};
    match TempServer::start() {
        Ok(server) => Some(server),
        Err(TempServerError::NotInstalled(reason))
            if std::env::var("CI").as_deref() != Ok("true") =>
        {
            println!("skipped: {reason}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// A file journal in `dir` whose writers never answer when asked to record a run's end,
/// and tell `asked` when they are.
#[cfg(feature = "journal")]
pub(crate) fn silent_at_the_end(
    dir: &std::path::Path,
    asked: &std::sync::Arc<tokio::sync::Notify>,
) -> WrappedJournal {
    let asked = std::sync::Arc::clone(asked);
    WrappedJournal::new(
        orch_engine::FileJournal::new(dir).expect("a file journal"),
        move |inner| {
            Box::new(SilentEnd {
                inner,
                asked: std::sync::Arc::clone(&asked),
            })
        },
    )
}

#[cfg(feature = "journal")]
#[derive(Debug)]
struct SilentEnd {
    inner: Box<dyn orch_engine::journal::RunWriter>,
    asked: std::sync::Arc<tokio::sync::Notify>,
}

#[cfg(feature = "journal")]
impl orch_engine::journal::RunWriter for SilentEnd {
    fn append(
        &self,
        records: &[(&orch_core::TaskId, &orch_core::TaskRecord)],
    ) -> orch_engine::journal::JournalFuture {
        self.inner.append(records)
    }

    fn sync(&self) -> orch_engine::journal::JournalFuture {
        self.inner.sync()
    }

    fn finish(&self, _status: orch_core::WorkflowStatus) -> orch_engine::journal::JournalFuture {
        self.asked.notify_one();
        Box::pin(std::future::pending())
    }
}
