//! [`PgJournal`]: runs kept in a PostgreSQL database (feature `postgres`), and
//! [`TempServer`], a throwaway server for tests and benchmarks.
//!
//! Three tables, created when missing: `orch_journal_meta` (the format version),
//! `orch_journal_runs` (one row per run: its workflow, definition and status, indexed by
//! workflow and status) and `orch_journal_tasks` (one row per task of a run, keyed by
//! `(run_id, task_id)`, holding the task's record as a journal line; a map instance's
//! row, `task[i]`, is marked as one). A batch of records is one multi-row insert; a
//! completed row is never replaced, nor is an instance's row (instances are recorded
//! in the statement that records their map task's completion, and belong to it).

mod lock;
mod secret;
mod server;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use orch_core::{RunId, TaskId, TaskRecord, TaskStatus, Workflow, WorkflowStatus};
use tokio_postgres::{Client, NoTls, Statement};

use lock::RunLock;

use secret::{pg_error, secret_in};
pub use server::{TempServer, TempServerError};

use crate::claim::{Claim, OpenRuns};
use crate::definition::Definition;
use crate::line::{self, FORMAT, Line, LineError};
use crate::{
    Journal, JournalError, JournalFuture, LoadedRun, OpenRun, RunFilter, RunStatus, RunSummary,
    RunWriter, WorkflowChanges,
};

const SCHEMA: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(7246839112);
CREATE TABLE IF NOT EXISTS orch_journal_meta (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO orch_journal_meta VALUES ('format', 1) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS orch_journal_runs (
    run_id text PRIMARY KEY,
    workflow_id text NOT NULL,
    name text NOT NULL,
    definition text NOT NULL,
    status text NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orch_journal_runs_by_workflow ON orch_journal_runs (workflow_id, status);
CREATE INDEX IF NOT EXISTS orch_journal_runs_by_status ON orch_journal_runs (status);
CREATE TABLE IF NOT EXISTS orch_journal_tasks (
    run_id text NOT NULL REFERENCES orch_journal_runs (run_id) ON DELETE CASCADE,
    task_id text NOT NULL,
    position bigint GENERATED ALWAYS AS IDENTITY,
    status text NOT NULL,
    record text NOT NULL,
    PRIMARY KEY (run_id, task_id)
);
ALTER TABLE orch_journal_tasks ADD COLUMN IF NOT EXISTS map_instance boolean NOT NULL DEFAULT false;
COMMIT;";

const INSERT: &str = "
INSERT INTO orch_journal_tasks (run_id, task_id, status, record, map_instance)
SELECT $1, t.task_id, t.status, t.record, t.map_instance
FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[]) AS t (task_id, status, record, map_instance)
ON CONFLICT (run_id, task_id) DO UPDATE
    SET status = EXCLUDED.status, record = EXCLUDED.record
    WHERE orch_journal_tasks.status <> 'completed' AND NOT orch_journal_tasks.map_instance";

/// A journal in a PostgreSQL database, shared by every process that connects to it.
///
/// Each append is one statement, committed without waiting for the server's disk
/// (`synchronous_commit = off` for the journal's session): once it returns, the records
/// survive a crash of this process, not yet a crash of the server. [`RunWriter::sync`]
/// commits a small transaction that waits for the server's write-ahead log to reach
/// disk, which covers every append before it: then they survive a power loss too. A
/// task's completed record is final: a later record for it, from this process or
/// another, is ignored; so is a map instance's first record (`task[i]`, recorded with
/// its map task's completion). The connection string's password never appears in
/// `Debug` output or errors.
///
/// A run is open for writing in one process at a time (the server's advisory lock on it,
/// held by the journal's connection; another connection's open waits up to 5 s, then
/// fails naming the run). A process that dies lets go when the server ends its session:
/// what it sent is committed, or not, before another process can continue the run.
///
/// Needs a tokio runtime: the connection runs as a task spawned on it.
#[derive(Clone)]
pub struct PgJournal {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    insert: Statement,
    /// `user@host:port/dbname`, for `Debug`.
    target: String,
    /// The password, to be cut out of error messages.
    secret: Option<String>,
    open: OpenRuns,
}

impl fmt::Debug for PgJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgJournal")
            .field("target", &self.shared.target)
            .finish_non_exhaustive()
    }
}

impl PgJournal {
    /// Connects with `config`, a libpq connection string (`host=... user=... password=...`
    /// or `postgresql://user:password@host/db`), creates the journal's tables if missing
    /// and checks that their format is one this version reads.
    pub async fn connect(config: &str) -> Result<Self, JournalError> {
        let secret = secret_in(config);
        let secret = secret.as_deref();
        let parsed: tokio_postgres::Config = config
            .parse()
            .map_err(|e| pg_error("read the connection string", &e, secret))?;
        let target = format!(
            "{}@{}:{}/{}",
            parsed.get_user().unwrap_or(""),
            parsed
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            parsed
                .get_ports()
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
            parsed.get_dbname().unwrap_or(""),
        );
        let (client, connection) = parsed
            .connect(NoTls)
            .await
            .map_err(|e| pg_error("connect", &e, secret))?;
        tokio::spawn(async move {
            // Its end (or failure) shows in the client's next request.
            let _ = connection.await;
        });
        client
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| pg_error("create the journal's tables", &e, secret))?;
        let format: i64 = client
            .query_one(
                "SELECT value FROM orch_journal_meta WHERE key = 'format'",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| pg_error("read the journal's format", &e, secret))?;
        if format > FORMAT as i64 {
            return Err(JournalError::NewerFormat {
                at: format!("PostgreSQL {target}, table orch_journal_meta"),
                found: format as u64,
                supported: FORMAT,
            });
        }
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .map_err(|e| pg_error("set up the session", &e, secret))?;
        let insert = client
            .prepare(INSERT)
            .await
            .map_err(|e| pg_error("prepare the insert", &e, secret))?;
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                insert,
                target,
                secret: secret.map(str::to_owned),
                open: OpenRuns::default(),
            }),
        })
    }
}

impl Shared {
    fn error(&self, action: &'static str, error: &tokio_postgres::Error) -> JournalError {
        pg_error(action, error, self.secret.as_deref())
    }

    async fn load(&self, run: &RunId) -> Result<Option<LoadedRun>, JournalError> {
        let row = self
            .client
            .query_opt(
                "SELECT workflow_id, name, definition, status, created, updated
                 FROM orch_journal_runs WHERE run_id = $1",
                &[&run.as_str()],
            )
            .await
            .map_err(|e| self.error("read a run", &e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let get = |e: tokio_postgres::Error| self.error("read a run", &e);
        let at = format!("PostgreSQL {}, run `{run}`", self.target);
        let corrupt = |reason: String| JournalError::Corrupt {
            at: at.clone(),
            reason,
        };
        let definition: String = row.try_get(2).map_err(get)?;
        let definition = Definition {
            workflow_id: row.try_get(0).map_err(get)?,
            name: row.try_get(1).map_err(get)?,
            tasks: serde_json::from_str(&definition)
                .map_err(|e| corrupt(format!("unreadable definition: {e}")))?,
        };
        let status: String = row.try_get(3).map_err(get)?;
        let status = RunStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown status {status:?}")))?;
        let created: SystemTime = row.try_get(4).map_err(get)?;
        let updated: SystemTime = row.try_get(5).map_err(get)?;
        let mut loaded = LoadedRun::new(run.clone(), at.clone(), definition, created);
        let rows = self
            .client
            .query(
                "SELECT task_id, record FROM orch_journal_tasks WHERE run_id = $1 ORDER BY position",
                &[&run.as_str()],
            )
            .await
            .map_err(|e| self.error("read a run's tasks", &e))?;
        for row in rows {
            let task: String = row.try_get(0).map_err(get)?;
            let record: String = row.try_get(1).map_err(get)?;
            let at = format!("{at}, task `{task}`");
            let record = match line::parse(record.as_bytes()) {
                Ok((_, Line::Task { task_id, record })) if task_id == task.as_str() => record,
                Ok(_) => {
                    return Err(JournalError::Corrupt {
                        at,
                        reason: "the row does not hold this task's record".to_owned(),
                    });
                }
                Err(LineError::Newer(found)) => {
                    return Err(JournalError::NewerFormat {
                        at,
                        found,
                        supported: FORMAT,
                    });
                }
                Err(LineError::Bad(reason)) => return Err(JournalError::Corrupt { at, reason }),
            };
            // A task the workflow no longer has (the run was resumed without it): its
            // record stays in the table and is left out, as the file journal's reader
            // leaves out what an earlier definition recorded.
            if !loaded.definition.has_record_for(&task) {
                continue;
            }
            loaded.push(TaskId::from(task), record);
        }
        let end = match status {
            RunStatus::Completed => Some(WorkflowStatus::Completed),
            RunStatus::Failed => Some(WorkflowStatus::Failed),
            RunStatus::Cancelled => Some(WorkflowStatus::Cancelled),
            RunStatus::Unfinished => None,
        };
        if let Some(end) = end {
            loaded.ended(end, updated);
        }
        Ok(Some(loaded))
    }

    /// Records `definition` as the run's, and marks the run unfinished; `create` inserts
    /// the run's row, and reports whether it was new.
    async fn define(
        &self,
        run: &RunId,
        definition: &Definition,
        create: bool,
    ) -> Result<bool, JournalError> {
        let tasks =
            serde_json::to_string(&definition.tasks).map_err(|e| JournalError::Corrupt {
                at: format!("run `{run}`"),
                reason: e.to_string(),
            })?;
        let changed =
            if create {
                self.client
                .execute(
                    "INSERT INTO orch_journal_runs (run_id, workflow_id, name, definition, status)
                     VALUES ($1, $2, $3, $4, 'unfinished') ON CONFLICT (run_id) DO NOTHING",
                    &[&run.as_str(), &definition.workflow_id, &definition.name, &tasks],
                )
                .await
            } else {
                self.client
                    .execute(
                        "UPDATE orch_journal_runs
                     SET definition = $2, status = 'unfinished', updated = now()
                     WHERE run_id = $1",
                        &[&run.as_str(), &tasks],
                    )
                    .await
            };
        changed
            .map(|rows| rows == 1)
            .map_err(|e| self.error("record a run", &e))
    }
}

#[async_trait]
impl Journal for PgJournal {
    async fn open(&self, run: &RunId, workflow: &Workflow) -> Result<OpenRun, JournalError> {
        let claim = self.shared.open.claim(run)?;
        let lock = RunLock::take(&self.shared, run).await?;
        let definition = Definition::of(workflow);
        let tasks = Arc::new(definition.tasks.keys().cloned().collect());
        let loaded = match self.shared.load(run).await? {
            Some(loaded) => Some(loaded),
            None if self.shared.define(run, &definition, true).await? => None,
            // Another process created the run between the read and the insert.
            None => self.shared.load(run).await?,
        };
        let (previous, changes) = match loaded {
            None => (None, WorkflowChanges::default()),
            Some(loaded) => {
                let changes = loaded.check(workflow)?;
                self.shared.define(run, &definition, false).await?;
                (Some(loaded.result_for(workflow)), changes)
            }
        };
        Ok(OpenRun {
            previous,
            changes,
            writer: Box::new(PgRunWriter {
                run: run.clone(),
                shared: Arc::clone(&self.shared),
                tasks,
                finished: Arc::new(AtomicBool::new(false)),
                _claim: claim,
                _lock: lock,
            }),
        })
    }

    async fn load(&self, run: &RunId) -> Result<Option<LoadedRun>, JournalError> {
        self.shared.load(run).await
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, JournalError> {
        let workflow = filter.workflow_id.as_deref();
        let status = filter.status.map(RunStatus::as_str);
        let rows = self
            .shared
            .client
            .query(
                "SELECT r.run_id, r.workflow_id, r.status, r.created,
                        count(t.task_id) FILTER (WHERE NOT t.map_instance),
                        count(t.task_id) FILTER (WHERE t.status = 'completed' AND NOT t.map_instance)
                 FROM orch_journal_runs r LEFT JOIN orch_journal_tasks t USING (run_id)
                 WHERE ($1::text IS NULL OR r.workflow_id = $1)
                   AND ($2::text IS NULL OR r.status = $2)
                 GROUP BY r.run_id ORDER BY r.created, r.run_id",
                &[&workflow, &status],
            )
            .await
            .map_err(|e| self.shared.error("list runs", &e))?;
        let get = |e: tokio_postgres::Error| self.shared.error("list runs", &e);
        let bad = |reason: String| JournalError::Corrupt {
            at: format!("PostgreSQL {}, table orch_journal_runs", self.shared.target),
            reason,
        };
        rows.iter()
            .map(|row| {
                let run: String = row.try_get(0).map_err(get)?;
                let status: String = row.try_get(2).map_err(get)?;
                let recorded: i64 = row.try_get(4).map_err(get)?;
                let completed: i64 = row.try_get(5).map_err(get)?;
                Ok(RunSummary {
                    run_id: RunId::try_from(run).map_err(|e| bad(e.to_string()))?,
                    workflow_id: row.try_get(1).map_err(get)?,
                    status: RunStatus::parse(&status)
                        .ok_or_else(|| bad(format!("unknown status {status:?}")))?,
                    created: row.try_get(3).map_err(get)?,
                    recorded_tasks: recorded as usize,
                    completed_tasks: completed as usize,
                })
            })
            .collect()
    }
}

struct PgRunWriter {
    run: RunId,
    shared: Arc<Shared>,
    /// The workflow's task ids: a record of another id is a map instance's.
    tasks: Arc<HashSet<TaskId>>,
    finished: Arc<AtomicBool>,
    _claim: Claim,
    _lock: RunLock,
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
        for &(id, record) in records {
            match index.get(id) {
                Some(&i) if rows[i].1.status == TaskStatus::Completed => {}
                Some(&i) => rows[i] = (id, record),
                None => {
                    index.insert(id, rows.len());
                    rows.push((id, record));
                }
            }
        }
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
            lines.push(String::from_utf8_lossy(&buf).into_owned());
        }
        let shared = Arc::clone(&self.shared);
        let run = self.run.to_string();
        Box::pin(async move {
            shared
                .client
                .execute(&shared.insert, &[&run, &ids, &statuses, &lines, &instances])
                .await
                .map(drop)
                .map_err(|e| shared.error("record tasks", &e))
        })
    }

    fn sync(&self) -> JournalFuture {
        let shared = Arc::clone(&self.shared);
        // A run id has only letters, digits, `_` and `-`: safe inside quotes.
        let flush = format!(
            "BEGIN; SET LOCAL synchronous_commit = on; \
             UPDATE orch_journal_runs SET updated = now() WHERE run_id = '{}'; COMMIT;",
            self.run
        );
        Box::pin(async move {
            let synced = shared.client.batch_execute(&flush).await;
            if let Err(error) = synced {
                // A failed statement skips the `COMMIT`: the session would stay in an
                // aborted transaction, and every later statement of the journal fail.
                let _ = shared.client.batch_execute("ROLLBACK").await;
                return Err(shared.error("sync", &error));
            }
            Ok(())
        })
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        self.finished.store(true, Ordering::Release);
        let shared = Arc::clone(&self.shared);
        let run = self.run.to_string();
        Box::pin(async move {
            shared
                .client
                .execute(
                    "UPDATE orch_journal_runs SET status = $2, updated = now() WHERE run_id = $1",
                    &[&run, &status.as_str()],
                )
                .await
                .map(drop)
                .map_err(|e| shared.error("record a run's end", &e))
        })
    }
}
