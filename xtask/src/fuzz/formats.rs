//! The invariants of the `files` target: how a workflow file must load.
//!
//! - No panic, and an error is a `LoadError` (the signature says so).
//! - Memory: loading takes at most [`peak_per_byte`] heap bytes per input byte (the YAML
//!   parser holds every event of a document at once, so YAML may take more), plus
//!   [`PEAK_BASE`].
//! - A loaded workflow written back (in its own format, and as JSON) and read again is
//!   equal to it.
//! - Configs are kept as written: a task's config from a YAML or TOML file is what a plain
//!   converter to JSON makes of it (a datetime becomes its RFC 3339 text), and a
//!   non-finite number (NaN, infinity) in it is an error, not a value.
//! - A byte-order mark changes nothing; a file that is not UTF-8 gets an error naming the
//!   byte offset of the first bad sequence.
//! - `"timeout": null` reads as no timeout: removing it changes nothing.

use std::path::Path;

use orch_core::{LoadError, ValidationError, Workflow};
use serde_json::Value;

use super::doc::Syntax;
use super::plain::{self, At, Plain};
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
    // One byte-order mark; a second is a character of the text.
    let bom = text
        .strip_prefix('\u{feff}')
        .filter(|rest| !rest.starts_with('\u{feff}'));
    if let Some(rest) = bom {
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
        configs_agree(syntax, text, &workflow)?;
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
    let read = Workflow::from_path(&file);
    let names_offset = matches!(
        &read,
        Err(orch_core::LoadError::InvalidUtf8 { offset: at, .. }) if *at == offset
    );
    let message = match read {
        Ok(_) => "loads".to_owned(),
        Err(e) => e.to_string(),
    };
    if names_offset && message.contains(&format!("byte offset {offset}")) {
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
                && again.tasks().zip(original.tasks()).all(|(a, b)| {
                    let mut a = a.clone();
                    a.timeout = b.timeout;
                    a.backoff = b.backoff;
                    a == *b
                });
            let kind = if durations_only {
                "round trip (durations)"
            } else {
                "round trip"
            };
            Err(Violation::new(
                kind,
                format!(
                    "written as {format} and read back, the workflow differs: {}",
                    first_difference(original, &again)
                ),
                durations_only.then_some(12),
            ))
        }
        Err(e) => Err(Violation::new(
            "round trip (unreadable)",
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
    a.tasks().zip(b.tasks()).find(|(x, y)| x != y).map_or_else(
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

/// Each task's config in a YAML or TOML file is what a plain converter to JSON makes of
/// it (datetimes as their RFC 3339 text), and a non-finite number there is an error.
fn configs_agree(syntax: Syntax, text: &str, workflow: &Workflow) -> Result<(), Violation> {
    let Some(configs) = plain::configs(syntax, text) else {
        return Ok(());
    };
    for (at, config) in configs {
        let task = match at {
            At::Key(key) => workflow.get(&key),
            // Ids given twice shift the positions: nothing to compare by.
            At::Index { of, .. } if of != workflow.len() => None,
            At::Index { at, .. } => workflow.get_index(at),
        };
        let Some(task) = task else {
            continue;
        };
        match config {
            Err(Plain::NonFinite(path)) => {
                return Err(Violation::new(
                    "non-finite number",
                    format!(
                        "the config of task `{}` holds a number that is not finite (at {path}), yet the {} file loads",
                        task.task_id,
                        syntax.ext()
                    ),
                    Some(9),
                ));
            }
            // Tags and keys that are not strings have no plain JSON form.
            Err(Plain::NoJson) => {}
            Ok(expected) if expected == task.config => {}
            Ok(expected) => {
                let datetime = format!("{:?}", task.config).contains("toml_private_datetime");
                return Err(Violation::new(
                    "config changed",
                    clip(&format!(
                        "the config of task `{}` in a {} file loads as {:?}, not as its data {:?}",
                        task.task_id,
                        syntax.ext(),
                        task.config,
                        expected
                    )),
                    datetime.then_some(9),
                ));
            }
        }
    }
    Ok(())
}

/// Whether `text` opens more than 128 brackets or braces without closing them, quotes
/// not considered (so it may say so of a document the loader would parse).
fn deeply_nested(text: &str) -> bool {
    let mut depth = 0usize;
    text.bytes().any(|byte| {
        match byte {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        depth > 128
    })
}

/// An explicit `"timeout": null` loads as if the key were left out.
fn null_timeout(syntax: Syntax, text: &str) -> Result<(), Violation> {
    let mut document: Value = match syntax {
        Syntax::Json if text.contains("null") => match serde_json::from_str(text) {
            Ok(value) => value,
            Err(_) => return Ok(()),
        },
        // This plain parse expands aliases without a limit, and its work grows with the
        // square of the nesting (the loader bounds both): a document that may have aliases
        // or is deeply nested is left to the loader's own checks.
        Syntax::Yaml
            if (text.contains("null") || text.contains('~'))
                && !text.contains('*')
                && !deeply_nested(text) =>
        {
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
        if let Some(fields) = task.as_object_mut()
            && fields.get("timeout") == Some(&Value::Null)
        {
            fields.remove("timeout");
            removed += 1;
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
