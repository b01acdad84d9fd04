//! [`RunLock`]: the server's advisory lock on a run open for writing.

use std::sync::Arc;

use orch_core::RunId;

use super::Shared;
use crate::JournalError;

/// How long opening a run waits for another process to let go of it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The server's advisory lock on a run, held by the connection of the process that has
/// the run open for writing: another process cannot open it meanwhile, and a process
/// that dies lets go of it with its connection.
pub(super) struct RunLock {
    shared: Arc<Shared>,
    run: RunId,
}

impl RunLock {
    pub(super) async fn take(shared: &Arc<Shared>, run: &RunId) -> Result<Self, JournalError> {
        let started = std::time::Instant::now();
        loop {
            let row = shared
                .client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended('orch_journal:' || $1, 0))",
                    &[&run.as_str()],
                )
                .await
                .map_err(|e| shared.error("lock a run", &e))?;
            let locked: bool = row.try_get(0).map_err(|e| shared.error("lock a run", &e))?;
            if locked {
                return Ok(Self {
                    shared: Arc::clone(shared),
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
            return; // The lock goes with the connection.
        };
        let shared = Arc::clone(&self.shared);
        let run = self.run.clone();
        runtime.spawn(async move {
            let _ = shared
                .client
                .execute(
                    "SELECT pg_advisory_unlock(hashtextextended('orch_journal:' || $1, 0))",
                    &[&run.as_str()],
                )
                .await;
        });
    }
}
