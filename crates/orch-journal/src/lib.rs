//! Durable runs for orch: a journal of task records kept outside the process, so that a
//! run whose process crashed can be resumed without running again what had finished.
//!
//! ```
//! use orch_core::{RunId, Task, TaskRecord, TaskStatus, Workflow};
//! use orch_journal::{Durability, FileJournal, Journal};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! # let dir = tempfile::tempdir()?;
//! let journal = FileJournal::new(dir.path().join("runs"))?;
//! let workflow = Workflow::new("etl", "ETL")
//!     .task(Task::new("extract", "extract"))
//!     .task(Task::new("load", "load").depends_on(["extract"]));
//! let run = RunId::parse("nightly-1")?;
//!
//! // A new run: nothing to resume from. Record a task's completion and make it durable.
//! let opened = journal.open(&run, &workflow).await?;
//! assert!(opened.previous.is_none());
//! let done = TaskRecord { status: TaskStatus::Completed, attempts: 1, ..TaskRecord::default() };
//! opened.writer.commit(&[(&"extract".into(), &done)], Durability::Power).await?;
//! drop(opened); // the process stops here, before `load` ran
//!
//! // Later (another process): open the run again and resume from what it recorded.
//! let opened = journal.open(&run, &workflow).await?;
//! let previous = opened.previous.expect("the run was recorded");
//! assert_eq!(previous.task("extract").unwrap().status, TaskStatus::Completed);
//! assert_eq!(previous.task("load").unwrap().status, TaskStatus::Pending);
//! // engine.resume(&workflow, &previous) runs `load` only.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Backends
//!
//! - [`FileJournal`] (always there): one append-only JSON Lines file per run in a
//!   directory, readable by its owner only. No server, no dependency.
//! - `PgJournal` (feature `postgres`): a PostgreSQL database, for several coordinators
//!   that share runs. It connects without TLS (a tunnel across untrusted networks).
//! - Elsewhere: [`backend::RunLines`] writes and reads a run's journal as batches of
//!   lines for a backend in another crate (orch-nats keeps runs on a JetStream stream).
//!
//! # What is recorded, and what a resume trusts
//!
//! A run's journal starts with the workflow's id and a fingerprint of each task (its
//! type, configuration, dependencies, trigger rule and map). Reopening a run with a
//! workflow of another id, or one in which a task that completed has changed, is refused
//! with an error that says what changed ([`WorkflowChanges`]); a task the workflow no
//! longer has loses its records, so one of that id added back later starts afresh. A
//! task's record is written with its result as JSON:
//! outputs that are not JSON do not survive (the engine writes a summary or a reason in
//! their place, and a resumed run runs such a task again only when a task that runs
//! needs its output). A
//! completed record is final: later records of the same task do not replace it, unless
//! a later pending record puts it out of force. A resumed run writes one for each task whose recorded
//! outcome it does not keep (a failure or cancellation it runs again, or an outcome a
//! dependency it was decided on runs again) ahead of its first commit, so that the task's new outcome replaces the old one, and a later resume
//! does not bring back an outcome decided on what has since changed.
//!
//! A map task's instances (`task[i]`) are recorded under their own ids, as they complete
//! and with their map's end, each once per run of its map. A pending record of
//! the map takes its instances' records out of force with its own, and its completion
//! takes out those numbered past its list (they were of an earlier list).
//!
//! # Durability
//!
//! [`RunWriter::append`] returns once the records are written (they survive the process
//! crashing); [`RunWriter::sync`] once they are on stable storage (they survive power
//! loss). The file journal makes concurrent syncs share one `fdatasync`; see
//! [`Durability`].
//!
//! # Using it from a scheduler
//!
//! [`Journal::open`] the run before it starts and resume from [`OpenRun::previous`] if
//! there is one. After each scheduling pass, hand the tasks that finished in it to
//! [`RunWriter::commit`] and release their dependents only once its future resolves:
//! then whatever the journal holds has its dependencies in it too. Independent tasks
//! may go on meanwhile; the futures own their data, so several can be pending.
//! [`RunWriter::finish`] records the run's end.
//!
//! # Why the interface is async
//!
//! A PostgreSQL journal waits on the network and an engine's scheduler must not block,
//! so every operation returns a future; the file journal's futures are ready at once,
//! except a sync, which waits for a thread of the journal's own that runs `fdatasync`.

pub mod backend;
mod claim;
mod controls;
mod definition;
mod error;
mod file;
mod in_force;
mod line;
#[cfg(feature = "postgres")]
pub mod postgres;
mod read;
mod results;
mod run;
mod sync;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use orch_core::{RunId, TaskId, TaskRecord, Workflow, WorkflowResult, WorkflowStatus};

pub use definition::WorkflowChanges;
pub use error::JournalError;
pub use file::FileJournal;
#[cfg(feature = "postgres")]
pub use postgres::PgJournal;
pub use results::ResultFile;
pub use run::{LoadedRun, RunFilter, RunStatus, RunSummary};

/// A future a [`RunWriter`] returns. It owns what it needs, so a scheduler can keep it
/// across passes and poll it while it does other work.
pub type JournalFuture = Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send + 'static>>;

/// How much a recorded task completion survives before it counts as done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// A crash of the process: records are handed over at once, one write (or one
    /// insert) per batch. A power loss may lose the last ones.
    #[default]
    Process,
    /// A power loss too (and, for PostgreSQL, a crash of the server): records are also
    /// synced to stable storage. Syncs are grouped: the file journal syncs once for every
    /// 64 records waiting, or when the first of them has waited 2 ms, whichever comes
    /// first; PostgreSQL flushes its log once per sync, for every append before it.
    Power,
}

/// A store of runs: opens a run for writing, loads one, lists them.
#[async_trait]
pub trait Journal: Send + Sync + fmt::Debug {
    /// Opens run `run` of `workflow` for writing: a new run if the journal has none of
    /// that id, or else the run it has, which `workflow` continues.
    ///
    /// For a run that exists, [`OpenRun::previous`] is its records as
    /// [`LoadedRun::to_result`] gives them; the same refusals apply (another workflow, or
    /// a completed task that changed). A run that had ended is unfinished again once
    /// opened ([`RunStatus::Unfinished`], with no end time), until its writer records an
    /// end. A run can be open through one journal only once at a time; dropping its
    /// writer closes it.
    ///
    /// When `workflow` changed since the run was recorded, the run takes its definition
    /// with the writer's first records (or its end), in the same write, taken whole or
    /// not at all (a file write cut short by a kill or a power loss is read as not
    /// made): a run stopped before then keeps the definition it had, and opening it again reports the same
    /// [`OpenRun::changes`]. So a scheduler that resets the outcomes a change undoes in
    /// its first commit never leaves an old outcome standing under the new definition.
    async fn open(&self, run: &RunId, workflow: &Workflow) -> Result<OpenRun, JournalError>;

    /// Reads run `run`; `None` when the journal has no such run, and
    /// [`JournalError::HeadMissing`] when a run was being started there and its first
    /// record never made it whole (opening the run then starts it anew).
    async fn load(&self, run: &RunId) -> Result<Option<LoadedRun>, JournalError>;

    /// The runs that `filter` accepts, oldest first.
    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, JournalError>;
}

/// Records the tasks of one open run. Dropping it closes the run.
pub trait RunWriter: Send + Sync + fmt::Debug {
    /// Records a batch of finished tasks. The records are serialised before this
    /// returns; the future resolves once they survive a crash of the process.
    ///
    /// A record of a task the run's workflow (the one it was last opened with) does not
    /// have, nor a map instance (`task[i]`) of one, is refused with
    /// [`JournalError::InvalidRecord`], and nothing of the batch is recorded: the run
    /// could not be read back with it. An empty batch records nothing, not even the
    /// workflow's changed definition, which goes in with the first records after it.
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture;

    /// Resolves once everything appended before the call survives a power loss.
    fn sync(&self) -> JournalFuture;

    /// Records that the run ended with `status`, and closes it to further records: a
    /// later `append` or `finish` is refused with [`JournalError::Finished`] (unless this
    /// one failed, when the run stays open).
    fn finish(&self, status: WorkflowStatus) -> JournalFuture;

    /// Appends `records`, then, for [`Durability::Power`], syncs: once this resolves
    /// the records survive what `durability` names.
    fn commit(&self, records: &[(&TaskId, &TaskRecord)], durability: Durability) -> JournalFuture {
        let append = self.append(records);
        match durability {
            Durability::Process => append,
            Durability::Power => {
                let sync = self.sync();
                Box::pin(async move {
                    append.await?;
                    sync.await
                })
            }
        }
    }
}

/// A run opened for writing: its writer, and what it recorded before, if anything.
#[derive(Debug)]
#[non_exhaustive]
pub struct OpenRun {
    /// What the run recorded before this opening, as the previous result to resume
    /// from; `None` for a new run.
    pub previous: Option<WorkflowResult>,
    /// How `workflow` differs from what the run was recorded with (empty for a new run).
    pub changes: WorkflowChanges,
    /// Where the run's records go.
    pub writer: Box<dyn RunWriter>,
}
