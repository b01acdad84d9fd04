//! [`PgJournal`]: runs kept in a PostgreSQL database (feature `postgres`), and
//! [`TempServer`], a throwaway server for tests and benchmarks.
//!
//! Three tables, created when missing: `orch_journal_meta` (the format version),
//! `orch_journal_runs` (one row per run: its workflow, definition and status, indexed by
//! workflow and status) and `orch_journal_tasks` (one row per task of a run, keyed by
//! `(run_id, task_id)`, holding the task's record as a journal line; a map instance's
//! row, `task[i]`, is marked as one). A batch of records is one multi-row insert; a
//! completed row is replaced only by a pending record (a resumed run's, for a task it
//! runs again, which also removes its instances' rows), and an instance's row only by
//! its record in the batch of such a pending record (instances are recorded as they
//! complete and with their map task's end, once per run of the map).

mod batch;
mod lock;
mod secret;
mod server;
mod session;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use orch_core::{RunId, TaskId, Workflow, WorkflowStatus};

use lock::RunLock;
use secret::{pg_error, secret_in};
pub use server::{TempServer, TempServerError};
use session::Session;
use writer::{PgRunWriter, Reopened};

use crate::claim::OpenRuns;
use crate::definition::Definition;
use crate::line::{self, FORMAT, Line, LineError};
use crate::{
    Journal, JournalError, LoadedRun, OpenRun, RunFilter, RunStatus, RunSummary, WorkflowChanges,
};

/// How long a connection attempt may take, unless the connection string says.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A journal in a PostgreSQL database, shared by every process that connects to it.
///
/// Each append is one statement, committed without waiting for the server's disk
/// (`synchronous_commit = off` for the journal's session): once it returns, the records
/// survive a crash of this process, not yet a crash of the server.
/// [`RunWriter::sync`](crate::RunWriter::sync) commits a small transaction that waits
/// for the server's write-ahead log to reach disk, which covers every append before it:
/// then they survive a power loss too; so does opening a run that is there already,
/// before a resume acts on it. A task's completed record is final: a later record for
/// it, from this process or another, is ignored, except a pending one (written by a
/// resumed run for a task it runs again, whose new records then replace it, and which
/// removes every instance record of it if it is a map task); so is a
/// map instance's first record (`task[i]`, recorded once per run of its map task).
/// The connection string's password never appears in `Debug` output or errors.
///
/// A run is open for writing in one process at a time (the server's advisory lock on it,
/// held by the journal's connection; another connection's open waits up to 5 s, then
/// fails with [`JournalError::InUse`], as the file journal's does; so it does, after
/// 5 s more, while the last writer's append of over 512 MiB, sent on a connection of its
/// own, is still being committed). A process that dies
/// lets go when the server ends its session: what it sent is committed, or not, before
/// another process can continue the run. A process whose machine died (power, network)
/// cannot say so: the journal asks the server to probe its quiet connection after 30 s,
/// every 10 s, 3 times, and to give up on an answer not acknowledged for 60 s, so such
/// runs are let go within about a minute (unless the connection string's `options` set
/// `tcp_keepalives_idle`, `_interval`, `_count` or `tcp_user_timeout` themselves).
/// This process probes the connection alike, and (on Linux) gives up on a statement the
/// server has not received for 60 s, unless the string sets any of `keepalives_idle`
/// (to other than the client library's default, 2 hours, which cannot be told from
/// none), `keepalives_interval`, `keepalives_retries` and `tcp_user_timeout` (then the
/// others keep the client library's defaults): cut off from the server, its open runs fail
/// within about a minute, not hours. A statement the server received but does not
/// answer (it waits for a lock someone else holds) is waited for. A quiet session is
/// kept however long it stays quiet (`idle_session_timeout` is turned off for it, unless
/// the string's `options` set it): a coordinator running a long task writes nothing for
/// a while. The run's lock needs a session of its own: a pooler that hands a session to
/// other clients between statements (PgBouncer in transaction mode) is not supported.
/// A write made after its writer was dropped still holds the run until it is done.
///
/// When the connection ends (the server restarted, or ended the session), the runs open
/// on it fail at their next write with an error naming the run, since their locks went
/// with it; the next open, load or list connects again, so a long-lived process resumes
/// such a run by opening it again.
///
/// Rows are keyed by id, so a workflow id or task id may be at most 2000 bytes, and a
/// workflow's name may not hold a NUL character: `open` refuses such a workflow before
/// anything runs (the file journal takes them). An append of more than 512 MiB goes in
/// one transaction of several statements on a connection of its own; a record of more
/// than 512 MiB is refused ([`JournalError::InvalidRecord`]), and the engine keeps its
/// output out of the journal, as one too large for the file journal's records.
///
/// A run's writer sends each statement when its future is first polled, not when the
/// future is made (the file journal writes at once): poll a run's futures in the order
/// they were made, as the engine does, since a `sync` covers the appends polled before
/// it, and an append or `finish` dropped unpolled records nothing (a dropped `finish`
/// still closes the writer). On a run reopened with a changed workflow, the first write
/// also records the new definition; the writes polled meanwhile wait for its outcome,
/// and if it fails, the next carries the change.
///
/// Needs a tokio runtime: the connection runs as a task spawned on it.
#[derive(Clone)]
pub struct PgJournal {
    shared: Arc<Shared>,
}

struct Shared {
    config: tokio_postgres::Config,
    /// The connection in use; replaced by a new one once it ends.
    session: tokio::sync::Mutex<Arc<Session>>,
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
    ///
    /// It connects without TLS: `sslmode=require` fails ("no TLS implementation
    /// configured", or "server does not support TLS"); the default, `prefer`, connects
    /// unencrypted; reach a server across a network you do not trust through a tunnel.
    /// Two options read differently from libpq: `tcp_user_timeout` is in seconds, and
    /// `connect_timeout=0` means the 10 s default, not waiting for ever.
    ///
    /// Once the tables exist, connecting only reads them: a user who may read and write
    /// their rows, without owning them, can use the journal. A connection attempt (with
    /// setting up its session) gives up after 10 s, or the string's `connect_timeout`,
    /// for each address it may try (each host's, as it resolves): as with libpq, an
    /// address that cannot be reached in that time is passed over for the next (one that
    /// takes the connection and then says nothing is not: the attempt fails once its
    /// time is up). In a database whose encoding is not UTF8 (or SQL_ASCII), runs can be
    /// listed and read but not opened: it would refuse, in the middle of a run, an output
    /// holding a character it has none for.
    ///
    /// Its time limits need a Tokio runtime with timers (`enable_time`, or `enable_all`):
    /// on one without them, Tokio panics saying so.
    pub async fn connect(config: &str) -> Result<Self, JournalError> {
        let secret = secret_in(config);
        let secret = secret.as_deref();
        let mut parsed: tokio_postgres::Config = config
            .parse()
            .map_err(|e| pg_error("read the connection string", &e, secret))?;
        let target = session::target(&parsed);
        if parsed.get_connect_timeout().is_none() {
            parsed.connect_timeout(CONNECT_TIMEOUT);
        }
        session::probe_quiet_connection(&mut parsed);
        let session = Session::open(&parsed, &target, secret).await?;
        Ok(Self {
            shared: Arc::new(Shared {
                config: parsed,
                session: tokio::sync::Mutex::new(Arc::new(session)),
                target,
                secret: secret.map(str::to_owned),
                open: OpenRuns::default(),
            }),
        })
    }
}

impl Shared {
    /// The connection to use, connecting again if the last one ended (the runs open on
    /// it are lost to their writers, which fail from then on).
    async fn session(&self) -> Result<Arc<Session>, JournalError> {
        let mut session = self.session.lock().await;
        if session.is_closed() {
            *session = Arc::new(Session::open(&self.config, &self.target, self.secret()).await?);
        }
        Ok(Arc::clone(&session))
    }

    /// Runs `op` on the connection in use, and once more on a new one if that connection
    /// turned out to have ended (which shows only when a request fails).
    async fn on_session<T, F, Fut>(&self, op: F) -> Result<T, JournalError>
    where
        F: Fn(Arc<Session>) -> Fut,
        Fut: Future<Output = Result<T, JournalError>>,
    {
        let session = self.session().await?;
        match op(Arc::clone(&session)).await {
            Err(_) if session.is_closed() => op(self.session().await?).await,
            done => done,
        }
    }

    fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    async fn load(
        &self,
        session: &Session,
        run: &RunId,
    ) -> Result<Option<LoadedRun>, JournalError> {
        let error =
            |action, e: &tokio_postgres::Error| session.run_error(run, action, e, self.secret());
        // One statement, so one snapshot: a write that changes the run's definition and
        // its tasks together (a reopening's first write, or the run's end) is read whole
        // or not at all. The run's row comes first, then its tasks in order.
        let rows = session
            .client
            .query(
                "SELECT 0 AS part, workflow_id, name, definition, status, created, updated,
                        NULL::text AS task_id, NULL::text AS record, NULL::bigint AS position
                 FROM orch_journal_runs WHERE run_id = $1
                 UNION ALL
                 SELECT 1, NULL, NULL, NULL, NULL, NULL, NULL, task_id, record, position
                 FROM orch_journal_tasks WHERE run_id = $1
                 ORDER BY part, position",
                &[&run.as_str()],
            )
            .await
            .map_err(|e| error("read a run", &e))?;
        let mut rows = rows.into_iter();
        let Some(row) = rows
            .next()
            .filter(|row| row.try_get::<_, i32>(0).is_ok_and(|p| p == 0))
        else {
            return Ok(None);
        };
        let get = |e: tokio_postgres::Error| error("read a run", &e);
        let at = format!("PostgreSQL {}, run `{run}`", self.target);
        let corrupt = |reason: String| JournalError::Corrupt {
            at: at.clone(),
            reason,
        };
        let definition: String = row.try_get(3).map_err(get)?;
        let definition = Definition {
            workflow_id: row.try_get(1).map_err(get)?,
            name: row.try_get(2).map_err(get)?,
            tasks: serde_json::from_str(&definition)
                .map_err(|e| corrupt(format!("unreadable definition: {e}")))?,
        };
        let status: String = row.try_get(4).map_err(get)?;
        let status = RunStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown status {status:?}")))?;
        let created: SystemTime = row.try_get(5).map_err(get)?;
        let updated: SystemTime = row.try_get(6).map_err(get)?;
        let mut loaded = LoadedRun::new(run.clone(), at.clone(), definition, created);
        for row in rows {
            let task: String = row.try_get(7).map_err(get)?;
            let record: String = row.try_get(8).map_err(get)?;
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
            // A task the workflow no longer has: the first write after reopening the run
            // without it deletes its rows, but one written before that was done (or whose deletion failed) is
            // left out here, as the file journal's reader leaves out what an earlier
            // definition recorded.
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

    /// Inserts run `run`'s row, with `definition`; reports whether it was new.
    async fn create(
        &self,
        session: &Session,
        run: &RunId,
        definition: &Definition,
    ) -> Result<bool, JournalError> {
        let tasks = definition_text(run, definition)?;
        (session.client)
            .execute(
                "INSERT INTO orch_journal_runs (run_id, workflow_id, name, definition, status)
                 VALUES ($1, $2, $3, $4, 'unfinished') ON CONFLICT (run_id) DO NOTHING",
                &[
                    &run.as_str(),
                    &definition.workflow_id,
                    &definition.name,
                    &tasks,
                ],
            )
            .await
            .map(|rows| rows == 1)
            .map_err(|e| session.run_error(run, "record a run", &e, self.secret()))
    }
}

/// `definition`'s tasks as its column holds them.
fn definition_text(run: &RunId, definition: &Definition) -> Result<String, JournalError> {
    serde_json::to_string(&definition.tasks).map_err(|e| JournalError::Corrupt {
        at: format!("run `{run}`"),
        reason: e.to_string(),
    })
}

/// The longest workflow id or task id the tables take, in bytes: rows are keyed by id,
/// and PostgreSQL's index entries hold about 2.7 kB (a map instance's id adds up to 22
/// bytes to its task's).
const MAX_ID_BYTES: usize = 2000;

/// Refuses, before anything is written, a workflow the tables cannot hold: an id too
/// long to key rows by, or a name with a NUL character, which PostgreSQL text cannot
/// hold. (Ids hold no control character: validation refuses them.) Found at the first
/// write instead, it would fail the run after its first tasks ran, and every resume.
fn fits_the_tables(workflow: &Workflow) -> Result<(), JournalError> {
    let refuse = |message: String| {
        Err(JournalError::Postgres {
            action: "open a run",
            message,
        })
    };
    let too_long = |what: &str, id: &str| {
        let start: String = id.chars().take(40).collect();
        format!(
            "{what} `{start}…` is {} bytes; a PostgreSQL journal takes ids of at most {MAX_ID_BYTES}",
            id.len()
        )
    };
    if workflow.workflow_id().len() > MAX_ID_BYTES {
        return refuse(too_long("the workflow id", workflow.workflow_id()));
    }
    if let Some(task) = workflow.tasks().find(|t| t.task_id.len() > MAX_ID_BYTES) {
        return refuse(too_long("task id", task.task_id.as_str()));
    }
    let nul =
        |what: &str| format!("{what} holds a NUL character, which PostgreSQL text cannot hold");
    if workflow.name().contains('\0') {
        return refuse(nul("the workflow's name"));
    }
    if workflow.workflow_id().contains('\0') {
        return refuse(nul("the workflow id"));
    }
    if let Some(task) = workflow.tasks().find(|t| t.task_id.contains('\0')) {
        let shown = task.task_id.replace('\0', "\\0");
        return refuse(nul(&format!("task id `{shown}`")));
    }
    Ok(())
}

#[async_trait]
impl Journal for PgJournal {
    async fn open(&self, run: &RunId, workflow: &Workflow) -> Result<OpenRun, JournalError> {
        fits_the_tables(workflow)?;
        let claim = self.shared.open.claim(run)?;
        let shared = &self.shared;
        let (session, lock) = shared
            .on_session(|session| async move {
                let lock = RunLock::take(shared, &session, run).await?;
                Ok((session, lock))
            })
            .await?;
        session.may_write(&shared.target)?;
        let definition = Definition::of(workflow);
        let tasks = Arc::new(definition.tasks.keys().cloned().collect());
        // Before it is read: this also waits for an append its last writer may still be
        // committing on a connection of its own after it lost the run's lock.
        session
            .sync_run(run, &shared.target, shared.secret())
            .await?;
        let loaded = match shared.load(&session, run).await? {
            Some(loaded) => Some(loaded),
            None if shared.create(&session, run, &definition).await? => None,
            // Another process created the run between the read and the insert.
            None => shared.load(&session, run).await?,
        };
        let (previous, changes) = match loaded {
            None => (None, WorkflowChanges::default()),
            Some(loaded) => {
                let changes = loaded.check(workflow)?;
                if loaded.status() != RunStatus::Unfinished {
                    writer::mark_reopened(&session, run, shared.secret()).await?;
                }
                (Some(loaded.result_for(workflow)), changes)
            }
        };
        // A run that was there before takes up its changes with its next write (see
        // `Journal::open`): as the file journal, it keeps its definition until then.
        let reopened = match previous {
            None => None,
            Some(_) => Some(Reopened {
                definition: match changes.is_empty() {
                    true => None,
                    false => Some(definition_text(run, &definition)?),
                },
                removed: changes.removed.iter().map(ToString::to_string).collect(),
            }),
        };
        Ok(OpenRun {
            previous,
            changes,
            writer: Box::new(PgRunWriter::new(
                run.clone(),
                Arc::clone(shared),
                session,
                tasks,
                reopened,
                (claim, lock),
            )),
        })
    }

    async fn load(&self, run: &RunId) -> Result<Option<LoadedRun>, JournalError> {
        let shared = &self.shared;
        shared
            .on_session(|session| async move { shared.load(&session, run).await })
            .await
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, JournalError> {
        let workflow = filter.workflow_id.as_deref();
        // PostgreSQL's text holds no NUL, so no run's workflow id does: none matches.
        if workflow.is_some_and(|w| w.contains('\0')) {
            return Ok(Vec::new());
        }
        let status = filter.status.map(RunStatus::as_str);
        let query = |session: Arc<Session>| async move {
            let values: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&workflow, &status];
            let rows = session.client.query(
                "SELECT r.run_id, r.workflow_id, r.status, r.created,
                        count(t.task_id) FILTER (WHERE NOT t.map_instance AND t.status <> 'pending'),
                        count(t.task_id) FILTER (WHERE t.status = 'completed' AND NOT t.map_instance)
                 FROM orch_journal_runs r LEFT JOIN orch_journal_tasks t USING (run_id)
                 WHERE ($1::text IS NULL OR r.workflow_id = $1)
                   AND ($2::text IS NULL OR r.status = $2)
                 GROUP BY r.run_id ORDER BY r.created, r.run_id",
                &values,
            );
            rows.await
                .map_err(|e| session.error("list runs", &e, self.shared.secret()))
        };
        let rows = self.shared.on_session(query).await?;
        let get = |e: tokio_postgres::Error| pg_error("list runs", &e, self.shared.secret());
        // Names the run whose row it is, as read (escaped, and cut short: the row may
        // hold anything).
        let bad = |run: &str, reason: String| {
            let shown: String = run.chars().take(80).collect();
            let more = if shown.len() < run.len() { "…" } else { "" };
            JournalError::Corrupt {
                at: format!(
                    "PostgreSQL {}, table orch_journal_runs, run `{}{more}`",
                    self.shared.target,
                    shown.escape_debug()
                ),
                reason,
            }
        };
        rows.iter()
            .map(|row| {
                let run: String = row.try_get(0).map_err(get)?;
                let status: String = row.try_get(2).map_err(get)?;
                let recorded: i64 = row.try_get(4).map_err(get)?;
                let completed: i64 = row.try_get(5).map_err(get)?;
                let status = RunStatus::parse(&status)
                    .ok_or_else(|| bad(&run, format!("unknown status {status:?}")))?;
                Ok(RunSummary {
                    run_id: RunId::try_from(run.clone()).map_err(|e| bad(&run, e.to_string()))?,
                    workflow_id: row.try_get(1).map_err(get)?,
                    status,
                    created: row.try_get(3).map_err(get)?,
                    recorded_tasks: recorded as usize,
                    completed_tasks: completed as usize,
                })
            })
            .collect()
    }
}
