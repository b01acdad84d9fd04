//! Building blocks for a journal kept in another store (a message stream, a key-value
//! store): a run's journal as the lines the file journal writes, produced batch by batch
//! and read back, so that another crate's backend records and restores exactly what
//! [`FileJournal`](crate::FileJournal) does.

use std::path::Path;
use std::time::SystemTime;

use orch_core::{RunId, TaskId, TaskRecord, Workflow, WorkflowStatus};

pub use crate::claim::{Claim, OpenRuns};
use crate::definition::Definition;
use crate::read::read_lines;
use crate::{JournalError, LoadedRun, OpenRun, RunWriter, WorkflowChanges, line};

/// The lines of one run's journal, numbered in order: a backend stores each batch this
/// returns (in the order it returns them, each whole or not at all) and hands their
/// concatenation to [`RunLines::read`] to load the run again.
///
/// Each batch numbers its lines on from the one before, as soon as it is made: a batch
/// the backend could not store leaves a gap in the numbers, and a run with a gap reads
/// back as corrupt. After a store that failed, the backend sends that batch again, or
/// fails its writer for good; it does not go on with the next batch.
#[derive(Debug)]
pub struct RunLines {
    next_seq: u64,
    /// The definition of the workflow the run goes on with: records of other tasks are
    /// refused.
    definition: Definition,
    /// Whether [`RunLines::redefine`] changed that definition and no batch carried it yet.
    redefined: bool,
}

impl RunLines {
    /// Starts the journal of a new run `run` of `workflow`: its first batch (the head).
    pub fn start(run: &RunId, workflow: &Workflow) -> Result<(Self, Vec<u8>), JournalError> {
        let mut buf = Vec::new();
        let definition = Definition::of(workflow);
        line::write_head(&mut buf, run, &definition, SystemTime::now())?;
        let lines = Self {
            next_seq: 1,
            definition,
            redefined: false,
        };
        Ok((lines, buf))
    }

    /// Reads back run `run` from `bytes`, every batch stored for it in order; `at` says
    /// where it is kept, for errors. Returns the run and the lines that continue it.
    pub fn read(run: &RunId, at: &str, bytes: &[u8]) -> Result<(LoadedRun, Self), JournalError> {
        let read = read_lines(Path::new(at), run, bytes, false)?;
        let lines = Self {
            next_seq: read.next_seq,
            definition: read.run.definition.clone(),
            redefined: false,
        };
        Ok((read.run, lines))
    }

    /// The batch that marks run `loaded` (as [`RunLines::read`] returned it) as going on
    /// again, when it had ended: store it first when opening a run that was there before,
    /// so that the run reads as unfinished while it goes on; `None` for a run that is
    /// unfinished already. (It records the definition the run has, followed by no lines;
    /// a changed one still goes in with the next batch, see [`RunLines::redefine`].)
    pub fn reopen(&mut self, loaded: &LoadedRun) -> Result<Option<Vec<u8>>, JournalError> {
        let batch = reopening(self.next_seq, loaded)?;
        self.next_seq += u64::from(batch.is_some());
        Ok(batch)
    }

    /// Takes note that the run goes on with `workflow`, changed since: the next batch
    /// records it first, so that a run stopped before that batch keeps its definition
    /// (and reopening it reports the same changes).
    pub fn redefine(&mut self, workflow: &Workflow) {
        self.definition = Definition::of(workflow);
        self.redefined = true;
    }

    /// A batch of the lines `write` makes (given the first sequence number; it returns
    /// how many lines it wrote), after the workflow's changed definition if it is not
    /// recorded yet.
    fn batch(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>, u64) -> Result<u64, JournalError>,
    ) -> Result<Vec<u8>, JournalError> {
        let mut buf = Vec::new();
        let seq = self.next_seq;
        let lines = match self.redefined {
            true => line::write_redefined(&mut buf, seq, &self.definition, write)?,
            false => write(&mut buf, seq)?,
        };
        self.next_seq = seq + lines;
        // No lines, no definition either: it waits for the next ones.
        self.redefined &= lines == 0;
        Ok(buf)
    }

    /// The batch that records `records`; [`JournalError::InvalidRecord`] for a record of
    /// a task the run's workflow does not have (nor a map task it is an instance of).
    pub fn tasks(&mut self, records: &[(&TaskId, &TaskRecord)]) -> Result<Vec<u8>, JournalError> {
        self.definition.refuse_foreign(records)?;
        self.batch(|buf, seq| {
            for (i, (id, record)) in records.iter().enumerate() {
                line::write_task(buf, seq + i as u64, id, record)?;
            }
            Ok(records.len() as u64)
        })
    }

    /// The batch that records the run's end with `status`.
    pub fn end(&mut self, status: WorkflowStatus) -> Result<Vec<u8>, JournalError> {
        self.batch(|buf, seq| {
            line::write_end(buf, seq, status, SystemTime::now())?;
            Ok(1)
        })
    }
}

impl OpenRun {
    /// A run opened by a backend: what it recorded before (`None` for a new run), how
    /// the workflow changed since, and the writer of its records.
    pub fn new(
        previous: Option<orch_core::WorkflowResult>,
        changes: WorkflowChanges,
        writer: Box<dyn RunWriter>,
    ) -> Self {
        Self {
            previous,
            changes,
            writer,
        }
    }
}

/// The line, numbered `seq`, that marks run `loaded` as going on again when it had ended
/// (its own definition, followed by no lines); `None` for a run unfinished already.
pub(crate) fn reopening(seq: u64, loaded: &LoadedRun) -> Result<Option<Vec<u8>>, JournalError> {
    if loaded.status() == crate::RunStatus::Unfinished {
        return Ok(None);
    }
    let mut buf = Vec::new();
    line::write_definition(&mut buf, seq, &loaded.definition, 0)?;
    Ok(Some(buf))
}
