//! [`PgRunWriter`]: how a run open on a [`PgJournal`](super::PgJournal) is written, on
//! the connection that holds the run's lock.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use orch_core::{RunId, TaskId, TaskRecord, TaskStatus, WorkflowStatus};

use super::Shared;
use super::batch::{Batch, batch_bytes, statements};
use super::lock::RunLock;
use super::session::Session;
use crate::claim::Claim;
use crate::definition::refuse_foreign_records;
use crate::line;
use crate::sync::lock;
use crate::{JournalError, JournalFuture, RunWriter};

/// What the first write to a run that was there before does too, in the same statement
/// (until then the run keeps its definition and rows, as in the file journal; it was
/// marked unfinished as it was opened, see [`mark_reopened`], and is again here): records
/// the definition of the workflow it goes on with when that changed, and deletes the rows
/// of the tasks the workflow dropped, and of their map instances.
pub(super) struct Reopened {
    pub(super) definition: Option<String>,
    pub(super) removed: Vec<String>,
}

/// Marks run `run`, which had ended, as going on again as it is opened (its definition
/// and rows change with its first write, see [`Reopened`]).
pub(super) async fn mark_reopened(
    session: &Session,
    run: &RunId,
    secret: Option<&str>,
) -> Result<(), JournalError> {
    (session.client)
        .execute(
            "UPDATE orch_journal_runs SET status = 'unfinished', updated = now() \
             WHERE run_id = $1",
            &[&run.as_str()],
        )
        .await
        .map(drop)
        .map_err(|e| session.run_error(run, "mark the run going on", &e, secret))
}

/// The [`Reopened`] of a run that was there before, shared by its writer's statements:
/// one statement at a time carries it, and while it may still be to do the statements
/// take turns, each waiting for the one before to be done (that one may fail, or be
/// dropped, and give it back for the next), so that none is written as if the run were
/// already marked and redefined when it is not, and none overtakes another.
struct FirstWrite {
    reopened: Mutex<Option<Reopened>>,
    /// Held by each statement, while turns are taken, until it is done.
    turn: tokio::sync::Mutex<()>,
    /// Whether no statement that could carry `reopened` has succeeded yet.
    unsettled: AtomicBool,
    /// The statements waiting for their turn or holding it.
    queued: AtomicUsize,
}

impl FirstWrite {
    fn new(reopened: Option<Reopened>) -> Self {
        Self {
            unsettled: AtomicBool::new(reopened.is_some()),
            reopened: Mutex::new(reopened),
            turn: tokio::sync::Mutex::new(()),
            queued: AtomicUsize::new(0),
        }
    }

    /// This statement's turn, waited for while the first write may still be to do or
    /// statements wait before this one, or always when it is `several` statements (the
    /// turn is held until the last is done, so that none overtakes them); with what it
    /// carries of the first write when it `can_carry` it (a `sync` cannot).
    async fn turn(&self, can_carry: bool, several: bool) -> Turn<'_> {
        let mut turn = Turn {
            first_write: self,
            can_carry,
            carried: None,
            queued: false,
            _held: None,
        };
        let quiet =
            !self.unsettled.load(Ordering::Acquire) && self.queued.load(Ordering::Acquire) == 0;
        if quiet && !several {
            return turn;
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        turn.queued = true;
        turn._held = Some(self.turn.lock().await);
        if can_carry {
            turn.carried = lock(&self.reopened).take();
        }
        turn
    }
}

/// A statement's turn: what it carries of the first write, given back unless the
/// statement succeeded (it failed, or was dropped before it was done).
struct Turn<'f> {
    first_write: &'f FirstWrite,
    can_carry: bool,
    carried: Option<Reopened>,
    queued: bool,
    _held: Option<tokio::sync::MutexGuard<'f, ()>>,
}

impl Turn<'_> {
    /// The statement is done: once one that could carry the first write succeeded, the
    /// first write is done.
    fn done(mut self, succeeded: bool) {
        if succeeded && self.can_carry {
            self.carried = None;
            self.first_write.unsettled.store(false, Ordering::Release);
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Some(carried) = self.carried.take() {
            lock(&self.first_write.reopened).get_or_insert(carried);
        }
        if self.queued {
            self.first_write.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

pub(super) struct PgRunWriter {
    run: RunId,
    shared: Arc<Shared>,
    /// The connection the run was opened on: its lock on the run lives as long as it.
    session: Arc<Session>,
    /// The workflow's task ids: a record of another id is a map instance's.
    tasks: Arc<HashSet<TaskId>>,
    /// For a run that was there before, what its first write does too, in the same
    /// statement.
    first_write: Arc<FirstWrite>,
    /// Set by `finish` (taking no more records from then), cleared again if recording
    /// the end failed, as the file journal takes records after a failed end.
    finished: Arc<AtomicBool>,
    /// The run's claim in this process and its lock on the server, held by the writer
    /// and by each of its writes until that write is done: a write made after the
    /// writer was dropped still holds the run, so that no other process opens it
    /// meanwhile.
    hold: Arc<(Claim, RunLock)>,
}

impl PgRunWriter {
    pub(super) fn new(
        run: RunId,
        shared: Arc<Shared>,
        session: Arc<Session>,
        tasks: Arc<HashSet<TaskId>>,
        reopened: Option<Reopened>,
        hold: (Claim, RunLock),
    ) -> Self {
        Self {
            run,
            shared,
            session,
            tasks,
            first_write: Arc::new(FirstWrite::new(reopened)),
            finished: Arc::new(AtomicBool::new(false)),
            hold: Arc::new(hold),
        }
    }

    /// Runs `statement` on the run's connection; an error names the run, and tells that
    /// the run must be opened again once the connection (and the run's lock) is lost.
    fn on_session<F, T>(&self, action: &'static str, statement: F) -> JournalFuture
    where
        F: FnOnce(Arc<Session>) -> T + Send + 'static,
        T: Future<Output = Result<(), Failure>> + Send + 'static,
    {
        let (shared, session, run) = (
            Arc::clone(&self.shared),
            Arc::clone(&self.session),
            self.run.clone(),
        );
        let hold = Arc::clone(&self.hold);
        Box::pin(async move {
            let _hold = hold;
            let error = match statement(Arc::clone(&session)).await {
                Ok(()) => return Ok(()),
                Err(Failure::Reported(error)) => return Err(error),
                Err(Failure::Statement(error)) => error,
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
        let refused = refuse_foreign_records(records, |task| self.tasks.contains(task));
        if let Err(refused) = refused {
            return Box::pin(std::future::ready(Err(refused)));
        }
        if records.is_empty() {
            // Nothing to record, and a changed definition waits for the first records.
            return Box::pin(std::future::ready(Ok(())));
        }
        // One row per task (a statement may not touch a row twice): the record in force.
        // A reset applies in its place: it forgets its map's instances recorded before it.
        let mut rows: Vec<Option<(&TaskId, &TaskRecord)>> = Vec::with_capacity(records.len());
        let mut index: HashMap<&TaskId, usize> = HashMap::new();
        let mut resets: HashSet<&str> = HashSet::new();
        let mut instances_of: HashMap<&str, Vec<usize>> = HashMap::new();
        for &(id, record) in records {
            let reset = record.status == TaskStatus::Pending;
            if reset && self.tasks.contains(id) {
                resets.insert(id.as_str());
                for i in instances_of.remove(id.as_str()).unwrap_or_default() {
                    if let Some((instance, _)) = rows[i].take() {
                        index.remove(instance);
                    }
                }
            }
            match index.get(id) {
                Some(&i)
                    if rows[i].is_some_and(|(_, r)| r.status == TaskStatus::Completed)
                        && !reset => {}
                Some(&i) => rows[i] = Some((id, record)),
                None => {
                    index.insert(id, rows.len());
                    if let Some(map) = map_of_instance(&self.tasks, id) {
                        instances_of.entry(map).or_default().push(rows.len());
                    }
                    rows.push(Some((id, record)));
                }
            }
        }
        let rows: Vec<(&TaskId, &TaskRecord)> = rows.into_iter().flatten().collect();
        // A reset task's row, and its instances' rows (not those of tasks whose ids look
        // like its instances'), replace whatever the table holds.
        let reset_by = |id: &TaskId| {
            let map = map_of_instance(&self.tasks, id);
            resets.contains(id.as_str()) || map.is_some_and(|map| resets.contains(map))
        };
        // Per row, in `ids`'s order.
        let forced_by_resets: Vec<bool> = (rows.iter())
            .map(|(id, _)| !resets.is_empty() && reset_by(id))
            .collect();
        let reset_rows: Vec<bool> = (rows.iter())
            .map(|(id, _)| resets.contains(id.as_str()))
            .collect();
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
        let parts = match statements(&ids, &lines, batch_bytes()) {
            Ok(parts) => parts,
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        let (run_id, run) = (self.run.clone(), self.run.to_string());
        let first_write = Arc::clone(&self.first_write);
        let shared = Arc::clone(&self.shared);
        self.on_session("record tasks", move |session| async move {
            let several = parts.len() > 1;
            let turn = first_write.turn(true, several).await;
            let reopened = turn.carried.as_ref();
            let definition = reopened.and_then(|r| r.definition.as_deref());
            let removed: &[String] = reopened.map_or(&[], |r| &r.removed);
            // So do the rows of tasks of the batch whose ids a dropped task's rows held
            // (a plain task `m[0]` that replaced map task `m`), gone with this statement.
            let dropped_by = |id: &String| {
                let map = orch_core::MapSpec::parse_instance_id(id).map(|(map, _)| map);
                (removed.iter()).any(|d| d == id || map == Some(d.as_str()))
            };
            let forced: Vec<bool> = (ids.iter().zip(&forced_by_resets))
                .map(|(id, &by_reset)| by_reset || dropped_by(id))
                .collect();
            let batch = Batch {
                run: &run,
                ids: &ids,
                statuses: &statuses,
                lines: &lines,
                instances: &instances,
                resets: &reset_rows,
                forced: &forced,
                reopened: reopened.is_some().then_some((definition, removed)),
            };
            if !several {
                batch.write(&session, parts).await?;
                turn.done(true);
                return Ok(());
            }
            // Too much for one statement: the parts go in one transaction, on a
            // connection of its own (the run's is shared by other runs), once the
            // statements this run sent before it are done.
            session.client.batch_execute("").await?;
            let action = "record tasks";
            let side = match Session::open(&shared.config, &shared.target, shared.secret()).await {
                Ok(side) => side,
                Err(mut error) => {
                    if let JournalError::Postgres { message, .. } = &mut error {
                        *message = format!("run `{run}`: {message}");
                    }
                    return Err(Failure::Reported(error));
                }
            };
            let mut undone = CancelOnDrop(Some(side.client.cancel_token()));
            let on_side = |e: tokio_postgres::Error| {
                Failure::Reported(side.run_error(&run_id, action, &e, shared.secret()))
            };
            // The run's row stays locked until the commit: a process that takes the run
            // over meanwhile (this one's connection ended) waits for it before it loads
            // the run (see `PgJournal::open`), and so reads these rows or none of them.
            // A run id has only letters, digits, `_` and `-`: safe inside quotes.
            let begin =
                format!("BEGIN; SELECT FROM orch_journal_runs WHERE run_id = '{run}' FOR UPDATE");
            side.client.batch_execute(&begin).await.map_err(on_side)?;
            batch.write(&side, parts).await.map_err(on_side)?;
            // The run's lock lives with its connection: still there, or nothing is kept.
            session.client.batch_execute("").await?;
            side.client.batch_execute("COMMIT").await.map_err(on_side)?;
            undone.0 = None;
            turn.done(true);
            Ok(())
        })
    }

    fn sync(&self) -> JournalFuture {
        // One query of two statements: the server runs it as one transaction, whose
        // commit waits for the disk (`SET LOCAL` lasts until that commit), and which,
        // if it fails, leaves the session outside any transaction for the next one.
        // A run id has only letters, digits, `_` and `-`: safe inside quotes. The update
        // writes the row either way (so the commit waits), but keeps an ended run's end.
        let flush = format!(
            "SET LOCAL synchronous_commit = on; \
             UPDATE orch_journal_runs \
             SET updated = CASE WHEN status = 'unfinished' THEN now() ELSE updated END \
             WHERE run_id = '{}'",
            self.run
        );
        let first_write = Arc::clone(&self.first_write);
        self.on_session("sync", move |session| async move {
            // In its turn: it covers the appends polled before it.
            let turn = first_write.turn(false, false).await;
            let done = session.client.batch_execute(&flush).await;
            turn.done(done.is_ok());
            Ok(done?)
        })
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        if self.finished.swap(true, Ordering::AcqRel) {
            let run = self.run.clone();
            return Box::pin(async move { Err(JournalError::Finished { run }) });
        }
        let run = self.run.to_string();
        let first_write = Arc::clone(&self.first_write);
        let finished = Arc::clone(&self.finished);
        self.on_session("record a run's end", move |session| async move {
            let turn = first_write.turn(true, false).await;
            let reopened = turn.carried.as_ref();
            let definition = reopened.and_then(|r| r.definition.as_deref());
            let removed: &[String] = reopened.map_or(&[], |r| &r.removed);
            let done = (session.client)
                .execute(
                    &session.finish,
                    &[&run, &status.as_str(), &definition, &removed],
                )
                .await;
            if done.is_err() {
                finished.store(false, Ordering::Release);
            }
            turn.done(done.is_ok());
            Ok(done.map(drop)?)
        })
    }
}

/// How a write failed: a statement on the run's connection, or as reported already.
enum Failure {
    Statement(tokio_postgres::Error),
    Reported(JournalError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Statement(error)
    }
}

/// A split append's transaction, cancelled on the server when its write is dropped
/// before the commit (a cancelled run stopped waiting for it): the server would
/// otherwise finish the statement under way, holding up the run's next statements on
/// the rows it wrote.
struct CancelOnDrop(Option<tokio_postgres::CancelToken>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let (Some(token), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move { token.cancel_query(tokio_postgres::NoTls).await });
        }
    }
}

/// The map task whose instance `id` is, unless `id` is one of the workflow's `tasks` (a
/// plain task may have an id like an instance's).
fn map_of_instance<'a>(tasks: &HashSet<TaskId>, id: &'a TaskId) -> Option<&'a str> {
    match tasks.contains(id) {
        true => None,
        false => orch_core::MapSpec::parse_instance_id(id).map(|(map, _)| map),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use orch_core::{Task, Workflow};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::*;
    use crate::postgres::batch::BATCH_BYTES;
    use crate::postgres::batch::tests::BATCH_BYTES_HERE;
    use crate::postgres::{PgJournal, TempServer, TempServerError};
    use crate::{Journal, OpenRun};

    /// The ids the batches name: the tasks of [`workflow`] and instances of its map.
    const IDS: [&str; 7] = ["list", "m", "a", "b", "m[0]", "m[1]", "m[2]"];

    /// Map `m` over `list`, and plain tasks `a` and, unless `dropped`, `b`.
    fn workflow(dropped: bool) -> Workflow {
        let w = Workflow::new("split", "W")
            .task(Task::new("list", "t"))
            .task(Task::new("m", "t").map_over("list"))
            .task(Task::new("a", "t"));
        match dropped {
            true => w,
            false => w.task(Task::new("b", "t")),
        }
    }

    fn batches() -> impl Strategy<Value = Vec<Vec<(usize, TaskRecord)>>> {
        let status = prop_oneof![
            Just(TaskStatus::Pending),
            Just(TaskStatus::Completed),
            Just(TaskStatus::Failed),
        ];
        let record = (0..IDS.len(), status, "[a-z]{0,40}").prop_map(|(id, status, text)| {
            // A map's completion holds its list of outputs, one per instance.
            let result = match (IDS[id], status) {
                ("m", TaskStatus::Completed) => serde_json::json!(vec![0; text.len() % 4]),
                _ => serde_json::Value::String(text),
            };
            let record = TaskRecord {
                status,
                result: Some(result),
                attempts: 1,
                ..TaskRecord::default()
            };
            (id, record)
        });
        prop::collection::vec(prop::collection::vec(record, 1..8), 1..5)
    }

    /// Writes `before` to a fresh run of [`workflow`], then `after` once the run is
    /// opened again without task `b`, each append split into statements of at most
    /// `limit` bytes; what the journal then holds for each id.
    async fn written(
        journal: &PgJournal,
        run: &RunId,
        limit: usize,
        [before, after]: [&[Vec<(usize, TaskRecord)>]; 2],
    ) -> Vec<Option<TaskRecord>> {
        BATCH_BYTES_HERE.with(|here| here.set(limit));
        for (dropped, batches) in [(false, before), (true, after)] {
            let workflow = workflow(dropped);
            let opened = journal.open(run, &workflow).await.unwrap();
            for batch in batches {
                let ids: Vec<TaskId> = batch.iter().map(|(i, _)| TaskId::from(IDS[*i])).collect();
                let pairs: Vec<_> = ids.iter().zip(batch.iter().map(|(_, r)| r)).collect();
                // A batch naming `b` once it is dropped is refused, whole, either way.
                let _ = opened.writer.append(&pairs).await;
            }
        }
        BATCH_BYTES_HERE.with(|here| here.set(BATCH_BYTES));
        let loaded = journal.load(run).await.unwrap().unwrap();
        IDS.iter().map(|id| loaded.task(id).cloned()).collect()
    }

    /// An append split into several statements leaves the journal as one statement
    /// does: resets, map instances and a reopened run's dropped task included.
    #[test]
    fn an_append_in_several_statements_records_what_one_statement_does() {
        let server = match TempServer::start() {
            Ok(server) => server,
            Err(TempServerError::NotInstalled(why))
                if std::env::var("CI").map_or(true, |v| v != "true") =>
            {
                println!("skipped: {why}");
                return;
            }
            Err(error) => panic!("{error}"),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let journal = rt
            .block_on(PgJournal::connect(&server.connection_string()))
            .unwrap();

        let mut runner = TestRunner::new(Config {
            failure_persistence: None,
            ..Config::with_cases(100)
        });
        let n = std::sync::atomic::AtomicUsize::new(0);
        runner
            .run(&(batches(), batches()), |(before, after)| {
                let n = n.fetch_add(1, Ordering::Relaxed);
                let [whole, split] = [format!("whole-{n}"), format!("split-{n}")]
                    .map(|id| RunId::parse(&id).unwrap());
                let phases = [&before[..], &after[..]];
                let expected = rt.block_on(written(&journal, &whole, usize::MAX, phases));
                // Records here take 85 to 135 bytes: two or three rows per statement.
                let got = rt.block_on(written(&journal, &split, 300, phases));
                prop_assert_eq!(got, expected);
                Ok(())
            })
            .unwrap();
        rt.block_on(a_split_append_is_written_whole_or_not_at_all(
            &journal,
            &server.connection_string(),
        ));
    }

    /// A server that refuses the last row of an append split over several statements:
    /// none of the append is written, and the error says why. Nor is it written when
    /// the run's connection, which holds its lock, ends meanwhile; and dropped before
    /// its end, it keeps nothing waiting. A process that takes the run over while one
    /// is committed reads what it wrote.
    async fn a_split_append_is_written_whole_or_not_at_all(journal: &PgJournal, config: &str) {
        let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let done = TaskRecord {
            status: TaskStatus::Completed,
            result: Some(serde_json::json!("x".repeat(100))),
            ..TaskRecord::default()
        };
        let ids = ["list", "a", "b"].map(TaskId::from);
        let batch: Vec<_> = ids.iter().map(|id| (id, &done)).collect();

        on_writing_b(&client, "RAISE EXCEPTION 'no rows for b';").await;
        let run = RunId::parse("refused").unwrap();
        let opened = journal.open(&run, &workflow(false)).await.unwrap();
        let refused = split(|| opened.writer.append(&batch)).await;
        let refused = refused.expect_err("refused");
        assert!(refused.to_string().contains("no rows for b"), "{refused}");
        let loaded = journal.load(&run).await.unwrap().unwrap();
        assert_eq!((loaded.task("list"), loaded.task("a")), (None, None));
        opened.writer.append(&batch[..2]).await.unwrap();
        let loaded = journal.load(&run).await.unwrap().unwrap();
        assert_eq!(loaded.task("a"), Some(&done));

        // The run's own connection, and its lock, end while the parts are written.
        on_writing_b(
            &client,
            "PERFORM pg_terminate_backend(pid, 10000) FROM pg_locks
             WHERE locktype = 'advisory' AND pid <> pg_backend_pid();",
        )
        .await;
        let run = RunId::parse("lock-lost").unwrap();
        let opened = journal.open(&run, &workflow(false)).await.unwrap();
        let refused = split(|| opened.writer.append(&batch)).await;
        let refused = refused.expect_err("refused");
        assert!(
            refused.to_string().contains("open the run again"),
            "{refused}"
        );
        let loaded = journal.load(&run).await.unwrap().unwrap();
        assert_eq!((loaded.task("list"), loaded.task("b")), (None, None));

        // A split append dropped while the server is at work on it holds nothing up.
        on_writing_b(&client, "PERFORM pg_sleep(60);").await;
        let run = RunId::parse("dropped").unwrap();
        let opened = journal.open(&run, &workflow(false)).await.unwrap();
        let dropped = split(|| opened.writer.append(&batch));
        let wait = std::time::Duration::from_secs(1);
        assert!(
            tokio::time::timeout(wait, dropped).await.is_err(),
            "dropped"
        );
        // `a`'s row, written by the dropped transaction, is not held until its end.
        let wait = std::time::Duration::from_secs(20);
        let next = tokio::time::timeout(wait, opened.writer.append(&batch[1..2])).await;
        next.expect("not held up").unwrap();
        let loaded = journal.load(&run).await.unwrap().unwrap();
        assert_eq!((loaded.task("list"), loaded.task("a")), (None, Some(&done)));

        // The run's connection ends while a split append commits (slowly: its `b` row
        // takes 3 s to check) and another process takes the run over: that process
        // reads the append's rows, committed before it reads the run.
        on_writing_b(&client, "NULL;").await;
        let (appended, taken_over) =
            taken_over_while_committing(journal, config, &client, &batch, "taken-over", 3).await;
        appended.unwrap();
        let previous = taken_over.unwrap().previous.expect("the run was there");
        assert_eq!(previous.tasks.get("b"), Some(&done));
        // A commit that takes longer than the 5 s an open waits: the open is refused
        // (with every other run's statements on its connection held up for 5 s only).
        let (appended, taken_over) =
            taken_over_while_committing(journal, config, &client, &batch, "in-use", 8).await;
        appended.unwrap();
        let Err(refused) = taken_over else {
            panic!("opened while the append commits");
        };
        assert!(
            matches!(&refused, JournalError::InUse { lock, .. } if lock.contains("still commits")),
            "{refused}"
        );
    }

    /// Opens run `run` on `journal` and appends `batch` to it in several statements
    /// whose commit takes `secs` seconds, while the run's connection is ended and another
    /// journal on `config` opens the run: what the append and that open gave.
    async fn taken_over_while_committing(
        journal: &PgJournal,
        config: &str,
        client: &tokio_postgres::Client,
        batch: &[(&TaskId, &TaskRecord)],
        run: &str,
        secs: u32,
    ) -> (Result<(), JournalError>, Result<OpenRun, JournalError>) {
        let check_b = format!(
            "CREATE OR REPLACE FUNCTION on_b_committed() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.task_id = 'b' THEN PERFORM pg_sleep({secs}); END IF;
                 RETURN NULL;
             END $$;
             DROP TRIGGER IF EXISTS on_b_committed ON orch_journal_tasks;
             CREATE CONSTRAINT TRIGGER on_b_committed AFTER INSERT ON orch_journal_tasks
             DEFERRABLE INITIALLY DEFERRED
             FOR EACH ROW EXECUTE FUNCTION on_b_committed();"
        );
        client.batch_execute(&check_b).await.unwrap();
        let other = PgJournal::connect(config).await.unwrap();
        let run = RunId::parse(run).unwrap();
        let opened = journal.open(&run, &workflow(false)).await.unwrap();
        let appended = split(|| opened.writer.append(batch));
        let taken_over = async {
            let committing = "SELECT count(*) FROM pg_stat_activity
                              WHERE wait_event = 'PgSleep' AND query = 'COMMIT'";
            while (client.query_one(committing, &[]).await.unwrap()).get::<_, i64>(0) == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            (client.batch_execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks
                 WHERE locktype = 'advisory' AND pid <> pg_backend_pid();",
            ))
            .await
            .unwrap();
            other.open(&run, &workflow(false)).await
        };
        tokio::join!(appended, taken_over)
    }

    /// What `append` makes with at most 300 bytes of records per statement (the records
    /// of these tests take about 150): the append is split.
    fn split<T>(append: impl FnOnce() -> T) -> T {
        BATCH_BYTES_HERE.with(|here| here.set(300));
        let made = append();
        BATCH_BYTES_HERE.with(|here| here.set(BATCH_BYTES));
        made
    }

    /// From now on the server runs `action` (PL/pgSQL) as it writes a row of task `b`,
    /// before writing it.
    async fn on_writing_b(client: &tokio_postgres::Client, action: &str) {
        let function = format!(
            "CREATE OR REPLACE FUNCTION on_b() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.task_id = 'b' THEN {action} END IF;
                 RETURN NEW;
             END $$;
             CREATE OR REPLACE TRIGGER on_b BEFORE INSERT ON orch_journal_tasks
             FOR EACH ROW EXECUTE FUNCTION on_b();"
        );
        client.batch_execute(&function).await.unwrap();
    }
}
