//! One connection to the server: the journal's tables checked (and created when
//! missing) through it, its prepared insert and end, and why it ended once it has.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orch_core::RunId;
use tokio_postgres::error::Severity;
use tokio_postgres::{Client, NoTls, Statement};

use super::secret::{describe, pg_error, scrub};
use crate::JournalError;
use crate::line::FORMAT;

mod set_up;
use set_up::{Progress, Step, addresses};

/// SQL that holds when row `d` is the record of a map instance (`task[i]`) of the task
/// `r.task_id`: written once for the statements that drop a task's instances.
macro_rules! instance_of_r {
    () => {
        "(d.map_instance AND left(d.task_id, length(r.task_id) + 1) = r.task_id || '['
            AND substr(d.task_id, length(r.task_id) + 2) ~ '^(0|[1-9][0-9]*)\\]$')"
    };
}

/// The database's encoding, whether the journal's format table exists, and whether
/// every table is in place with every column this version writes (then connecting
/// changes nothing on the server, and needs no right to change tables). Tables are found as the journal's statements find
/// them, through the `search_path`, whatever the user's rights on them.
const SCHEMA_IN_PLACE: &str = "
SELECT current_setting('server_encoding'),
       to_regclass('orch_journal_meta') IS NOT NULL,
       to_regclass('orch_journal_runs') IS NOT NULL
       AND EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = to_regclass('orch_journal_tasks')
                     AND attname = 'map_instance' AND NOT attisdropped)";

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

/// One batch of records: `$2`..`$5` the rows (one per task: the record in force from
/// the batch), `$6` the tasks the batch resets (a pending record), whose map instances'
/// rows recorded before go, and `$7` the rows that replace what the table
/// holds whatever it is (those of reset tasks and their instances). A row that takes
/// a record moves to the end of the run's order, as read back: after the rows the
/// batch wrote before it. With `$9`, the first
/// write to a run that was there before: the run is marked unfinished, takes definition
/// `$8` when not null, and the rows of tasks `$10` (dropped by the workflow) and of their
/// map instances go, except those the batch writes.
const INSERT: &str = concat!(
    "
WITH reopened AS (
    UPDATE orch_journal_runs
    SET status = 'unfinished', updated = now(), definition = coalesce($8::text, definition)
    WHERE run_id = $1 AND $9::bool
),
dropped AS (
    DELETE FROM orch_journal_tasks d
    USING unnest($10::text[]) AS r (task_id)
    WHERE d.run_id = $1 AND d.task_id <> ALL ($2::text[]) AND (d.task_id = r.task_id OR ",
    instance_of_r!(),
    ")
),
reset_instances AS (
    DELETE FROM orch_journal_tasks d
    USING unnest($6::text[]) AS r (task_id)
    WHERE d.run_id = $1 AND d.task_id <> ALL ($2::text[]) AND ",
    instance_of_r!(),
    "
)
INSERT INTO orch_journal_tasks (run_id, task_id, status, record, map_instance)
SELECT $1, t.task_id, t.status, t.record, t.map_instance
FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[]) AS t (task_id, status, record, map_instance)
ON CONFLICT (run_id, task_id) DO UPDATE
    SET status = EXCLUDED.status, record = EXCLUDED.record,
        map_instance = EXCLUDED.map_instance, position = DEFAULT
    WHERE EXCLUDED.task_id = ANY ($7::text[])
        OR (orch_journal_tasks.status <> 'completed' AND NOT orch_journal_tasks.map_instance)"
);

/// A run's end, `$2`: with the definition `$3` when not null, and without the rows of
/// tasks `$4` and of their map instances (see [`INSERT`] for a first write).
const FINISH: &str = concat!(
    "
WITH dropped AS (
    DELETE FROM orch_journal_tasks d
    USING unnest($4::text[]) AS r (task_id)
    WHERE d.run_id = $1 AND (d.task_id = r.task_id OR ",
    instance_of_r!(),
    ")
)
UPDATE orch_journal_runs SET status = $2, definition = coalesce($3, definition), updated = now()
WHERE run_id = $1"
);

/// The session's settings: commits not waited on for the disk (the journal syncs when
/// asked), and, unless the connection string's `options` set them, the server probing
/// the connection after 30 s of quiet, every 10 s, 3 times: a process whose machine died
/// (power, network) then loses its session, and the locks of the runs it had open,
/// within about a minute, where the system's defaults take about two hours; and (on
/// servers that have it) the server giving up after 60 s on an answer the process does
/// not acknowledge, unless the `options` set that or any probing.
///
/// Unless the `options` set it, the session is also kept however long it stays quiet
/// (`idle_session_timeout` off, on servers that have it): a run's lock lives as long as
/// its session, and a coordinator running a long task writes nothing for a while.
fn session_settings(config: &tokio_postgres::Config) -> String {
    let mut settings = "SET synchronous_commit = off;".to_owned();
    let options = config.get_options().unwrap_or_default();
    if !options.contains("idle_session_timeout") {
        settings.push_str(
            " SELECT set_config('idle_session_timeout', '0', false) \
             WHERE current_setting('idle_session_timeout', true) IS NOT NULL;",
        );
    }
    if !options.contains("tcp_keepalives") {
        settings.push_str(
            " SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; \
             SET tcp_keepalives_count = 3;",
        );
    }
    // Probes wait while what the server sent is not acknowledged: a machine that died
    // while an answer was on its way would keep its session for some 15 minutes.
    if !options.contains("tcp_keepalives") && !options.contains("tcp_user_timeout") {
        settings.push_str(
            " SELECT set_config('tcp_user_timeout', '60000', false) \
             WHERE current_setting('tcp_user_timeout', true) IS NOT NULL;",
        );
    }
    settings
}

/// The client's side of the same: unless the connection string sets any of these, this
/// process probes the connection after 30 s of quiet, every 10 s, 3 times, and (on
/// Linux) gives up on a statement the server has not acknowledged receiving for 60 s. A
/// process cut off from the server (its network, or the server's machine, gone) then
/// learns so, and fails the runs it has open, within about a minute, where the system's
/// defaults wait two hours for an answer, or 15 minutes for a statement to be received.
/// (Whatever of these the string sets, the others keep the client library's defaults:
/// a `tcp_user_timeout` would also cut short the probing the string asks for.)
pub(super) fn probe_quiet_connection(config: &mut tokio_postgres::Config) {
    let library_default_idle = Duration::from_secs(2 * 60 * 60);
    let untouched = config.get_keepalives()
        && config.get_keepalives_idle() == library_default_idle
        && config.get_keepalives_interval().is_none()
        && config.get_keepalives_retries().is_none()
        && config.get_tcp_user_timeout().is_none();
    if untouched {
        config
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(60));
    }
}

/// Refuses a journal written in a newer format than this version reads, and as corrupt
/// one whose format is missing or is no format orch writes.
async fn check_format(
    client: &Client,
    target: &str,
    secret: Option<&str>,
) -> Result<(), JournalError> {
    let unreadable = |e: tokio_postgres::Error| pg_error("read the journal's format", &e, secret);
    let row = client
        .query_opt(
            "SELECT value FROM orch_journal_meta WHERE key = 'format'",
            &[],
        )
        .await
        .map_err(unreadable)?;
    let at = format!("PostgreSQL {target}, table orch_journal_meta");
    let format: i64 = match row {
        Some(row) => row.try_get(0).map_err(unreadable)?,
        None => {
            let reason = "it has no `format` row: the journal's format is unknown".to_owned();
            return Err(JournalError::Corrupt { at, reason });
        }
    };
    if format > FORMAT as i64 {
        return Err(JournalError::NewerFormat {
            at,
            found: format as u64,
            supported: FORMAT,
        });
    }
    if format < 1 {
        let reason = format!("journal format {format} is no format orch writes");
        return Err(JournalError::Corrupt { at, reason });
    }
    Ok(())
}

/// A connection to the server, and what the journal prepared on it.
pub(super) struct Session {
    pub(super) client: Client,
    pub(super) insert: Statement,
    /// Prepared, like the insert, so that it goes out in one message when first polled:
    /// a plain statement would wait for the server's answer to its preparation, and a
    /// `sync` polled after it would overtake it.
    pub(super) finish: Statement,
    /// Why the connection ended, once it has.
    ended: Arc<OnceLock<String>>,
    /// Set once a request failed with an error that ends the session (before the
    /// connection itself may have seen its end).
    fatal: AtomicBool,
    /// The database's encoding, when it cannot hold every character (see
    /// [`Session::may_write`]).
    unfit_encoding: Option<String>,
}

impl Session {
    /// Connects, makes sure the journal's tables are there in a format this version
    /// reads, and prepares the session for the journal's statements; all of it within
    /// the connection's `connect_timeout` for each address it may try (the timeout by itself bounds only the opening of each socket: a server that
    /// takes the connection and never answers would keep this waiting, and every use of
    /// the journal behind it).
    pub(super) async fn open(
        config: &tokio_postgres::Config,
        target: &str,
        secret: Option<&str>,
    ) -> Result<Self, JournalError> {
        let each = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(super::CONNECT_TIMEOUT);
        let addresses = addresses(config, each).await;
        let limit = each.saturating_mul(u32::try_from(addresses).unwrap_or(u32::MAX));
        let progress = Progress::default();
        let setting_up = Self::set_up(config, target, secret, &progress);
        match tokio::time::timeout(limit, setting_up).await {
            Ok(opened) => opened,
            Err(_) => Err(JournalError::Postgres {
                action: "connect",
                message: progress.timed_out(target, limit),
            }),
        }
    }

    async fn set_up(
        config: &tokio_postgres::Config,
        target: &str,
        secret: Option<&str>,
        progress: &Progress,
    ) -> Result<Self, JournalError> {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| pg_error("connect", &e, secret))?;
        let ended = Arc::new(OnceLock::new());
        let reason = Arc::clone(&ended);
        tokio::spawn(async move {
            let why = match connection.await {
                Ok(()) => "it was closed".to_owned(),
                Err(error) => describe(&error),
            };
            let _ = reason.set(why);
        });
        progress.reached(Step::LookForTables);
        let (encoding, has_format, in_place): (String, bool, bool) = client
            .query_one(SCHEMA_IN_PLACE, &[])
            .await
            .and_then(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .map_err(|e| pg_error("look for the journal's tables", &e, secret))?;
        // Text is sent as UTF-8: a database in another encoding refuses an output or an
        // error holding a character it has none for. SQL_ASCII keeps the bytes as they
        // come.
        let unfit_encoding =
            (!matches!(encoding.as_str(), "UTF8" | "SQL_ASCII")).then_some(encoding);
        progress.reached(Step::CheckTables);
        // A newer version's tables are refused before anything in them changes.
        if has_format {
            check_format(&client, target, secret).await?;
        }
        if !in_place {
            client
                .batch_execute(SCHEMA)
                .await
                .map_err(|e| pg_error("create the journal's tables", &e, secret))?;
            if !has_format {
                check_format(&client, target, secret).await?;
            }
        }
        progress.reached(Step::SetUpSession);
        client
            .batch_execute(&session_settings(config))
            .await
            .map_err(|e| pg_error("set up the session", &e, secret))?;
        progress.reached(Step::Prepare);
        let insert = client
            .prepare(INSERT)
            .await
            .map_err(|e| pg_error("prepare the insert", &e, secret))?;
        let finish = client
            .prepare(FINISH)
            .await
            .map_err(|e| pg_error("prepare the run's end", &e, secret))?;
        Ok(Self {
            client,
            insert,
            finish,
            ended,
            fatal: AtomicBool::new(false),
            unfit_encoding,
        })
    }

    /// Refuses to write runs into a database whose encoding cannot hold every character:
    /// it would refuse an output or an error holding one it has none for in the middle
    /// of a run, and again at each resume. Runs already there can still be listed and
    /// read.
    pub(super) fn may_write(&self, target: &str) -> Result<(), JournalError> {
        match &self.unfit_encoding {
            None => Ok(()),
            Some(encoding) => Err(JournalError::Postgres {
                action: "open a run",
                message: format!(
                    "{target} stores text as {encoding}, which cannot hold every character \
                     a run's outputs and errors may have: use a database made with \
                     ENCODING 'UTF8'"
                ),
            }),
        }
    }

    /// Whether the connection ended (the server went away, or ended the session).
    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed() || self.fatal.load(Ordering::Relaxed)
    }

    /// Whether `error` ended the connection (it closed, or the server ended the session
    /// with a fatal error, as when an administrator terminates it).
    pub(super) fn ended_by(&self, error: &tokio_postgres::Error) -> bool {
        let fatal = error.as_db_error().is_some_and(|db| {
            matches!(
                db.parsed_severity(),
                Some(Severity::Fatal | Severity::Panic)
            )
        });
        if fatal {
            self.fatal.store(true, Ordering::Relaxed);
        }
        error.is_closed() || fatal || self.is_closed()
    }

    /// [`Session::error`] for a request about run `run`, whose message names it.
    pub(super) fn run_error(
        &self,
        run: &RunId,
        action: &'static str,
        error: &tokio_postgres::Error,
        secret: Option<&str>,
    ) -> JournalError {
        let mut reported = self.error(action, error, secret);
        if let JournalError::Postgres { message, .. } = &mut reported {
            *message = format!("run `{run}`: {message}");
        }
        reported
    }

    /// Makes run `run`'s rows durable on the server before a resume acts on them: its
    /// last writer's records were committed without waiting for the disk, and one may
    /// have died before its next sync. A commit that waits covers every one before it;
    /// this one writes the run's row as it is, once no transaction holds that row (an
    /// append of the last writer's still being committed on a connection of its own,
    /// waited for up to 5 s, as for the run's lock: every run's statements on this
    /// connection wait meanwhile; then [`JournalError::InUse`]).
    pub(super) async fn sync_run(
        &self,
        run: &RunId,
        target: &str,
        secret: Option<&str>,
    ) -> Result<(), JournalError> {
        // A run id has only letters, digits, `_` and `-`: safe inside quotes.
        let sync = format!(
            "SET LOCAL synchronous_commit = on; SET LOCAL lock_timeout = '5s'; \
             UPDATE orch_journal_runs SET updated = updated WHERE run_id = '{run}'"
        );
        match self.client.batch_execute(&sync).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                Err(JournalError::InUse {
                    run: run.clone(),
                    lock: format!("whose last writer still commits to PostgreSQL {target}"),
                })
            }
            Err(e) => Err(self.run_error(run, "sync the run before reading it", &e, secret)),
        }
    }

    /// `error` as the journal reports it; a request that failed because the connection
    /// ended says so, and why it ended when that is known.
    pub(super) fn error(
        &self,
        action: &'static str,
        error: &tokio_postgres::Error,
        secret: Option<&str>,
    ) -> JournalError {
        let mut reported = pg_error(action, error, secret);
        if self.ended_by(error)
            && let JournalError::Postgres { message, .. } = &mut reported
        {
            let why = match self.ended.get() {
                Some(why) if !message.contains(why.as_str()) => format!(": {why}"),
                _ => String::new(),
            };
            *message = scrub(
                format!("the connection to the server was lost ({message}{why})"),
                secret,
            );
        }
        reported
    }
}

/// Where `config` connects, for messages: `user@hosts:ports/database`, without the
/// password.
pub(super) fn target(config: &tokio_postgres::Config) -> String {
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or(""),
        config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        config
            .get_ports()
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(","),
        config.get_dbname().unwrap_or(""),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::postgres::{TempServer, TempServerError};

    /// The value of each setting in `names` on `session`'s connection.
    async fn shown(session: &Session, names: &[&str]) -> Vec<String> {
        let mut values = Vec::new();
        for name in names {
            let query = format!("SHOW {name}");
            let row = session.client.query_one(&query, &[]).await.unwrap();
            values.push(row.get(0));
        }
        values
    }

    /// This process probes a quiet connection too, and gives up on a statement the
    /// server does not receive, unless the connection string says otherwise.
    #[test]
    fn the_client_probes_a_quiet_connection() {
        let probed = |text: &str| {
            let mut config: tokio_postgres::Config = text.parse().unwrap();
            probe_quiet_connection(&mut config);
            (
                config.get_keepalives_idle().as_secs(),
                config.get_keepalives_interval().map(|d| d.as_secs()),
                config.get_keepalives_retries(),
                config.get_tcp_user_timeout().map(Duration::as_secs),
            )
        };
        assert_eq!(probed("host=h"), (30, Some(10), Some(3), Some(60)));
        assert_eq!(
            probed("host=h keepalives_idle=45 tcp_user_timeout=5"),
            (45, None, None, Some(5))
        );
        assert_eq!(
            probed("host=h keepalives_interval=20"),
            (7200, Some(20), None, None)
        );
        assert_eq!(
            probed("host=h tcp_user_timeout=5"),
            (7200, None, None, Some(5))
        );
    }

    /// A process whose machine dies holds its runs' locks until the server notices the
    /// connection is dead: the journal asks the server to probe a quiet connection, and
    /// leaves settings the connection string gives alone.
    #[test]
    fn the_server_probes_a_quiet_connection() {
        let server = match TempServer::start() {
            Ok(server) => server,
            Err(TempServerError::NotInstalled(why))
                if std::env::var("CI").is_ok_and(|v| v != "true")
                    || std::env::var("CI").is_err() =>
            {
                println!("skipped: {why}");
                return;
            }
            Err(error) => panic!("{error}"),
        };
        let keepalives = [
            "tcp_keepalives_idle",
            "tcp_keepalives_interval",
            "tcp_keepalives_count",
            "tcp_user_timeout",
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let config: tokio_postgres::Config = server.connection_string().parse().unwrap();
            let session = Session::open(&config, "test", None).await.unwrap();
            assert_eq!(
                shown(&session, &keepalives).await,
                ["30", "10", "3", "60000"]
            );
            let given = format!(
                "{} options='-c tcp_keepalives_idle=45'",
                server.connection_string()
            );
            let config: tokio_postgres::Config = given.parse().unwrap();
            let session = Session::open(&config, "test", None).await.unwrap();
            let given_and_user_timeout = [keepalives[0], keepalives[3]];
            assert_eq!(shown(&session, &given_and_user_timeout).await, ["45", "0"]);
        });
    }
}
