//! [`FileJournal`]: one append-only JSON Lines file per run, in a directory.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use orch_core::{RunId, TaskId, TaskRecord, Workflow, WorkflowStatus};

use crate::claim::{Claim, OpenRuns};
use crate::definition::Definition;
use crate::read::{ReadRun, read_run};
use crate::sync::{RunFile, Syncer};
use crate::{
    Journal, JournalError, JournalFuture, LoadedRun, OpenRun, RunFilter, RunSummary, RunWriter,
    WorkflowChanges, line,
};

/// A journal in a directory: one file per run, `<run id>.jsonl`, one JSON object per line
/// (the format is described in the crate's `line` module and versioned on every line).
///
/// The directory and files it creates are readable and writable by their owner only.
/// A line is written whole or, when the process dies in the middle of it, left torn at
/// the end of the file: reading ignores a torn last line, and reopening the run cuts it
/// off. Any other line that cannot be read, a file whose head names another run, or a
/// line of a newer format is refused with an error naming the file and line.
///
/// One process at a time may write a run; within a process, [`Journal::open`] refuses a
/// run that is already open. [`Journal::list`] reads every run's file: one that cannot be
/// trusted fails the listing with its error. Reading and writing happen on the calling thread (short
/// writes to the operating system); syncs for [`Durability::Power`](crate::Durability)
/// run on a thread of the journal's own.
#[derive(Clone)]
pub struct FileJournal {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    open: OpenRuns,
    syncer: Arc<Syncer>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.syncer.shut_down();
    }
}

impl fmt::Debug for FileJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileJournal")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl FileJournal {
    /// A journal in directory `dir`, created (owner only) with its parents if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, JournalError> {
        let dir = dir.into();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| JournalError::io("create directory", &dir, e))?;
        Ok(Self {
            shared: Arc::new(Shared {
                dir,
                open: OpenRuns::default(),
                syncer: Arc::new(Syncer::default()),
            }),
        })
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The file that holds run `run`.
    pub fn path_of(&self, run: &RunId) -> PathBuf {
        self.shared.dir.join(format!("{run}.jsonl"))
    }

    fn read(&self, run: &RunId) -> Result<Option<ReadRun>, JournalError> {
        let path = self.path_of(run);
        match fs::read(&path) {
            Ok(bytes) => read_run(&path, run, &bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(JournalError::io("read", path, e)),
        }
    }

    /// Writes a new run's file whole under a temporary name and renames it into place,
    /// so a run file always starts with a complete head. Nothing is synced here: a
    /// crash of the process cannot undo the rename, and the run's first sync (for
    /// [`Durability::Power`](crate::Durability)) syncs the file and the directory.
    fn create(&self, run: &RunId, definition: &Definition) -> Result<RunFile, JournalError> {
        let path = self.path_of(run);
        let temp = self.shared.dir.join(format!(".{run}.jsonl.new"));
        let mut head = Vec::new();
        line::write_head(&mut head, run, definition, SystemTime::now())?;
        let mut file = options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(|e| JournalError::io("create", &temp, e))?;
        file.write_all(&head)
            .map_err(|e| JournalError::io("write", &temp, e))?;
        drop(file);
        fs::rename(&temp, &path).map_err(|e| JournalError::io("rename", &temp, e))?;
        let file = options()
            .append(true)
            .open(&path)
            .map_err(|e| JournalError::io("open", &path, e))?;
        let created = RunFile::new(path, file, head.len() as u64, 1);
        Ok(created.sync_directory_first(self.shared.dir.clone()))
    }

    /// Opens an existing run's file for appending, cutting off a torn last line.
    fn reopen(&self, run: &RunId, read: &ReadRun) -> Result<RunFile, JournalError> {
        let path = self.path_of(run);
        let file = options()
            .append(true)
            .open(&path)
            .map_err(|e| JournalError::io("open", &path, e))?;
        file.set_len(read.valid_len)
            .map_err(|e| JournalError::io("truncate", &path, e))?;
        Ok(RunFile::new(path, file, read.valid_len, read.next_seq))
    }

    fn open_now(&self, run: &RunId, workflow: &Workflow) -> Result<OpenRun, JournalError> {
        let claim = self.shared.open.claim(run)?;
        let definition = Definition::of(workflow);
        let existing = match self.read(run) {
            Err(JournalError::HeadMissing { .. }) => None,
            other => other?,
        };
        let (file, previous, changes) = match existing {
            None => (
                self.create(run, &definition)?,
                None,
                WorkflowChanges::default(),
            ),
            Some(read) => {
                let changes = read.run.check(workflow)?;
                let previous = read.run.result_for(workflow);
                let file = self.reopen(run, &read)?;
                if !changes.is_empty() {
                    file.append(run, false, |buf, seq| {
                        line::write_definition(buf, seq, &definition, SystemTime::now())?;
                        Ok(1)
                    })?;
                }
                (file, Some(previous), changes)
            }
        };
        Ok(OpenRun {
            previous,
            changes,
            writer: Box::new(FileRunWriter {
                claim,
                file: Arc::new(file),
                shared: Arc::clone(&self.shared),
            }),
        })
    }

    fn list_now(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, JournalError> {
        let dir = &self.shared.dir;
        let entries = fs::read_dir(dir).map_err(|e| JournalError::io("read directory", dir, e))?;
        let mut runs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| JournalError::io("read directory", dir, e))?;
            let name = entry.file_name();
            let Some(run) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| RunId::parse(n).ok())
            else {
                continue;
            };
            if let Some(read) = self.read(&run)? {
                let summary = read.run.summary();
                if filter.accepts(&summary) {
                    runs.push(summary);
                }
            }
        }
        runs.sort_by(|a, b| (a.created, &a.run_id).cmp(&(b.created, &b.run_id)));
        Ok(runs)
    }
}

/// Open options whose new files are readable and writable by their owner only.
pub(crate) fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

#[async_trait]
impl Journal for FileJournal {
    async fn open(&self, run: &RunId, workflow: &Workflow) -> Result<OpenRun, JournalError> {
        self.open_now(run, workflow)
    }

    async fn load(&self, run: &RunId) -> Result<Option<LoadedRun>, JournalError> {
        Ok(self.read(run)?.map(|read| read.run))
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, JournalError> {
        self.list_now(filter)
    }
}

struct FileRunWriter {
    claim: Claim,
    file: Arc<RunFile>,
    /// Keeps the journal's sync thread for as long as the writer lives.
    shared: Arc<Shared>,
}

impl fmt::Debug for FileRunWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileRunWriter")
            .field("run", self.claim.run())
            .field("path", &self.file.path)
            .finish_non_exhaustive()
    }
}

impl FileRunWriter {
    fn syncer(&self) -> &Arc<Syncer> {
        &self.shared.syncer
    }
}

impl RunWriter for FileRunWriter {
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture {
        let result = self.file.append(self.claim.run(), false, |buf, seq| {
            for (i, (id, record)) in records.iter().enumerate() {
                line::write_task(buf, seq + i as u64, id, record)?;
            }
            Ok(records.len() as u64)
        });
        if result.is_ok() {
            self.syncer().nudge(&self.file);
        }
        Box::pin(std::future::ready(result))
    }

    fn sync(&self) -> JournalFuture {
        Box::pin(self.syncer().wait(&self.file))
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        let result = self.file.append(self.claim.run(), true, |buf, seq| {
            line::write_end(buf, seq, status, SystemTime::now())?;
            Ok(1)
        });
        Box::pin(std::future::ready(result))
    }
}
