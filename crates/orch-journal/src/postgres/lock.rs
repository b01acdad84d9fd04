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
            let row = session
                .client
                .query_one(
                    &format!("SELECT pg_try_advisory_lock({KEY})"),
                    &[&run.as_str()],
                )
                .await
                .map_err(|e| error(&e))?;
            let locked: bool = row.try_get(0).map_err(|e| error(&e))?;
            if locked {
                return Ok(Self {
                    session: Arc::clone(session),
                    run: run.clone(),
                });
            }
            // A process that just let go of it may not have closed its session yet.
            if started.elapsed() >= LOCK_WAIT {
                return Err(JournalError::Postgres {
                    action: "open a run",
                    message: format!(
                        "run `{run}` is open for writing in another process (which holds its \
                         lock on {}); wait for it to end",
                        shared.target
                    ),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to send the unlock on: the run stays locked until the journal's
            // connection ends.
            return;
        };
        let session = Arc::clone(&self.session);
        let run = self.run.clone();
        runtime.spawn(async move {
            let _ = session
                .client
                .execute(
                    &format!("SELECT pg_advisory_unlock({KEY})"),
                    &[&run.as_str()],
                )
                .await;
        });
    }
}
