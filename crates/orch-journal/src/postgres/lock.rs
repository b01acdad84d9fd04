//! [`RunLock`]: the server's advisory lock on a run open for writing.

use std::sync::Arc;

use orch_core::RunId;

use super::Shared;
use super::session::Session;
use crate::JournalError;

/// The advisory lock's key of run `$1`.
const KEY: &str = "hashtextextended('orch_journal:' || $1, 0)";

/// How long opening a run waits for another process to let go of it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The server's advisory lock on a run, held by the connection of the process that has
/// the run open for writing: another process cannot open it meanwhile, and a process
/// that dies lets go of it with its connection.
pub(super) struct RunLock {
    session: Arc<Session>,
    run: RunId,
}

impl RunLock {
    pub(super) async fn take(
        shared: &Shared,
        session: &Arc<Session>,
        run: &RunId,
    ) -> Result<Self, JournalError> {
        let error =
            |e: &tokio_postgres::Error| session.run_error(run, "lock a run", e, shared.secret());
        let started = std::time::Instant::now();
        loop {
            // Dropped while the request is out (the open cancelled), the server may grant
            // the lock with no one here to let go of it: the guard lets go of it then.
            let mut asking = Asking {
                session,
                run,
                out: true,
            };
            let row = session
                .client
                .query_one(
                    &format!("SELECT pg_try_advisory_lock({KEY})"),
                    &[&run.as_str()],
                )
                .await;
            asking.out = false;
            let locked: bool = row.and_then(|row| row.try_get(0)).map_err(|e| error(&e))?;
            if locked {
                return Ok(Self {
                    session: Arc::clone(session),
                    run: run.clone(),
                });
            }
            // A process that just let go of it may not have closed its session yet.
            if started.elapsed() >= LOCK_WAIT {
                return Err(JournalError::InUse {
                    run: run.clone(),
                    lock: format!("which holds its lock on PostgreSQL {}", shared.target),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let_go(&self.session, &self.run);
    }
}

/// A request for a run's lock, out while `out`.
struct Asking<'a> {
    session: &'a Arc<Session>,
    run: &'a RunId,
    out: bool,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if self.out {
            // Sent after the request on the same connection, so answered after it; if the
            // request never went out, the server only notes that the lock was not held.
            let_go(self.session, self.run);
        }
    }
}

/// Lets go of run `run`'s lock on `session`'s connection: the request is handed to the
/// connection before this returns, so it goes out before any request made after (a
/// later open of the run asking for its lock again), and needs no runtime here (the
/// connection runs on its own, wherever it was made). Its answer is not waited for.
fn let_go(session: &Session, run: &RunId) {
    // One message (the simple query protocol), with nothing to wait for before it goes
    // out: a prepared statement would first wait for the server's answers to what was
    // sent before. A run id holds only `A-Z a-z 0-9 _ -`, so it is a literal as it is.
    let unlock = format!(
        "SELECT pg_advisory_unlock({})",
        KEY.replace("$1", &format!("'{}'", run.as_str()))
    );
    // The first poll hands the request to the connection; what is left only reads its
    // answer, which the connection drops once nobody waits for it.
    let unlocking = std::pin::pin!(session.client.batch_execute(&unlock));
    let _ = unlocking.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
}
