//! Durable runs: the journal an engine records runs in ([`EngineBuilder::journal`]),
//! starting or continuing a run by its id ([`WorkflowEngine::run_durable`]), and what a
//! journal's failure looks like to a caller ([`JournalFailure`]).

use std::fmt;
use std::sync::Arc;

use orch_core::{RunId, Workflow};
use orch_journal::{Durability, Journal, JournalError};

use crate::journaling::JournalSettings;
use crate::{EngineBuilder, RunError, RunHandle, WorkflowEngine};

impl EngineBuilder {
    /// Records durable runs ([`WorkflowEngine::run_durable`]) in `journal`, each task's
    /// completion surviving what `durability` names before any task that depends on it
    /// starts (see [the crate docs](crate#durable-runs)). Other runs (`run`,
    /// `execute_workflow`, `resume`) are not recorded.
    ///
    /// ```
    /// use orch_engine::{Durability, FileJournal, WorkflowEngine};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let journal = FileJournal::new(dir.path().join("runs"))?;
    /// let engine = WorkflowEngine::builder()
    ///     .journal(journal, Durability::Process)
    ///     .build()?;
    /// assert!(engine.journal().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn journal(mut self, journal: impl Journal + 'static, durability: Durability) -> Self {
        self.journal = Some(JournalSettings {
            journal: Arc::new(journal),
            durability,
        });
        self
    }
}

impl WorkflowEngine {
    /// The journal durable runs are recorded in, if the engine has one: list its runs or
    /// load one with it.
    pub fn journal(&self) -> Option<&Arc<dyn Journal>> {
        self.inner
            .journal
            .as_ref()
            .map(|settings| &settings.journal)
    }

    /// Starts run `run_id` of `workflow`, or continues it: when the engine's journal
    /// holds the run, the tasks that completed there (and whose outputs it holds) are
    /// restored, each with a `TaskRestored` event, and only the rest runs. A run
    /// recorded for another workflow, or for a workflow whose completed tasks have
    /// changed since (their type, configuration, dependencies, trigger rule or map), is
    /// refused with [`RunError::Journal`] saying what changed; nothing runs then. Tasks added,
    /// removed, or changed before they completed are fine.
    ///
    /// While the run goes on, every task's end (its completion, its failure, or its skip
    /// by its handler or its trigger rule) is committed to the journal before any task
    /// that depends on it starts (but for one whose trigger rule starts it early:
    /// `one_success`, `one_failed`, `always`); tasks cancelled, and (in a workflow whose tasks all keep
    /// the default rule `all_success`) tasks skipped after a failure upstream, are
    /// recorded when the run ends, with the run's status. A process killed at any
    /// moment leaves a journal this method continues from, running again only tasks
    /// whose completion was not committed (and those whose output the journal does not
    /// hold, see [the crate docs](crate#durable-runs)).
    ///
    /// Without a journal ([`EngineBuilder::journal`]), the run is refused with
    /// [`RunError::NoJournal`].
    ///
    /// ```
    /// use orch_core::{RunId, Task, Workflow};
    /// use orch_engine::{Durability, FileJournal, TaskContext, TaskError, WorkflowEngine};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir()?;
    /// let journal = FileJournal::new(dir.path().join("runs"))?;
    /// let engine = WorkflowEngine::builder().journal(journal, Durability::Process).build()?;
    /// engine.register_handler("step", |_ctx: TaskContext| async move { Ok::<_, TaskError>(1) });
    /// let workflow = Workflow::new("etl", "ETL")
    ///     .task(Task::new("extract", "step"))
    ///     .task(Task::new("load", "step").depends_on(["extract"]));
    /// let run_id: RunId = "nightly-1".parse()?;
    ///
    /// let first = engine.run_durable(&workflow, run_id.clone()).await?;
    /// assert_eq!(first.task("load").unwrap().attempts, 1);
    /// // The same id again: everything is restored from the journal, nothing runs.
    /// let again = engine.run_durable(&workflow, run_id).await?;
    /// assert_eq!(again.task("load").unwrap().result, Some(1.into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn run_durable(&self, workflow: &Workflow, run_id: RunId) -> RunHandle {
        let Some(journal) = self.inner.journal.clone() else {
            return RunHandle::refused(run_id, RunError::NoJournal);
        };
        let mut settings = self.inner.run_settings();
        settings.journal = Some(journal);
        self.start_with(settings, workflow, None, run_id)
    }
}

/// A journal's error in a [`RunError`]: cheap to clone, with the journal's own error
/// ([`JournalFailure::error`]) for matching on what went wrong.
#[derive(Clone)]
pub struct JournalFailure {
    error: Arc<JournalError>,
    while_running: bool,
}

impl JournalFailure {
    /// The journal refused the run, could not be opened, or failed before the run
    /// started (recording what a resumed run resets): no task ran.
    pub(crate) fn new(error: JournalError) -> Self {
        Self {
            error: Arc::new(error),
            while_running: false,
        }
    }

    /// The journal failed while the run's tasks ran, or while it recorded the run's end.
    pub(crate) fn in_run(error: JournalError) -> Self {
        Self {
            error: Arc::new(error),
            while_running: true,
        }
    }

    /// The journal's error: say, [`JournalError::WorkflowChanged`] with what changed.
    pub fn error(&self) -> &JournalError {
        &self.error
    }

    /// Whether the journal failed once the run had started (its tasks may have run, and
    /// what it recorded until then stays, to resume from), rather than before (refused,
    /// unreachable, or failing to record what a resumed run resets: no task ran).
    pub fn while_running(&self) -> bool {
        self.while_running
    }
}

impl fmt::Debug for JournalFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.error, f)
    }
}

impl fmt::Display for JournalFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for JournalFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

/// Two failures are equal when they are the same error, or read the same.
impl PartialEq for JournalFailure {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.error, &other.error) || self.error.to_string() == other.error.to_string()
    }
}

impl Eq for JournalFailure {}
