//! The journal's line format, version 1: one JSON object per line, each with the format
//! version `v`, its sequence number `seq` and its `kind`.
//!
//! ```text
//! {"v":1,"seq":0,"kind":"head","run_id":"r1","workflow_id":"etl","name":"ETL","time":"…","tasks":{"load":"<fingerprint>",…}}
//! {"v":1,"seq":1,"kind":"task","task_id":"load","attempt":1,"status":"completed","start":"…","end":"…","result":{…}}
//! {"v":1,"seq":2,"kind":"task","task_id":"clean","attempt":3,"status":"failed","start":"…","end":"…","error":"…"}
//! {"v":1,"seq":3,"kind":"definition","time":"…","tasks":{…},"followed_by":1}
//! {"v":1,"seq":4,"kind":"end","status":"failed","time":"…"}
//! ```
//!
//! Times are RFC 3339 in UTC with nanoseconds. A `definition` line records the workflow's
//! tasks again when a run was resumed with a workflow that gained, lost or changed tasks;
//! it is written with the first lines the resumed run writes, in the same write, and says
//! how many lines follow it there (`followed_by`): a write cut short (the process killed
//! during it, or power lost before its sync) is read as not made at all, so the new
//! definition never stands without the resets written with it. (Definition lines
//! written before this count existed are taken as they are.) A run that had ended and
//! is opened again gets a definition line of the definition it has, followed by no
//! lines, at once: it is going on, no longer ended.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indexmap::IndexMap;
use orch_core::{RunId, TaskId, TaskRecord, TaskStatus, WorkflowStatus};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::JournalError;
use crate::definition::Definition;

/// The format version this crate writes, and the newest it reads.
pub(crate) const FORMAT: u64 = 1;

/// One line, read back.
#[derive(Debug)]
pub(crate) enum Line {
    Head {
        run_id: String,
        definition: Definition,
        time: SystemTime,
    },
    Definition {
        tasks: IndexMap<TaskId, String>,
        /// How many lines were written with it, after it (none said in lines written
        /// before versions that count them).
        followed_by: Option<u64>,
    },
    Task {
        task_id: TaskId,
        record: TaskRecord,
    },
    End {
        status: WorkflowStatus,
        time: SystemTime,
    },
}

/// Why a line cannot be read.
#[derive(Debug)]
pub(crate) enum LineError {
    /// Written by a newer format version.
    Newer(u64),
    /// Not a line of this format.
    Bad(String),
}

#[derive(Serialize)]
struct HeadOut<'a> {
    v: u64,
    seq: u64,
    kind: &'static str,
    run_id: &'a RunId,
    workflow_id: &'a str,
    name: &'a str,
    time: String,
    tasks: &'a IndexMap<TaskId, String>,
}

#[derive(Serialize)]
struct DefinitionOut<'a> {
    v: u64,
    seq: u64,
    kind: &'static str,
    time: String,
    tasks: &'a IndexMap<TaskId, String>,
    /// How many lines follow it in the same write: a reader that finds fewer (the write
    /// was cut short) takes none of them, nor the definition.
    followed_by: u64,
}

#[derive(Serialize)]
struct TaskOut<'a> {
    v: u64,
    seq: u64,
    kind: &'static str,
    task_id: &'a TaskId,
    attempt: u32,
    status: TaskStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// The output was an in-process value: `result` holds only its summary.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    shared_output: bool,
    /// The result came from the engine's cache; the handler did not run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cached: bool,
    /// The direct dependents a branch task chose to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    chosen_branches: Option<&'a [TaskId]>,
}

#[derive(Serialize)]
struct EndOut {
    v: u64,
    seq: u64,
    kind: &'static str,
    status: WorkflowStatus,
    time: String,
}

/// Appends the head line (with its newline) to `buf`.
pub(crate) fn write_head(
    buf: &mut Vec<u8>,
    run_id: &RunId,
    definition: &Definition,
    time: SystemTime,
) -> Result<(), JournalError> {
    let line = HeadOut {
        v: FORMAT,
        seq: 0,
        kind: "head",
        run_id,
        workflow_id: &definition.workflow_id,
        name: &definition.name,
        time: format_now(time),
        tasks: &definition.tasks,
    };
    finish_line(buf, &line)
}

/// Appends to `buf` a definition line, then the lines `write` makes (given the sequence
/// number of the first; it returns how many it wrote), which the definition line counts.
/// Returns how many lines it appended, the definition's included: none when `write`
/// makes none (a definition stands only with the lines that go with it, such as the
/// resets its changes make, so it waits for the next lines).
pub(crate) fn write_redefined(
    buf: &mut Vec<u8>,
    seq: u64,
    definition: &Definition,
    write: impl FnOnce(&mut Vec<u8>, u64) -> Result<u64, JournalError>,
) -> Result<u64, JournalError> {
    let mut rest = Vec::new();
    let followed_by = write(&mut rest, seq + 1)?;
    if followed_by == 0 {
        return Ok(0);
    }
    write_definition(buf, seq, definition, followed_by)?;
    buf.extend_from_slice(&rest);
    Ok(1 + followed_by)
}

/// Appends to `buf` a definition line that `followed_by` lines follow in the same write
/// (none for the line that marks a run that had ended going on again).
pub(crate) fn write_definition(
    buf: &mut Vec<u8>,
    seq: u64,
    definition: &Definition,
    followed_by: u64,
) -> Result<(), JournalError> {
    let line = DefinitionOut {
        v: FORMAT,
        seq,
        kind: "definition",
        time: format_now(SystemTime::now()),
        tasks: &definition.tasks,
        followed_by,
    };
    finish_line(buf, &line)
}

/// Appends a task line to `buf`; on error, `buf` is left as it was.
pub(crate) fn write_task(
    buf: &mut Vec<u8>,
    seq: u64,
    task_id: &TaskId,
    record: &TaskRecord,
) -> Result<(), JournalError> {
    write_task_within(buf, seq, task_id, record, crate::read::MAX_LINE)
}

/// [`write_task`], refusing a line longer than `max_line` bytes (its newline not counted),
/// which the journal could not read back.
fn write_task_within(
    buf: &mut Vec<u8>,
    seq: u64,
    task_id: &TaskId,
    record: &TaskRecord,
    max_line: u64,
) -> Result<(), JournalError> {
    let time = |field, t: Option<SystemTime>| {
        t.map(format_time)
            .transpose()
            .map_err(|reason| JournalError::InvalidRecord {
                task: task_id.clone(),
                field,
                reason,
            })
    };
    if let Some(result) = &record.result {
        check_depth(result).map_err(|reason| JournalError::InvalidRecord {
            task: task_id.clone(),
            field: "result",
            reason,
        })?;
    }
    let line = TaskOut {
        v: FORMAT,
        seq,
        kind: "task",
        task_id,
        attempt: record.attempts,
        status: record.status,
        start: time("start_time", record.start_time)?,
        end: time("end_time", record.end_time)?,
        result: record.result.as_ref(),
        error: record.error.as_deref(),
        shared_output: record.shared_output,
        cached: record.cached,
        chosen_branches: record.chosen_branches.as_deref(),
    };
    let len = buf.len();
    finish_line(buf, &line).map_err(|e| {
        buf.truncate(len);
        match e {
            JournalError::InvalidRecord { reason, .. } => JournalError::InvalidRecord {
                task: task_id.clone(),
                field: "result",
                reason,
            },
            other => other,
        }
    })?;
    let written = (buf.len() - len - 1) as u64;
    if written > max_line {
        buf.truncate(len);
        // The error text, when there is no result or it is most of the line (before
        // escaping, which may grow it: `\u0001` for a control character); else the result.
        let error_len = record.error.as_ref().map_or(0, String::len) as u64;
        return Err(JournalError::InvalidRecord {
            task: task_id.clone(),
            field: if record.result.is_none() || error_len > written / 2 {
                "error"
            } else {
                "result"
            },
            reason: format!(
                "its journal line would be {written} bytes, and a journal line holds at most \
                 {max_line}"
            ),
        });
    }
    Ok(())
}

/// Appends an end line to `buf`.
pub(crate) fn write_end(
    buf: &mut Vec<u8>,
    seq: u64,
    status: WorkflowStatus,
    time: SystemTime,
) -> Result<(), JournalError> {
    let line = EndOut {
        v: FORMAT,
        seq,
        kind: "end",
        status,
        time: format_now(time),
    };
    finish_line(buf, &line)
}

fn finish_line(buf: &mut Vec<u8>, line: &impl Serialize) -> Result<(), JournalError> {
    let start = buf.len();
    serde_json::to_writer(&mut *buf, line).map_err(|e| JournalError::InvalidRecord {
        task: TaskId::from(""),
        field: "line",
        reason: e.to_string(),
    })?;
    crate::controls::escape_c1(buf, start);
    buf.push(b'\n');
    Ok(())
}

/// The deepest a value in a line may nest (arrays and objects within each other): lines
/// are read back with serde_json, which reads at most 127 levels of nesting, and the
/// line's own object is one of them.
pub(crate) const MAX_VALUE_DEPTH: usize = 126;

/// Refuses a value nested deeper than [`MAX_VALUE_DEPTH`], which would be written but
/// could not be read back; says how deep it is.
pub(crate) fn check_depth(value: &Value) -> Result<(), String> {
    // Each value with the depth of the array or object it is in (no recursion: the
    // value may be deeper than the stack allows).
    let mut deepest = 0;
    let mut pending = vec![(value, 0)];
    while let Some((value, depth)) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(fields) => {
                pending.extend(fields.values().map(|field| (field, depth + 1)))
            }
            _ => continue,
        }
        deepest = deepest.max(depth + 1);
    }
    if deepest > MAX_VALUE_DEPTH {
        return Err(format!(
            "it nests {deepest} levels deep, and a journal reads back at most {MAX_VALUE_DEPTH}"
        ));
    }
    Ok(())
}

/// The latest time RFC 3339 can write: the end of year 9999.
const MAX_SECS: u64 = 253_402_300_799;

fn format_time(time: SystemTime) -> Result<String, String> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) if d.as_secs() <= MAX_SECS => Ok(humantime::format_rfc3339_nanos(time).to_string()),
        _ => Err("time outside the years 1970 to 9999".to_owned()),
    }
}

/// The current time, as the journal writes it; a clock outside 1970..=9999 is clamped.
fn format_now(time: SystemTime) -> String {
    let clamped = match time.duration_since(UNIX_EPOCH) {
        Ok(d) if d.as_secs() > MAX_SECS => UNIX_EPOCH + Duration::from_secs(MAX_SECS),
        Ok(_) => time,
        Err(_) => UNIX_EPOCH,
    };
    humantime::format_rfc3339_nanos(clamped).to_string()
}

fn parse_time(field: &str, text: &str) -> Result<SystemTime, LineError> {
    humantime::parse_rfc3339(text)
        .map_err(|e| LineError::Bad(format!("field `{field}`: invalid time {text:?}: {e}")))
}

#[derive(Deserialize)]
struct Probe {
    v: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Head,
    Definition,
    Task,
    End,
}

#[derive(Deserialize)]
struct RawLine {
    seq: u64,
    kind: Kind,
    run_id: Option<String>,
    workflow_id: Option<String>,
    name: Option<String>,
    time: Option<String>,
    tasks: Option<IndexMap<TaskId, String>>,
    task_id: Option<TaskId>,
    attempt: Option<u32>,
    status: Option<String>,
    start: Option<String>,
    end: Option<String>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    error: Option<String>,
    #[serde(default)]
    shared_output: bool,
    #[serde(default)]
    cached: bool,
    chosen_branches: Option<Vec<TaskId>>,
    followed_by: Option<u64>,
}

/// A field that is present is `Some`, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn need<T>(field: &str, value: Option<T>) -> Result<T, LineError> {
    value.ok_or_else(|| LineError::Bad(format!("missing field `{field}`")))
}

/// Reads one line (without its newline): its sequence number and content.
pub(crate) fn parse(bytes: &[u8]) -> Result<(u64, Line), LineError> {
    // Lines this version writes start with their version; others are probed first, so
    // that a newer format is reported as such rather than as a line that does not parse.
    if !bytes.starts_with(b"{\"v\":1,") {
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| LineError::Bad(format!("not a journal line: {e}")))?;
        if probe.v > FORMAT {
            return Err(LineError::Newer(probe.v));
        }
        if probe.v != FORMAT {
            return Err(LineError::Bad(format!(
                "unknown format version {}",
                probe.v
            )));
        }
    }
    let raw: RawLine = serde_json::from_slice(bytes)
        .map_err(|e| LineError::Bad(format!("not a journal line: {e}")))?;
    let time = |raw: Option<String>| parse_time("time", &need("time", raw)?);
    let line = match raw.kind {
        Kind::Head => Line::Head {
            run_id: need("run_id", raw.run_id)?,
            definition: Definition {
                workflow_id: need("workflow_id", raw.workflow_id)?,
                name: need("name", raw.name)?,
                tasks: need("tasks", raw.tasks)?,
            },
            time: time(raw.time)?,
        },
        Kind::Definition => Line::Definition {
            tasks: need("tasks", raw.tasks)?,
            followed_by: raw.followed_by,
        },
        Kind::Task => {
            let status = need("status", raw.status)?;
            let status = task_status(&status)
                .ok_or_else(|| LineError::Bad(format!("unknown task status {status:?}")))?;
            let start = raw.start.map(|t| parse_time("start", &t)).transpose()?;
            let end = raw.end.map(|t| parse_time("end", &t)).transpose()?;
            Line::Task {
                task_id: need("task_id", raw.task_id)?,
                record: TaskRecord {
                    status,
                    result: raw.result,
                    error: raw.error,
                    start_time: start,
                    end_time: end,
                    attempts: need("attempt", raw.attempt)?,
                    shared_output: raw.shared_output,
                    cached: raw.cached,
                    chosen_branches: raw.chosen_branches,
                },
            }
        }
        Kind::End => {
            let status = need("status", raw.status)?;
            let status = workflow_status(&status)
                .ok_or_else(|| LineError::Bad(format!("unknown run status {status:?}")))?;
            Line::End {
                status,
                time: time(raw.time)?,
            }
        }
    };
    Ok((raw.seq, line))
}

pub(crate) fn task_status(text: &str) -> Option<TaskStatus> {
    [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Skipped,
        TaskStatus::Cancelled,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
}

pub(crate) fn workflow_status(text: &str) -> Option<WorkflowStatus> {
    [
        WorkflowStatus::Completed,
        WorkflowStatus::Failed,
        WorkflowStatus::Cancelled,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A result `depth` arrays deep, in one task line, with objects at every other level.
    fn line_with_result_of_depth(depth: usize) -> Result<Vec<u8>, JournalError> {
        let mut result = Value::from(1);
        for level in 0..depth {
            result = match level % 2 {
                0 => Value::Array(vec![Value::Null, result]),
                _ => serde_json::json!({"x": result}),
            };
        }
        let record = TaskRecord {
            status: TaskStatus::Completed,
            result: Some(result),
            attempts: 1,
            ..TaskRecord::default()
        };
        let mut buf = Vec::new();
        write_task(&mut buf, 1, &TaskId::from("deep"), &record)?;
        Ok(buf)
    }

    #[test]
    fn a_result_as_deep_as_a_journal_reads_back_is_written_and_a_deeper_one_refused() {
        let buf = line_with_result_of_depth(MAX_VALUE_DEPTH).unwrap();
        let (_, line) = parse(&buf[..buf.len() - 1]).expect("it reads back");
        assert!(matches!(line, Line::Task { .. }));

        let error = line_with_result_of_depth(MAX_VALUE_DEPTH + 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "task `deep`: cannot record result: it nests 127 levels deep, and a journal \
             reads back at most 126"
        );
    }

    #[test]
    fn a_task_line_reads_back_as_written() {
        let start = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let record = TaskRecord {
            status: TaskStatus::Completed,
            result: Some(Value::Null),
            error: None,
            start_time: Some(start),
            end_time: Some(start + Duration::from_nanos(1)),
            attempts: 2,
            shared_output: true,
            cached: true,
            chosen_branches: Some(vec![TaskId::from("small"), TaskId::from("x\ty")]),
        };
        let mut buf = Vec::new();
        write_task(&mut buf, 7, &TaskId::from("a\n\"b"), &record).unwrap();
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        let (seq, line) = parse(&buf[..buf.len() - 1]).unwrap();
        assert_eq!(seq, 7);
        match line {
            Line::Task {
                task_id,
                record: read,
            } => {
                assert_eq!(task_id, "a\n\"b");
                assert_eq!(read, record);
            }
            other => panic!("read {other:?}"),
        }
    }

    #[test]
    fn times_before_1970_are_refused_not_panicked_on() {
        let record = TaskRecord {
            start_time: Some(UNIX_EPOCH - Duration::from_secs(1)),
            ..TaskRecord::default()
        };
        let mut buf = b"kept".to_vec();
        let err = write_task(&mut buf, 1, &TaskId::from("t"), &record).unwrap_err();
        assert_eq!(
            err.to_string(),
            "task `t`: cannot record start_time: time outside the years 1970 to 9999"
        );
        assert_eq!(buf, b"kept");
    }

    #[test]
    fn versions_are_told_apart() {
        assert!(matches!(
            parse(br#"{"v":2,"seq":1,"kind":"x"}"#),
            Err(LineError::Newer(2))
        ));
        assert!(matches!(
            parse(br#"{"seq":1,"v":0}"#),
            Err(LineError::Bad(_))
        ));
        assert!(matches!(parse(b"garbage"), Err(LineError::Bad(_))));
    }

    #[test]
    fn a_task_line_longer_than_a_journal_reads_is_refused_and_nothing_is_written() {
        let record = TaskRecord {
            status: TaskStatus::Completed,
            result: Some(Value::String("x".repeat(100))),
            attempts: 1,
            ..TaskRecord::default()
        };
        let id = TaskId::from("a");
        let mut buf = b"before\n".to_vec();
        let refused = write_task_within(&mut buf, 1, &id, &record, 100);
        match refused {
            Err(JournalError::InvalidRecord {
                task,
                field,
                reason,
            }) => {
                assert_eq!((task.as_str(), field), ("a", "result"));
                assert!(
                    reason.contains("a journal line holds at most 100"),
                    "{reason}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(buf, b"before\n");
        write_task_within(&mut buf, 1, &id, &record, 1000).expect("it fits");
        assert!(buf.len() > 107 && buf.ends_with(b"\n"));
        // A failure whose error is most of the line names its error.
        let failed = TaskRecord {
            status: TaskStatus::Failed,
            error: Some("e".repeat(100)),
            attempts: 1,
            ..TaskRecord::default()
        };
        let refused = write_task_within(&mut buf, 2, &id, &failed, 100);
        assert!(
            matches!(
                refused,
                Err(JournalError::InvalidRecord { field: "error", .. })
            ),
            "{refused:?}"
        );
        // So does one whose error, of control characters, grows six times escaped.
        let escaped = TaskRecord {
            error: Some("\u{1}".repeat(40)),
            ..failed
        };
        let refused = write_task_within(&mut buf, 3, &id, &escaped, 200);
        assert!(
            matches!(
                refused,
                Err(JournalError::InvalidRecord { field: "error", .. })
            ),
            "{refused:?}"
        );
    }
}
