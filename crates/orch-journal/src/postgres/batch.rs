//! An append's rows as they are sent: in one statement, or split over several when
//! they are too many bytes for one.

use std::ops::Range;

use super::session::Session;
use crate::JournalError;

/// An append's rows, in order, with what each does beside recording its task.
pub(super) struct Batch<'a> {
    pub(super) run: &'a str,
    pub(super) ids: &'a [String],
    pub(super) statuses: &'a [&'static str],
    pub(super) lines: &'a [String],
    pub(super) instances: &'a [bool],
    /// Whether a row resets its map task's instances.
    pub(super) resets: &'a [bool],
    /// Whether a row replaces whatever the table holds.
    pub(super) forced: &'a [bool],
    /// For the first write to a run that was there before: the changed definition,
    /// if it changed, and the tasks the workflow dropped.
    pub(super) reopened: Option<(Option<&'a str>, &'a [String])>,
}

impl Batch<'_> {
    /// Writes the rows `parts` split them into on `session`, a statement each, in order:
    /// the first carries the first write; each takes the resets of its own rows, so that
    /// a map's instances go no earlier than the record that resets it.
    pub(super) async fn write(
        &self,
        session: &Session,
        parts: Vec<Range<usize>>,
    ) -> Result<(), tokio_postgres::Error> {
        for (n, rows) in parts.into_iter().enumerate() {
            let first = n == 0 && self.reopened.is_some();
            let (definition, removed) = match self.reopened {
                Some(reopened) if n == 0 => reopened,
                _ => (None, &[][..]),
            };
            let ids = &self.ids[rows.clone()];
            let marked = |marks: &[bool]| -> Vec<&String> {
                (ids.iter().zip(&marks[rows.clone()]))
                    .filter_map(|(id, &marked)| marked.then_some(id))
                    .collect()
            };
            let (resets, forced) = (marked(self.resets), marked(self.forced));
            let values: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
                &self.run,
                &ids,
                &&self.statuses[rows.clone()],
                &&self.lines[rows.clone()],
                &&self.instances[rows],
                &resets,
                &forced,
                &definition,
                &first,
                &removed,
            ];
            session.client.execute(&session.insert, &values).await?;
        }
        Ok(())
    }
}

/// The most bytes of rows one statement sends (each row's record, and its task id once in
/// each of the three arrays that may name it). PostgreSQL takes no value (here the array
/// of records) of 1 GiB or more, and may close the connection, shared by every run of
/// the journal, on a message that large.
pub(super) const BATCH_BYTES: usize = 512 << 20;

/// [`BATCH_BYTES`], or in this crate's tests the limit a test set on its thread.
#[cfg(not(test))]
pub(super) fn batch_bytes() -> usize {
    BATCH_BYTES
}

#[cfg(test)]
pub(super) fn batch_bytes() -> usize {
    tests::BATCH_BYTES_HERE.with(|limit| limit.get())
}

/// The batch's rows (records `lines` of tasks `ids`) in order, split into statements of
/// at most `limit` bytes each (see [`BATCH_BYTES`]); or the refusal of a record that
/// alone takes more, for its result, which the engine then keeps out of the journal, as
/// it does an output too large for a record.
pub(super) fn statements(
    ids: &[String],
    lines: &[String],
    limit: usize,
) -> Result<Vec<Range<usize>>, JournalError> {
    let mut parts: Vec<Range<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, line) in lines.iter().enumerate() {
        // A reset row names its task in the ids, the resets and the rows it forces.
        let row = line.len() + 3 * ids[i].len();
        if line.len() > limit {
            return Err(JournalError::InvalidRecord {
                task: ids[i].as_str().into(),
                field: "result",
                reason: format!(
                    "the record takes {} bytes, more than the {limit} PostgreSQL is sent \
                     in one statement",
                    line.len()
                ),
            });
        }
        match parts.last_mut() {
            Some(part) if bytes + row <= limit => {
                part.end = i + 1;
                bytes += row;
            }
            _ => {
                parts.push(i..i + 1);
                bytes = row;
            }
        }
    }
    Ok(parts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// The most bytes of records one statement sends, for appends made on this thread.
        pub(crate) static BATCH_BYTES_HERE: Cell<usize> = const { Cell::new(BATCH_BYTES) };
    }

    #[test]
    fn a_batch_is_split_in_order_and_a_record_past_the_limit_is_refused() {
        let ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let lines: Vec<String> = [10, 30, 20].map(|n| "x".repeat(n)).to_vec();
        let split = |limit| statements(&ids, &lines, limit).unwrap();
        // Each row takes its record and three times its id: 13, 33 and 23 bytes.
        assert_eq!(split(69), vec![0..3]);
        assert_eq!(split(68), [0..2, 2..3]);
        assert_eq!(split(45), [0..1, 1..2, 2..3]);
        let refused = statements(&ids, &lines, 29).expect_err("refused");
        let JournalError::InvalidRecord {
            task,
            field,
            reason,
        } = &refused
        else {
            panic!("{refused:?}");
        };
        assert_eq!((task.as_str(), *field), ("b", "result"));
        assert!(reason.contains("30 bytes"), "{reason}");
        assert!(statements(&[], &[], 0).unwrap().is_empty());
    }

    /// Long task ids count: a statement of short records naming long ids is split too.
    #[test]
    fn the_ids_a_statement_sends_count_toward_its_limit() {
        let ids: Vec<String> = ["a", "b"].map(|c| c.repeat(100)).to_vec();
        let lines: Vec<String> = vec!["x".repeat(10); 2];
        assert_eq!(statements(&ids, &lines, 620).unwrap(), vec![0..2]);
        assert_eq!(statements(&ids, &lines, 619).unwrap(), [0..1, 1..2]);
    }
}
