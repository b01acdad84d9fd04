//! [`FileJournal`]: one append-only JSON Lines file per run, in a directory.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use orch_core::{RunId, TaskId, TaskRecord, Workflow, WorkflowStatus};

use crate::claim::{Claim, OpenRuns};
use crate::definition::Definition;
use crate::read::{ReadRun, read_lines};
use crate::sync::{RunFile, Syncer, sync_directory};
use crate::{
    Journal, JournalError, JournalFuture, LoadedRun, OpenRun, RunFilter, RunSummary, RunWriter,
    WorkflowChanges, line,
};

/// A journal in a directory: one file per run, `<run id>.jsonl`, one JSON object per line
/// (the format is described in the crate's `line` module and versioned on every line).
/// Control characters in a record, DEL and the C1 range included, are written as JSON
/// escapes (`\u009b`), so a terminal showing a file (`tail -f`) runs no escape sequence
/// a task's output held.
///
/// The directory and files it creates are readable and writable by their owner only.
/// A line is written whole or, when the process dies in the middle of it, left torn at the
/// end of the file: reading ignores a torn last line, and reopening the run cuts it off. A
/// sector (512 bytes) or more of zeros after the first line, or zeros from a line's start
/// to a sector's end (a write the file system lost in a power cut, when later ones reached
/// the disk: whole blocks, or the rest of one whose rewrite was lost) ends the run's
/// journal in the same way: it is read up to the line they fall in, and reopening cuts
/// the file there, with the lines after them, whose tasks then run again. Zeros at the
/// file's very start followed by anything else, or within its first line (a block of the
/// head lost that way, later ones kept), leave no run to go on with: the file is
/// refused as [`JournalError::Corrupt`] at line 1, saying the head was lost (zeros alone
/// are a run never recorded, as a torn head is). Any other line that cannot be read (or
/// is 1 GiB or longer), a file whose head names another run, or a line of a newer format
/// is refused with an error naming the file and line. A file is read a line at a time,
/// never whole. A record whose line would be that long (a task's output of about 1 GiB)
/// is refused when written, with [`JournalError::InvalidRecord`].
///
/// One process at a time may write a run: [`Journal::open`] refuses a run that is already
/// open, through this journal or its clones ([`JournalError::AlreadyOpen`]) or in another
/// process ([`JournalError::InUse`]; the run's file is locked while it is open, and the
/// lock ends with the process however it ends). On a file system that does not support
/// locks only opens through this journal and its clones are refused; on one
/// that locks for this machine only (NFS mounted with `nolock`) other machines are not
/// kept out: keep a journal there to one process. One whose locks fail (NFS without its
/// lock service) makes every open fail with an error naming the file.
/// [`Journal::list`] reads every run's file: one that cannot be trusted fails the listing
/// with its error. A run whose first line is not yet written is left out, and so is a
/// file of a run's name whose first line is not a journal's head at all. Reading
/// and writing happen on the calling thread (short writes to the operating system);
/// syncs for [`Durability::Power`](crate::Durability) run on a thread of the journal's
/// own. Opening a run that exists syncs its file first (one `fdatasync` per resume), so
/// that a resume never acts on lines that its dead writer had not synced yet. A sync that
/// fails (an I/O error) fails the run for good; the lines it did not write may still read
/// back (the system may keep them in its cache, and report the error only once), so the
/// next open of that run in the same process (on Unix) first cuts its file back to what
/// was synced (if the file is as the failure left it), and their tasks run again. If
/// the sync made as a run is opened fails, which of the lines read are on the disk
/// cannot be told: that open fails, and later opens of the run in the same process fail
/// with [`JournalError::SyncFailed`]. A process started after one whose sync failed
/// cannot know of the failure.
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
    /// A journal in directory `dir`, created (owner only) with its parents if missing; each
    /// directory it creates is synced into its parent, so that it outlasts a power loss
    /// with the runs synced in it.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, JournalError> {
        let dir = dir.into();
        let missing: Vec<PathBuf> = (dir.ancestors())
            .take_while(|level| !level.as_os_str().is_empty() && !level.exists())
            .map(Path::to_path_buf)
            .collect();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| JournalError::io("create directory", &dir, e))?;
        for created in &missing {
            let parent = created.parent().filter(|p| !p.as_os_str().is_empty());
            let parent = parent.unwrap_or(Path::new("."));
            sync_directory(parent).map_err(|e| JournalError::io("sync directory", parent, e))?;
        }
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

    /// The file of `run`, refused if something other than a regular file is there:
    /// opening a pipe would wait for the other end, and a device may never end.
    fn run_path(&self, run: &RunId, doing: &'static str) -> Result<PathBuf, JournalError> {
        let path = self.path_of(run);
        if fs::metadata(&path).is_ok_and(|meta| !meta.is_file()) {
            return Err(not_a_regular_file(doing, path));
        }
        Ok(path)
    }

    fn read(&self, run: &RunId) -> Result<Option<ReadRun>, JournalError> {
        let path = self.run_path(run, "read")?;
        match File::open(&path) {
            Ok(file) => read_lines(&path, run, io::BufReader::new(file), true).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(JournalError::io("read", path, e)),
        }
    }

    /// Opens (creating it if needed) the file of `run` for appending, locked for writing
    /// by this process until the returned file is closed: the lock is the operating
    /// system's, so it ends when the process does, however it ends.
    fn open_locked(&self, run: &RunId) -> Result<File, JournalError> {
        let path = self.run_path(run, "open")?;
        let file = options()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| JournalError::io("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(TryLockError::WouldBlock) => Err(JournalError::InUse {
                run: run.clone(),
                lock: format!("`{}` is locked", path.display()),
            }),
            // A file system without locks: nothing to hold.
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => Ok(file),
            Err(TryLockError::Error(e)) => Err(JournalError::io("lock", &path, e)),
        }
    }

    /// Starts a new run's file with its head, in `file` (locked, and empty or holding
    /// only a torn head left by a process that died while starting the run).
    fn start(
        &self,
        run: &RunId,
        file: File,
        definition: &Definition,
    ) -> Result<RunFile, JournalError> {
        let path = self.path_of(run);
        let mut head = Vec::new();
        line::write_head(&mut head, run, definition, SystemTime::now())?;
        file.set_len(0)
            .map_err(|e| JournalError::io("truncate", &path, e))?;
        (&file)
            .write_all(&head)
            .map_err(|e| JournalError::io("write", &path, e))?;
        let started = RunFile::new(path, file, head.len() as u64, 1);
        Ok(started.sync_directory_first(self.shared.dir.clone()))
    }

    fn open_now(&self, run: &RunId, workflow: &Workflow) -> Result<OpenRun, JournalError> {
        let claim = self.shared.open.claim(run)?;
        let definition = Definition::of(workflow);
        // Locked before it is read, so that what is read is what this process goes on.
        let locked = self.open_locked(run)?;
        crate::sync::cut_after_failure(&locked, &self.path_of(run))?;
        let existing = match self.read(run) {
            Err(JournalError::HeadMissing { .. }) => None,
            other => other?,
        };
        let (file, previous, changes) = match existing {
            None => (
                self.start(run, locked, &definition)?,
                None,
                WorkflowChanges::default(),
            ),
            Some(read) => {
                let changes = read.run.check(workflow)?;
                let previous = read.run.result_for(workflow);
                // Cuts off a torn last line.
                let path = self.path_of(run);
                // Only when there is something to cut: a cut of nothing still marks the
                // file written, which tells it from the file a failed sync left (where
                // the system tells no creation time, see `sync::cut_after_failure`).
                let file_len = locked.metadata().map(|m| m.len());
                if file_len.map_err(|e| JournalError::io("read", &path, e))? != read.valid_len {
                    locked
                        .set_len(read.valid_len)
                        .map_err(|e| JournalError::io("truncate", &path, e))?;
                }
                let (mut len, mut next_seq) = (read.valid_len, read.next_seq);
                // It goes on: no longer ended (see `Journal::open`).
                if let Some(reopened) = crate::backend::reopening(next_seq, &read.run)? {
                    (&locked)
                        .write_all(&reopened)
                        .map_err(|e| JournalError::io("write", &path, e))?;
                    len += reopened.len() as u64;
                    next_seq += 1;
                }
                // What the resume goes on from, on stable storage before anything runs
                // on it: the process that wrote it may have died before its sync, with
                // the lines only in the system's cache, which a power loss would take
                // after this run's tasks had acted on them.
                crate::sync::sync_opened(&locked, &path)?;
                crate::sync::sync_directory(&self.shared.dir)
                    .map_err(|e| JournalError::io("sync", &self.shared.dir, e))?;
                let file = RunFile::new(path, locked, len, next_seq);
                (file, Some(previous), changes)
            }
        };
        // A changed definition goes in with the run's next lines (see `RunWriter`).
        let redefined = !changes.is_empty();
        Ok(OpenRun {
            previous,
            changes,
            writer: Box::new(FileRunWriter {
                claim,
                file: Arc::new(file),
                definition,
                redefined: std::sync::Mutex::new(redefined),
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
            let read = match self.read(&run) {
                // A run whose first line is still being written, or never was; or a file
                // of something else that happens to have a run's file name.
                Err(JournalError::HeadMissing { .. } | JournalError::NotAJournal { .. }) => None,
                other => other?,
            };
            if let Some(read) = read {
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

/// The error for `path`, which is not a regular file (a pipe, a device, a directory):
/// refused before it is read, since reading it may wait or go on for ever.
pub(crate) fn not_a_regular_file(doing: &'static str, path: PathBuf) -> JournalError {
    let error = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
    JournalError::io(doing, path, error)
}

/// Open options whose new files are readable and writable by their owner only.
/// What tells a file apart from every other on the machine, where the system says:
/// its device and inode on Unix; `None` elsewhere.
pub(crate) fn file_id(meta: &fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

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
    /// The definition of the workflow the run goes on with: records of other tasks are
    /// refused.
    definition: Definition,
    /// Whether that definition changed since the run was recorded and is still to be
    /// written: with the run's next lines, in the same write.
    redefined: std::sync::Mutex<bool>,
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

impl Drop for FileRunWriter {
    fn drop(&mut self) {
        self.file.unlock();
    }
}

impl FileRunWriter {
    fn syncer(&self) -> &Arc<Syncer> {
        &self.shared.syncer
    }

    /// Appends the lines `build` makes (see [`RunFile::append`]), after the workflow's
    /// changed definition if it is not written yet.
    fn append_lines(
        &self,
        finish: bool,
        build: impl FnOnce(&mut Vec<u8>, u64) -> Result<u64, JournalError>,
    ) -> Result<(), JournalError> {
        let mut redefined = crate::sync::lock(&self.redefined);
        let mut lines = 0;
        self.file.append(self.claim.run(), finish, |buf, seq| {
            lines = match *redefined {
                true => line::write_redefined(buf, seq, &self.definition, build)?,
                false => build(buf, seq)?,
            };
            Ok(lines)
        })?;
        // No lines, no definition either: it waits for the next ones.
        *redefined &= lines == 0;
        Ok(())
    }
}

impl RunWriter for FileRunWriter {
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture {
        if let Err(refused) = self.definition.refuse_foreign(records) {
            return Box::pin(std::future::ready(Err(refused)));
        }
        let result = self.append_lines(false, |buf, seq| {
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
        let result = self.append_lines(true, |buf, seq| {
            line::write_end(buf, seq, status, SystemTime::now())?;
            Ok(1)
        });
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use orch_core::{Task, TaskId, TaskRecord, TaskStatus};

    use super::*;
    use crate::Durability;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        runtime.unwrap().block_on(future)
    }

    /// A sync that fails as a run is opened leaves the lines read unvouched for (written
    /// by another process, they may never reach the disk): later opens in this process
    /// refuse the run rather than go on from them.
    #[test]
    fn a_run_whose_sync_failed_as_it_was_opened_is_refused_after() {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
        let run = RunId::parse("r1").unwrap();
        let done = TaskRecord {
            status: TaskStatus::Completed,
            attempts: 1,
            ..TaskRecord::default()
        };
        block_on(async {
            let open = journal.open(&run, &workflow).await.unwrap();
            let a = TaskId::from("a");
            (open
                .writer
                .commit(&[(&a, &done)], Durability::Process)
                .await)
                .unwrap();
            drop(open);
            let path = journal.path_of(&run);
            crate::sync::lock(&crate::sync::tests::FAILING_SYNCS).push(path.clone());
            let failed = journal.open(&run, &workflow).await;
            crate::sync::tests::syncs_succeed_again(&path);
            assert!(matches!(failed, Err(JournalError::Io { .. })));
            // The next sync would report no error, though the lines may still be lost.
            let again = journal.open(&run, &workflow).await;
            assert!(
                matches!(&again, Err(JournalError::SyncFailed { message, .. }) if message.contains("opened")),
                "{:?}",
                again.err()
            );
            // A run begun afresh in a new file is not that file (though the system may
            // give the new file the old one's number).
            fs::remove_file(&path).unwrap();
            let fresh = journal.open(&run, &workflow).await.unwrap();
            assert!(fresh.previous.is_none());
        });
    }

    /// After a failed `fdatasync` the lines it did not write may still read back (the
    /// kernel keeps them as clean pages) though a power loss would take them: this
    /// process's next open of the run cuts them off, so that their tasks run again.
    #[test]
    fn a_run_opened_again_after_a_failed_sync_keeps_only_what_was_synced() {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "t"))
            .task(Task::new("b", "t"));
        let run = RunId::parse("r1").unwrap();
        let done = TaskRecord {
            status: TaskStatus::Completed,
            attempts: 1,
            ..TaskRecord::default()
        };
        let (a, b) = (TaskId::from("a"), TaskId::from("b"));
        block_on(async {
            let open = journal.open(&run, &workflow).await.unwrap();
            open.writer
                .commit(&[(&a, &done)], Durability::Power)
                .await
                .unwrap();
            let path = journal.path_of(&run);
            let synced_len = fs::metadata(&path).unwrap().len();
            crate::sync::lock(&crate::sync::tests::FAILING_SYNCS).push(path.clone());
            let failed = open.writer.commit(&[(&b, &done)], Durability::Power).await;
            assert!(matches!(failed, Err(JournalError::SyncFailed { .. })));
            crate::sync::tests::syncs_succeed_again(&path);
            drop(open);
            // `b`'s line is in the file, as the kernel may still show it.
            assert!(fs::metadata(&path).unwrap().len() > synced_len);

            // Another process that opens the run and writes nothing leaves the file as
            // the failure left it, also where the system tells no creation time (a cut
            // of nothing would mark the file written).
            let id = file_id(&fs::metadata(&path).unwrap()).unwrap();
            let mut failure = crate::sync::tests::take_sync_failure(id);
            failure.0.created = None;
            std::thread::sleep(std::time::Duration::from_millis(20));
            let other = FileJournal::new(dir.path()).unwrap();
            drop(other.open(&run, &workflow).await.unwrap());
            crate::sync::tests::put_sync_failure(id, failure);

            let again = journal.open(&run, &workflow).await.unwrap();
            let previous = again.previous.as_ref().unwrap();
            assert_eq!(previous.task("a").unwrap().status, TaskStatus::Completed);
            assert_eq!(previous.task("b").unwrap().status, TaskStatus::Pending);
            assert_eq!(fs::metadata(&path).unwrap().len(), synced_len);

            // A file changed since the failure (another process opened the run and
            // wrote to it, here the start of a line) is not cut: its lines are its own.
            crate::sync::lock(&crate::sync::tests::FAILING_SYNCS).push(path.clone());
            let failed = again.writer.commit(&[(&b, &done)], Durability::Power).await;
            assert!(matches!(failed, Err(JournalError::SyncFailed { .. })));
            crate::sync::tests::syncs_succeed_again(&path);
            drop(again.writer);
            let mut file = options().append(true).open(&path).unwrap();
            file.write_all(br#"{"v":"#).unwrap();
            let third = journal.open(&run, &workflow).await.unwrap();
            let previous = third.previous.unwrap();
            assert_eq!(previous.task("b").unwrap().status, TaskStatus::Completed);
        });
    }

    /// A run file made anew after the one whose sync failed was deleted is not cut, even
    /// when the system gives it the deleted file's number and it has that file's length
    /// (another process ran the run again, with the same lines): its lines are its own.
    #[test]
    fn a_run_file_made_anew_with_a_failed_files_number_is_not_cut() {
        // Where the system tells files' creation times, and where it does not (then
        // their last writes tell them apart).
        for creation_times in [true, false] {
            made_anew_with_a_failed_files_number(creation_times);
        }
    }

    fn made_anew_with_a_failed_files_number(creation_times: bool) {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
        let run = RunId::parse("r1").unwrap();
        let a = TaskId::from("a");
        let done = TaskRecord {
            status: TaskStatus::Completed,
            attempts: 1,
            ..TaskRecord::default()
        };
        let path = journal.path_of(&run);
        let id = |path: &std::path::Path| file_id(&fs::metadata(path).unwrap()).unwrap();
        block_on(async {
            let open = journal.open(&run, &workflow).await.unwrap();
            crate::sync::lock(&crate::sync::tests::FAILING_SYNCS).push(path.clone());
            let failed = open.writer.commit(&[(&a, &done)], Durability::Power).await;
            crate::sync::tests::syncs_succeed_again(&path);
            assert!(matches!(failed, Err(JournalError::SyncFailed { .. })));
            drop(open);
            let mut failure = crate::sync::tests::take_sync_failure(id(&path));
            if !creation_times {
                failure.0.created = None;
            }
            let lines = fs::read(&path).unwrap();
            fs::remove_file(&path).unwrap();
            // Made a little later, so that its creation time differs where it is kept.
            std::thread::sleep(std::time::Duration::from_millis(20));
            fs::write(&path, &lines).unwrap();
            // The system may give the new file the old one's number: here it is made to.
            crate::sync::tests::put_sync_failure(id(&path), failure);
            let again = journal.open(&run, &workflow).await.unwrap();
            let previous = again.previous.unwrap();
            assert_eq!(previous.task("a").unwrap().status, TaskStatus::Completed);
            assert_eq!(fs::read(&path).unwrap(), lines);
        });
    }
}
