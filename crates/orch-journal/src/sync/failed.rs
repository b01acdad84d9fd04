//! What this process knows of run files whose sync failed: cut back, or refused, when
//! their run is opened again.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Mutex;
use std::time::SystemTime;

use super::lock;
use crate::JournalError;

/// Per run file (by [`file_id`](crate::file::file_id): on Unix only) whose sync failed
/// in this process, when it was made and last written (a file made after this one was
/// deleted may be given its id), how many of its bytes were on stable storage then, and
/// how many it had. After a failed `fdatasync` the kernel may keep the lines
/// it could not write as clean pages: a later read shows them, and a later sync (through
/// another handle) reports no error, though a power loss would take them.
pub(super) static FAILED_SYNCS: Mutex<BTreeMap<(u64, u64), SyncFailure>> =
    Mutex::new(BTreeMap::new());

/// When a run file was made and last written, and its lengths synced and written, when
/// its sync failed.
pub(crate) type SyncFailure = (Made, u64, u64);

/// What tells a file from one given its number after it was deleted: its creation time
/// where the system tells it, else the time it was last written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Made {
    pub(crate) created: Option<SystemTime>,
    pub(crate) modified: Option<SystemTime>,
}

impl Made {
    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            created: meta.created().ok(),
            modified: meta.modified().ok(),
        }
    }

    /// Whether `now` may be of the file this was taken from: its creation time where
    /// both are known, else its last write where both are known, is the same.
    fn same_file(&self, now: &Self) -> bool {
        match (self.created, now.created, self.modified, now.modified) {
            (Some(then), Some(now), ..) => then == now,
            (.., Some(then), Some(now)) => then == now,
            _ => true,
        }
    }
}

/// Per run file (by [`file_id`](crate::file::file_id), with its creation time where the
/// system tells it: a file made after this one was deleted may be given its id), the
/// error of a sync that failed when this process opened the run: what it read then,
/// written by another process, may not be on stable storage, and which part is not
/// cannot be told. Later opens in this process refuse the run.
static FAILED_OPENING_SYNCS: Mutex<BTreeMap<(u64, u64), OpeningFailure>> =
    Mutex::new(BTreeMap::new());

/// A run file's creation time, if the system tells it, and the error of its sync.
type OpeningFailure = (Option<SystemTime>, String);

/// Syncs `file`, a run's file at `path` just opened and read, before the run goes on from
/// what it holds; a failure is remembered (see [`FAILED_OPENING_SYNCS`]).
pub(crate) fn sync_opened(file: &File, path: &std::path::Path) -> Result<(), JournalError> {
    sync_data(file, path).map_err(|error| {
        if let Ok(meta) = file.metadata()
            && let Some(id) = crate::file::file_id(&meta)
        {
            let failure = (meta.created().ok(), error.to_string());
            lock(&FAILED_OPENING_SYNCS).insert(id, failure);
        }
        JournalError::io("sync", path, error)
    })
}

/// `fdatasync` of `file`, the run file at `path` (failing, in tests, for the files in
/// `FAILING_SYNCS`, as a disk's I/O error makes it).
pub(super) fn sync_data(file: &File, path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(test)]
    if lock(&super::tests::FAILING_SYNCS)
        .iter()
        .any(|failing| failing == path)
    {
        return Err(std::io::Error::from_raw_os_error(5));
    }
    #[cfg(not(test))]
    let _ = path;
    file.sync_data()
}

/// Cuts `file`, a run's file at `path` just opened and locked, back to what was on stable
/// storage when a sync of it failed in this process, if one did and the file is still
/// as that failure left it (another process may have opened the run since and added
/// lines of its own, or made the file anew): a resume then runs again the tasks whose
/// lines may be lost, rather than act on them. A run whose sync failed as it was opened
/// is refused.
pub(crate) fn cut_after_failure(file: &File, path: &std::path::Path) -> Result<(), JournalError> {
    let opening_failed = lock(&FAILED_OPENING_SYNCS);
    let mut failed = lock(&FAILED_SYNCS);
    if failed.is_empty() && opening_failed.is_empty() {
        return Ok(());
    }
    let meta = (file.metadata()).map_err(|e| JournalError::io("read", path, e))?;
    let Some(key) = crate::file::file_id(&meta) else {
        return Ok(());
    };
    let now = Made::of(&meta);
    // The same file, unless both creation times are known and differ (not its last
    // write: other processes may have written to it since).
    let made_then = |created: &Option<SystemTime>| match (created, now.created) {
        (Some(then), Some(now)) => *then == now,
        _ => true,
    };
    if let Some((_, message)) = (opening_failed.get(&key)).filter(|(made, _)| made_then(made)) {
        return Err(JournalError::SyncFailed {
            path: path.to_owned(),
            message: format!("syncing it when the run was opened: {message}"),
        });
    }
    let Some(&(made, synced, len)) = failed.get(&key) else {
        return Ok(());
    };
    // The file as the failure left it (a file written since is longer, or made anew).
    if made.same_file(&now) && meta.len() == len && synced < len {
        file.set_len(synced)
            .map_err(|e| JournalError::io("truncate", path, e))?;
    }
    failed.remove(&key);
    Ok(())
}
