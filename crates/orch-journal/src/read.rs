//! Reading a run's journal file back: every complete line checked, a torn last line left
//! out.

use std::io::{BufRead, Read};
use std::path::Path;

use orch_core::RunId;

use crate::line::{self, FORMAT, Line, LineError};
use crate::{JournalError, LoadedRun};

/// A run read from its file, and where its next line goes.
pub(crate) struct ReadRun {
    pub(crate) run: LoadedRun,
    /// The length of the complete lines: a torn line after them is cut off before the
    /// file is written again.
    pub(crate) valid_len: u64,
    /// The sequence number of the next line.
    pub(crate) next_seq: u64,
}

/// The longest line a journal takes, its newline not counted: one byte short of 1 GiB,
/// so that reading one (newline and all) holds at most 1 GiB of text. A longer line is
/// refused when written, and as corrupt when read, so that a damaged file cannot make a
/// reader take in more text than that at once. (The JSON parsed from a line takes more
/// memory than its text: up to about 16 times for a long array of small numbers; a run's
/// records are all held once read.)
pub(crate) const MAX_LINE: u64 = (1 << 30) - 1;

/// Reads the journal of `run` from `lines`, kept at `path` (another backend's name for
/// where the run is), a line at a time; `in_a_file`: the journal is a file, where a write
/// the file system lost ends the journal.
pub(crate) fn read_lines(
    path: &Path,
    run: &RunId,
    lines: impl BufRead,
    in_a_file: bool,
) -> Result<ReadRun, JournalError> {
    read_lines_within(path, run, lines, MAX_LINE, in_a_file)
}

/// [`read_lines`], with lines of at most `max_line` bytes; `in_a_file`: the journal is a
/// file, where zeros may stand for a lost write.
fn read_lines_within(
    path: &Path,
    run: &RunId,
    mut lines: impl BufRead,
    max_line: u64,
    in_a_file: bool,
) -> Result<ReadRun, JournalError> {
    let at = |line: u64| format!("{}, line {line}", path.display());
    let mut loaded: Option<LoadedRun> = None;
    let mut pos = 0;
    let mut number = 0u64;
    let mut buf = Vec::new();
    let mut batch: Option<Batch> = None;
    while next_line(&mut lines, &mut buf, max_line, path, || at(number + 1))? {
        let len = buf.len();
        let text = &buf[..];
        // A sector or more of zeros after the head, or zeros from a line's start to a
        // sector's end, is a write the file system lost in a power cut while later ones
        // reached the disk: the journal is read up to them, as up to a torn last line,
        // and reopening cuts it there. (A line as written holds no zero byte: JSON
        // escapes it. A stray one is refused below, as corrupt.)
        if in_a_file && number > 0 && text.contains(&0) && lost_write(text, pos) {
            break;
        }
        number += 1;
        // A first line that begins with zeros, or holds some: the write of the file's
        // first block, or of one the head spans, was lost in a power cut while later ones
        // reached the disk. The run's head is gone: the file is damaged, not something
        // else.
        if number == 1 && in_a_file && text.contains(&0) {
            return Err(head_lost(at(number)));
        }
        // A first line that does not begin as a run's: a file of something else (a line
        // of zeros kept elsewhere than in a file is read as corrupt).
        if number == 1 && !(text.starts_with(HEAD_START) || (!text.is_empty() && zeros(text))) {
            return Err(JournalError::NotAJournal {
                path: path.to_owned(),
            });
        }
        let (seq, parsed) = line::parse(text).map_err(|e| match e {
            LineError::Newer(found) => JournalError::NewerFormat {
                at: at(number),
                found,
                supported: FORMAT,
            },
            LineError::Bad(reason) => JournalError::Corrupt {
                at: at(number),
                reason,
            },
        })?;
        if seq != number - 1 {
            return Err(JournalError::Corrupt {
                at: at(number),
                reason: format!(
                    "sequence number {seq} where {} was expected (a line is missing or repeated)",
                    number - 1
                ),
            });
        }
        match (&mut batch, parsed) {
            (
                None,
                parsed @ Line::Definition {
                    followed_by: Some(n),
                    ..
                },
            ) if n > 0 && loaded.is_some() => {
                batch = Some(Batch {
                    start: pos,
                    seq,
                    to_come: n,
                    lines: vec![(number, parsed)],
                });
            }
            // A batch holds task lines, and the run's end last: anything else is not one
            // (a count gone wrong would otherwise cut good lines off on reopen).
            (Some(open), parsed) if !batch_may_hold(&parsed, open.to_come) => {
                // Placed at the definition (its line follows its sequence number), whose
                // count is what is wrong.
                return Err(JournalError::Corrupt {
                    at: at(open.seq + 1),
                    reason: format!(
                        "this changed definition's count of the lines written with it, \
                         `followed_by`, is wrong: line {number} cannot be one of them"
                    ),
                });
            }
            (Some(open), parsed) => {
                open.lines.push((number, parsed));
                open.to_come -= 1;
                if open.to_come == 0 {
                    for (number, parsed) in batch.take().map(|b| b.lines).unwrap_or_default() {
                        take_line(&mut loaded, run, parsed, &|| at(number))?;
                    }
                }
            }
            (None, parsed) => take_line(&mut loaded, run, parsed, &|| at(number))?,
        }
        pos += len as u64 + 1;
    }
    // A definition whose write was cut short is left out, with the lines after it: the
    // file goes on from where it started.
    let (valid_len, next_seq) = match batch {
        Some(cut) => (cut.start, cut.seq),
        None => (pos, number),
    };
    match loaded {
        Some(run) => Ok(ReadRun {
            run,
            valid_len,
            next_seq,
        }),
        // What is there (left in `buf`) could be the start of a head line, cut short.
        None if could_start_a_line(&buf) => Err(JournalError::HeadMissing {
            path: path.to_owned(),
        }),
        // Zeros, then more of a line cut short: a head lost as above.
        None if in_a_file && buf.first() == Some(&0) => Err(head_lost(at(1))),
        // Something else, which opening the run would have emptied.
        None => Err(JournalError::NotAJournal {
            path: path.to_owned(),
        }),
    }
}

/// The error for a run file whose first line, at `at`, begins with zeros: the write of
/// its first block was lost in a power cut (whether later ones reached the disk or not).
fn head_lost(at: String) -> JournalError {
    JournalError::Corrupt {
        at,
        reason: "the run's head line was lost (zeros stand in its place, left by a power \
                 cut): the lines after it belong to no known run"
            .to_owned(),
    }
}

/// A definition line and the lines written with it, held until the last of them is read
/// (a write cut short is then taken as not made).
struct Batch {
    /// Where the definition line starts in the file.
    start: u64,
    /// The definition line's sequence number.
    seq: u64,
    /// How many lines of the batch are still to come.
    to_come: u64,
    /// The lines read so far, each with its line number.
    lines: Vec<(u64, Line)>,
}

/// Whether `line` may be among the lines written with a changed definition, `to_come`
/// of them still to come counting it: a task line, or the run's end as the last.
fn batch_may_hold(line: &Line, to_come: u64) -> bool {
    match line {
        Line::Task { .. } => true,
        Line::End { .. } => to_come == 1,
        Line::Head { .. } | Line::Definition { .. } => false,
    }
}

/// Takes line `parsed` of run `run`'s journal into `loaded`; `at` names its place.
fn take_line(
    loaded: &mut Option<LoadedRun>,
    run: &RunId,
    parsed: Line,
    at: &dyn Fn() -> String,
) -> Result<(), JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt { at: at(), reason };
    match (loaded, parsed) {
        (
            slot @ None,
            Line::Head {
                run_id,
                definition,
                time,
            },
        ) => {
            if run_id != run.as_str() {
                return Err(JournalError::ForeignRun {
                    at: at(),
                    expected: run.clone(),
                    found: run_id,
                });
            }
            *slot = Some(LoadedRun::new(run.clone(), at(), definition, time));
        }
        (None, _) => return Err(corrupt("the first line is not a head line".to_owned())),
        (Some(_), Line::Head { .. }) => {
            return Err(corrupt("a second head line".to_owned()));
        }
        (Some(run), Line::Definition { tasks, .. }) => run.redefine(tasks, at()),
        (Some(run), Line::Task { task_id, record }) => {
            if !run.definition.has_record_for(&task_id) {
                return Err(corrupt(format!(
                    "task `{task_id}` is not in the run's workflow"
                )));
            }
            run.push(task_id, record);
        }
        (Some(run), Line::End { status, time }) => run.ended(status, time),
    }
    Ok(())
}

/// Whether `torn`, an incomplete last line, could be the start of a journal line (each
/// begins with its format version) cut short, or the zeros a file system may leave where
/// a write was lost.
fn could_start_a_line(torn: &[u8]) -> bool {
    torn.starts_with(HEAD_START) || HEAD_START.starts_with(torn) || zeros(torn)
}

/// How every line of a journal begins.
const HEAD_START: &[u8] = br#"{"v":"#;

/// A disk sector: the fewest zero bytes in a row that a lost write of whole blocks
/// leaves. A line that runs into such a block reads on through all of it (its line break
/// was lost too).
const LOST_WRITE: usize = 512;

/// Whether `line`, starting at byte `at` of its file, holds what a lost write leaves:
/// [`LOST_WRITE`] zero bytes in a row, or zeros from its start to the end of a sector
/// (the rest of a block whose rewrite was lost: the lines appended into it after the
/// last one it held on disk, of which any length may be left).
fn lost_write(line: &[u8], at: u64) -> bool {
    let leading = line.iter().take_while(|&&b| b == 0).count() as u64;
    (leading > 0 && (at + leading).is_multiple_of(LOST_WRITE as u64))
        || (line.split(|&b| b != 0)).any(|zeros| zeros.len() >= LOST_WRITE)
}

/// Whether `bytes` are all zeros (what a file system may leave of a write a crash cut).
fn zeros(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Reads the next complete line of `lines` into `buf`, without its newline; `false` at
/// the end, where what follows the last complete line, if anything, is a torn line and
/// left out. A line longer than `max_line` bytes is refused as corrupt at `at()`, unless
/// it is that torn last line.
pub(crate) fn next_line(
    lines: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max_line: u64,
    path: &Path,
    at: impl FnOnce() -> String,
) -> Result<bool, JournalError> {
    buf.clear();
    let read = (&mut *lines).take(max_line + 1).read_until(b'\n', buf);
    read.map_err(|e| JournalError::io("read", path, e))?;
    if buf.pop_if(|last| *last == b'\n').is_some() {
        return Ok(true);
    }
    if buf.len() as u64 > max_line && ends_in_newline(lines, path)? {
        return Err(JournalError::Corrupt {
            at: at(),
            reason: format!("a line longer than {max_line} bytes"),
        });
    }
    Ok(false)
}

/// Whether the rest of `lines` holds a newline, read through without being kept.
fn ends_in_newline(lines: &mut impl BufRead, path: &Path) -> Result<bool, JournalError> {
    loop {
        let chunk = lines
            .fill_buf()
            .map_err(|e| JournalError::io("read", path, e))?;
        if chunk.is_empty() {
            return Ok(false);
        }
        if chunk.contains(&b'\n') {
            return Ok(true);
        }
        let len = chunk.len();
        lines.consume(len);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use orch_core::{Task, Workflow};

    use super::*;
    use crate::definition::Definition;

    /// A run's head line, then `rest`.
    fn journal(run: &RunId, rest: &[u8]) -> Vec<u8> {
        let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
        let mut bytes = Vec::new();
        line::write_head(
            &mut bytes,
            run,
            &Definition::of(&workflow),
            SystemTime::now(),
        )
        .expect("a head line");
        bytes.extend_from_slice(rest);
        bytes
    }

    #[test]
    fn only_a_sector_of_zeros_in_a_file_ends_the_journal() {
        let run = RunId::parse("r").expect("a run id");
        let path = Path::new("r.jsonl");
        let head = journal(&run, b"").len() as u64;
        let with = |zeros: usize| {
            let mut rest = vec![b'{'; 3];
            rest.extend(std::iter::repeat_n(0, zeros));
            rest.extend_from_slice(b"}\n");
            journal(&run, &rest)
        };
        let lost = with(LOST_WRITE);
        let read = read_lines_within(path, &run, &lost[..], MAX_LINE, true).expect("read");
        assert_eq!((read.valid_len, read.next_seq), (head, 1));
        // A stray zero byte, or zeros kept somewhere other than a file, are corrupt.
        let corrupt = |read: Result<ReadRun, JournalError>| matches!(read, Err(JournalError::Corrupt { at, .. }) if at == "r.jsonl, line 2");
        let stray = with(1);
        assert!(corrupt(read_lines_within(
            path,
            &run,
            &stray[..],
            MAX_LINE,
            true
        )));
        assert!(corrupt(read_lines(path, &run, &lost[..], false)));
        // Fewer zeros, from a line's start to a sector's end, then what later writes left
        // in the next block: the rest of a block whose rewrite was lost.
        let rest_of_block = 512 - (head as usize % 512);
        let mut lost_tail = vec![0; rest_of_block];
        lost_tail.extend_from_slice(b"k\":1}\n");
        let lost = journal(&run, &lost_tail);
        let read = read_lines_within(path, &run, &lost[..], MAX_LINE, true).expect("read");
        assert_eq!((read.valid_len, read.next_seq), (head, 1));
        // One zero fewer ends short of the sector: a stray run of zeros, corrupt.
        let short = journal(&run, &lost_tail[1..]);
        assert!(corrupt(read_lines_within(
            path,
            &run,
            &short[..],
            MAX_LINE,
            true
        )));
    }

    #[test]
    fn a_line_past_the_longest_is_corrupt_and_a_torn_one_that_long_is_left_out() {
        let run = RunId::parse("r").expect("a run id");
        let path = Path::new("r.jsonl");
        let head = journal(&run, b"").len() as u64;
        // The head line fits; the next is twice as long as allowed.
        let max = head;
        let long = vec![b'x'; 2 * max as usize];

        let mut complete = long.clone();
        complete.push(b'\n');
        let read = read_lines_within(path, &run, &journal(&run, &complete)[..], max, true);
        match read {
            Err(JournalError::Corrupt { at, reason }) => {
                assert_eq!(at, "r.jsonl, line 2");
                assert_eq!(reason, format!("a line longer than {max} bytes"));
            }
            Err(other) => panic!("expected a corrupt line, got {other}"),
            Ok(_) => panic!("expected a corrupt line, got a run"),
        }

        let read = read_lines_within(path, &run, &journal(&run, &long)[..], max, true);
        let read = read.unwrap_or_else(|e| panic!("a torn tail is left out: {e}"));
        assert_eq!(read.valid_len, head);
        assert_eq!(read.next_seq, 1);
    }
}
