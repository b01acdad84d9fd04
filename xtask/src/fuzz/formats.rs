//! The invariants of the `files` target: how a workflow file must load.
//!
//! - No panic, and an error is a `LoadError` (the signature says so).
//! - Memory: loading takes at most [`peak_per_byte`] heap bytes per input byte (the YAML
//!   parser holds every event of a document at once, so YAML may take more), plus
//!   [`PEAK_BASE`].
//! - A loaded workflow written back (in its own format, and as JSON) and read again is
//!   equal to it.
//! - The formats agree: a YAML or TOML file read through a plain converter to JSON loads
//!   as the same workflow; a non-finite number (NaN, infinity) is an error, not a value.
//! - A byte-order mark changes nothing; a file that is not UTF-8 gets an error naming the
//!   byte offset of the first bad sequence.
//! - `"timeout": null` reads as no timeout: removing it changes nothing.

use std::path::Path;

use orch_core::{LoadError, ValidationError, Workflow};
use serde_json::Value;

use super::doc::Syntax;
use super::{Input, Violation, peak_heap};

/// Heap a load may take per byte of input at its peak. Measured over generated files,
/// without aliases: JSON takes under 4, TOML about 60, YAML about 310 (deeply nested).
pub(crate) fn peak_per_byte(syntax: Syntax) -> usize {
    match syntax {
        Syntax::Json => 32,
        Syntax::Toml => 128,
        Syntax::Yaml => 512,
    }
}

/// Heap a load may take beyond [`peak_per_byte`].
pub(crate) const PEAK_BASE: usize = 4 << 20;

type Loaded = Result<Workflow, LoadError>;

fn load(syntax: Syntax, text: &str) -> Loaded {
    match syntax {
        Syntax::Json => Workflow::from_json(text),
        Syntax::Yaml => Workflow::from_yaml(text),
        Syntax::Toml => Workflow::from_toml(text),
    }
}

/// Whether two loads came out alike: equal workflows, or both errors.
fn alike(a: &Loaded, b: &Loaded) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

fn outcome(loaded: &Loaded) -> String {
    match loaded {
        Ok(_) => "loads".to_owned(),
        Err(e) => format!("fails ({e})"),
    }
}

/// Checks one workflow file; `scratch` is a directory for files read from disk.
pub(crate) fn check(input: &Input, scratch: &Path) -> Result<(), Violation> {
    let syntax = Syntax::from_ext(input.ext);
    let text = match std::str::from_utf8(&input.bytes) {
        Ok(text) => text,
        Err(e) => return not_utf8(input, e.valid_up_to(), scratch),
    };
    let (loaded, peak) = peak_heap(|| load(syntax, text));
    let bound = PEAK_BASE + peak_per_byte(syntax) * text.len();
    if peak > bound {
        let aliases = syntax == Syntax::Yaml && text.contains('*');
        return Err(Violation::new(
            "memory",
            format!(
                "loading {} bytes of {} took {} kB of heap (bound {} kB)",
                text.len(),
                input.ext,
                peak >> 10,
                bound >> 10
            ),
            aliases.then_some(5),
        ));
    }
    if let Some(rest) = text.strip_prefix('\u{feff}') {
        let without = load(syntax, rest);
        if !alike(&loaded, &without) {
            return Err(Violation::new(
                "byte-order mark",
                format!(
                    "with a byte-order mark the file {}; without, it {}",
                    outcome(&loaded),
                    outcome(&without)
                ),
                Some(10),
            ));
        }
    }
    null_timeout(syntax, text)?;
    let Ok(workflow) = loaded else {
        return Ok(());
    };
    round_trip(syntax, &workflow)?;
    if syntax != Syntax::Json {
        formats_agree(syntax, text, &workflow)?;
    }
    Ok(())
}

/// A file that is not UTF-8, read from disk: the error must name where the bad bytes are.
fn not_utf8(input: &Input, offset: usize, scratch: &Path) -> Result<(), Violation> {
    let file = scratch.join(format!("input.{}", input.ext));
    if std::fs::create_dir_all(scratch)
        .and_then(|()| std::fs::write(&file, &input.bytes))
        .is_err()
    {
        return Ok(());
    }
    let message = match Workflow::from_path(&file) {
        Ok(_) => "loads".to_owned(),
        Err(e) => e.to_string(),
    };
    let names_offset = message
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<usize>().ok())
        .any(|n| n == offset || n == offset + 1);
    if names_offset {
        Ok(())
    } else {
        Err(Violation::new(
            "not UTF-8",
            format!("invalid UTF-8 at byte {offset}, but the error does not say where: {message}"),
            Some(10),
        ))
    }
}

/// Writes the workflow as JSON and in its own format, reads it back, compares. (Not for
/// a workflow with duplicate task ids: its map form cannot hold them, and validation
/// reports them.)
fn round_trip(syntax: Syntax, workflow: &Workflow) -> Result<(), Violation> {
    let duplicates = workflow.validate().err().is_some_and(|errors| {
        errors
            .iter()
            .any(|e| matches!(e, ValidationError::DuplicateTaskId { .. }))
    });
    if duplicates {
        return Ok(());
    }
    let json = serde_json::to_string(workflow).map_err(|e| {
        Violation::new(
            "write",
            format!("a loaded workflow cannot be written as JSON: {e}"),
            None,
        )
    })?;
    compare_reread("JSON", &json, Workflow::from_json(&json), workflow)?;
    let own = match syntax {
        Syntax::Json => return Ok(()),
        Syntax::Yaml => serde_yaml_ng::to_string(workflow).map_err(|e| e.to_string()),
        Syntax::Toml => toml::to_string(workflow).map_err(|e| e.to_string()),
    };
    // Some values cannot be written in every format (TOML has no null); not a violation.
    let Ok(text) = own else {
        return Ok(());
    };
    compare_reread(syntax.ext(), &text, load(syntax, &text), workflow)
}

fn compare_reread(
    format: &str,
    text: &str,
    again: Loaded,
    original: &Workflow,
) -> Result<(), Violation> {
    match again {
        Ok(again) if again == *original => Ok(()),
        Ok(again) => {
            let durations_only = (again.workflow_id(), again.name(), again.len())
                == (original.workflow_id(), original.name(), original.len())
                && again
                    .tasks()
                    .values()
                    .zip(original.tasks().values())
                    .all(|(a, b)| {
                        let mut a = a.clone();
                        a.timeout = b.timeout;
                        a.backoff = b.backoff.clone();
                        a == *b
                    });
            Err(Violation::new(
                "round trip",
                format!(
                    "written as {format} and read back, the workflow differs: {}",
                    first_difference(original, &again)
                ),
                durations_only.then_some(12),
            ))
        }
        Err(e) => Err(Violation::new(
            "round trip",
            format!(
                "written as {format}, the workflow does not read back: {e}\n{}",
                clip(text)
            ),
            None,
        )),
    }
}

/// The first task (or header field) where two workflows differ, shown briefly.
fn first_difference(a: &Workflow, b: &Workflow) -> String {
    if (a.workflow_id(), a.name(), a.len()) != (b.workflow_id(), b.name(), b.len()) {
        return format!(
            "id/name/size {:?} vs {:?}",
            (a.workflow_id(), a.name(), a.len()),
            (b.workflow_id(), b.name(), b.len())
        );
    }
    a.tasks()
        .iter()
        .zip(b.tasks().iter())
        .find(|(x, y)| x != y)
        .map_or_else(
            || "duplicate ids".to_owned(),
            |(x, y)| clip(&format!("{x:?}\n  became {y:?}")),
        )
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(600) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

/// A YAML or TOML file, read as plain data and converted to JSON, loads the same.
fn formats_agree(syntax: Syntax, text: &str, workflow: &Workflow) -> Result<(), Violation> {
    let plain = match syntax {
        Syntax::Yaml => match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
            Ok(value) => yaml_to_json(&value, "$"),
            Err(_) => return Ok(()),
        },
        Syntax::Toml => match text.parse::<toml::Table>() {
            Ok(table) => toml_to_json(&toml::Value::Table(table), "$"),
            Err(_) => return Ok(()),
        },
        Syntax::Json => return Ok(()),
    };
    let json = match plain {
        Err(Plain::NonFinite(path)) => {
            return Err(Violation::new(
                "non-finite number",
                format!(
                    "{} at {path} is not a finite number, yet the file loads",
                    syntax.ext()
                ),
                Some(9),
            ));
        }
        // Tags and keys that are not strings have no plain JSON form: nothing to compare.
        Err(Plain::NoJson) => return Ok(()),
        Ok(json) => json,
    };
    let again = Workflow::from_json(&json.to_string());
    if matches!(&again, Ok(again) if again == workflow) {
        return Ok(());
    }
    let shown = match &again {
        Ok(again) => first_difference(again, workflow),
        Err(e) => format!("as JSON it does not load: {e}"),
    };
    let datetime =
        syntax == Syntax::Toml && format!("{workflow:?}").contains("toml_private_datetime");
    Err(Violation::new(
        "formats disagree",
        format!(
            "the {} file loads differently from the same data as JSON: {shown}",
            syntax.ext()
        ),
        datetime.then_some(9),
    ))
}

/// Why a document has no plain JSON form.
enum Plain {
    NonFinite(String),
    NoJson,
}

fn number(value: f64, path: &str) -> Result<Value, Plain> {
    serde_json::Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| Plain::NonFinite(path.to_owned()))
}

fn yaml_to_json(value: &serde_yaml_ng::Value, path: &str) -> Result<Value, Plain> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (_, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => number(f, path)?,
            _ => return Err(Plain::NoJson),
        },
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut object = serde_json::Map::new();
            for (key, item) in map {
                let Y::String(key) = key else {
                    return Err(Plain::NoJson);
                };
                object.insert(key.clone(), yaml_to_json(item, &format!("{path}.{key}"))?);
            }
            Value::Object(object)
        }
        Y::Tagged(_) => return Err(Plain::NoJson),
    })
}

/// TOML data as JSON: datetimes become their RFC 3339 text.
fn toml_to_json(value: &toml::Value, path: &str) -> Result<Value, Plain> {
    use toml::Value as T;
    Ok(match value {
        T::String(s) => Value::String(s.clone()),
        T::Integer(i) => Value::from(*i),
        T::Float(f) => number(*f, path)?,
        T::Boolean(b) => Value::Bool(*b),
        T::Datetime(d) => Value::String(d.to_string()),
        T::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| toml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        T::Table(table) => Value::Object(
            table
                .iter()
                .map(|(key, item)| Ok((key.clone(), toml_to_json(item, &format!("{path}.{key}"))?)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// An explicit `"timeout": null` loads as if the key were left out.
fn null_timeout(syntax: Syntax, text: &str) -> Result<(), Violation> {
    let mut document: Value = match syntax {
        Syntax::Json if text.contains("null") => match serde_json::from_str(text) {
            Ok(value) => value,
            Err(_) => return Ok(()),
        },
        Syntax::Yaml if text.contains("null") || text.contains('~') => {
            match serde_yaml_ng::from_str(text) {
                Ok(value) => value,
                Err(_) => return Ok(()),
            }
        }
        _ => return Ok(()),
    };
    let print = |value: &Value| match syntax {
        Syntax::Yaml => serde_yaml_ng::to_string(value).unwrap_or_default(),
        _ => value.to_string(),
    };
    let with_nulls = print(&document);
    let tasks: Vec<&mut Value> = match document.get_mut("tasks") {
        Some(Value::Object(map)) => map.values_mut().collect(),
        Some(Value::Array(list)) => list.iter_mut().collect(),
        _ => return Ok(()),
    };
    let mut removed = 0;
    for task in tasks {
        if let Some(fields) = task.as_object_mut() {
            if fields.get("timeout") == Some(&Value::Null) {
                fields.remove("timeout");
                removed += 1;
            }
        }
    }
    if removed == 0 {
        return Ok(());
    }
    let (with, without) = (load(syntax, &with_nulls), load(syntax, &print(&document)));
    if alike(&with, &without) {
        return Ok(());
    }
    Err(Violation::new(
        "null timeout",
        format!(
            "with `timeout: null` the workflow {}; without the key, it {}",
            outcome(&with),
            outcome(&without)
        ),
        Some(11),
    ))
}
