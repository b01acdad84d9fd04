//! The checks of each task on its own (its options, and the characters its names
//! hold), and of the workflow's id.

use super::json_kind;
use crate::{Task, TaskId, TaskTable, TriggerRule, ValidationError};

/// Whether `c` is a character that ids, task types and pool names may not hold: a
/// control character (a line break, the start of a terminal escape sequence), a line or
/// paragraph separator (U+2028, U+2029: line breaks too), a bidirectional control
/// (U+202E and the like), which reorders how the rest of a line is shown so that text
/// can pass for other text, or an invisible character (a zero-width space, a word
/// joiner, a soft hyphen, a byte order mark, a Hangul filler, a tag character, and the
/// other characters Unicode says to show as nothing; so the flags made of tag
/// characters, England's, Scotland's and Wales's, are refused too), with which two ids
/// that differ look the same. The zero-width joiner and non-joiner and the variation selectors,
/// which emoji sequences and some scripts (Persian, Mongolian, Han variants) need,
/// pass. Tools that print other text can write these as escapes.
pub fn is_hidden_control(c: char) -> bool {
    hidden_kind(c).is_some()
}

/// What kind of character [`is_hidden_control`] refuses `c` as, for its error; `None`
/// for one it allows.
pub(crate) fn hidden_kind(c: char) -> Option<&'static str> {
    match c {
        c if c.is_control() => Some("control character"),
        '\u{2028}' | '\u{2029}' => Some("line or paragraph separator"),
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => Some("bidirectional control"),
        '\u{00AD}'
        | '\u{034F}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{17B4}'
        | '\u{17B5}'
        | '\u{180E}'
        | '\u{200B}'
        | '\u{2060}'..='\u{2065}'
        | '\u{206A}'..='\u{206F}'
        | '\u{3164}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E00FF}'
        | '\u{E01F0}'..='\u{E0FFF}' => Some("invisible character"),
        _ => None,
    }
}

/// Ids, task types and pool names are printed as they are (in logs, errors, a
/// terminal): none may hold a character [`is_hidden_control`] names (a line break, an
/// escape sequence, a bidirectional control, an invisible character).
pub(super) fn check_control_characters(
    workflow_id: &str,
    tasks: &TaskTable,
    errors: &mut Vec<ValidationError>,
) {
    let mut check = |what: &'static str, text: &str, task: Option<&TaskId>| {
        if let Some(found) = text.chars().find(|&c| is_hidden_control(c)) {
            errors.push(ValidationError::ControlCharacter {
                what,
                task: task.cloned(),
                text: crate::error::quoted(text),
                found,
            });
        }
    };
    check("workflow id", workflow_id, None);
    for (key, task) in tasks.iter() {
        check("task id", key, Some(key));
        check("task type", &task.task_type, Some(key));
        if let Some(pool) = &task.pool {
            check("pool", pool, Some(key));
        }
    }
}

pub(super) fn check_options(key: &TaskId, task: &Task, errors: &mut Vec<ValidationError>) {
    let mut invalid = |option: &'static str, reason: String| {
        errors.push(ValidationError::InvalidOption {
            task: key.clone(),
            option,
            reason,
        })
    };
    if task.retries > Task::MAX_RETRIES {
        invalid(
            "retries",
            format!(
                "must be at most {}, not {}",
                Task::MAX_RETRIES,
                task.retries
            ),
        );
    }
    if key.is_empty() {
        invalid("task_id", "must not be empty".into());
    }
    if task.pool.as_deref().is_some_and(str::is_empty) {
        invalid(
            "pool",
            "must not be empty (leave it out for no pool)".into(),
        );
    }
    if let Some(map) = &task.map {
        for (option, reason) in map.problems(&task.dependencies) {
            invalid(option, reason);
        }
        if task.trigger_rule == TriggerRule::AllFailed {
            invalid(
                "trigger_rule",
                format!(
                    "`all_failed` runs a task only when `{}`, the list it maps over, failed \
                     too, and a map task needs that list: it could never run",
                    map.over
                ),
            );
        }
        if !task.trigger_rule.waits_for_all() {
            invalid(
                "trigger_rule",
                format!(
                    "`{}` may start a map task before `{}`, the list it maps over, has ended; \
                     a map task needs a rule that waits for every dependency",
                    task.trigger_rule.as_str(),
                    map.over
                ),
            );
        }
    }
    if task.timeout.is_some_and(|t| t.is_zero()) {
        invalid("timeout", "must be greater than zero".into());
    }
    let backoff = &task.backoff;
    if !backoff.multiplier.is_finite() || backoff.multiplier < 1.0 {
        invalid(
            "backoff.multiplier",
            format!(
                "must be a finite number of at least 1, not {}",
                backoff.multiplier
            ),
        );
    }
    if backoff.initial > backoff.max {
        invalid(
            "backoff.initial",
            format!(
                "{:?} is longer than backoff.max ({:?})",
                backoff.initial, backoff.max
            ),
        );
    }
    if !task.config.is_object() {
        invalid(
            "config",
            format!("must be a JSON object, not {}", json_kind(&task.config)),
        );
    }
}
