//! [`LoadError`], why a workflow file could not be read, with the place and a message a
//! person can act on.

use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;

use crate::suggest::{Budget, closest, did_you_mean};

/// A file format a workflow can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// JSON.
    Json,
    /// YAML 1.2.
    Yaml,
    /// TOML 1.0.
    Toml,
}

impl Format {
    /// The format a file extension stands for: `json`, `yaml`/`yml` or `toml`.
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            _ => None,
        }
    }
}

impl Format {
    /// The orch-core feature that reads this format.
    fn feature(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Yaml => "yaml",
            Self::Toml => "toml",
        }
    }
}

impl fmt::Display for Format {
    /// `JSON`, `YAML` or `TOML`; a width, fill, alignment or precision given applies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Json => "JSON",
            Self::Yaml => "YAML",
            Self::Toml => "TOML",
        })
    }
}

/// Why a workflow could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read workflow file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file's extension names no known format.
    #[error(
        "cannot tell the format of workflow file {}: expected extension .json, .yaml, .yml or .toml",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file's format was left out of this build: orch-core's `yaml` or `toml`
    /// feature is off.
    #[error(
        "cannot read {format} workflow file {}: this program was built without orch-core's `{feature}` feature",
        path.display(),
        feature = format.feature()
    )]
    FormatDisabled {
        /// The file.
        path: PathBuf,
        /// Its format, as its extension says.
        format: Format,
    },
    /// The text is not a well-formed workflow.
    ///
    /// Displayed as `invalid YAML workflow in FILE at line L, column C, field `F`: MESSAGE`,
    /// leaving out what is not known (the field, for a problem of the whole document).
    #[error(
        "invalid {format} workflow{}: {message}",
        place(file.as_deref(), *line, *column, field)
    )]
    Parse {
        /// The format being read.
        format: Format,
        /// The file, when reading one.
        file: Option<PathBuf>,
        /// Where in the document: a field path such as `tasks[3].dependencies`, or `.` for
        /// the top level.
        field: String,
        /// 1-based line of the problem, when the parser knows it.
        line: Option<usize>,
        /// 1-based column of the problem, in characters, when the parser knows it.
        column: Option<usize>,
        /// What is wrong, without the place (given by the other fields): the parser's
        /// description, or for an unknown key the key, where it is, and the key it most
        /// likely meant (`unknown key `dependencis` in task `load`; did you mean
        /// `dependencies`?`).
        message: String,
    },
    /// The file is not UTF-8 text.
    #[error(
        "workflow file {} is not UTF-8: invalid byte sequence at byte offset {offset} (line {line})",
        path.display()
    )]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// 0-based offset in bytes of the first byte that is not part of a UTF-8 character.
        offset: usize,
        /// 1-based line of that byte.
        line: usize,
    },
    /// A YAML document's aliases repeat so much that it would expand past its limit.
    ///
    /// Reading a YAML document expands each alias into a copy of its anchor, so a small
    /// file could otherwise take gigabytes. The expansion is counted as each value is
    /// read, in units that follow the memory it takes: 8 per value (a number, a string,
    /// a list, a map, a map key, ...) plus 1 per byte of text (strings and map keys) and
    /// 32 per map with entries, aliases expanded. A document may expand to 20 units per
    /// byte of its own size, and to 16,384 however small it is; a document without
    /// aliases stays below that (at most about 19 per byte, for a list of maps of one
    /// empty entry each, `[?:,?:]`).
    #[error(
        "YAML workflow{}: aliases expand the document past its limit of {limit} units (8 per value, 1 per byte of text, 32 per map with entries)",
        place(file.as_deref(), *line, *column, field)
    )]
    ExpansionLimit {
        /// The file, when reading one.
        file: Option<PathBuf>,
        /// Where in the document the limit was reached.
        field: String,
        /// 1-based line where the limit was reached, when the parser knows it.
        line: Option<usize>,
        /// 1-based column where the limit was reached, when the parser knows it.
        column: Option<usize>,
        /// The limit for this document, in units (8 per value, 1 per byte of text, 32
        /// per map with entries).
        limit: u64,
    },
}

/// ` in FILE at line L, column C, field `F``, leaving out what is not known.
fn place(file: Option<&Path>, line: Option<usize>, column: Option<usize>, field: &str) -> String {
    let mut text = String::new();
    if let Some(file) = file {
        text.push_str(&format!(" in {}", file.display()));
    }
    match (line, column) {
        (Some(line), Some(column)) => text.push_str(&format!(" at line {line}, column {column}")),
        (Some(line), None) => text.push_str(&format!(" at line {line}")),
        _ => {}
    }
    if field != "." && !field.is_empty() {
        text.push_str(&format!(", field `{field}`"));
    }
    text
}

/// What a parser reported, before it becomes a [`LoadError::Parse`].
pub(super) struct Problem<'p> {
    pub(super) format: Format,
    /// Where the problem is, as the reader followed the document.
    pub(super) path: &'p serde_path_to_error::Path,
    /// The parser's text, which may repeat the place around the message.
    pub(super) text: String,
    pub(super) line: Option<usize>,
    pub(super) column: Option<usize>,
}

/// The error for `problem`: the field path; the message without the place that JSON and
/// YAML parsers write around it (the line and column, and YAML's own field path); an
/// unknown key named with its task and the key it most likely meant.
pub(super) fn parse_error(problem: Problem<'_>) -> LoadError {
    let Problem {
        format,
        path,
        text,
        line,
        column,
    } = problem;
    // The parsers write the place they stopped at into the text: at its end, or (YAML
    // syntax errors) before what they were reading then.
    let text = match (line, column) {
        (Some(line), Some(column)) => {
            text.replacen(&format!(" at line {line} column {column}"), "", 1)
        }
        _ => text,
    };
    let mut message = text.as_str();
    let mut segments: Vec<&Segment> = path.iter().collect();
    if format == Format::Yaml {
        // YAML starts its message with the path it had reached: a leading part of ours.
        let prefix = (1..=segments.len())
            .rev()
            .map(|n| format!("{}: ", path_text(&segments[..n], false)))
            .find(|prefix| message.starts_with(prefix.as_str()));
        if let Some(prefix) = prefix {
            message = &message[prefix.len()..];
        }
    }
    let mut message = message.to_owned();
    if segments
        .last()
        .is_some_and(|s| matches!(s, Segment::Unknown))
    {
        // The key itself could not be read, so it has no name to show.
        segments.pop();
        if !message.contains("key") {
            message = format!("invalid key: {message}");
        }
    } else if let Some(rewritten) = unknown_key(&segments, &message) {
        message = rewritten;
    } else if let Some(rewritten) = unknown_value(&message) {
        message = rewritten;
    } else {
        message = plain_number_types(message);
    }
    // Keys and values from the document, printed as they are, may hold control characters.
    LoadError::Parse {
        format,
        file: None,
        field: crate::error::shown(&field_text(&segments)).into_owned(),
        line,
        column,
        message: crate::error::shown(&message).into_owned(),
    }
}

/// The segments of `path` that name something: without the last one when it is a key
/// that could not be read yet.
#[cfg(feature = "yaml")]
pub(super) fn named_segments(path: &serde_path_to_error::Path) -> Vec<&Segment> {
    let mut segments: Vec<&Segment> = path.iter().collect();
    if segments
        .last()
        .is_some_and(|s| matches!(s, Segment::Unknown))
    {
        segments.pop();
    }
    segments
}

/// A field path as text: `tasks.load.backoff`, `tasks[3].dependencies`, `.` for the top.
/// A key that would read as more than one step (it holds a `.`, a bracket or a quote,
/// or is empty) is quoted: `tasks."a.b".retries`.
pub(super) fn field_text(segments: &[&Segment]) -> String {
    path_text(segments, true)
}

/// `segments` as text, keys quoted where they must be when `quote`; unquoted, as the
/// YAML reader writes the path it starts its messages with.
fn path_text(segments: &[&Segment], quote: bool) -> String {
    if segments.is_empty() {
        return ".".to_owned();
    }
    let mut text = String::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(text, "[{index}]");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if i > 0 {
                    text.push('.');
                }
                let plain = !key.is_empty() && !key.contains(['.', '[', ']', '"']);
                match plain || !quote {
                    true => text.push_str(key),
                    false => {
                        let escaped = key.replace('\\', "\\\\").replace('"', "\\\"");
                        let _ = write!(text, "\"{escaped}\"");
                    }
                }
            }
            Segment::Unknown => text.push_str(if i > 0 { ".?" } else { "?" }),
        }
    }
    text
}

/// An unknown value of a fixed set (a trigger rule, say), with the closest of the
/// values expected when one is close: `unknown variant `all_dun`, expected one of ...;
/// did you mean `all_done`?`.
fn unknown_value(message: &str) -> Option<String> {
    let (value, rest) = message.strip_prefix("unknown variant `")?.split_once('`')?;
    let expected = rest
        .split_once("expected ")?
        .1
        .split('`')
        .skip(1)
        .step_by(2);
    let meant = closest(value, None, expected, &mut Budget::new())?;
    Some(format!("{message}{}", did_you_mean(Some(meant))))
}

/// `message` with the Rust name of the number type it expected (`expected u32`, for a
/// `retries: -1`) said in words.
fn plain_number_types(message: String) -> String {
    const WORDS: [(&str, &str); 6] = [
        ("expected u32", "expected a whole number of 0 or more"),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
    ];
    match WORDS.iter().find(|(rust, _)| message.ends_with(rust)) {
        Some((rust, words)) => format!("{}{words}", &message[..message.len() - rust.len()]),
        None => message,
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" at the path that ends with
/// `x`: "unknown key `x` in task `t`; did you mean `a`?" (or the keys expected, when none
/// is close).
fn unknown_key(segments: &[&Segment], message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    // The key may hold a backtick itself: it is the path's last key when the message
    // names that one.
    let (key, rest) = match segments.last() {
        Some(Segment::Map { key: last })
            if rest
                .strip_prefix(last.as_str())
                .is_some_and(|r| r.starts_with('`')) =>
        {
            (last.as_str(), &rest[last.len() + 1..])
        }
        _ => rest.split_once('`')?,
    };
    let expected: Vec<&str> = rest
        .split_once("expected ")
        .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    let parent = match segments.split_last() {
        Some((Segment::Map { key: last }, parent)) if last == key => parent,
        _ => segments,
    };
    let place = match parent {
        [] => String::new(),
        [Segment::Map { key: tasks }, Segment::Map { key: id }] if tasks == "tasks" => {
            format!(" in task `{id}`")
        }
        [
            Segment::Map { key: tasks },
            Segment::Map { key: id },
            Segment::Map { key: backoff },
        ] if tasks == "tasks" && backoff == "backoff" => format!(" in the backoff of task `{id}`"),
        _ => format!(" in `{}`", field_text(parent)),
    };
    let hint = match closest(key, None, expected.iter().copied(), &mut Budget::new()) {
        Some(meant) => did_you_mean(Some(meant)),
        None if expected.is_empty() => String::new(),
        None => format!(
            "; expected {}",
            expected
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Some(format!("unknown key `{key}`{place}{hint}"))
}
