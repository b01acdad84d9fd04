//! [`JournalError`]: everything that can go wrong writing or reading a journal.

use std::io;
use std::path::PathBuf;

use orch_core::{RunId, TaskId};

use crate::WorkflowChanges;

/// A journal could not be written or read, or what it holds cannot be trusted.
///
/// Errors about a journal's content name where it is: the file and line for the file
/// journal, the run and task for PostgreSQL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// A file or directory could not be created, read, written or synced.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done (`create`, `read`, `write`, `sync`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A run's file ends before its first line (the head naming the run and workflow) was
    /// completely written: nothing of the run was recorded.
    #[error("`{}` has no complete head line: the run was never recorded", path.display())]
    HeadMissing {
        /// The file.
        path: PathBuf,
    },
    /// The file where a run's journal would be holds something else (its first line, whole
    /// or cut short, does not begin as a journal's does): it is left as it is.
    #[error("`{}` is not a journal: it does not begin as a run's file does", path.display())]
    NotAJournal {
        /// The file.
        path: PathBuf,
    },
    /// A line of a journal is not what this version writes there.
    #[error("{at}: {reason}")]
    Corrupt {
        /// Where: `file, line N`, or the run and task for PostgreSQL.
        at: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A journal was written by a newer version of orch, in a format this one does not read.
    #[error("{at}: written in journal format {found}; this version reads up to {supported}")]
    NewerFormat {
        /// Where: `file, line N`, or the PostgreSQL schema.
        at: String,
        /// The format version found.
        found: u64,
        /// The newest format this version reads.
        supported: u64,
    },
    /// A journal file holds another run than its name says (it was copied or renamed).
    #[error("{at}: the head names run `{found}`, not `{expected}`")]
    ForeignRun {
        /// The file and line.
        at: String,
        /// The run the file's name asks for.
        expected: RunId,
        /// The run its head names.
        found: String,
    },
    /// A run was recorded for another workflow than the one it is resumed with.
    #[error("{at}: run `{run}` belongs to workflow `{found}`, not `{expected}`")]
    ForeignWorkflow {
        /// Where the run's head is.
        at: String,
        /// The run.
        run: RunId,
        /// The workflow being run now.
        expected: String,
        /// The workflow the run was recorded for.
        found: String,
    },
    /// The workflow changed since the run was recorded, in tasks that had already
    /// completed: their recorded results came from another definition.
    #[error(
        "{at}: cannot resume run `{run}`: tasks that completed in it have changed since ({}){} \
         ({COMPLETED_KEEPS})",
        list(.stale),
        other_changes(.stale, .changes)
    )]
    WorkflowChanged {
        /// Where the definition the run goes by is recorded: its head, or a later line
        /// that recorded the workflow as changed when the run was resumed.
        at: String,
        /// The run.
        run: RunId,
        /// The completed tasks whose definition changed.
        stale: Vec<TaskId>,
        /// Every difference between the recorded and the current definition.
        changes: Box<WorkflowChanges>,
    },
    /// The run is already open for writing through this journal.
    #[error("run `{run}` is already open for writing")]
    AlreadyOpen {
        /// The run.
        run: RunId,
    },
    /// The run is open for writing in another process, or through another journal in
    /// this process (not a clone of this one), which holds its lock (the lock on the
    /// run's file, or the PostgreSQL server's lock on the run).
    #[error(
        "run `{run}` is open for writing by another process or journal ({lock}); wait for it to end"
    )]
    InUse {
        /// The run.
        run: RunId,
        /// Which lock is held, where: "`PATH` is locked", or "which holds its lock on
        /// PostgreSQL USER@HOST:PORT/DATABASE".
        lock: String,
    },
    /// Records, or a second end, were given to a run after its end was recorded.
    #[error("run `{run}` is finished; reopen it to record more")]
    Finished {
        /// The run.
        run: RunId,
    },
    /// A record cannot be written as it is.
    #[error("task `{task}`: cannot record {field}: {reason}")]
    InvalidRecord {
        /// The task whose record it is.
        task: TaskId,
        /// The field at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A result cannot be stored in a results file as it is.
    #[error("`{}`: cannot store the result under key {key:032x}: {reason}", path.display())]
    InvalidResult {
        /// The results file.
        path: PathBuf,
        /// The key the result was to be stored under.
        key: u128,
        /// Why.
        reason: String,
    },
    /// An earlier sync of this run's file failed (or a failed write could not be cut
    /// back): what was written since the last successful sync may be lost, so the
    /// journal refuses to go on. Also for a run whose sync failed as this process opened
    /// it: what it read then may not be on the disk.
    #[error("`{}`: an earlier write or sync failed ({message}); the run's journal can no longer be trusted", path.display())]
    SyncFailed {
        /// The file.
        path: PathBuf,
        /// The error of the failed sync.
        message: String,
    },
    /// The journal did not answer within what was left of a cancelled run's grace
    /// period, or 5 s if that was less (a table locked by another session, a server that
    /// stopped answering), when asked to record the run's end or, before any task ran, to
    /// open the run: the run returned without waiting longer. The end of its record may
    /// be missing (a resume then runs its unrecorded tasks again), or be written later,
    /// once the journal answers: a PostgreSQL journal's connection stays busy with that
    /// statement until then, and what other runs ask of the same journal waits behind it.
    #[error(
        "cannot {action}: no answer within {}s (a cancelled run waits for its journal until \
         its grace period ends, and at least 5 s)",
        waited.as_secs_f64()
    )]
    NoAnswer {
        /// What was being done.
        action: &'static str,
        /// How long the run waited.
        waited: std::time::Duration,
    },
    /// A backend in another crate (see [`backend`](crate::backend)) could not store or
    /// read the journal.
    #[error("{backend}: cannot {action}: {message}")]
    Backend {
        /// The backend (such as `NATS JetStream`).
        backend: &'static str,
        /// What was being done.
        action: String,
        /// The store's or the client's error.
        message: String,
    },
    /// The PostgreSQL server refused or failed a request (the connection's password is
    /// never part of the message).
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL: cannot {action}: {message}")]
    Postgres {
        /// What was being done.
        action: &'static str,
        /// The server's or the client's error.
        message: String,
    },
}

/// What a resume needs of a task that completed, said when one changed.
const COMPLETED_KEEPS: &str = "a resume needs each task that completed to keep its type, \
                               configuration, dependencies, trigger rule and map: its result \
                               came from them";

/// `; all changes: ...`, unless the changed tasks that completed are all there is.
fn other_changes(stale: &[TaskId], changes: &WorkflowChanges) -> String {
    let only_stale = changes.added.is_empty() && changes.removed.is_empty();
    match only_stale && changes.changed == stale {
        true => String::new(),
        false => format!("; all changes: {changes}"),
    }
}

fn list(ids: &[TaskId]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl JournalError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
