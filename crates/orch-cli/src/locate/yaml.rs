//! Where tasks start in a YAML workflow file, and how its keys are read (see the parent
//! module).

use super::{Found, key};

/// Reads one YAML key or scalar at the start of `text`: quoted, as [`key`] reads it, or
/// plain, up to a `:` followed by a space or the line's end (a key's end: `build:linux`
/// is one key), or a `#` after a space (a comment). Returns it and the text after it.
fn yaml_key(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    if text.starts_with(['"', '\'']) {
        return key(text, &[]);
    }
    let bytes = text.as_bytes();
    let end = (0..bytes.len())
        .find(|&i| match bytes[i] {
            b':' => bytes.get(i + 1).is_none_or(u8::is_ascii_whitespace),
            b'#' => i > 0 && bytes[i - 1].is_ascii_whitespace(),
            _ => false,
        })
        .unwrap_or(bytes.len());
    Some((text[..end].trim_end().to_owned(), &text[end..]))
}

/// A `task_id: ID` (YAML) value after its key.
fn yaml_task_id(text: &str) -> Option<String> {
    let rest = text
        .trim_start()
        .strip_prefix("task_id")?
        .trim_start()
        .strip_prefix(':')?;
    yaml_key(rest).map(|(id, _)| id)
}

/// The `task_id` of a YAML flow mapping that starts `text` and holds it on the same line
/// (`{ task_id: a, task_type: t }`).
fn yaml_flow_task_id(text: &str) -> Option<String> {
    let mut rest = text.trim_start().strip_prefix('{')?;
    loop {
        let (name, after) = key(rest, &[':', ',', '}'])?;
        let value = after.strip_prefix(':')?;
        if name == "task_id" {
            return key(value, &[',', '}']).map(|(id, _)| id);
        }
        rest = after_flow_value(value)?.strip_prefix(',')?;
    }
}

/// The text from the `,` or `}` that ends the YAML flow value `text` starts with (one
/// outside the brackets and quoted scalars of the value); `None` if the line ends first.
/// A quote opens a quoted scalar only where one can start (a quote inside plain text,
/// `don't`, is text); `\"` and `''` are the quotes' escapes.
fn after_flow_value(text: &str) -> Option<&str> {
    let (mut depth, mut quote, mut can_start) = (0usize, None, true);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some('\''), '\'') if chars.peek().is_some_and(|&(_, c)| c == '\'') => {
                chars.next();
            }
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if can_start => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') if depth > 0 => depth -= 1,
            (None, ',' | '}') if depth == 0 => return Some(&text[i..]),
            _ => {}
        }
        can_start = quote.is_none() && matches!(c, ' ' | '\t' | '[' | '{' | ',' | ':');
    }
    None
}

/// YAML, block style: the keys one level under `tasks:` (map form), or the `task_id`
/// lines of its items (list form), whether on an item's `- ` line (also in a flow
/// mapping there) or among the item's own keys. A `task_id` deeper in a task, or
/// anywhere in a map-form task, starts no task.
pub(super) fn yaml_tasks(text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    let mut in_tasks = false;
    let mut task_indent: Option<usize> = None;
    // In list form, the indent of the current item's own keys; `None` after a bare `-`
    // until the item's first key sets it.
    let mut item_keys: Option<Option<usize>> = None;
    // Where the current item starts (its `- `).
    let mut item_start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.trim_end();
        let trimmed = content.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = content.len() - trimmed.len();
        if indent == 0 && !trimmed.starts_with('-') {
            in_tasks = trimmed.starts_with("tasks:");
            task_indent = None;
            item_keys = None;
            continue;
        }
        if !in_tasks {
            continue;
        }
        let indent_here = *task_indent.get_or_insert(indent);
        let column = start + indent;
        let item = (trimmed == "-")
            .then_some("")
            .or_else(|| trimmed.strip_prefix("- "));
        if let Some(item) = item
            && indent == indent_here
        {
            let first_key = item.trim_start();
            item_keys = Some(match first_key.is_empty() || first_key.starts_with('#') {
                true => None,
                false => Some(indent + trimmed.len() - first_key.len()),
            });
            item_start = column;
            let id = yaml_task_id(first_key).or_else(|| yaml_flow_task_id(first_key));
            found.extend(id.map(|id| (id, column, column)));
        } else if let Some(keys) = &mut item_keys {
            if *keys.get_or_insert(indent) == indent {
                found.extend(yaml_task_id(trimmed).map(|id| (id, column, item_start)));
            }
        } else if indent == indent_here
            && let Some((id, rest)) = yaml_key(trimmed)
            && rest.starts_with(':')
        {
            found.push((id, column, column));
        }
    }
    found
}
