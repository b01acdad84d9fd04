//! [`PgRunWriter`]: how a run open on a [`PgJournal`](super::PgJournal) is written, on
//! the connection that holds the run's lock.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use orch_core::{RunId, TaskId, TaskRecord, TaskStatus, WorkflowStatus};

use super::Shared;
use super::lock::RunLock;
use super::session::Session;
use crate::claim::Claim;
use crate::line;
use crate::{JournalError, JournalFuture, RunWriter};

pub(super) struct PgRunWriter {
    run: RunId,
    shared: Arc<Shared>,
    /// The connection the run was opened on: its lock on the run lives as long as it.
    session: Arc<Session>,
    /// The workflow's task ids: a record of another id is a map instance's.
    tasks: Arc<HashSet<TaskId>>,
    /// The definition of the workflow the run was reopened with, changed since, until
    /// it is written: with the run's next records, in the same statement.
    redefined: Mutex<Option<String>>,
    finished: AtomicBool,
    _hold: (Claim, RunLock),
}

impl PgRunWriter {
    pub(super) fn new(
        run: RunId,
        shared: Arc<Shared>,
        session: Arc<Session>,
        tasks: Arc<HashSet<TaskId>>,
        redefined: Option<String>,
        hold: (Claim, RunLock),
    ) -> Self {
        Self {
            run,
            shared,
            session,
            tasks,
            redefined: Mutex::new(redefined),
            finished: AtomicBool::new(false),
            _hold: hold,
        }
    }

    /// Runs `statement` on the run's connection; an error names the run, and tells that
    /// the run must be opened again once the connection (and the run's lock) is lost.
    fn on_session<F, T>(&self, action: &'static str, statement: F) -> JournalFuture
    where
        F: FnOnce(Arc<Session>) -> T + Send + 'static,
        T: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    {
        let (shared, session, run) = (
            Arc::clone(&self.shared),
            Arc::clone(&self.session),
            self.run.clone(),
        );
        Box::pin(async move {
            let Err(error) = statement(Arc::clone(&session)).await else {
                return Ok(());
            };
            let mut reported = session.run_error(&run, action, &error, shared.secret());
            if let JournalError::Postgres { message, .. } = &mut reported
                && session.ended_by(&error)
            {
                message.push_str(
                    "; the run's lock went with the connection: open the run again to go on",
                );
            }
            Err(reported)
        })
    }

    /// The changed definition still to be written, taken by the statement that writes it.
    fn take_redefined(&self) -> Option<String> {
        (self
            .redefined
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
        .take()
    }
}

impl fmt::Debug for PgRunWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgRunWriter")
            .field("run", &self.run)
            .field("target", &self.shared.target)
            .finish_non_exhaustive()
    }
}

impl RunWriter for PgRunWriter {
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture {
        if self.finished.load(Ordering::Acquire) {
            let run = self.run.clone();
            return Box::pin(async move { Err(JournalError::Finished { run }) });
        }
        // One row per task (a statement may not touch a row twice): the record in force.
        let mut rows: Vec<(&TaskId, &TaskRecord)> = Vec::with_capacity(records.len());
        let mut index: HashMap<&TaskId, usize> = HashMap::new();
        let mut resets: HashSet<&str> = HashSet::new();
        for &(id, record) in records {
            let reset = record.status == TaskStatus::Pending;
            if reset && self.tasks.contains(id) {
                resets.insert(id.as_str());
            }
            match index.get(id) {
                Some(&i) if rows[i].1.status == TaskStatus::Completed && !reset => {}
                Some(&i) => rows[i] = (id, record),
                None => {
                    index.insert(id, rows.len());
                    rows.push((id, record));
                }
            }
        }
        // A reset task's row, and its instances' rows, replace whatever the table holds.
        let reset_by = |id: &TaskId| {
            resets.contains(id.as_str())
                || orch_core::MapSpec::parse_instance_id(id)
                    .is_some_and(|(map, _)| resets.contains(map))
        };
        let forced: Vec<String> = (rows.iter())
            .filter(|(id, _)| !resets.is_empty() && reset_by(id))
            .map(|(id, _)| id.to_string())
            .collect();
        let resets: Vec<String> = resets.iter().map(|id| (*id).to_owned()).collect();
        let mut ids = Vec::with_capacity(rows.len());
        let mut statuses = Vec::with_capacity(rows.len());
        let mut lines = Vec::with_capacity(rows.len());
        let mut instances = Vec::with_capacity(rows.len());
        for (id, record) in rows {
            let mut buf = Vec::new();
            if let Err(e) = line::write_task(&mut buf, 0, id, record) {
                return Box::pin(async move { Err(e) });
            }
            buf.pop();
            ids.push(id.to_string());
            statuses.push(record.status.as_str());
            instances.push(!self.tasks.contains(id));
            // A journal line is JSON: UTF-8 already.
            lines.push(String::from_utf8(buf).unwrap_or_default());
        }
        let run = self.run.to_string();
        let redefined = self.take_redefined();
        self.on_session("record tasks", move |session| async move {
            let values: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
                &run, &ids, &statuses, &lines, &instances, &resets, &forced, &redefined,
            ];
            session
                .client
                .execute(&session.insert, &values)
                .await
                .map(drop)
        })
    }

    fn sync(&self) -> JournalFuture {
        // One query of two statements: the server runs it as one transaction, whose
        // commit waits for the disk (`SET LOCAL` lasts until that commit), and which,
        // if it fails, leaves the session outside any transaction for the next one.
        // A run id has only letters, digits, `_` and `-`: safe inside quotes.
        let flush = format!(
            "SET LOCAL synchronous_commit = on; \
             UPDATE orch_journal_runs SET updated = now() WHERE run_id = '{}'",
            self.run
        );
        self.on_session("sync", move |session| async move {
            session.client.batch_execute(&flush).await
        })
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        self.finished.store(true, Ordering::Release);
        let run = self.run.to_string();
        let redefined = self.take_redefined();
        self.on_session("record a run's end", move |session| async move {
            session
                .client
                .execute(
                    "UPDATE orch_journal_runs
                     SET status = $2, definition = coalesce($3, definition), updated = now()
                     WHERE run_id = $1",
                    &[&run, &status.as_str(), &redefined],
                )
                .await
                .map(drop)
        })
    }
}
