//! Reading a [`Workflow`] from JSON, YAML or TOML, with errors that name the place.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

mod error;

pub use error::{Format, LoadError};
use error::{Problem, parse_error};
#[cfg(feature = "yaml")]
use error::{field_text, named_segments};

use crate::guard::{Guarded, Rules};
use crate::task::TaskSpec;
#[cfg(feature = "yaml")]
use crate::yaml_depth::Found;
#[cfg(feature = "yaml")]
use crate::yaml_place::value_at;
use crate::{Task, TaskId, Workflow};

#[cfg(feature = "yaml")]
/// What a YAML document may expand to through its aliases, per byte of the document: each
/// value read counts 8 (`guard::rules::VALUE_UNITS`), plus 1 per byte of its text (map keys
/// included), and a map with entries 32 more. A document without aliases takes at most
/// about 19 per byte (`[?:,?:]`: 56 units in 3 bytes).
const YAML_EXPANSION_PER_BYTE: u64 = 20;
/// The expansion allowed however small the document.
#[cfg(feature = "yaml")]
const YAML_EXPANSION_MIN: u64 = 16_384;

/// The most units a YAML document of `bytes` bytes may expand to.
#[cfg(feature = "yaml")]
fn yaml_expansion_limit(bytes: usize) -> u64 {
    (bytes as u64)
        .saturating_mul(YAML_EXPANSION_PER_BYTE)
        .max(YAML_EXPANSION_MIN)
}

/// How many elements of type `T` to make room for when a document claims to hold `hint`
/// of them: at most 1 MiB's worth, since the claim may be false (a binary format's length
/// prefix can claim 2^40 entries and hold none).
pub(crate) fn cautious_capacity<T>(hint: Option<usize>) -> usize {
    const MAX_BYTES: usize = 1024 * 1024;
    hint.unwrap_or(0)
        .min(MAX_BYTES / std::mem::size_of::<T>().max(1))
}

/// The text after a UTF-8 byte-order mark, if it starts with one.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

impl Workflow {
    /// Reads a workflow from JSON text.
    ///
    /// Tasks may be a map from id to task (the `task_id` inside may then be left out) or a
    /// list of tasks, each with its `task_id`. Unknown keys are errors, and so is anything
    /// but white space after the workflow. The workflow, each task and each `backoff` are
    /// maps of named fields: a list in their place is an error (as in YAML and TOML).
    ///
    /// ```
    /// use orch_core::Workflow;
    ///
    /// let workflow = Workflow::from_json(r#"{
    ///     "workflow_id": "etl", "name": "ETL",
    ///     "tasks": {
    ///         "load": {"task_type": "load"},
    ///         "clean": {"task_type": "clean", "dependencies": ["load"]}
    ///     }
    /// }"#)?;
    /// assert_eq!(workflow.execution_order().unwrap(), ["load", "clean"]);
    ///
    /// let err = Workflow::from_json(r#"{"workflow_id": "w", "tasks": [{"task_id": "a"}]}"#)
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("tasks[0]"), "{err}");
    /// # Ok::<(), orch_core::LoadError>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self, LoadError> {
        let text = without_bom(text);
        let mut de = serde_json::Deserializer::from_str(text);
        let rules = Rules::json();
        let workflow = serde_path_to_error::deserialize(Guarded::new(&mut de, &rules));
        let workflow = workflow.map_err(|e| {
            let line = e.inner().line();
            parse_error(Problem {
                format: Format::Json,
                path: e.path(),
                text: json_message(e.inner()),
                line: (line > 0).then_some(line),
                column: (line > 0).then(|| json_column(text, e.inner())),
            })
        })?;
        // Only white space may follow the workflow (a second one is not read silently).
        de.end().map_err(|e| LoadError::Parse {
            format: Format::Json,
            file: None,
            field: ".".into(),
            line: Some(e.line()),
            column: Some(json_column(text, &e)),
            message: "more text after the workflow's closing `}`".into(),
        })?;
        Ok(workflow)
    }

    /// Reads a workflow from YAML text; the shape is the same as for
    /// [`Workflow::from_json`].
    ///
    /// A null (`~`, `null` or nothing, unquoted) where text belongs, an id, a type or a
    /// name, is an error, as in JSON; quoted (`"~"`), it is that text. Keys are text as
    /// written.
    ///
    /// Anchors and aliases may be used, within a limit on what the document expands to
    /// (see [`LoadError::ExpansionLimit`]). Numbers must be finite: `.nan` and `.inf`
    /// are errors. Collections may nest at most 127 deep, the workflow itself counting
    /// as the first level (as in JSON); flow collections (`[..]`, `{..}`) nested deeper
    /// are refused before the document is parsed, since parsing them takes time that
    /// grows with the square of their depth. Merge keys (`<<: *defaults`) are refused, with
    /// their place: write the keys out. Both checks read the document with a YAML 1.2
    /// parser, which stops at some text the YAML reader accepts (a comment with no space
    /// before it, `{k: 1}#c`): past such a syntax error, a document that holds `<<`, or
    /// enough `[` and `{` that it could nest too deep, is refused with that error and its
    /// place. Needs the `yaml` feature (on by default).
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<Self, LoadError> {
        let text = without_bom(text);
        // The checks read the text with another parser: with libyaml's line breaks.
        let checked = crate::yaml_depth::with_libyaml_line_breaks(text);
        // Refused before the YAML parser reads the text: what it would make of it, at
        // the line it would name.
        let refused = |offset: usize, message: String| {
            let (line, column) = yaml_line_and_column(&checked, offset);
            LoadError::Parse {
                format: Format::Yaml,
                file: None,
                field: ".".into(),
                line: Some(line),
                column: Some(column),
                message,
            }
        };
        let limit = crate::yaml_depth::MAX_DEPTH;
        match crate::yaml_depth::too_deep(&checked) {
            Some(Found::At(offset)) => {
                let message = format!("collections nested deeper than {limit} levels");
                return Err(refused(offset, message));
            }
            Some(Found::Unreadable { offset, message }) => {
                let message = format!(
                    "{message}: past this point, the document cannot be checked for \
                     collections nested deeper than {limit} levels"
                );
                return Err(refused(offset, message));
            }
            None => {}
        }
        match crate::yaml_merge::merge_key(&checked) {
            Some(Found::At(offset)) => {
                let message = "merge keys (`<<`) are not supported: write the keys out, or \
                    quote `\"<<\"` for a key of that name";
                return Err(refused(offset, message.into()));
            }
            Some(Found::Unreadable { offset, message }) => {
                let message = format!(
                    "{message}: past this point, `<<` cannot be told from a merge key, \
                     which is not supported"
                );
                return Err(refused(offset, message));
            }
            None => {}
        }
        let rules = Rules::yaml(yaml_expansion_limit(text.len()));
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(Guarded::new(de, &rules)).map_err(|e| {
            let location = e.inner().location();
            let (mut line, mut column) = (
                location.as_ref().map(|l| l.line()),
                location.map(|l| l.column()),
            );
            let mut text = e.inner().to_string();
            // Placed at the map holding the null: placed again, at the null (when its
            // path leads there without an alias).
            let null_at = rules
                .null_refused()
                .then(|| value_at(&checked, e.path()))
                .flatten();
            if let Some((null_line, null_column)) =
                null_at.map(|o| yaml_line_and_column(&checked, o))
            {
                if let (Some(line), Some(column)) = (line, column) {
                    text = text.replacen(&format!(" at line {line} column {column}"), "", 1);
                }
                (line, column) = (Some(null_line), Some(null_column));
            }
            // Said without a place: the second document's start is it.
            let second = (text.contains("more than one document") && line.is_none())
                .then(|| crate::yaml_depth::second_document(&checked))
                .flatten();
            if let Some(at) = second {
                text = "more than one YAML document: a workflow file holds one".into();
                let (at_line, at_column) = yaml_line_and_column(&checked, at);
                (line, column) = (Some(at_line), Some(at_column));
            }
            match rules.exceeded() {
                Some(limit) => LoadError::ExpansionLimit {
                    file: None,
                    field: crate::error::shown(&field_text(&named_segments(e.path()))).into_owned(),
                    line,
                    column,
                    limit,
                },
                None => parse_error(Problem {
                    format: Format::Yaml,
                    path: e.path(),
                    text,
                    line,
                    column,
                }),
            }
        })
    }

    /// Reads a workflow from TOML text; the shape is the same as for
    /// [`Workflow::from_json`] (list form is an array of tables, `[[tasks]]`).
    ///
    /// Datetimes reach the task's config as RFC 3339 text (`1979-05-27T07:32:00Z`, or the
    /// local date or time as written). Numbers must be finite: `nan` and `inf` are errors.
    /// Tables and arrays may nest at most 127 deep, the workflow itself counting as one
    /// (each part of a dotted key, `a.b.c = 1`, opens a table): deeper ones are an error
    /// naming their place. The TOML reader has limits of its own, also errors naming
    /// their place: arrays and inline tables nest at most 80 deep, and a key has at most
    /// 80 dotted parts. Needs the `toml` feature (on by default).
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, LoadError> {
        let text = without_bom(text);
        let position = |e: &toml::de::Error| {
            (e.span().map(|span| span.start))
                .or_else(|| crate::toml_limits::long_key_at(text, e.message()))
                .map(|at| line_and_column(text, at))
                .unzip()
        };
        let de = toml::Deserializer::parse(text).map_err(|e| {
            let (line, column) = position(&e);
            LoadError::Parse {
                format: Format::Toml,
                file: None,
                field: ".".into(),
                line,
                column,
                message: toml_message(text, &e),
            }
        })?;
        let rules = Rules::toml();
        serde_path_to_error::deserialize(Guarded::new(de, &rules)).map_err(|e| {
            // A key refused after it was read ahead of its table is placed at the key,
            // where the parser would place the whole table.
            let (line, column) = match rules.refused_key_at(e.inner().message()) {
                Some(key) => {
                    let (line, column) = line_and_column(text, key.start);
                    (Some(line), Some(column))
                }
                None => position(e.inner()),
            };
            parse_error(Problem {
                format: Format::Toml,
                path: e.path(),
                text: toml_message(text, e.inner()),
                line,
                column,
            })
        })
    }

    /// Reads a workflow file, choosing the format by its extension.
    ///
    /// The path must name a file or a pipe (a directory or a device is refused) of at
    /// most 256 MiB.
    ///
    /// The file must be UTF-8 (a byte-order mark is allowed): otherwise the error gives
    /// the offset of the first byte that is not. A YAML or TOML file read by a build
    /// without that format's feature is [`LoadError::FormatDisabled`].
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let format = path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(Format::from_extension)
            .ok_or_else(|| LoadError::UnknownFormat {
                path: path.to_owned(),
            })?;
        let bytes = read_bounded(path, MAX_FILE_BYTES).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let offset = e.valid_up_to();
            LoadError::InvalidUtf8 {
                path: path.to_owned(),
                offset,
                line: 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count(),
            }
        })?;
        let parsed = match format {
            Format::Json => Self::from_json(text),
            #[cfg(feature = "yaml")]
            Format::Yaml => Self::from_yaml(text),
            #[cfg(feature = "toml")]
            Format::Toml => Self::from_toml(text),
            #[allow(unreachable_patterns)]
            format => Err(LoadError::FormatDisabled {
                path: path.to_owned(),
                format,
            }),
        };
        parsed.map_err(|mut e| {
            if let LoadError::Parse { file, .. } | LoadError::ExpansionLimit { file, .. } = &mut e {
                *file = Some(path.to_owned());
            }
            e
        })
    }
}

/// The column of JSON `error` in `text`, in characters as for YAML and TOML: serde_json
/// counts the bytes of the line up to and with the one it stopped at (none when it
/// stopped just past a line break: then the line's first column).
fn json_column(text: &str, error: &serde_json::Error) -> usize {
    let line_start: usize = (text.split_inclusive('\n'))
        .take(error.line().saturating_sub(1))
        .map(str::len)
        .sum();
    // The column of the character after the bytes serde_json counted, less one.
    (line_and_column(text, line_start + error.column()).1 - 1).max(1)
}

/// JSON `error`'s message without the place serde_json writes after it (its column counts
/// bytes; the error gives the place in characters).
fn json_message(error: &serde_json::Error) -> String {
    let place = format!(" at line {} column {}", error.line(), error.column());
    let message = error.to_string();
    match message.strip_suffix(&place) {
        Some(message) => message.to_owned(),
        None => message,
    }
}

/// The largest workflow file [`Workflow::from_path`] reads.
const MAX_FILE_BYTES: u64 = 256 << 20;

/// The bytes of `path`, a file or a pipe, not a directory or a device (`/dev/zero`
/// never ends), of at most `limit` bytes.
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let kind = std::fs::metadata(path)?.file_type();
    #[cfg(unix)]
    let pipe = std::os::unix::fs::FileTypeExt::is_fifo(&kind);
    #[cfg(not(unix))]
    let pipe = false;
    if !kind.is_file() && !pipe {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a file or a pipe (a directory or a device)",
        ));
    }
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} MiB", limit >> 20),
        ));
    }
    Ok(bytes)
}

/// The line and column (in characters, from 1) of byte `offset` of `text`, which may
/// fall inside a character; lines end at `\n`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    line_and_column_by(text, offset, |_| false)
}

/// [`line_and_column`] as the YAML reader counts lines: a `\r` not followed by `\n`
/// ends one too. (NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR do as well: `text` is to
/// have them made `\n` by `yaml_depth::with_libyaml_line_breaks`, which keeps offsets.)
#[cfg(feature = "yaml")]
fn yaml_line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    line_and_column_by(text, offset, |i| {
        bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n')
    })
}

/// [`line_and_column`] where a line also ends at each byte `i` for which `ends_line(i)`.
fn line_and_column_by(
    text: &str,
    offset: usize,
    ends_line: impl Fn(usize) -> bool,
) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let is_break = |i: usize| before[i] == b'\n' || ends_line(i);
    let line = (0..before.len()).filter(|&i| is_break(i)).count() + 1;
    let line_start = (0..before.len())
        .rev()
        .find(|&i| is_break(i))
        .map_or(0, |i| i + 1);
    // A character starts at every byte but a UTF-8 continuation byte (`0b10xx_xxxx`).
    let column = (before[line_start..].iter())
        .filter(|&&b| b & 0xC0 != 0x80)
        .count()
        + 1;
    (line, column)
}

/// The TOML parser's message for `error` in `text`, naming the key a "duplicate key"
/// error is about (the parser says only that), and the limit of the reader's own that
/// a "recursion" error is about.
#[cfg(feature = "toml")]
fn toml_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let key = error
        .span()
        .and_then(|span| text.get(span))
        .filter(|key| !key.is_empty() && !key.contains('\n'));
    match key {
        Some(key) if message == "duplicate key" => {
            format!("duplicate key `{}`", crate::error::shown(key))
        }
        _ => crate::toml_limits::explained(message).unwrap_or_else(|| message.to_owned()),
    }
}

impl<'de> Deserialize<'de> for Workflow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(
            deny_unknown_fields,
            expecting = "a workflow: a map with `workflow_id` and `tasks`"
        )]
        struct WorkflowSpec {
            workflow_id: String,
            #[serde(default)]
            name: String,
            tasks: TaskList,
        }
        let spec = WorkflowSpec::deserialize(deserializer)?;
        let mut workflow = Workflow::new(spec.workflow_id, spec.name);
        workflow.reserve_exact(spec.tasks.0.len());
        for (key, task) in spec.tasks.0 {
            match key {
                Some(key) => workflow.insert_keyed(key, task),
                None => workflow.add_task(task),
            }
        }
        Ok(workflow)
    }
}

/// Tasks as written in a file: map form keeps each key beside its task.
struct TaskList(Vec<(Option<TaskId>, Task)>);

impl<'de> Deserialize<'de> for TaskList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TaskListVisitor)
    }
}

struct TaskListVisitor;

impl<'de> Visitor<'de> for TaskListVisitor {
    type Value = TaskList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map from task id to task, or a list of tasks")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TaskList, A::Error> {
        let mut tasks =
            Vec::with_capacity(cautious_capacity::<(Option<TaskId>, Task)>(map.size_hint()));
        while let Some(key) = map.next_key::<TaskId>()? {
            let spec: TaskSpec<Option<TaskId>> = map.next_value()?;
            tasks.push((Some(key.clone()), spec.into_task(key)));
        }
        Ok(TaskList(tasks))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TaskList, A::Error> {
        let mut tasks =
            Vec::with_capacity(cautious_capacity::<(Option<TaskId>, Task)>(seq.size_hint()));
        while let Some(task) = seq.next_element::<Task>()? {
            tasks.push((None, task));
        }
        Ok(TaskList(tasks))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TaskList, E> {
        Ok(TaskList(Vec::new()))
    }
}
