//! [`Appender`]: the file a [`ResultFile`](super::ResultFile) appends to, under a shared
//! lock, and rewrites with the results it keeps, under an exclusive one.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Kept, line_text, read};
use crate::JournalError;

/// The file a store appends to, and when it rewrites it.
#[derive(Debug)]
pub(super) struct Appender {
    pub(super) file: File,
    /// Lines in the file as this store knows it: those read when it was opened or
    /// rewritten, and those appended since.
    pub(super) lines: u64,
    /// The file is rewritten once `lines` passes this.
    pub(super) rewrite_past: u64,
}

/// Opens the file at `path` to append to (and read), creating it readable by its owner.
pub(super) fn open_for_append(path: &Path) -> Result<File, JournalError> {
    crate::file::options()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| JournalError::io("open", path, e))
}

/// How long a store waits for a lock another store holds (while it rewrites the file,
/// or appends) before it gives up: a rewrite takes far less, so a longer wait is a
/// process stopped while holding it.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Which lock a store takes on the file.
#[derive(Clone, Copy)]
enum Lock {
    /// To append: any number of stores at once.
    Shared,
    /// To rewrite: no other store appends or rewrites meanwhile.
    Exclusive,
}

impl Appender {
    /// Appends `line` under a shared lock on the file at `path`.
    pub(super) fn append(&mut self, path: &Path, line: &[u8]) -> Result<(), JournalError> {
        self.lock_current(path, Lock::Shared)?;
        let written = self.file.write_all(line);
        unlock(&self.file);
        written.map_err(|e| JournalError::io("append to", path, e))?;
        self.lines += 1;
        Ok(())
    }

    /// Takes `lock` on the file at `path`, first opening it again if another store
    /// replaced it (or someone removed it) since this one opened it.
    /// Gives up once [`LOCK_WAIT`] has passed, waiting or opening again: other stores
    /// rewriting the file over and over take it from under it only so long, and a file
    /// system that reports another identity for the same file each time, for ever.
    fn lock_current(&mut self, path: &Path, lock: Lock) -> Result<(), JournalError> {
        let gave_up = std::time::Instant::now() + LOCK_WAIT;
        while std::time::Instant::now() < gave_up {
            take(&self.file, path, lock, gave_up)?;
            let same = same_file(&self.file, path).map_err(|e| {
                unlock(&self.file);
                JournalError::io("lock", path, e)
            })?;
            if same {
                return Ok(());
            }
            unlock(&self.file);
            self.file = open_for_append(path)?;
            // What the file holds is counted when this store rewrites it.
            self.lines = 0;
        }
        Err(JournalError::io(
            "lock",
            path,
            std::io::Error::other(format!(
                "the file was replaced each time it was opened, for {} s",
                LOCK_WAIT.as_secs()
            )),
        ))
    }

    /// Writes the `capacity` results stored last in the file at `path` to a new file
    /// and renames it over the old one, under an exclusive lock; the results written.
    /// A symbolic link at `path` is followed: the file it names is rewritten.
    pub(super) fn rewrite(&mut self, path: &Path, capacity: usize) -> Result<Kept, JournalError> {
        self.lock_current(path, Lock::Exclusive)?;
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mut new_path = target.as_os_str().to_owned();
        new_path.push(".new");
        let new_path = PathBuf::from(new_path);
        let rewritten = write_kept(&target, &new_path, capacity);
        match rewritten {
            Ok((file, kept)) => {
                // Dropping the old file releases its lock, for stores waiting on it to
                // find it replaced.
                self.file = file;
                self.lines = kept.len() as u64;
                Ok(kept)
            }
            Err(error) => {
                let _ = std::fs::remove_file(&new_path);
                unlock(&self.file);
                Err(error)
            }
        }
    }
}

/// Takes `lock` on `file` (at `path`), waiting until `gave_up` at most for a store that
/// holds another.
#[cfg(unix)]
fn take(
    file: &File,
    path: &Path,
    lock: Lock,
    gave_up: std::time::Instant,
) -> Result<(), JournalError> {
    let mut pause = Duration::from_millis(1);
    loop {
        let taken = match lock {
            Lock::Shared => file.try_lock_shared(),
            Lock::Exclusive => file.try_lock(),
        };
        match taken {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < gave_up => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::io(
                    "lock",
                    path,
                    std::io::Error::other(format!(
                        "another process held it for more than {} s",
                        LOCK_WAIT.as_secs()
                    )),
                ));
            }
            // A file system without locks: appends go on unlocked, and a rewrite, which
            // needs the lock, fails (see `Appender::rewrite`).
            Err(std::fs::TryLockError::Error(e))
                if e.kind() == std::io::ErrorKind::Unsupported && matches!(lock, Lock::Shared) =>
            {
                return Ok(());
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(JournalError::io("lock", path, e)),
        }
    }
}

/// Where files cannot be told apart by their identity, stores neither lock nor rewrite
/// the file.
#[cfg(not(unix))]
fn take(
    _file: &File,
    _path: &Path,
    _lock: Lock,
    _gave_up: std::time::Instant,
) -> Result<(), JournalError> {
    Ok(())
}

/// Releases the lock a store holds on `file`. Closing it would release it too; unlocking
/// an open file does not fail.
fn unlock(file: &File) {
    #[cfg(unix)]
    let _ = file.unlock();
    #[cfg(not(unix))]
    let _ = file;
}

/// Reads the `capacity` results stored last in the file at `path`, writes them (the
/// oldest first) to `new_path` and renames it over `path`; the renamed file opened to
/// append to, and the results.
fn write_kept(path: &Path, new_path: &Path, capacity: usize) -> Result<(File, Kept), JournalError> {
    let reading = File::open(path).map_err(|e| JournalError::io("read", path, e))?;
    let reading_meta = reading
        .metadata()
        .map_err(|e| JournalError::io("read", path, e))?;
    let read = read(
        path,
        std::io::BufReader::new(reading),
        crate::read::MAX_LINE,
        capacity,
    )?;
    let new = crate::file::options()
        .create(true)
        .write(true)
        .truncate(true)
        .open(new_path)
        .map_err(|e| JournalError::io("create", new_path, e))?;
    // The new file is readable by whom the old one was (a file shared by a group, say):
    // its owner and group, as far as this process may give them (another user's file
    // keeps its group when this process is in that group), and its mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt as _, fchown};
        let (owner, group) = (reading_meta.uid(), reading_meta.gid());
        if fchown(&new, Some(owner), Some(group)).is_err() {
            let _ = fchown(&new, None, Some(group));
        }
    }
    new.set_permissions(reading_meta.permissions())
        .map_err(|e| JournalError::io("create", new_path, e))?;
    let mut writer = std::io::BufWriter::new(&new);
    for (key, result) in read.kept.oldest_first() {
        let mut text = line_text(key, result);
        text.push(b'\n');
        writer
            .write_all(&text)
            .map_err(|e| JournalError::io("write", new_path, e))?;
    }
    writer
        .flush()
        .map_err(|e| JournalError::io("write", new_path, e))?;
    drop(writer);
    // Synced before the rename, so that a power loss leaves the old file or the new one
    // whole.
    new.sync_all()
        .map_err(|e| JournalError::io("sync", new_path, e))?;
    std::fs::rename(new_path, path).map_err(|e| JournalError::io("rename", new_path, e))?;
    Ok((open_for_append(path)?, read.kept))
}

/// Whether `file` is the file at `path` now: assumed where files have no identity to
/// compare (and stores never rewrite the file).
fn same_file(file: &File, path: &Path) -> std::io::Result<bool> {
    let Some(held) = crate::file::file_id(&file.metadata()?) else {
        return Ok(true);
    };
    match std::fs::metadata(path) {
        Ok(now) => Ok(crate::file::file_id(&now) == Some(held)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
