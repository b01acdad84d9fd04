//! An open run file ([`RunFile`]) and the group commit that syncs it ([`Syncer`]).
//!
//! Appends write at once, under the file's lock, so lines keep their sequence order. A
//! sync request registers what it waits for; one thread per journal runs `fdatasync` for
//! every file with waiters once 64 records wait or the first request has waited 2 ms,
//! then wakes every waiter that sync covered.

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::JournalError;

mod failed;

#[cfg(test)]
pub(crate) use failed::SyncFailure;
use failed::{FAILED_SYNCS, Made, sync_data};
pub(crate) use failed::{cut_after_failure, sync_opened};

/// Records waiting for a sync that make it start at once.
const GROUP_RECORDS: u64 = 64;
/// How long the first sync request waits for others to join it.
const GROUP_WAIT: Duration = Duration::from_millis(2);

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One run's file, open for appending.
#[derive(Debug)]
pub(crate) struct RunFile {
    pub(crate) path: PathBuf,
    file: File,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    /// Bytes of complete lines in the file, and of those known to be on stable storage.
    len: u64,
    synced_len: u64,
    /// Lines written, and lines known to be on stable storage.
    written: u64,
    synced: u64,
    /// The most lines any waiter needs synced.
    wanted: u64,
    /// When the oldest request not yet covered by a sync (or started sync) was made.
    requested_at: Option<Instant>,
    /// The same, for requests made while a sync runs.
    next_requested_at: Option<Instant>,
    syncing: bool,
    queued: bool,
    wakers: Vec<Waker>,
    failed: Option<String>,
    finished: bool,
    #[cfg_attr(not(test), allow(dead_code))]
    syncs: u64,
    /// The directory, for a new file whose creation is not synced yet.
    unsynced_dir: Option<PathBuf>,
}

impl RunFile {
    pub(crate) fn new(path: PathBuf, file: File, len: u64, next_seq: u64) -> Self {
        Self {
            path,
            file,
            state: Mutex::new(State {
                next_seq,
                len,
                synced_len: len,
                written: 0,
                synced: 0,
                wanted: 0,
                requested_at: None,
                next_requested_at: None,
                syncing: false,
                queued: false,
                wakers: Vec::new(),
                failed: None,
                finished: false,
                syncs: 0,
                unsynced_dir: None,
            }),
        }
    }

    /// Lets other processes open the run: its writer is gone, though this file may still
    /// wait in the sync thread's queue.
    pub(crate) fn unlock(&self) {
        // Closing the file would unlock it too; an error here leaves that to do it.
        let _ = self.file.unlock();
    }

    /// Makes the first sync also sync directory `dir`, where the file was just created
    /// (so none of it is on stable storage yet).
    pub(crate) fn sync_directory_first(self, dir: PathBuf) -> Self {
        let mut state = lock(&self.state);
        state.unsynced_dir = Some(dir);
        state.synced_len = 0;
        drop(state);
        self
    }

    /// Writes the lines `build` puts in a buffer (given the first sequence number; it
    /// returns how many lines it wrote), in one write. With `finish`, the run takes no
    /// lines after these.
    pub(crate) fn append(
        &self,
        run: &orch_core::RunId,
        finish: bool,
        build: impl FnOnce(&mut Vec<u8>, u64) -> Result<u64, JournalError>,
    ) -> Result<(), JournalError> {
        let mut state = lock(&self.state);
        if let Some(message) = &state.failed {
            return Err(self.sync_failed(message));
        }
        if state.finished {
            return Err(JournalError::Finished { run: run.clone() });
        }
        let mut buf = Vec::new();
        let lines = build(&mut buf, state.next_seq)?;
        if lines == 0 {
            return Ok(());
        }
        if let Err(e) = (&self.file).write_all(&buf) {
            // Cut off what part of the batch made it, so the next write starts a line.
            if let Err(cut) = self.file.set_len(state.len) {
                state.failed = Some(format!(
                    "a write failed ({e}) and cutting the file back after it failed too ({cut})"
                ));
                // Waiters for a sync hear it now: the file gets none any more.
                state.wakers.drain(..).for_each(Waker::wake);
            }
            return Err(JournalError::io("write", &self.path, e));
        }
        state.len += buf.len() as u64;
        state.next_seq += lines;
        state.written += lines;
        state.finished = finish;
        Ok(())
    }

    /// Whether a sync is wanted and enough records wait to start it at once.
    fn group_full(&self) -> bool {
        let state = lock(&self.state);
        state.wanted > state.synced && state.written - state.synced >= GROUP_RECORDS
    }

    fn sync_failed(&self, message: &str) -> JournalError {
        JournalError::SyncFailed {
            path: self.path.clone(),
            message: message.to_owned(),
        }
    }

    /// Runs one `fdatasync` covering every line written so far, and wakes the waiters.
    fn sync_now(&self) {
        let (target, target_len, dir) = {
            let mut state = lock(&self.state);
            state.syncing = true;
            (state.written, state.len, state.unsynced_dir.take())
        };
        let mut result = sync_data(&self.file, &self.path);
        if let (Ok(()), Some(dir)) = (&result, &dir) {
            result = sync_directory(dir).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("syncing directory `{}`: {e}", dir.display()),
                )
            });
        }
        let mut state = lock(&self.state);
        state.syncing = false;
        state.syncs += 1;
        match result {
            Ok(()) => {
                state.synced = state.synced.max(target);
                state.synced_len = state.synced_len.max(target_len);
            }
            // After a failed fdatasync the kernel may have dropped the unsynced pages:
            // retrying could report success for data that is gone.
            Err(e) => {
                state.failed = Some(e.to_string());
                if let Ok(meta) = self.file.metadata()
                    && let Some(id) = crate::file::file_id(&meta)
                {
                    let failure = (Made::of(&meta), state.synced_len, state.len);
                    lock(&FAILED_SYNCS).insert(id, failure);
                }
            }
        }
        state.requested_at = if state.wanted > state.synced {
            state.next_requested_at.or(Some(Instant::now()))
        } else {
            None
        };
        state.next_requested_at = None;
        for waker in state.wakers.drain(..) {
            waker.wake();
        }
    }

    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        lock(&self.state).syncs
    }
}

/// The thread that syncs a journal's files, and its queue of files with waiters.
#[derive(Debug, Default)]
pub(crate) struct Syncer {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    files: Vec<Arc<RunFile>>,
    running: bool,
    shutdown: bool,
}

impl Syncer {
    /// A future that resolves once every line written to `file` so far is synced.
    pub(crate) fn wait(self: &Arc<Self>, file: &Arc<RunFile>) -> SyncWait {
        let target = lock(&file.state).written;
        SyncWait {
            syncer: Arc::clone(self),
            file: Arc::clone(file),
            target,
            requested: false,
        }
    }

    /// Tells the thread to sync early, when a file's waiting records fill a group.
    pub(crate) fn nudge(&self, file: &RunFile) {
        if file.group_full() {
            self.wake.notify_one();
        }
    }

    /// Lets the thread end once it has no more work.
    pub(crate) fn shut_down(&self) {
        lock(&self.queue).shutdown = true;
        self.wake.notify_one();
    }

    fn enqueue(self: &Arc<Self>, file: Arc<RunFile>) {
        let mut queue = lock(&self.queue);
        queue.files.push(file);
        if !queue.running {
            let syncer = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("orch-journal-sync".to_owned())
                .spawn(move || syncer.run());
            match spawned {
                Ok(_) => queue.running = true,
                Err(e) => {
                    for file in queue.files.drain(..) {
                        let mut state = lock(&file.state);
                        state.failed = Some(format!("cannot start the sync thread: {e}"));
                        state.wakers.drain(..).for_each(Waker::wake);
                    }
                }
            }
        }
        drop(queue);
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut queue = lock(&self.queue);
        loop {
            if queue.files.is_empty() {
                if queue.shutdown {
                    queue.running = false;
                    return;
                }
                queue = self
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let now = Instant::now();
            let mut due = Vec::new();
            let mut next: Option<Instant> = None;
            queue.files.retain(|file| {
                let mut state = lock(&file.state);
                if state.wanted <= state.synced || state.failed.is_some() {
                    state.queued = false;
                    state.wakers.drain(..).for_each(Waker::wake);
                    return false;
                }
                let deadline = state.requested_at.unwrap_or(now) + GROUP_WAIT;
                if state.written - state.synced >= GROUP_RECORDS || deadline <= now {
                    state.queued = false;
                    due.push(Arc::clone(file));
                    false
                } else {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                    true
                }
            });
            if due.is_empty() {
                if let Some(next) = next {
                    let wait = next.saturating_duration_since(now);
                    queue = self
                        .wake
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                continue;
            }
            drop(queue);
            for file in &due {
                file.sync_now();
            }
            queue = lock(&self.queue);
            for file in due {
                let mut state = lock(&file.state);
                if state.wanted > state.synced && state.failed.is_none() && !state.queued {
                    state.queued = true;
                    drop(state);
                    queue.files.push(file);
                }
            }
        }
    }
}

/// Resolves once the lines written to a file before it was made are synced.
pub(crate) struct SyncWait {
    syncer: Arc<Syncer>,
    file: Arc<RunFile>,
    target: u64,
    requested: bool,
}

impl Future for SyncWait {
    type Output = Result<(), JournalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.file.state);
        // Lines synced before the file failed stay synced.
        if state.synced >= self.target {
            return Poll::Ready(Ok(()));
        }
        if let Some(message) = &state.failed {
            return Poll::Ready(Err(self.file.sync_failed(message)));
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        if self.requested {
            return Poll::Pending;
        }
        let target = self.target;
        state.wanted = state.wanted.max(target);
        let now = Instant::now();
        if state.syncing {
            state.next_requested_at.get_or_insert(now);
        } else {
            state.requested_at.get_or_insert(now);
        }
        let enqueue = !state.queued;
        state.queued = true;
        drop(state);
        self.requested = true;
        if enqueue {
            self.syncer.enqueue(Arc::clone(&self.file));
        } else {
            self.syncer.nudge(&self.file);
        }
        Poll::Pending
    }
}

/// Makes the entries of directory `dir` durable (its new files and subdirectories); a
/// directory cannot be opened for that outside Unix, where this does nothing.
pub(crate) fn sync_directory(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// Files whose `fdatasync` fails (as a disk's I/O error makes it), for tests.
    pub(crate) static FAILING_SYNCS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// Lets the syncs of the file at `path` succeed again (those of other tests' files,
    /// which run at the same time, still fail).
    pub(crate) fn syncs_succeed_again(path: &std::path::Path) {
        lock(&FAILING_SYNCS).retain(|failing| failing != path);
    }

    /// Takes the failed sync of file `id` out of the table (no open of another file
    /// given its number can use it up meanwhile), to be put back with
    /// [`put_sync_failure`].
    pub(crate) fn take_sync_failure(id: (u64, u64)) -> SyncFailure {
        lock(&FAILED_SYNCS)
            .remove(&id)
            .expect("a sync of the file failed")
    }

    /// Files `failure` as the failed sync of file `id`.
    pub(crate) fn put_sync_failure(id: (u64, u64), failure: SyncFailure) {
        lock(&FAILED_SYNCS).insert(id, failure);
    }

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn file_with_lines(dir: &std::path::Path, lines: u64) -> Arc<RunFile> {
        let path = dir.join("f");
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let run = RunFile::new(path, file, 0, 0);
        let run_id = orch_core::RunId::parse("r").unwrap();
        run.append(&run_id, false, |buf, _| {
            buf.extend(std::iter::repeat_n(b"{}\n".as_slice(), lines as usize).flatten());
            Ok(lines)
        })
        .unwrap();
        Arc::new(run)
    }

    fn wait_ready(wait: &mut SyncWait, cx: &mut Context<'_>) {
        while Pin::new(&mut *wait).poll(cx).is_pending() {
            std::thread::yield_now();
        }
    }

    #[test]
    fn many_waiters_share_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Arc::new(Syncer::default());
        let file = file_with_lines(dir.path(), 10);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut waits: Vec<SyncWait> = (0..20).map(|_| syncer.wait(&file)).collect();
        for wait in &mut waits {
            assert!(Pin::new(wait).poll(&mut cx).is_pending());
        }
        for wait in &mut waits {
            wait_ready(wait, &mut cx);
        }
        assert_eq!(file.syncs(), 1);
        // Nothing new written: a further sync request is ready at once.
        assert!(Pin::new(&mut syncer.wait(&file)).poll(&mut cx).is_ready());
        assert_eq!(file.syncs(), 1);
        syncer.shut_down();
    }

    #[test]
    fn a_failed_directory_sync_is_reported_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let gone = dir.path().join("gone");
        let file = RunFile::new(path, file, 0, 0).sync_directory_first(gone.clone());
        file.sync_now();
        let run_id = orch_core::RunId::parse("r").unwrap();
        let err = file.append(&run_id, false, |_, _| Ok(1)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("syncing directory `{}`", gone.display())),
            "{text}"
        );
    }

    /// A write that fails, and cannot be cut back, fails the file for good: a waiter for
    /// a sync hears it at once (no sync will come).
    #[test]
    fn a_waiter_hears_of_a_write_that_failed_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        File::create(&path).unwrap();
        // Open for reading only: the write fails, and so does cutting the file back.
        let read_only = File::open(&path).unwrap();
        let file = Arc::new(RunFile::new(path, read_only, 0, 0));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut wait = SyncWait {
            syncer: Arc::new(Syncer::default()),
            file: Arc::clone(&file),
            target: 1,
            requested: true,
        };
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        let run_id = orch_core::RunId::parse("r").unwrap();
        let append = |buf: &mut Vec<u8>, _| {
            buf.extend_from_slice(b"{}\n");
            Ok(1)
        };
        assert!(file.append(&run_id, false, append).is_err());
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the waiter was woken");
        let heard = Pin::new(&mut wait).poll(&mut cx);
        let Poll::Ready(Err(error)) = heard else {
            panic!("the waiter hears the failure");
        };
        assert!(error.to_string().contains("a write failed"), "{error}");
    }

    /// Lines synced before the file failed stay synced: their waiter is told so, not of
    /// the later failure.
    #[test]
    fn a_waiter_whose_lines_were_synced_before_a_failure_hears_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Arc::new(Syncer::default());
        let file = file_with_lines(dir.path(), 2);
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = syncer.wait(&file);
        let mut second = syncer.wait(&file);
        wait_ready(&mut second, &mut cx);
        lock(&file.state).failed = Some("disk gone".to_owned());
        assert!(matches!(
            Pin::new(&mut first).poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
        syncer.shut_down();
    }

    #[test]
    fn a_sync_failure_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_with_lines(dir.path(), 1);
        lock(&file.state).failed = Some("disk gone".to_owned());
        let run_id = orch_core::RunId::parse("r").unwrap();
        let err = file.append(&run_id, false, |_, _| Ok(1)).unwrap_err();
        assert!(matches!(err, JournalError::SyncFailed { .. }), "{err}");
    }
}
