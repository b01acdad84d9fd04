//! A journal that fails in the middle of a durable run: the run stops with
//! `RunError::Journal` naming the failure, nothing is built on the task whose record was
//! not written, and a resume on a working journal continues from what was recorded.

#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orch_core::{RunId, Task, TaskId, TaskRecord, Workflow, WorkflowStatus};
use orch_engine::journal::{JournalError, JournalFuture, RunWriter};
use orch_engine::{Durability, FileJournal, Journal, RunError, TaskContext, WorkflowEngine};

mod common;

/// A file journal in `dir` whose `fail_at`-th append (counting from 1) fails without
/// writing.
fn failing(dir: &std::path::Path, fail_at: usize) -> common::WrappedJournal {
    let appends = Arc::new(AtomicUsize::new(0));
    common::WrappedJournal::new(FileJournal::new(dir).unwrap(), move |inner| {
        Box::new(FailingWriter {
            inner,
            fail_at,
            appends: Arc::clone(&appends),
        })
    })
}

#[derive(Debug)]
struct FailingWriter {
    inner: Box<dyn RunWriter>,
    fail_at: usize,
    appends: Arc<AtomicUsize>,
}

impl RunWriter for FailingWriter {
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture {
        let count = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        if count == self.fail_at {
            return Box::pin(async {
                Err(JournalError::Io {
                    action: "write",
                    path: "runs/r.jsonl".into(),
                    source: std::io::Error::other("no space left on the test's device"),
                })
            });
        }
        self.inner.append(records)
    }

    fn sync(&self) -> JournalFuture {
        self.inner.sync()
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        self.inner.finish(status)
    }
}

/// An engine on `journal` whose `step` handler counts its calls per task.
fn engine(
    journal: impl Journal + 'static,
    calls: &Arc<Mutex<HashMap<String, usize>>>,
) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .max_concurrent(1)
        .journal(journal, Durability::Process)
        .build()
        .unwrap();
    let calls = Arc::clone(calls);
    engine.register_handler("step", move |ctx: TaskContext| {
        *calls
            .lock()
            .unwrap()
            .entry(ctx.task_id().to_string())
            .or_default() += 1;
        async move { Ok::<_, orch_engine::TaskError>(ctx.attempt()) }
    });
    engine
}

#[test]
fn a_journal_failing_mid_run_stops_it_and_a_resume_continues_from_what_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = common::current_thread();
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "step"))
        .task(Task::new("b", "step").depends_on(["a"]))
        .task(Task::new("c", "step").depends_on(["b"]))
        .task(Task::new("d", "step").depends_on(["c"]));
    let run_id = RunId::parse("r").unwrap();
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let of = |id: &str| calls.lock().unwrap().get(id).copied().unwrap_or(0);

    // The second commit (`b`'s completion) fails: `c` must not start on it.
    let error = runtime
        .block_on(engine(failing(dir.path(), 2), &calls).run_durable(&workflow, run_id.clone()))
        .unwrap_err();
    let RunError::Journal(failure) = &error else {
        panic!("a journal failure, not {error:?}");
    };
    assert!(failure.while_running(), "failed once tasks ran");
    assert!(
        matches!(
            failure.error(),
            JournalError::Io {
                action: "write",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("no space left"), "{error}");
    assert_eq!([of("a"), of("b"), of("c"), of("d")], [1, 1, 0, 0]);

    // A resume on a journal that works keeps `a` and runs the rest.
    let result = runtime
        .block_on(
            engine(FileJournal::new(dir.path()).unwrap(), &calls).run_durable(&workflow, run_id),
        )
        .unwrap();
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!([of("a"), of("b"), of("c"), of("d")], [1, 2, 1, 1]);
}

/// The run's end is announced all the same, with the journal's error: a watcher of the
/// bus learns that the journal did not record it.
#[cfg(feature = "events")]
#[test]
fn the_end_of_a_run_whose_journal_failed_is_announced_with_the_failure() {
    use orch_core::{EngineEvent, EngineEventKind};
    use orch_events::EventBus;

    let dir = tempfile::tempdir().unwrap();
    let runtime = common::current_thread();
    let bus: EventBus<EngineEvent> = EventBus::new();
    let mut finished = bus.subscribe("workflow.w.finished").unwrap();
    let engine = WorkflowEngine::builder()
        .journal(failing(dir.path(), 1), Durability::Process)
        .event_bus(bus.clone())
        .build()
        .unwrap();
    engine.register_handler("step", |_: TaskContext| async {
        Ok::<_, orch_engine::TaskError>(1)
    });
    let workflow = Workflow::new("w", "W").task(Task::new("a", "step"));
    let run = engine.run_durable(&workflow, RunId::parse("r").unwrap());
    let error = runtime.block_on(run).unwrap_err();
    assert!(matches!(error, RunError::Journal(_)), "{error:?}");

    let event = runtime.block_on(async {
        bus.close().await;
        finished.recv_event().await.expect("the end announced")
    });
    let event = event.payload();
    assert_eq!(event.kind, EngineEventKind::WorkflowFinished);
    let told = event.error.as_deref().unwrap_or_default();
    assert!(told.contains("no space left"), "{told:?}");
}

/// A journal that fails while a long handler runs stops the run at once: the handler is
/// told through its cancellation token, and the run returns the journal's error instead
/// of waiting for the handler to end by itself.
#[test]
fn a_journal_failure_cancels_the_handlers_still_running() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = common::current_thread();
    let engine = WorkflowEngine::builder()
        .max_concurrent(2)
        .journal(failing(dir.path(), 1), Durability::Process)
        .build()
        .unwrap();
    engine.register_handler("instant", |_ctx: TaskContext| async move {
        Ok::<_, orch_engine::TaskError>(())
    });
    engine.register_handler("sensor", |ctx: TaskContext| async move {
        ctx.cancellation().cancelled().await;
        Err::<(), _>(orch_engine::TaskError::new("stopped waiting"))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "instant"))
        .task(Task::new("sensor", "sensor"));
    let run = engine.run_durable(&workflow, RunId::parse("r").unwrap());
    // A guard against waiting for ever, not a measure.
    let ended = runtime
        .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(60), run).await })
        .expect("the run ended while the sensor still waited");
    assert!(matches!(ended, Err(RunError::Journal(_))), "{ended:?}");
}

/// A cancelled run waits for its journal to record its end for its grace period (at
/// least 5 s), not for ever: here another session holds the journal's tables locked.
#[cfg(feature = "postgres")]
#[test]
fn a_cancelled_run_does_not_wait_for_ever_for_a_postgres_journal_that_does_not_answer() {
    use orch_engine::journal::PgJournal;

    let Some(server) = common::postgres_server() else {
        return;
    };
    let config = server.connection_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let journal = PgJournal::connect(&config).await.unwrap();
        let engine = WorkflowEngine::builder()
            .cancel_grace_period(std::time::Duration::from_millis(100))
            .journal(journal, Durability::Process)
            .build()
            .unwrap();
        let started = Arc::new(tokio::sync::Notify::new());
        let s = Arc::clone(&started);
        engine.register_handler("wait", move |ctx: TaskContext| {
            s.notify_one();
            async move {
                ctx.cancellation().cancelled().await;
                Err::<(), _>(orch_engine::TaskError::new("stopped"))
            }
        });
        let workflow = Workflow::new("w", "W").task(Task::new("a", "wait"));
        let run = engine.run_durable(&workflow, RunId::parse("locked").unwrap());
        let cancel = run.cancellation_token();
        let run = tokio::spawn(run);
        started.notified().await;
        // Another session takes the journal's tables and keeps them.
        let (mut locker, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let lock = locker.transaction().await.unwrap();
        lock.batch_execute(
            "LOCK TABLE orch_journal_runs, orch_journal_tasks IN ACCESS EXCLUSIVE MODE",
        )
        .await
        .unwrap();
        cancel.cancel();
        let failure = gave_up_on_its_journal(run).await;
        assert!(
            failure.to_string().contains("no answer within 5s"),
            "{failure}"
        );
        lock.rollback().await.unwrap();
    });
}

/// A run that ended, cancelled while its journal does not answer when asked to record
/// that end, returns within the wait a cancelled run gives its journal.
#[test]
fn a_run_cancelled_while_its_journal_records_its_end_returns() {
    let dir = tempfile::tempdir().unwrap();
    let asked = Arc::new(tokio::sync::Notify::new());
    let journal = common::silent_at_the_end(dir.path(), &asked);
    let workflow = Workflow::new("w", "W").task(Task::new("a", "instant"));
    cancelled_once_asked(journal, &asked, &workflow);
}

/// Runs `workflow` (tasks of type `instant`) durably on `journal`, cancels the run once
/// the journal says it was `asked`, and returns the failure of the run that stopped
/// waiting for it.
fn cancelled_once_asked(
    journal: impl Journal + 'static,
    asked: &tokio::sync::Notify,
    workflow: &Workflow,
) -> orch_engine::JournalFailure {
    let runtime = common::current_thread();
    let engine = WorkflowEngine::builder()
        .cancel_grace_period(std::time::Duration::from_millis(100))
        .journal(journal, Durability::Process)
        .build()
        .unwrap();
    engine.register_handler("instant", |_ctx: TaskContext| async move {
        Ok::<_, orch_engine::TaskError>(())
    });
    runtime.block_on(async {
        let run = engine.run_durable(workflow, RunId::parse("r").unwrap());
        let cancel = run.cancellation_token();
        let run = tokio::spawn(run);
        asked.notified().await;
        cancel.cancel();
        gave_up_on_its_journal(run).await
    })
}

/// A journal that never answers when asked to open or read a run, and tells `asked`
/// when it is.
#[derive(Debug)]
struct SilentJournal {
    asked: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl Journal for SilentJournal {
    async fn open(
        &self,
        _run: &RunId,
        _workflow: &Workflow,
    ) -> Result<orch_engine::journal::OpenRun, JournalError> {
        self.asked.notify_one();
        std::future::pending().await
    }

    async fn load(
        &self,
        _run: &RunId,
    ) -> Result<Option<orch_engine::journal::LoadedRun>, JournalError> {
        self.asked.notify_one();
        std::future::pending().await
    }

    async fn list(
        &self,
        _filter: &orch_engine::journal::RunFilter,
    ) -> Result<Vec<orch_engine::journal::RunSummary>, JournalError> {
        Ok(Vec::new())
    }
}

/// A run cancelled while its journal does not answer before the run starts (opening
/// it, or first reading it for a task with retries) returns within the wait a
/// cancelled run gives its journal, saying nothing ran.
#[test]
fn a_run_cancelled_while_its_journal_opens_it_returns() {
    for retries in [0, 2] {
        let asked = Arc::new(tokio::sync::Notify::new());
        let journal = SilentJournal {
            asked: Arc::clone(&asked),
        };
        let task = Task::new("a", "instant").retries(retries);
        let workflow = Workflow::new("w", "W").task(task);
        let failure = cancelled_once_asked(journal, &asked, &workflow);
        assert!(!failure.while_running(), "{failure}");
    }
}

/// The failure of a cancelled run, `run`, that stopped waiting for its journal.
async fn gave_up_on_its_journal(
    run: tokio::task::JoinHandle<Result<orch_core::WorkflowResult, RunError>>,
) -> orch_engine::JournalFailure {
    // A guard against waiting for ever, not a measure.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the cancelled run returned while its journal did not answer")
        .unwrap();
    let Err(RunError::Journal(failure)) = ended else {
        panic!("a journal failure, not {ended:?}");
    };
    assert!(
        matches!(failure.error(), JournalError::NoAnswer { .. }),
        "{failure}"
    );
    failure
}

/// A file journal in `dir` whose appends answer only once `open` lets them, and tell
/// `asked` when they are made.
fn held_appends(
    dir: &std::path::Path,
    asked: &Arc<tokio::sync::Notify>,
    open: &Arc<tokio::sync::Notify>,
) -> common::WrappedJournal {
    let (asked, open) = (Arc::clone(asked), Arc::clone(open));
    common::WrappedJournal::new(FileJournal::new(dir).unwrap(), move |inner| {
        Box::new(HeldAppends {
            inner,
            asked: Arc::clone(&asked),
            open: Arc::clone(&open),
        })
    })
}

#[derive(Debug)]
struct HeldAppends {
    inner: Box<dyn RunWriter>,
    asked: Arc<tokio::sync::Notify>,
    open: Arc<tokio::sync::Notify>,
}

impl RunWriter for HeldAppends {
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture {
        let written = self.inner.append(records);
        let open = Arc::clone(&self.open);
        self.asked.notify_one();
        Box::pin(async move {
            open.notified().await;
            written.await
        })
    }

    fn sync(&self) -> JournalFuture {
        self.inner.sync()
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        self.inner.finish(status)
    }
}

/// A run cancelled while its journal records its last task is cancelled, though every
/// task had ended: what it waited for was cut short.
#[test]
fn a_run_cancelled_while_its_last_task_is_recorded_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (asked, open) = (Arc::default(), Arc::new(tokio::sync::Notify::new()));
    let engine = WorkflowEngine::builder()
        .journal(held_appends(dir.path(), &asked, &open), Durability::Process)
        .build()
        .unwrap();
    engine.register_handler("instant", |_ctx: TaskContext| async move {
        Ok::<_, orch_engine::TaskError>(())
    });
    let workflow = Workflow::new("w", "W").task(Task::new("a", "instant"));
    let result = common::current_thread().block_on(async {
        let run = engine.run_durable(&workflow, RunId::parse("r").unwrap());
        let cancel = run.cancellation_token();
        let run = tokio::spawn(run);
        asked.notified().await;
        cancel.cancel();
        tokio::task::yield_now().await;
        open.notify_one();
        run.await.unwrap()
    });
    let result = result.expect("the journal answered");
    assert_eq!(
        result.task("a").map(|t| t.status),
        Some(orch_core::TaskStatus::Completed)
    );
    assert_eq!(result.status, WorkflowStatus::Cancelled);
}

/// A cancelled run whose journal stops answering while it commits a task waits for it
/// within its grace period, and then for the record of its end only as long as is left
/// of that period (at least 5 s): not a second grace period.
#[test]
fn a_cancelled_run_waits_for_a_silent_journal_one_grace_period_and_the_least_wait_at_most() {
    const GRACE: Duration = Duration::from_secs(30);
    let dir = tempfile::tempdir().unwrap();
    let (asked, never) = (Arc::default(), Arc::new(tokio::sync::Notify::new()));
    let engine = WorkflowEngine::builder()
        .cancel_grace_period(GRACE)
        .journal(
            held_appends(dir.path(), &asked, &never),
            Durability::Process,
        )
        .build()
        .unwrap();
    engine.register_handler("instant", |_ctx: TaskContext| async move {
        Ok::<_, orch_engine::TaskError>(())
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "instant"))
        .task(Task::new("b", "instant").depends_on(["a"]));
    common::paused_runtime().block_on(async {
        let run = engine.run_durable(&workflow, RunId::parse("r").unwrap());
        let cancel = run.cancellation_token();
        let run = tokio::spawn(run);
        asked.notified().await; // `a` is being committed, and stays so
        let cancelled_at = tokio::time::Instant::now();
        cancel.cancel();
        let failure = gave_up_on_its_journal(run).await;
        let waited = cancelled_at.elapsed();
        assert!(
            waited <= GRACE + Duration::from_secs(5),
            "returned {waited:?} after its cancellation: {failure}"
        );
        assert!(
            matches!(failure.error(), JournalError::NoAnswer { waited, .. } if *waited == Duration::from_secs(5)),
            "{failure}"
        );
    });
}

/// A resumed run whose first commit (resetting the outcomes it does not keep) fails
/// stops before any task ran, and says so: the journal did not fail while running.
#[test]
fn a_journal_failing_on_a_resumed_runs_resets_stops_it_before_any_task_ran() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = common::current_thread();
    // `b` is skipped when `a` fails: the resumed run resets that skip.
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "fails"))
        .task(Task::new("b", "step").depends_on(["a"]));
    let run_id = RunId::parse("r").unwrap();
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let first = engine(FileJournal::new(dir.path()).unwrap(), &calls);
    first.register_handler("fails", |_ctx: TaskContext| async move {
        Err::<(), _>(orch_engine::TaskError::new("down"))
    });
    let result = runtime.block_on(first.run_durable(&workflow, run_id.clone()));
    assert_eq!(result.unwrap().status, WorkflowStatus::Failed);

    let calls = Arc::new(Mutex::new(HashMap::new()));
    let resumed = engine(failing(dir.path(), 1), &calls);
    let counted = Arc::clone(&calls);
    resumed.register_handler("fails", move |ctx: TaskContext| {
        let id = ctx.task_id().to_string();
        *counted.lock().unwrap().entry(id).or_default() += 1;
        async move { Ok::<_, orch_engine::TaskError>(()) }
    });
    let error = runtime
        .block_on(resumed.run_durable(&workflow, run_id))
        .unwrap_err();
    let RunError::Journal(failure) = &error else {
        panic!("a journal failure, not {error:?}");
    };
    assert!(
        !failure.while_running(),
        "failed before any task ran: {failure:?}"
    );
    assert!(calls.lock().unwrap().is_empty(), "nothing ran");
}

/// A file journal in `dir` whose writers refuse, as a journal with a limit on records
/// does, any record whose error text is longer than `longest` bytes.
fn refusing_long_errors(dir: &std::path::Path, longest: usize) -> common::WrappedJournal {
    common::WrappedJournal::new(FileJournal::new(dir).unwrap(), move |inner| {
        Box::new(RefusingLongErrors { inner, longest })
    })
}

#[derive(Debug)]
struct RefusingLongErrors {
    inner: Box<dyn RunWriter>,
    longest: usize,
}

impl RunWriter for RefusingLongErrors {
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture {
        let long = records.iter().find(|(_, record)| {
            record
                .error
                .as_ref()
                .is_some_and(|e| e.len() > self.longest)
        });
        if let Some((task, _)) = long {
            let task = (*task).clone();
            return Box::pin(async move {
                Err(JournalError::InvalidRecord {
                    task,
                    field: "error",
                    reason: "too long for the test's journal".into(),
                })
            });
        }
        self.inner.append(records)
    }

    fn sync(&self) -> JournalFuture {
        self.inner.sync()
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        self.inner.finish(status)
    }
}

/// A task cancelled with the run whose error text (what its handler ended with) is too
/// long for the journal is recorded with that text cut short, as in a commit: the run
/// ends cancelled, its end recorded, rather than failing on its journal.
#[test]
fn an_error_text_too_long_for_the_journal_at_the_runs_end_is_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let journal = refusing_long_errors(dir.path(), 100 << 10);
    let engine = WorkflowEngine::builder()
        .journal(journal, Durability::Process)
        .build()
        .unwrap();
    engine.register_handler("quits", |ctx: TaskContext| async move {
        ctx.cancellation().cancelled().await;
        Err::<(), _>(orch_engine::TaskError::new("x".repeat(200 << 10)))
    });
    let workflow = Workflow::new("w", "W").task(Task::new("a", "quits"));
    let runtime = common::current_thread();
    let run_id = RunId::parse("r").unwrap();
    let result = runtime.block_on(async {
        let run = engine.run_durable(&workflow, run_id.clone());
        let cancel = run.cancellation_token();
        let run = tokio::spawn(run);
        tokio::task::yield_now().await;
        cancel.cancel();
        run.await.unwrap()
    });
    let result = result.expect("recorded, cut short");
    assert_eq!(result.status, WorkflowStatus::Cancelled);
    let loaded = runtime
        .block_on(FileJournal::new(dir.path()).unwrap().load(&run_id))
        .unwrap()
        .expect("the run");
    let error = loaded
        .task("a")
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(error.len() < 100 << 10, "{} bytes", error.len());
    assert!(
        error.ends_with(
            "(cut short: the journal cannot hold the whole text: too long for the test's journal)"
        ),
        "{}",
        &error[error.len() - 120..]
    );
    assert_eq!(
        loaded.summary().status,
        orch_engine::journal::RunStatus::Cancelled
    );
}
