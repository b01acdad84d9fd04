//! [`ResultFile`]: task results kept in a file under 128-bit keys, beside a
//! [`FileJournal`]'s runs, so that cached results outlive the process that computed them.
//!
//! The file is JSON Lines, one result a line, appended as results come:
//!
//! ```text
//! {"v":1,"key":"0000000000000000000000000000002a","result":[1,2]}
//! ```
//!
//! A later line for the same key replaces an earlier one. Like a journal file, it is
//! created readable by its owner only. A line a process was writing when it died is left
//! out, and the file is never cut in place, since other processes may be appending to
//! it: a torn line stays in the file, and the next result appended after it (by any
//! process) is read back whole, unless the two make a line of 1 GiB or more: that line
//! is left out too. So is any other line that cannot be read (damaged, say by a power
//! loss, or of a newer format a later version of orch wrote): its result is computed
//! again, and [`ResultFile::left_out`] names each such line with its file and line
//! number.
//!
//! So that the file does not grow for ever, a store whose file holds, as far as it knows
//! (the lines it read when it opened or last rewrote the file, and those it appended
//! since), more than twice its capacity of lines (and more than 64) writes the results
//! it keeps to a new file, `<name>.new` beside it, and renames that over the old one (a
//! symbolic link is followed: the file it names is rewritten, with the same
//! permissions, owner and group, as far as the rewriting process may give them: a
//! process cannot give a file to another user, nor to a group it is not in). So the
//! file holds at most about that many lines per store appending to it. Every store appends under a shared lock on the file (`flock`) and rewrites under
//! an exclusive one, and a store that finds the file it holds replaced opens the new one
//! before appending; so no result appended by any store is lost to a rewrite. Lines it
//! could not read (torn, damaged, or of a newer format) are left out of the new file,
//! and so are results older than the rewriting store's capacity. A version of orch that
//! did not lock the file appends to the old file after a rewrite: do not share a file
//! with one. Where files have no identity to compare (not Unix), stores neither lock
//! nor rewrite the file, and on a file system without locks they append unlocked and
//! cannot rewrite it: there it keeps growing.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::Deserialize;
use serde_json::Value;

use crate::sync::lock;
use crate::{FileJournal, JournalError};

mod appender;
mod kept;
use appender::{Appender, open_for_append};
use kept::Kept;

/// The format of the lines this version writes, and the newest it reads.
const FORMAT: u64 = 1;

/// Task results in a file, by key, the ones it keeps also held in memory: `orch-engine`
/// implements its `CacheStore` for it, so that an engine given one
/// (`EngineBuilder::cache_store`) serves cached tasks from results that earlier
/// processes stored. Reads never touch the disk; each new result is one appended line,
/// written before [`ResultFile::put`] returns (it survives the process crashing, not a
/// power loss).
///
/// It keeps at most its capacity of results (10,000 unless opened
/// [`with a capacity`](ResultFile::open_with_capacity)), the most recently stored:
/// storing one more forgets the one stored longest ago. Once its file holds, as far as
/// it knows, more than twice its capacity of lines (and more than 64), it writes the
/// results it keeps to `<file name>.new` and renames that over the file, under a lock that makes other
/// stores' appends wait and then go to the new file, so no store's result is lost to
/// it. Stores sharing a file should be given the same capacity: a rewrite keeps the
/// rewriting store's number of results.
///
/// Several stores may append to one file, in one process or several; each reads what
/// the others wrote when it is opened and when it rewrites the file.
///
/// ```
/// use orch_journal::{FileJournal, ResultFile};
/// use serde_json::json;
///
/// let dir = tempfile::tempdir()?;
/// let journal = FileJournal::new(dir.path())?;
/// let results = ResultFile::beside(&journal)?;
/// results.put(42, json!([1, 2]))?;
/// // A later process opens the same file and finds the result.
/// let reopened = ResultFile::beside(&journal)?;
/// assert_eq!(reopened.get(42), Some(json!([1, 2])));
/// assert_eq!(reopened.path(), dir.path().join("results.cache"));
///
/// // A store that keeps fewer results.
/// let small = ResultFile::open_with_capacity(dir.path().join("small.cache"), 1)?;
/// small.put(1, json!("one"))?;
/// small.put(2, json!("two"))?;
/// assert_eq!((small.get(1), small.get(2)), (None, Some(json!("two"))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ResultFile {
    path: PathBuf,
    capacity: usize,
    appender: Mutex<Appender>,
    results: Mutex<Kept>,
    left_out: Vec<JournalError>,
}

/// One line of the file.
#[derive(Deserialize)]
struct Line {
    v: u64,
    key: String,
    result: Value,
}

/// One line of the file, written from the result without copying it.
#[derive(serde::Serialize)]
struct StoredLine<'a> {
    v: u64,
    key: String,
    result: &'a Value,
}

impl ResultFile {
    /// The file's name in a journal's directory: not a run's file (those end in
    /// `.jsonl`), so listing the journal's runs passes it by.
    pub const FILE_NAME: &'static str = "results.cache";

    /// How many results a store keeps unless opened with another capacity.
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// Opens (or creates) the results file in the directory of `journal`, keeping
    /// [`ResultFile::DEFAULT_CAPACITY`] results. For another capacity, open
    /// `journal.dir().join(ResultFile::FILE_NAME)` with
    /// [`ResultFile::open_with_capacity`].
    pub fn beside(journal: &FileJournal) -> Result<Self, JournalError> {
        Self::open(journal.dir().join(Self::FILE_NAME))
    }

    /// Opens the results file at `path`, keeping [`ResultFile::DEFAULT_CAPACITY`]
    /// results: see [`ResultFile::open_with_capacity`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, JournalError> {
        Self::open_with_capacity(path, Self::DEFAULT_CAPACITY)
    }

    /// Opens the results file at `path`, creating it if it does not exist, and reads
    /// the results in it, a line at a time, keeping the `results` stored last (none for
    /// 0: such a store keeps and writes nothing). A line that cannot be read is left
    /// out (see [`ResultFile::left_out`]): the file holds results that can be computed
    /// again, and refusing it would refuse every later one. Fails only when the file
    /// cannot be opened or read, or is not a regular file.
    pub fn open_with_capacity(
        path: impl Into<PathBuf>,
        results: usize,
    ) -> Result<Self, JournalError> {
        let path = path.into();
        let file = open_for_append(&path)?;
        // Reading a pipe would wait for a writer (this one) for ever, and a device may
        // never end.
        let meta = file
            .metadata()
            .map_err(|e| JournalError::io("open", &path, e))?;
        if !meta.is_file() {
            return Err(crate::file::not_a_regular_file("open", path));
        }
        // Read through the handle just checked, not the path opened again.
        let lines = file
            .try_clone()
            .map_err(|e| JournalError::io("read", &path, e))?;
        let read = read(
            &path,
            std::io::BufReader::new(lines),
            crate::read::MAX_LINE,
            results,
        )?;
        Ok(Self {
            appender: Mutex::new(Appender {
                file,
                lines: read.lines,
                rewrite_past: rewrite_past(results),
            }),
            path,
            capacity: results,
            results: Mutex::new(read.kept),
            left_out: read.left_out,
        })
    }

    /// The lines that could not be read when the file was opened, each as the error
    /// naming its file and line ([`JournalError::Corrupt`], or
    /// [`JournalError::NewerFormat`] for a line a later version of orch wrote), the
    /// first 64 of them: their results are not served, and are computed again. A torn
    /// last line, which a process still writing it leaves, is not among them.
    pub fn left_out(&self) -> &[JournalError] {
        &self.left_out
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many results it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The result stored under `key`, if any.
    pub fn get(&self, key: u128) -> Option<Value> {
        self.results().get(key).cloned()
    }

    /// Stores `result` under `key`: appends it to the file, then keeps it in memory
    /// (forgetting the result stored longest ago if it keeps its capacity already).
    ///
    /// # Errors
    /// [`JournalError::InvalidResult`] for a result the file could not read back (nested
    /// deeper than 126 levels of arrays and objects, or a line of 1 GiB or more), and
    /// [`JournalError::Io`] when the file cannot be written, or stays locked by another
    /// process for more than 5 s (one stopped while it rewrote the file, say: a rewrite
    /// takes far less); the result is not stored either way. It waits for another
    /// store's rewrite, and may rewrite the file itself (see the type's docs). A
    /// rewrite that fails (a full disk, say) is no error: the file keeps growing, and
    /// the rewrite is tried again once it holds twice as many lines.
    pub fn put(&self, key: u128, result: Value) -> Result<(), JournalError> {
        self.put_within(key, result, crate::read::MAX_LINE)
    }

    /// [`ResultFile::put`], refusing a line longer than `max_line` bytes (its newline not
    /// counted), which [`ResultFile::open`] would leave out.
    fn put_within(&self, key: u128, result: Value, max_line: u64) -> Result<(), JournalError> {
        let invalid = |reason| JournalError::InvalidResult {
            path: self.path.clone(),
            key,
            reason,
        };
        crate::line::check_depth(&result).map_err(invalid)?;
        let mut text = line_text(key, &result);
        if text.len() as u64 > max_line {
            return Err(invalid(format!(
                "its line would be {} bytes, and a results file's line holds at most {max_line}",
                text.len()
            )));
        }
        if self.capacity == 0 {
            return Ok(());
        }
        text.push(b'\n');
        // Kept in memory while the file is still held: two results stored at once under
        // one key end in the same order in the file and here, so this process serves the
        // one later processes read back.
        let mut appender = lock(&self.appender);
        appender.append(&self.path, &text)?;
        self.results().insert(key, result);
        if appender.lines > appender.rewrite_past {
            self.rewrite(&mut appender);
        }
        Ok(())
    }

    /// How many results are stored.
    pub fn len(&self) -> usize {
        self.results().len()
    }

    /// Whether no result is stored.
    pub fn is_empty(&self) -> bool {
        self.results().len() == 0
    }

    fn results(&self) -> MutexGuard<'_, Kept> {
        lock(&self.results)
    }

    /// Rewrites the file with the results it keeps, reading what other stores appended
    /// too, and keeps those results in memory. If that fails, tries again once the file
    /// holds twice as many lines (so that a rewrite that keeps failing reads the growing
    /// file a number of times that grows only with the logarithm of its length).
    fn rewrite(&self, appender: &mut Appender) {
        appender.rewrite_past = (appender.lines.saturating_mul(2))
            .max(appender.lines.saturating_add(rewrite_past(self.capacity)));
        if let Ok(kept) = appender.rewrite(&self.path, self.capacity) {
            *self.results() = kept;
            appender.rewrite_past = rewrite_past(self.capacity);
        }
    }
}

/// How many lines a store appends to a file it has read before it rewrites it: never
/// where stores cannot lock the file and tell it from its replacement.
fn rewrite_past(capacity: usize) -> u64 {
    match cfg!(unix) {
        true => (capacity as u64).saturating_mul(2).max(64),
        false => u64::MAX,
    }
}

/// The line (without its newline) that stores `result` under `key`.
fn line_text(key: u128, result: &Value) -> Vec<u8> {
    let line = StoredLine {
        v: FORMAT,
        key: format!("{key:032x}"),
        result,
    };
    // A JSON value always prints.
    serde_json::to_vec(&line).unwrap_or_default()
}

/// What reading a results file found.
struct FileRead {
    /// The results stored last, as many as were asked for.
    kept: Kept,
    /// The lines read, whether they could be read or not.
    lines: u64,
    /// The lines left out, the first [`MOST_LEFT_OUT`] of them.
    left_out: Vec<JournalError>,
}

/// The `capacity` results stored last in `lines`, kept at `path`, a line (of at most
/// `max_line` bytes) at a time, and the errors of the lines left out. A last line
/// without its newline is a write still going on or cut short by a crash, and is left
/// out silently; so is a line longer than `max_line`, which only a torn line with a long
/// result appended after it makes.
fn read(
    path: &Path,
    mut lines: impl std::io::BufRead,
    max_line: u64,
    capacity: usize,
) -> Result<FileRead, JournalError> {
    let mut kept = Kept::new(capacity);
    let mut left_out = Vec::new();
    let mut number = 0;
    let mut buf = Vec::new();
    let at = |number: u64| format!("{}, line {number}", path.display());
    loop {
        match crate::read::next_line(&mut lines, &mut buf, max_line, path, || at(number + 1)) {
            Ok(true) => {}
            Ok(false) => break,
            // Past the longest line: read through to its end without keeping it.
            Err(JournalError::Corrupt { .. }) => {
                number += 1;
                lines
                    .skip_until(b'\n')
                    .map_err(|e| JournalError::io("read", path, e))?;
                continue;
            }
            Err(error) => return Err(error),
        }
        number += 1;
        match result_line(&buf, || at(number)) {
            Ok((key, result)) => kept.insert(key, result),
            Err(error) if left_out.len() < MOST_LEFT_OUT => left_out.push(error),
            Err(_) => {}
        }
    }
    Ok(FileRead {
        kept,
        lines: number,
        left_out,
    })
}

/// The key and result of line `bytes`, found at `at()`; why it cannot be read if not.
fn result_line(bytes: &[u8], at: impl Fn() -> String) -> Result<(u128, Value), JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt { at: at(), reason };
    let line = parse_line(bytes).map_err(|e| corrupt(format!("not a result line: {e}")))?;
    if line.v > FORMAT {
        return Err(JournalError::NewerFormat {
            at: at(),
            found: line.v,
            supported: FORMAT,
        });
    }
    let key = u128::from_str_radix(&line.key, 16)
        .ok()
        .filter(|_| line.key.len() == 32)
        .ok_or_else(|| corrupt(format!("key `{}` is not 32 hexadecimal digits", line.key)))?;
    Ok((key, line.result))
}

/// The most lines left out that [`ResultFile::left_out`] names: a file damaged all
/// through would otherwise hold an error per line in memory.
const MOST_LEFT_OUT: usize = 64;

/// Where a line starts: every line is written starting with these bytes.
const LINE_START: &[u8] = b"{\"v\":";

/// The most places a bad line is tried at, from its end: more would mean results that
/// hold that many objects shaped exactly like this file's lines.
const MOST_TRIES: usize = 64;

/// A line read where a torn one left off: exactly the fields a line has.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictLine {
    v: u64,
    key: String,
    result: Value,
}

/// One line of the file. A line that does not parse may be a torn write (a process died
/// in the middle of a line) with the next appended line right after it: then the line
/// is the last place a line starts from which the rest parses. No later place can parse
/// by chance: it would be an object nested in the line, followed by the line's own
/// closing brace.
///
/// Only places that start as a line does (`{"v":N,"key":"<32 hex digits>","result":`)
/// are tried, the last [`MOST_TRIES`] of them, with no field but a line's: each try
/// reads only what a line at that place holds, so a long bad line costs time in
/// proportion to its length.
fn parse_line(bytes: &[u8]) -> Result<Line, serde_json::Error> {
    serde_json::from_slice(bytes).or_else(|error| {
        // A line ends with its object's closing brace; without one, no place can parse.
        let tries = if bytes.ends_with(b"}") {
            bytes.len()
        } else {
            1
        };
        (1..tries)
            .rev()
            .filter(|&at| starts_a_line(&bytes[at..]))
            .take(MOST_TRIES)
            .find_map(|at| serde_json::from_slice::<StrictLine>(&bytes[at..]).ok())
            .map(|line| Line {
                v: line.v,
                key: line.key,
                result: line.result,
            })
            .ok_or(error)
    })
}

/// Whether `bytes` starts as a line this format writes: `{"v":N,"key":"<32 hex
/// digits>","result":`.
fn starts_a_line(bytes: &[u8]) -> bool {
    let Some(rest) = bytes.strip_prefix(LINE_START) else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let Some(rest) = rest[digits..].strip_prefix(b",\"key\":\"") else {
        return false;
    };
    digits > 0
        && rest.len() > 32
        && rest[..32].iter().all(u8::is_ascii_hexdigit)
        && rest[32..].starts_with(b"\",\"result\":")
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use serde_json::json;

    use super::*;

    /// The results `read` keeps (as many as a default store) and the lines it left out.
    fn read_all(
        path: &Path,
        bytes: &[u8],
        max_line: u64,
    ) -> Result<(Kept, Vec<JournalError>), JournalError> {
        let read = read(path, bytes, max_line, ResultFile::DEFAULT_CAPACITY)?;
        Ok((read.kept, read.left_out))
    }

    #[cfg(unix)]
    #[test]
    fn a_pipe_or_a_device_is_refused_rather_than_read_for_ever() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pipe = dir.path().join("r.cache");
        let made = std::process::Command::new("mkfifo").arg(&pipe).status();
        assert!(made.expect("mkfifo runs").success());
        for path in [pipe, PathBuf::from("/dev/zero")] {
            let (sender, opened) = std::sync::mpsc::channel();
            let opening = path.clone();
            std::thread::spawn(move || sender.send(ResultFile::open(opening).err()));
            // A guard against reading for ever, not a measure.
            let error = opened
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("refused at once")
                .expect("not a regular file");
            assert!(error.to_string().contains("not a regular file"), "{error}");
            assert!(error.to_string().contains(&path.display().to_string()));
        }
    }

    #[test]
    fn a_result_too_deep_to_read_back_is_not_stored() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("r.cache");
        let file = ResultFile::open(&path).expect("created");
        let deep = (0..200).fold(json!(1), |inner, _| json!([inner]));
        let error = file.put(1, deep).expect_err("too deep");
        assert!(
            matches!(error, JournalError::InvalidResult { key: 1, .. }),
            "{error}"
        );
        file.put(2, json!("two")).expect("stored");
        drop(file);
        let reopened = ResultFile::open(&path).expect("the file reads back");
        assert_eq!(
            (reopened.get(1), reopened.get(2)),
            (None, Some(json!("two")))
        );
    }

    #[test]
    fn a_result_whose_line_the_file_could_not_read_back_is_not_stored() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("r.cache");
        let file = ResultFile::open(&path).expect("created");
        let error = (file.put_within(3, json!("x".repeat(100)), 64)).expect_err("too long");
        assert!(
            matches!(&error, JournalError::InvalidResult { key: 3, reason, .. }
                if reason.contains("holds at most 64")),
            "{error}"
        );
        file.put_within(4, json!("four"), 64).expect("stored");
        assert_eq!((file.get(3), file.get(4)), (None, Some(json!("four"))));
        // What was written reads back with the same limit.
        let written = std::fs::read(&path).expect("readable");
        let (results, left_out) = read_all(&path, written.as_slice(), 64).expect("read");
        assert_eq!((results.len(), left_out.len()), (1, 0));
    }

    #[test]
    fn a_file_damaged_all_through_names_only_the_first_lines_left_out() {
        let text = "not a line\n".repeat(MOST_LEFT_OUT + 100);
        let (results, left_out) =
            read_all(Path::new("r.cache"), text.as_bytes(), 64).expect("read");
        assert_eq!((results.len(), left_out.len()), (0, MOST_LEFT_OUT));
        assert!(
            left_out[0].to_string().contains("line 1:"),
            "{}",
            left_out[0]
        );
    }

    #[test]
    fn a_line_past_the_longest_is_left_out_and_the_lines_after_it_read() {
        let path = Path::new("r.cache");
        let line = |key: u128| format!(r#"{{"v":1,"key":"{key:032x}","result":{key}}}"#);
        let good = line(7);
        // A torn line with a whole one appended after it, past the longest together.
        let long = format!("{}{}", &good[..good.len() - 3], line(8));
        let text = format!("{good}\n{long}\n{}\n", line(9));
        let (results, left_out) = read_all(path, text.as_bytes(), good.len() as u64).expect("read");
        assert!(left_out.is_empty(), "{left_out:?}");
        assert_eq!(
            (results.get(7), results.get(8), results.get(9)),
            (Some(&json!(7)), None, Some(&json!(9)))
        );
        // A bad line after it is left out with its place, counted past the long one.
        let text = format!("{good}\n{long}\nnot a line\n");
        let (_, left_out) = read_all(path, text.as_bytes(), good.len() as u64).expect("read");
        match &left_out[..] {
            [JournalError::Corrupt { at, .. }] => assert_eq!(at, "r.cache, line 3"),
            other => panic!("expected a corrupt line, got {other:?}"),
        }
        let long = "x".repeat(2 * good.len());
        let torn = format!("{good}\n{long}");
        let (results, left_out) =
            read_all(path, torn.as_bytes(), good.len() as u64).expect("the torn line is left out");
        assert_eq!((results.get(7), left_out.len()), (Some(&json!(7)), 0));
    }

    #[test]
    fn a_torn_last_line_is_left_out_silently_and_a_bad_line_with_its_place() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("r.cache");
        let first = ResultFile::open(&path).expect("created");
        first.put(1, json!("one")).expect("stored");
        first.put(1, json!("uno")).expect("replaced");
        drop(first);
        let mut bytes = std::fs::read(&path).expect("readable");
        bytes.extend_from_slice(br#"{"v":1,"key":"00"#);
        std::fs::write(&path, &bytes).expect("torn");
        let reopened = ResultFile::open(&path).expect("the torn line is left out");
        assert_eq!((reopened.get(1), reopened.len()), (Some(json!("uno")), 1));
        assert_eq!(
            std::fs::read(&path).expect("readable"),
            bytes,
            "nothing cut"
        );
        reopened
            .put(2, json!(2))
            .expect("appended after the torn line");
        let again = ResultFile::open(&path).expect("the line after the torn one reads");
        assert_eq!(
            (again.get(1), again.get(2)),
            (Some(json!("uno")), Some(json!(2)))
        );

        // Lines that cannot be read are left out, named, and the lines after them read.
        let good = format!("{{\"v\":1,\"key\":\"{:032x}\",\"result\":\"kept\"}}\n", 4);
        let newer = format!("{{\"v\":2,\"key\":\"{:032x}\",\"result\":1}}\n", 3);
        let text = format!("{{\"v\":1,\"key\":\"xyz\",\"result\":1}}\n{newer}{good}");
        std::fs::write(&path, text).expect("bad lines");
        let opened = ResultFile::open(&path).expect("opens without the bad lines");
        assert_eq!((opened.len(), opened.get(4)), (1, Some(json!("kept"))));
        let left_out = opened.left_out();
        assert_eq!(left_out.len(), 2);
        assert_eq!(
            left_out[0].to_string(),
            format!(
                "{}, line 1: key `xyz` is not 32 hexadecimal digits",
                path.display()
            )
        );
        assert!(matches!(
            left_out[1],
            JournalError::NewerFormat { found: 2, .. }
        ));
    }

    /// A store stays open while another process dies in the middle of a line; the
    /// store's next line lands right after the torn one, and the file still reads whole,
    /// with nested objects of the same shape as a line in the results.
    #[test]
    fn a_line_appended_after_another_writers_torn_line_is_read_back() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("r.cache");
        let open_before = ResultFile::open(&path).expect("created");
        open_before.put(1, json!(1)).expect("stored");
        let nested = json!({"v": 1, "key": format!("{:032x}", 9), "result": [{"v": 2}]});
        let died_mid_line = format!(r#"{{"v":1,"key":"{:032x}","result":{{"v":"#, 5);
        let mut appender = crate::file::options()
            .append(true)
            .open(&path)
            .expect("opened");
        appender.write_all(died_mid_line.as_bytes()).expect("torn");
        open_before.put(2, nested.clone()).expect("appended");
        open_before.put(3, json!("three")).expect("appended");

        let reopened = ResultFile::open(&path).expect("every whole line reads");
        assert_eq!(reopened.len(), 3);
        assert_eq!(reopened.get(2), Some(nested));
        assert_eq!(reopened.get(3), Some(json!("three")));
        assert_eq!(reopened.get(5), None);

        // Long bad lines are left out in time in proportion to their length (trying
        // every place that starts like a line took time in their square).
        for piece in [
            r#"{"v":1,"x":"#.to_owned(),
            format!(r#"{{"v":1,"key":"{:032x}","result":"#, 7),
        ] {
            for end in ["\n", "}\n"] {
                let long = piece.repeat(2_000_000 / piece.len()) + end;
                let bad = dir.path().join("long.cache");
                std::fs::write(&bad, long).expect("written");
                let opened = ResultFile::open(&bad).expect("opens");
                let error = &opened.left_out()[0];
                assert!(
                    error.to_string().contains("line 1: not a result line"),
                    "{error}"
                );
            }
        }

        // A line no torn write explains, and one a power loss zeroed the start of.
        let mut damaged = std::fs::read(&path).expect("readable");
        damaged.extend_from_slice(b"not a line {\"v\":1}\n");
        let zeroed = format!("{{\"v\":1,\"key\":\"{:032x}\",\"result\":6}}\n", 6);
        damaged.extend(
            zeroed
                .bytes()
                .enumerate()
                .map(|(i, b)| if i < 20 { 0 } else { b }),
        );
        damaged.extend_from_slice(zeroed.replace("6}", "\"six\"}").as_bytes());
        std::fs::write(&path, damaged).expect("written");
        let opened = ResultFile::open(&path).expect("opens without the damaged lines");
        let errors: Vec<String> = opened.left_out().iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("line 4: not a result line"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("line 5: not a result line"),
            "{errors:?}"
        );
        assert_eq!((opened.len(), opened.get(6)), (4, Some(json!("six"))));
    }
}
