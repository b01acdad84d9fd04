//! [`Appender`]: the file a [`ResultFile`](super::ResultFile) appends to, under a shared
//! lock, and rewrites with the results it keeps, under an exclusive one.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

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

impl Appender {
    /// Appends `line` under a shared lock on the file at `path`.
    pub(super) fn append(&mut self, path: &Path, line: &[u8]) -> Result<(), JournalError> {
        self.lock_current(path, File::lock_shared)?;
        let written = self.file.write_all(line);
        // Closing the file would also release the lock; unlocking an open file does not
        // fail.
        let _ = self.file.unlock();
        written.map_err(|e| JournalError::io("append to", path, e))?;
        self.lines += 1;
        Ok(())
    }

    /// Takes a lock (`how`) on the file at `path`, first opening it again if another
    /// store replaced it (or someone removed it) since this one opened it.
    fn lock_current(
        &mut self,
        path: &Path,
        how: fn(&File) -> std::io::Result<()>,
    ) -> Result<(), JournalError> {
        loop {
            how(&self.file).map_err(|e| JournalError::io("lock", path, e))?;
            match same_file(&self.file, path) {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    self.file = open_for_append(path)?;
                    // What the file holds is counted when this store rewrites it.
                    self.lines = 0;
                }
                Err(e) => {
                    let _ = self.file.unlock();
                    return Err(JournalError::io("lock", path, e));
                }
            }
        }
    }

    /// Writes the `capacity` results stored last in the file at `path` to a new file
    /// and renames it over the old one, under an exclusive lock; the results written.
    pub(super) fn rewrite(&mut self, path: &Path, capacity: usize) -> Result<Kept, JournalError> {
        self.lock_current(path, File::lock)?;
        let mut new_path = path.as_os_str().to_owned();
        new_path.push(".new");
        let new_path = PathBuf::from(new_path);
        let rewritten = write_kept(path, &new_path, capacity);
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
                let _ = self.file.unlock();
                Err(error)
            }
        }
    }
}

/// Reads the `capacity` results stored last in the file at `path`, writes them (the
/// oldest first) to `new_path` and renames it over `path`; the renamed file opened to
/// append to, and the results.
fn write_kept(path: &Path, new_path: &Path, capacity: usize) -> Result<(File, Kept), JournalError> {
    let reading = File::open(path).map_err(|e| JournalError::io("read", path, e))?;
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

/// Whether `file` is the file at `path` now.
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(now) => Ok((held.dev(), held.ino()) == (now.dev(), now.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `file` is the file at `path` now: assumed, where files have no identity to
/// compare (a rewrite's rename fails there while another store holds the file).
#[cfg(not(unix))]
fn same_file(_file: &File, _path: &Path) -> std::io::Result<bool> {
    Ok(true)
}
