//! Finding where a task is written in a workflow file, so that a problem about it can be
//! reported with a line and a column.
//!
//! The loader gives places only for parse errors; validation problems name tasks. This
//! module reads the text once more, without a full parser, and notes where each task's
//! definition starts: in JSON the keys of the `tasks` object (map form) or the `task_id`
//! values of its elements (list form); in YAML the keys one level under a top-level
//! `tasks:` or the `task_id` lines of its items (also `- { task_id: ID, ... }`); in TOML
//! `[tasks.ID]` headers, `ID = {` lines under `[tasks]`, and `task_id = "ID"` lines after
//! `[[tasks]]`. Inside a task, a word (a dependency's id, a configuration key) is found
//! by searching that task's stretch of text. A task written another way (a YAML flow
//! mapping over several lines, say, or a whole `tasks` list in flow style) simply gets
//! no place, and so does a problem found after placing others has read the text many
//! times over.

use std::cell::Cell;
use std::collections::HashMap;

use orch::core::Format;
use yaml::yaml_tasks;

mod yaml;

/// A 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// Where each task's definition starts in one file's text.
pub(crate) struct Places<'t> {
    text: &'t str,
    /// Task id to the byte offsets of its place (where its id is given) and of the start
    /// of its definition (in list form, its item's, where keys before `task_id` are);
    /// the first, if twice.
    tasks: HashMap<String, (usize, usize)>,
    /// Task id to the byte offset of its place the second time, for an id given twice.
    repeats: HashMap<String, usize>,
    /// Every definition start, sorted: a task's stretch ends where the next begins.
    starts: Vec<usize>,
    /// For each block of [`BLOCK`] bytes, how many lines end before it and where the line
    /// it begins in starts: a place is found reading one block, and a file of line
    /// breaks takes no memory per line.
    blocks: Vec<(usize, usize)>,
    /// How many more bytes placing may read: thousands of problems in one large task
    /// would otherwise each read its whole stretch.
    budget: Cell<usize>,
    /// The text's format, which tells how a word is looked for in it.
    format: Format,
}

/// The bytes of a block of the text, whose line breaks are counted ahead.
const BLOCK: usize = 1 << 16;

/// The bytes placing may read, besides eight times the text's length.
const BASE_BUDGET: usize = 64 << 20;

impl<'t> Places<'t> {
    /// Reads `text`, written in `format`.
    pub(crate) fn new(text: &'t str, format: Format) -> Self {
        let found = match format {
            Format::Json => json_tasks(text),
            Format::Yaml => yaml_tasks(text),
            _ => toml_tasks(text),
        };
        let mut tasks = HashMap::with_capacity(found.len());
        let mut repeats = HashMap::new();
        let mut starts = Vec::with_capacity(found.len());
        for (id, at, from) in found {
            starts.push(from);
            match tasks.entry(id) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    repeats.entry(first.key().clone()).or_insert(at);
                }
                std::collections::hash_map::Entry::Vacant(first) => {
                    first.insert((at, from));
                }
            }
        }
        starts.sort_unstable();
        let (mut lines, mut line_start) = (0, 0);
        let blocks = std::iter::once((0, 0))
            .chain(text.as_bytes().chunks(BLOCK).enumerate().map(|(i, block)| {
                lines += line_breaks(block);
                if let Some(at) = block.iter().rposition(|&b| b == b'\n') {
                    line_start = i * BLOCK + at + 1;
                }
                (lines, line_start)
            }))
            .collect();
        Self {
            text,
            tasks,
            repeats,
            starts,
            blocks,
            budget: Cell::new(BASE_BUDGET.saturating_add(text.len().saturating_mul(8))),
            format,
        }
    }

    /// Takes `bytes` from the budget; `false` (taking nothing) if it has not that much.
    fn spend(&self, bytes: usize) -> bool {
        let left = self.budget.get();
        if left < bytes {
            return false;
        }
        self.budget.set(left - bytes);
        true
    }

    /// Where task `id` is defined.
    pub(crate) fn task(&self, id: &str) -> Option<Place> {
        self.place(self.tasks.get(id)?.0)
    }

    /// Where task `id` is defined a second time, for an id given twice.
    pub(crate) fn repeat(&self, id: &str) -> Option<Place> {
        self.place(*self.repeats.get(id)?)
    }

    /// Where `word` first appears inside task `id`'s definition (quoted, or as a whole
    /// word), else where the task is defined. With `under`, a key of the task (as
    /// `dependencies`), `word` is looked for after that key first, so that the same word
    /// in a value before it (a configuration's argument, say) is passed over.
    pub(crate) fn within_task(&self, id: &str, word: &str, under: Option<&str>) -> Option<Place> {
        let (at, start) = *self.tasks.get(id)?;
        let next = self.starts.partition_point(|&s| s <= start);
        let end = self.starts.get(next).copied().unwrap_or(self.text.len());
        let stretch = &self.text[start..end];
        // Looking after a key first may read the stretch twice.
        if !self.spend(
            stretch
                .len()
                .saturating_mul(1 + usize::from(under.is_some())),
        ) {
            return None;
        }
        // A task that names itself: not at its own id (its map-form key, its `task_id`
        // value or its TOML table's name), which its stretch holds too.
        let own_id = |at: usize| word == id && is_own_id(&stretch[..at]);
        let format = self.format;
        let find = |from: usize| {
            let rest = &stretch[from..];
            let quoted = format!("\"{word}\"");
            let quoted =
                (rest.match_indices(&quoted).map(|(at, _)| from + at)).find(|&at| !own_id(at));
            let plain = (words(rest, word, format).map(|at| from + at)).find(|&at| !own_id(at));
            first_of(quoted, plain, format)
        };
        let key = under.and_then(|key| first_word(stretch, key, format));
        let found = key.and_then(&find).or_else(|| find(0));
        self.place(found.map_or(at, |found| start + found))
    }

    fn place(&self, offset: usize) -> Option<Place> {
        let block_start = offset / BLOCK * BLOCK;
        let (lines_before, line_start) = self.blocks[offset / BLOCK];
        // What is read is charged, whether the place is found or not.
        let in_block = &self.text.as_bytes()[block_start..offset];
        if !self.spend(in_block.len()) {
            return None;
        }
        let line = lines_before + line_breaks(in_block);
        let start = (in_block.iter().rposition(|&b| b == b'\n'))
            .map_or(line_start, |at| block_start + at + 1);
        if !self.spend(offset - start) {
            return None;
        }
        let column = self.text[start..offset].chars().count() + 1;
        Some(Place {
            line: line + 1,
            column,
        })
    }
}

fn line_breaks(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Whether an id found after `before` (a task's stretch up to it) is the task's own: at
/// the stretch's start (a map-form key), the value of a `task_id` key, or a TOML table's
/// name (`[tasks.ID]`).
fn is_own_id(before: &str) -> bool {
    let key = before.trim_end_matches([' ', '\t', '"', '\'', ':', '=']);
    key.trim().is_empty() || key.ends_with("task_id") || key.ends_with("[tasks.")
}

/// Where `word` first appears in `text` (in `format`), quoted or as a whole word.
fn first_word(text: &str, word: &str, format: Format) -> Option<usize> {
    let quoted = text.find(&format!("\"{word}\""));
    let plain = words(text, word, format).next();
    first_of(quoted, plain, format)
}

/// Of a word found `quoted` and found `plain` (as a whole word), the one taken: in
/// JSON, where keys and ids are quoted, a quoted one (a plain one is inside some text);
/// elsewhere the first.
fn first_of(quoted: Option<usize>, plain: Option<usize>, format: Format) -> Option<usize> {
    match format {
        Format::Json => quoted.or(plain),
        _ => quoted.into_iter().chain(plain).min(),
    }
}

/// The occurrences of `word` not inside a longer identifier (in `format`). A `:`, `.`
/// or `/` between two identifier characters joins them (`test:unit`, `lib.core`), while
/// one before a space or a line's end ends a key (`test: ...`); in TOML a `.` always
/// parts the keys of a dotted key (`config.progam`).
fn words<'t>(text: &'t str, word: &'t str, format: Format) -> impl Iterator<Item = usize> + 't {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let dot_joins = format != Format::Toml;
    let joins = move |c: char| matches!(c, ':' | '/') || (c == '.' && dot_joins);
    let goes_on = move |mut chars: std::str::Chars<'_>, forwards: bool| {
        let mut next = || match forwards {
            true => chars.next(),
            false => chars.next_back(),
        };
        match next() {
            Some(c) if joins(c) => next().is_some_and(is_ident),
            c => c.is_some_and(is_ident),
        }
    };
    (!word.is_empty())
        .then(|| text.match_indices(word).map(|(i, _)| i))
        .into_iter()
        .flatten()
        .filter(move |&i| {
            !goes_on(text[..i].chars(), false) && !goes_on(text[i + word.len()..].chars(), true)
        })
}

/// A task found in the text: its id, the byte offset where the id is given, and the one
/// where its definition starts (they differ for a list-form task whose `task_id` is not
/// its first key).
pub(super) type Found = (String, usize, usize);

/// JSON: keys at depth 2 under a top-level `tasks` object (map form), or, when `tasks` is
/// an array (list form), the elements' `task_id` values, placed at the element's `{`.
fn json_tasks(text: &str) -> Vec<Found> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut depth = 0usize;
    // Whether the value being read is the top-level `tasks`, and if so whether a list.
    let mut in_tasks = false;
    let mut list = false;
    let mut element = 0;
    // The last string read, and where it started, when it may be a key.
    let mut last: Option<(String, usize)> = None;
    let mut task_id_next = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let (value, end) = json_string(text, i);
                if std::mem::take(&mut task_id_next) {
                    found.push((value, element, element));
                } else {
                    last = Some((value, i));
                }
                i = end;
                continue;
            }
            b':' => match last.take() {
                Some((key, _)) if depth == 1 => in_tasks = key == "tasks",
                Some((key, start)) if in_tasks && !list && depth == 2 => {
                    found.push((key, start, start));
                }
                Some((key, _)) if in_tasks && list && depth == 3 => task_id_next = key == "task_id",
                _ => {}
            },
            open @ (b'{' | b'[') => {
                depth += 1;
                if in_tasks && depth == 2 {
                    list = open == b'[';
                } else if in_tasks && list && depth == 3 {
                    element = i;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            byte if !byte.is_ascii_whitespace() => task_id_next = false,
            _ => {}
        }
        i += 1;
    }
    found
}

/// The unescaped text of the JSON string starting at `start` (its opening quote), and the
/// offset just past its closing quote.
fn json_string(text: &str, start: usize) -> (String, usize) {
    let bytes = text.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != b'"' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    let end = (i + 1).min(bytes.len());
    let raw = text.get(start..end).unwrap_or_default();
    let value = match raw.contains('\\') {
        true => serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_owned()),
        false => raw
            .get(1..raw.len().saturating_sub(1))
            .unwrap_or_default()
            .to_owned(),
    };
    (value, end)
}

/// Reads one key (or scalar) at the start of `text`: a quoted string (`"..."` with
/// JSON-style escapes, or `'...'` with `''` for a quote) or bare text up to one of `ends`.
/// Returns it and the text after it.
pub(super) fn key<'t>(text: &'t str, ends: &[char]) -> Option<(String, &'t str)> {
    let text = text.trim_start();
    if let Some(body) = text.strip_prefix('"') {
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        let raw = body.get(..i)?;
        let value = serde_json::from_str::<String>(&format!("\"{raw}\""))
            .unwrap_or_else(|_| raw.to_owned());
        return Some((value, body.get(i + 1..).unwrap_or_default()));
    }
    if let Some(body) = text.strip_prefix('\'') {
        let mut value = String::new();
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' if chars.peek().is_some_and(|&(_, c)| c == '\'') => {
                    chars.next();
                    value.push('\'');
                }
                '\'' => return Some((value, &body[i + 1..])),
                c => value.push(c),
            }
        }
        return None;
    }
    let end = text.find(ends).unwrap_or(text.len());
    Some((text[..end].trim_end().to_owned(), &text[end..]))
}

/// TOML: `[tasks.ID]`, `ID = {` under `[tasks]`, and `task_id = "ID"` after `[[tasks]]`.
fn toml_tasks(text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    let mut table = String::new();
    // Whether tasks are `[[tasks]]` elements: then a `[tasks.x]` header is a table of
    // the last element, not a task.
    let mut list_form = false;
    // Where the last `[[tasks]]` element starts.
    let mut element_start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let column = start + (line.len() - line.trim_start().len());
        if let Some(header) = trimmed.strip_prefix('[') {
            let element = header.starts_with('[');
            let header = header.trim_start_matches('[').trim_start();
            match header.strip_prefix("tasks").map(str::trim_start) {
                Some(rest) if rest.starts_with('.') => {
                    table = "a task".to_owned();
                    // `[tasks.ID]` starts task ID; `[tasks.ID.config]` is inside it.
                    let task = key(&rest[1..], &['.', ']'])
                        .filter(|(_, after)| !list_form && after.trim_start().starts_with(']'));
                    found.extend(task.map(|(id, _)| (id, column, column)));
                }
                Some(rest) if rest.starts_with(']') => {
                    table = "tasks".to_owned();
                    list_form |= element;
                    element_start = column;
                }
                _ => table = "other".to_owned(),
            }
            continue;
        }
        let Some((name, rest)) = key(trimmed, &['=', ' ']) else {
            continue;
        };
        let Some(value) = rest.trim_start().strip_prefix('=').map(str::trim_start) else {
            continue;
        };
        // In map form an inline table is a task; in list form it is a field of one.
        if table == "tasks" && !list_form && value.starts_with('{') {
            found.push((name, column, column));
        } else if table == "tasks" && name == "task_id" {
            found.extend(key(value, &['#', ' ']).map(|(id, _)| (id, column, element_start)));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Option<Place> {
        Some(Place { line, column })
    }

    proptest::proptest! {
        /// Lines and columns are those counted from the start of the text, for texts of
        /// several blocks.
        #[test]
        fn a_place_is_its_line_and_column_counted_from_the_start(
            lines in proptest::collection::vec(("[a-zé]{0,40}", 0usize..3_000), 1..200),
            pick in 0usize..1_000,
        ) {
            // Lines of a few letters, some padded long, so that blocks hold many or few.
            let text: String = (lines.iter())
                .map(|(word, pad)| format!("{word}{}\n", " ".repeat(*pad)))
                .collect();
            let places = Places::new(&text, Format::Json);
            let offsets: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            let offset = offsets[pick % offsets.len()];
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            proptest::prop_assert_eq!(places.place(offset), Some(Place { line, column }));
        }
    }

    #[test]
    fn a_text_of_line_breaks_takes_no_memory_per_line() {
        let text = "\n".repeat(4 * BLOCK);
        let places = Places::new(&text, Format::Json);
        assert_eq!(places.blocks.len(), 5);
        assert_eq!(
            places.place(text.len()),
            Some(Place {
                line: 4 * BLOCK + 1,
                column: 1
            })
        );
    }

    /// A place on a line longer than the budget left is not found, and the block read
    /// looking for it is charged: many such problems read no more than the budget.
    #[test]
    fn a_place_not_found_is_charged_what_it_read() {
        let text = format!("{}x", " ".repeat(BASE_BUDGET + 4 * BLOCK + BLOCK / 2));
        let places = Places::new(&text, Format::Json);
        places.budget.set(BASE_BUDGET);
        let offset = text.len() - 1;
        assert_eq!(places.place(offset), None);
        let mut left = places.budget.get();
        assert!(left < BASE_BUDGET, "charged");
        while left > 0 {
            assert_eq!(places.place(offset), None);
            assert!(places.budget.get() < left, "each try is charged");
            left = places.budget.get();
        }
    }

    #[test]
    fn placing_many_problems_in_a_large_task_stops_at_a_budget() {
        let deps: Vec<String> = (0..40_000).map(|i| format!("\"missing-{i}\"")).collect();
        let text = format!(
            "{{\"workflow_id\": \"w\", \"tasks\": {{\"a\": {{\"task_type\": \"t\", \"dependencies\": [{}]}}}}}}",
            deps.join(", ")
        );
        let places = Places::new(&text, Format::Json);
        let placed: Vec<bool> = (0..40_000)
            .map(|i| {
                places
                    .within_task("a", &format!("missing-{i}"), None)
                    .is_some()
            })
            .collect();
        assert!(placed[0] && placed[1], "the first problems are placed");
        let count = placed.iter().filter(|&&p| p).count();
        // Each placing reads the task's whole stretch, about 0.7 MB.
        assert!((50..200).contains(&count), "{count} placed");
        assert!(!placed[39_999]);
        // What is still cheap to place is placed.
        assert!(places.task("a").is_some());
    }

    #[test]
    fn json_map_and_list_forms() {
        let map = "{\n  \"workflow_id\": \"w\",\n  \"tasks\": {\n    \"a\": {\"task_type\": \"t\", \"config\": {\"b\": 1}},\n    \"b\": {\"task_type\": \"t\", \"dependencies\": [\"ghost\"]}\n  }\n}";
        let places = Places::new(map, Format::Json);
        assert_eq!(places.task("a"), at(4, 5));
        assert_eq!(places.task("b"), at(5, 5));
        assert_eq!(places.within_task("b", "ghost", None), at(5, 46));
        let list = r#"{"workflow_id": "w", "tasks": [{"task_id": "a", "task_type": "t"}, {"task_type": "t", "task_id": "b"}]}"#;
        let places = Places::new(list, Format::Json);
        assert_eq!(places.task("a"), at(1, 32));
        assert_eq!(places.task("b"), at(1, 68));
        assert_eq!(places.within_task("a", "task_type", None), at(1, 49));
    }

    #[test]
    fn yaml_map_and_list_forms() {
        let map = "workflow_id: w\ntasks:\n  a:\n    task_type: t\n  'b': # comment\n    task_type: t\n    dependencies: [a, ghost]\n";
        let places = Places::new(map, Format::Yaml);
        assert_eq!(places.task("a"), at(3, 3));
        assert_eq!(places.task("b"), at(5, 3));
        assert_eq!(places.within_task("b", "ghost", None), at(7, 23));
        assert_eq!(places.within_task("b", "a", None), at(7, 20));
        let list = "workflow_id: w\ntasks:\n- task_id: a\n  task_type: t\n- task_type: t\n  task_id: \"b\"\n";
        let places = Places::new(list, Format::Yaml);
        assert_eq!(places.task("a"), at(3, 1));
        assert_eq!(places.task("b"), at(6, 3));
        // An item written as a flow mapping on its line.
        let flow = "workflow_id: w\ntasks:\n  - { task_type: t, config: { k: [1, '}'] }, task_id: a, dependencies: [ghost] }\n  - {task_id: \"b\", task_type: t}\n";
        let places = Places::new(flow, Format::Yaml);
        assert_eq!(places.task("a"), at(3, 3));
        assert_eq!(places.task("b"), at(4, 3));
        assert_eq!(places.within_task("a", "ghost", None), at(3, 73));
        // Quotes inside plain text, escaped quotes, and a quoted scalar that holds what
        // looks like an entry.
        let quotes = "workflow_id: w\ntasks:\n  - { script: don't, task_id: a }\n  - { k: \"x\\\", task_id: c, \\\"\", s: 'it''s, task_id: d', task_id: b }\n";
        let places = Places::new(quotes, Format::Yaml);
        assert_eq!(places.task("a"), at(3, 3));
        assert_eq!(places.task("b"), at(4, 3));
        assert_eq!((places.task("c"), places.task("d")), (None, None));
    }

    /// A list-form task's keys before its `task_id` are its own: a problem there is
    /// placed there, not in the task before it (nor at the id).
    #[test]
    fn keys_before_a_list_form_task_id_are_the_tasks_own() {
        let yaml = "workflow_id: w\ntasks:\n- dependencies: [ghost]\n  task_type: echo\n  task_id: a\n- dependencies: [ghost]\n  task_type: echo\n  task_id: b\n";
        let places = Places::new(yaml, Format::Yaml);
        assert_eq!(places.within_task("a", "ghost", None), at(3, 18));
        assert_eq!(places.within_task("b", "ghost", None), at(6, 18));
        assert_eq!(places.task("b"), at(8, 3));
        assert_eq!(places.within_task("b", "nowhere", None), at(8, 3));
        let toml = "workflow_id = \"w\"\n[[tasks]]\ndependencies = [\"ghost\"]\ntask_id = \"a\"\n[[tasks]]\ndependencies = [\"ghost\"]\ntask_id = \"b\"\n";
        let places = Places::new(toml, Format::Toml);
        assert_eq!(places.within_task("a", "ghost", None), at(3, 17));
        assert_eq!(places.within_task("b", "ghost", None), at(6, 17));
        assert_eq!(places.task("b"), at(7, 1));
    }

    /// A plain YAML key ends at a colon followed by a space or the line's end: a colon
    /// inside it (`test:unit`) is part of the id, as a `#` not after a space is.
    #[test]
    fn a_yaml_id_may_hold_a_colon_or_a_hash() {
        let map = "workflow_id: w\ntasks:\n  test:unit:\n    task_type: echo\n  test:\n    task_type: echo\n    dependencies: [ghost]\n  c#1: # a comment\n    task_type: echo\n";
        let places = Places::new(map, Format::Yaml);
        assert_eq!(places.task("test:unit"), at(3, 3));
        assert_eq!(places.task("test"), at(5, 3));
        assert_eq!(places.within_task("test", "ghost", None), at(7, 20));
        assert_eq!(places.task("c#1"), at(8, 3));
        let list = "workflow_id: w\ntasks:\n- task_id: build:linux # a comment\n  task_type: t\n";
        let places = Places::new(list, Format::Yaml);
        assert_eq!(places.task("build:linux"), at(3, 1));
    }

    /// A task that depends on itself is placed at the dependency, not at its own id.
    #[test]
    fn a_task_naming_itself_is_placed_past_its_own_id() {
        let json = "{\"workflow_id\":\"w\",\"tasks\":{\n  \"a\":{\"task_type\":\"echo\",\n       \"dependencies\":[\"a\"]}}}";
        let places = Places::new(json, Format::Json);
        assert_eq!(places.within_task("a", "a", None), at(3, 24));
        let yaml = "workflow_id: w\ntasks:\n  a:\n    task_type: echo\n    dependencies: [a]\n";
        let places = Places::new(yaml, Format::Yaml);
        assert_eq!(places.within_task("a", "a", None), at(5, 20));
        let toml = "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"echo\"\ndependencies = [\"a\"]\n";
        let places = Places::new(toml, Format::Toml);
        assert_eq!(places.within_task("a", "a", None), at(4, 17));
        // A quoted key, and a list-form task naming itself before its `task_id`.
        let quoted = "workflow_id: w\ntasks:\n  \"a\":\n    dependencies: [a]\n";
        let places = Places::new(quoted, Format::Yaml);
        assert_eq!(places.within_task("a", "a", None), at(4, 20));
        let list =
            "{\"workflow_id\":\"w\",\"tasks\":[\n{\"dependencies\":[\"a\"],\"task_id\":\"a\"}]}";
        let places = Places::new(list, Format::Json);
        assert_eq!(places.within_task("a", "a", None), at(2, 18));
    }

    /// A word looked for under a key is placed there, past the same word in a value
    /// before the key; where the key does not hold it, the first one is taken.
    #[test]
    fn a_word_under_a_key_is_placed_past_the_same_word_before_it() {
        let yaml = "workflow_id: w\ntasks:\n  a:\n    task_type: command\n    config: {args: [lint]}\n    dependencies: [lint]\n";
        let places = Places::new(yaml, Format::Yaml);
        assert_eq!(
            places.within_task("a", "lint", Some("dependencies")),
            at(6, 20)
        );
        assert_eq!(places.within_task("a", "lint", None), at(5, 21));
        assert_eq!(
            places.within_task("a", "lint", Some("task_type")),
            at(5, 21)
        );
        let json = "{\"workflow_id\": \"w\", \"tasks\": {\"a\": {\"config\": {\"args\": [\"lint\"]},\n  \"dependencies\": [\"lint\"]}}}";
        let places = Places::new(json, Format::Json);
        assert_eq!(
            places.within_task("a", "lint", Some("dependencies")),
            at(2, 20)
        );
        let toml = "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"command\"\nconfig = { args = [\"lint\"] }\ndependencies = [\"lint\"]\n";
        let places = Places::new(toml, Format::Toml);
        assert_eq!(
            places.within_task("a", "lint", Some("dependencies")),
            at(5, 17)
        );
    }

    /// The first occurrence is taken, quoted or not; an id inside a longer one
    /// (`test` in `test:unit`, `lib` in `lib.core`) is not an occurrence.
    #[test]
    fn a_word_is_placed_at_its_first_whole_occurrence() {
        let yaml = "workflow_id: w\ntasks:\n  b:\n    dependencies: [lnt]\n    config: {args: [\"lnt\"]}\n";
        let places = Places::new(yaml, Format::Yaml);
        assert_eq!(places.within_task("b", "lnt", None), at(4, 20));
        let yaml = "workflow_id: w\ntasks:\n  b:\n    dependencies:\n      - test:unit\n      - lib.core\n      - a/test\n      - test\n      - lib\n";
        let places = Places::new(yaml, Format::Yaml);
        assert_eq!(places.within_task("b", "test", None), at(8, 9));
        assert_eq!(places.within_task("b", "lib", None), at(9, 9));
        assert_eq!(places.within_task("b", "unit", None), at(3, 3));
        let toml =
            "workflow_id = \"w\"\n[tasks.b]\nconfig = { args = ['lnt'] }\ndependencies = ['lnt']\n";
        let places = Places::new(toml, Format::Toml);
        assert_eq!(
            places.within_task("b", "lnt", Some("dependencies")),
            at(4, 18)
        );
    }

    /// In JSON a quoted key is taken over the same word in an earlier text; in TOML a
    /// dotted key's parts are keys of their own.
    #[test]
    fn a_key_is_placed_as_its_format_writes_keys() {
        let json = "{\"workflow_id\": \"w\", \"tasks\": {\"a\": {\"config\": {\"message\": \"timeout hit\",\n  \"timeout\": 1}}}}";
        let places = Places::new(json, Format::Json);
        assert_eq!(places.within_task("a", "timeout", None), at(2, 3));
        let toml =
            "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"command\"\nconfig.progam = \"make\"\n";
        let places = Places::new(toml, Format::Toml);
        assert_eq!(places.within_task("a", "progam", None), at(4, 8));
    }

    #[test]
    fn a_yaml_task_id_inside_a_task_starts_no_task() {
        let text = "workflow_id: q\ntasks:\n  notify:\n    task_type: echo\n    config:\n      message:\n        task_id: deploy\n  deploy:\n    task_type: command\n    config: { progam: make }\n    dependencies: [biuld]\n";
        let places = Places::new(text, Format::Yaml);
        assert_eq!(places.task("deploy"), at(8, 3));
        assert_eq!(places.within_task("deploy", "biuld", None), at(11, 20));
        assert_eq!(places.within_task("deploy", "progam", None), at(10, 15));
        // A map-form task may repeat its id; its stretch goes on past that line.
        let again = "workflow_id: w\ntasks:\n  a:\n    task_id: a\n    dependencies: [ghost]\n  task_id:\n    task_type: t\n";
        let places = Places::new(again, Format::Yaml);
        assert_eq!(places.within_task("a", "ghost", None), at(5, 20));
        assert_eq!(places.task("task_id"), at(6, 3));
        // In list form, only an item's own `task_id` starts it.
        let list = "workflow_id: w\ntasks:\n-   task_type: t\n    config:\n      task_id: b\n    task_id: a\n-\n  task_type: t\n  steps:\n  - task_id: a\n  task_id: b\n";
        let places = Places::new(list, Format::Yaml);
        assert_eq!(places.task("a"), at(6, 5));
        assert_eq!(places.task("b"), at(11, 3));
    }

    /// In list form, an inline table (`config = { ... }`) is inside the task, and the
    /// lines after it are the task's too.
    #[test]
    fn a_toml_inline_table_in_list_form_starts_no_task() {
        let text = "workflow_id = \"w\"\n[[tasks]]\ntask_id = \"a\"\ntask_type = \"command\"\nconfig = { progam = \"ls\" }\ndependencies = [\"ghost\"]\n";
        let places = Places::new(text, Format::Toml);
        assert_eq!(places.task("a"), at(3, 1));
        assert_eq!(places.within_task("a", "progam", None), at(5, 12));
        assert_eq!(places.within_task("a", "ghost", None), at(6, 17));
    }

    #[test]
    fn toml_tables_inline_tables_and_arrays() {
        let text = "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\n[tasks.\"b c\"]\ntask_type = \"t\"\n";
        let places = Places::new(text, Format::Toml);
        assert_eq!(places.task("a"), at(2, 1));
        assert_eq!(places.task("b c"), at(4, 1));
        let inline = "workflow_id = \"w\"\n[tasks]\nx = { task_type = \"t\" }\n";
        assert_eq!(Places::new(inline, Format::Toml).task("x"), at(3, 1));
        let list = "workflow_id = \"w\"\n[[tasks]]\ntask_id = \"z\"\ntask_type = \"t\"\n";
        assert_eq!(Places::new(list, Format::Toml).task("z"), at(3, 1));
    }

    #[test]
    fn a_toml_tasks_own_tables_are_inside_it() {
        let text = "workflow_id = \"w\"\n[tasks.build]\ntask_type = \"command\"\n[tasks.build.config]\nprogam = \"make\"\n[tasks.test]\ntask_type = \"t\"\n";
        let places = Places::new(text, Format::Toml);
        assert_eq!(places.within_task("build", "progam", None), at(5, 1));
        assert_eq!(places.task("test"), at(6, 1));
        assert_eq!(places.task("config"), None);
        let list = "workflow_id = \"w\"\n[[tasks]]\ntask_id = \"z\"\n[tasks.config]\nprogam = 1\n";
        let places = Places::new(list, Format::Toml);
        assert_eq!(places.within_task("z", "progam", None), at(5, 1));
        assert_eq!(places.task("config"), None);
    }

    proptest::proptest! {
        /// Tasks written one a line, in each format's map form and in JSON's and YAML's
        /// list forms, are found on their line, whatever their ids.
        #[test]
        fn every_task_is_found_on_its_line(
            ids in proptest::collection::btree_set("[a-z_][a-z0-9_ .\"\\\\/-]{0,8}", 1..12),
        ) {
            let ids: Vec<String> = ids.into_iter().collect();
            let quoted: Vec<String> = ids.iter().map(|id| serde_json::to_string(id).expect("JSON")).collect();
            let json_map = format!(
                "{{\n  \"workflow_id\": \"w\",\n  \"tasks\": {{\n{}\n  }}\n}}",
                quoted.iter().map(|q| format!("    {q}: {{\"task_type\": \"t\"}}")).collect::<Vec<_>>().join(",\n")
            );
            let json_list = format!(
                "{{\"workflow_id\": \"w\", \"tasks\": [\n{}\n]}}",
                quoted.iter().map(|q| format!("{{\"task_type\": \"t\", \"task_id\": {q}}}")).collect::<Vec<_>>().join(",\n")
            );
            // Each task's config holds a `task_id` naming the next task, which starts
            // nothing.
            let next = |i: usize| &quoted[(i + 1) % quoted.len()];
            let yaml = format!(
                "workflow_id: w\ntasks:\n{}",
                quoted.iter().enumerate().map(|(i, q)| format!("  {q}:\n    config:\n      task_id: {}\n", next(i))).collect::<String>()
            );
            let yaml_list = format!(
                "workflow_id: w\ntasks:\n{}",
                quoted.iter().enumerate().map(|(i, q)| format!("- task_id: {q}\n  config:\n    task_id: {}\n", next(i))).collect::<String>()
            );
            let toml = format!(
                "workflow_id = \"w\"\n{}",
                quoted.iter().map(|q| format!("[tasks.{q}]\ntask_type = \"t\"\n")).collect::<String>()
            );
            for (text, format, first, step) in [
                (&json_map, Format::Json, 4, 1),
                (&json_list, Format::Json, 2, 1),
                (&yaml, Format::Yaml, 3, 3),
                (&yaml_list, Format::Yaml, 3, 3),
                (&toml, Format::Toml, 2, 2),
            ] {
                let places = Places::new(text, format);
                for (i, id) in ids.iter().enumerate() {
                    let line = places.task(id).map(|p| p.line);
                    proptest::prop_assert_eq!(line, Some(first + i * step), "{} in {}", id, text);
                }
            }
        }
    }

    #[test]
    fn a_task_not_found_has_no_place() {
        let places = Places::new("workflow_id: w\ntasks: {a: {task_type: t}}\n", Format::Yaml);
        assert_eq!(places.task("a"), None);
        assert_eq!(places.within_task("a", "x", None), None);
    }
}
