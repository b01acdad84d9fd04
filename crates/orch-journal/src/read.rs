//! Reading a run's journal file back: every complete line checked, a torn last line left
//! out.

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

/// Reads the journal of `run` from `bytes`, the content of the file at `path`.
pub(crate) fn read_run(path: &Path, run: &RunId, bytes: &[u8]) -> Result<ReadRun, JournalError> {
    read_lines(path, run, bytes)
}

/// Reads the journal of `run` from `bytes`, its lines as kept at `path` (a file, or
/// another backend's name for where the run is).
pub(crate) fn read_lines(path: &Path, run: &RunId, bytes: &[u8]) -> Result<ReadRun, JournalError> {
    let at = |line: u64| format!("{}, line {line}", path.display());
    let mut loaded: Option<LoadedRun> = None;
    let mut pos = 0;
    let mut number = 0u64;
    while let Some(len) = bytes[pos..].iter().position(|&b| b == b'\n') {
        let text = &bytes[pos..pos + len];
        number += 1;
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
        let corrupt = |reason: String| JournalError::Corrupt {
            at: at(number),
            reason,
        };
        if seq != number - 1 {
            return Err(corrupt(format!(
                "sequence number {seq} where {} was expected (a line is missing or repeated)",
                number - 1
            )));
        }
        match (&mut loaded, parsed) {
            (
                None,
                Line::Head {
                    run_id,
                    definition,
                    time,
                },
            ) => {
                if run_id != run.as_str() {
                    return Err(JournalError::ForeignRun {
                        at: at(number),
                        expected: run.clone(),
                        found: run_id,
                    });
                }
                loaded = Some(LoadedRun::new(run.clone(), at(1), definition, time));
            }
            (None, _) => return Err(corrupt("the first line is not a head line".to_owned())),
            (Some(_), Line::Head { .. }) => {
                return Err(corrupt("a second head line".to_owned()));
            }
            (Some(run), Line::Definition { tasks }) => run.redefine(tasks),
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
        pos += len + 1;
    }
    match loaded {
        Some(run) => Ok(ReadRun {
            run,
            valid_len: pos as u64,
            next_seq: number,
        }),
        None => Err(JournalError::HeadMissing {
            path: path.to_owned(),
        }),
    }
}
