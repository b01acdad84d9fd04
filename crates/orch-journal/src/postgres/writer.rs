//! [`PgRunWriter`]: how a run open on a [`PgJournal`](super::PgJournal) is written, on
//! the connection that holds the run's lock.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use orch_core::{RunId, TaskId, TaskRecord, TaskStatus, WorkflowStatus};

use super::Shared;
use super::lock::RunLock;
use super::session::Session;
use crate::claim::Claim;
use crate::definition::refuse_foreign_records;
use crate::line;
use crate::sync::lock;
use crate::{JournalError, JournalFuture, RunWriter};

/// What the first write to a run that was there before does too, in the same statement
/// (until then the run stays as it was, as in the file journal): marks the run unfinished,
/// records the definition of the workflow it goes on with when that changed, and deletes
/// the rows of the tasks the workflow dropped, and of their map instances.
pub(super) struct Reopened {
    pub(super) definition: Option<String>,
    pub(super) removed: Vec<String>,
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
    /// statements wait before this one; with what it carries of the first write when it
    /// `can_carry` it (a `sync` cannot).
    async fn turn(&self, can_carry: bool) -> Turn<'_> {
        let mut turn = Turn {
            first_write: self,
            can_carry,
            carried: None,
            queued: false,
            _held: None,
        };
        if !self.unsettled.load(Ordering::Acquire) && self.queued.load(Ordering::Acquire) == 0 {
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
        T: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    {
        let (shared, session, run) = (
            Arc::clone(&self.shared),
            Arc::clone(&self.session),
            self.run.clone(),
        );
        let hold = Arc::clone(&self.hold);
        Box::pin(async move {
            let _hold = hold;
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
        if let Some(error) = too_large(&ids, &lines, BATCH_BYTES) {
            return Box::pin(async move { Err(error) });
        }
        let run = self.run.to_string();
        let first_write = Arc::clone(&self.first_write);
        self.on_session("record tasks", move |session| async move {
            let turn = first_write.turn(true).await;
            let reopened = turn.carried.as_ref();
            let first = reopened.is_some();
            let definition = reopened.and_then(|r| r.definition.as_deref());
            let removed: &[String] = reopened.map_or(&[], |r| &r.removed);
            // So do the rows of tasks of the batch whose ids a dropped task's rows held
            // (a plain task `m[0]` that replaced map task `m`), gone with this statement.
            let dropped_by = |id: &String| {
                let map = orch_core::MapSpec::parse_instance_id(id).map(|(map, _)| map);
                (removed.iter()).any(|d| d == id || map == Some(d.as_str()))
            };
            let forced: Vec<&String> = (ids.iter().zip(&forced_by_resets))
                .filter(|&(id, &by_reset)| by_reset || dropped_by(id))
                .map(|(id, _)| id)
                .collect();
            let values: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
                &run,
                &ids,
                &statuses,
                &lines,
                &instances,
                &resets,
                &forced,
                &definition,
                &first,
                &removed,
            ];
            let done = session.client.execute(&session.insert, &values).await;
            turn.done(done.is_ok());
            done.map(drop)
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
            let turn = first_write.turn(false).await;
            let done = session.client.batch_execute(&flush).await;
            turn.done(done.is_ok());
            done
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
            let turn = first_write.turn(true).await;
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
            done.map(drop)
        })
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

/// The most bytes of records one append sends. PostgreSQL takes no value (here the
/// array of records) of 1 GiB or more, and may close the connection, shared by every
/// run of the journal, on a message that large.
const BATCH_BYTES: usize = 512 << 20;

/// A batch whose records (`lines`, of tasks `ids`) add up to more than `limit` bytes:
/// refused for its largest record's result, which the engine then keeps out of the
/// journal, as it does an output too large for a record of its own.
fn too_large(ids: &[String], lines: &[String], limit: usize) -> Option<JournalError> {
    let total: usize = lines.iter().map(String::len).sum();
    if total <= limit {
        return None;
    }
    let largest = (0..lines.len()).max_by_key(|&i| lines[i].len())?;
    Some(JournalError::InvalidRecord {
        task: ids[largest].as_str().into(),
        field: "result",
        reason: format!(
            "the batch's records take {total} bytes, more than the {limit} PostgreSQL is \
             sent at once; this one takes {}",
            lines[largest].len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_past_the_limit_is_refused_for_its_largest_record() {
        let ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let lines: Vec<String> = [10, 30, 20].map(|n| "x".repeat(n)).to_vec();
        assert!(too_large(&ids, &lines, 60).is_none());
        let refused = too_large(&ids, &lines, 59).expect("refused");
        let JournalError::InvalidRecord {
            task,
            field,
            reason,
        } = &refused
        else {
            panic!("{refused:?}");
        };
        assert_eq!((task.as_str(), *field), ("b", "result"));
        assert!(reason.contains("60 bytes"), "{reason}");
        assert!(too_large(&[], &[], 0).is_none());
    }
}
