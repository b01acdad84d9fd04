//! A bound on how deeply a YAML document nests flow collections, checked before the YAML
//! parser that reads workflows (libyaml's, through serde_yaml_ng) sees the text: its work
//! grows with the square of the depth of flow collections (`[[[...`) before its own
//! limit can refuse the document.
//!
//! Telling brackets that are structure from brackets that are text takes a YAML scanner
//! (a quote in a plain scalar, `Bob's`, opens nothing; one after `: ` opens a string), so
//! the check reads the document's events with a second parser, saphyr-parser, which
//! stops deep flow nesting early by itself, and stops at the first flow collection
//! nested deeper than [`MAX_DEPTH`] (or where saphyr-parser's own limit stopped it). Two
//! other cases:
//! - a document with no quote, comment or block scalar character has its brackets
//!   counted first: each is then structure, or text in a plain scalar outside any flow
//!   collection (where counting it can only make the count higher), so a count within
//!   the limit settles it, and only a count past it has the events read;
//! - saphyr-parser stops at a syntax error, and libyaml accepts some of them (a comment
//!   with no space before it, `{k: 1}#c`): past the error, no guess at what is quoted
//!   can be trusted (`Bob's` would hide what follows it, a `]` in a string would undo a
//!   real `[`), so every `[` and `{` from there on counts as one more level, and closes
//!   none. A document that could nest too deep by that count is [`Found::Unreadable`].
//!
//! libyaml (YAML 1.1) also ends a line at NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR,
//! saphyr-parser (YAML 1.2) only at `\n` and `\r`: a comment would run on through them
//! for the checks while libyaml reads what follows. The checks read the text as
//! [`with_libyaml_line_breaks`] gives it.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser};

/// The deepest nesting of flow collections a workflow file may use (collections of
/// both kinds are bounded alike while the document is read).
pub(crate) const MAX_DEPTH: usize = crate::guard::MAX_NESTING;

/// What a check of a YAML document, made before the YAML parser reads it, found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// What the check looks for, at this byte offset.
    At(usize),
    /// A syntax error saphyr-parser stopped at, past which the check cannot tell, while
    /// the text past it could hold what the check looks for.
    Unreadable {
        /// The error's byte offset.
        offset: usize,
        /// saphyr-parser's description of the error.
        message: String,
    },
}

/// Where the flow nesting of `text` first goes past [`MAX_DEPTH`] ([`Found::At`], a byte
/// offset), or the syntax error past which it could without the check knowing.
pub(crate) fn too_deep(text: &str) -> Option<Found> {
    let plain = !text
        .bytes()
        .any(|b| matches!(b, b'"' | b'\'' | b'#' | b'|' | b'>'));
    if !plain {
        return by_events(text, None);
    }
    // Plain text in a block (`pattern: x[[[`) is counted too: past the limit, only the
    // events tell.
    let counted_at = counted(text)?;
    by_events(text, Some(counted_at))
}

/// The first flow collection nested too deeply, read from the document's events, or the
/// syntax error before which none was and past which one could be. `counted_at`, where
/// the count of a plain document's brackets went past the limit, places what
/// saphyr-parser's own limit stops (further on): the count never runs behind the
/// nesting, and is exact when every bracket is structure.
fn by_events(text: &str, counted_at: Option<usize>) -> Option<Found> {
    let mut chars = Chars::new(text);
    // For each open collection, where it starts and whether it is a flow one; how many of
    // them are flow ones.
    let (mut open, mut depth) = (Vec::new(), 0usize);
    // The character index where the last event read starts.
    let mut last = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            // Its own limit on flow nesting (somewhere past ours).
            Err(error) if error.info() == "recursion limit exceeded" => {
                let stopped = chars.byte_offset(error.marker().index());
                return Some(Found::At(counted_at.map_or(stopped, |at| at.min(stopped))));
            }
            Err(error) => {
                let (from, unreadable) = unread_past(&mut chars, last, &error);
                let before = open.iter().filter(|&&(at, flow)| flow && at < from);
                let mut levels = before.count();
                let too_deep = text[from..].bytes().any(|b| {
                    levels += usize::from(matches!(b, b'[' | b'{'));
                    levels > MAX_DEPTH
                });
                return too_deep.then_some(unreadable);
            }
        };
        last = span.start.index();
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let at = chars.byte_offset(span.start.index());
                let flow = opens_flow(&text[at..]);
                open.push((at, flow));
                depth += usize::from(flow);
                if depth > MAX_DEPTH {
                    return Some(Found::At(at));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                depth -= usize::from(open.pop().is_some_and(|(_, flow)| flow));
            }
            Event::StreamEnd => break,
            _ => {}
        }
    }
    None
}

/// Where the second document of `text` starts (a byte offset), if it has one and is
/// readable up to there.
pub(crate) fn second_document(text: &str) -> Option<usize> {
    let mut chars = Chars::new(text);
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        if let Event::DocumentStart(..) = event {
            documents += 1;
            if documents == 2 {
                return Some(chars.byte_offset(span.start.index()));
            }
        }
    }
    None
}

/// Whether the collection whose event starts `text` is a flow one: it opens with `[` or
/// `{`, after its tag and anchor if it has them (its event starts at those, `!t [`).
fn opens_flow(mut text: &str) -> bool {
    loop {
        text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        let property_end = match text.as_bytes().first() {
            Some(b'[' | b'{') => return true,
            // A verbatim tag, `!<tag:example.com,2024:x>`, ends at its `>`.
            Some(b'!') if text.as_bytes().get(1) == Some(&b'<') => text.find('>').map(|at| at + 1),
            // A tag or anchor name ends at white space or at a flow indicator.
            Some(b'!' | b'&') => Some(
                text.find([' ', '\t', '\r', '\n', '[', ']', '{', '}', ','])
                    .unwrap_or(text.len()),
            ),
            // A comment between the properties and the collection runs to the line's end.
            Some(b'#') => Some(text.find(['\n', '\r']).unwrap_or(text.len())),
            _ => return false,
        };
        match property_end {
            Some(end) => text = &text[end..],
            None => return false,
        }
    }
}

/// Where saphyr-parser's `error` leaves a check blind, `last` being the character index
/// where the last event read starts: the byte offset from which the events read so far
/// tell nothing (what it scanned past that without an event yet), and the error as
/// [`Found::Unreadable`].
pub(crate) fn unread_past(
    chars: &mut Chars<'_>,
    last: usize,
    error: &saphyr_parser::ScanError,
) -> (usize, Found) {
    let from = chars.byte_offset(last.min(error.marker().index()));
    let unreadable = Found::Unreadable {
        offset: chars.byte_offset(error.marker().index()),
        message: error.info().to_owned(),
    };
    (from, unreadable)
}

/// Byte offsets of character indices, for indices that mostly grow (as events' do).
pub(crate) struct Chars<'t> {
    text: &'t str,
    /// A character index and its byte offset, where the last look-up ended.
    at: (usize, usize),
}

impl<'t> Chars<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Self { text, at: (0, 0) }
    }

    pub(crate) fn byte_offset(&mut self, index: usize) -> usize {
        if index < self.at.0 {
            self.at = (0, 0);
        }
        let (from, byte) = self.at;
        let offset = self.text[byte..]
            .char_indices()
            .nth(index - from)
            .map_or(self.text.len(), |(at, _)| byte + at);
        self.at = (index, offset);
        offset
    }
}

/// Where the bracket nesting first goes past [`MAX_DEPTH`], as a byte offset.
fn counted(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, byte) in text.bytes().enumerate() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// `text` with each line break that libyaml knows and saphyr-parser does not (NEL,
/// LINE SEPARATOR, PARAGRAPH SEPARATOR) made a `\n`, after spaces that keep every byte
/// where it was: offsets found in the copy hold for `text`.
pub(crate) fn with_libyaml_line_breaks(text: &str) -> Cow<'_, str> {
    if !text.contains(['\u{85}', '\u{2028}', '\u{2029}']) {
        return Cow::Borrowed(text);
    }
    let mut copy = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{85}' => copy.push_str(" \n"),
            '\u{2028}' | '\u{2029}' => copy.push_str("  \n"),
            c => copy.push(c),
        }
    }
    Cow::Owned(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_one_more_is_found_where_it_opens() {
        for prefix in ["a: ", "a: 'quoted'\nb: "] {
            let ok = format!("{prefix}{}", nested(MAX_DEPTH));
            assert_eq!(too_deep(&ok), None, "{prefix}");
            let deep = format!("{prefix}{}", nested(MAX_DEPTH + 1));
            let at = Some(Found::At(prefix.len() + MAX_DEPTH));
            assert_eq!(too_deep(&deep), at, "{prefix}");
        }
    }

    #[test]
    fn a_flow_collection_with_a_tag_or_an_anchor_counts_as_one() {
        for (open, with) in [
            ("!t [", "a tag"),
            ("&x [", "an anchor"),
            ("!t &x {", "both"),
        ] {
            let close = if open.ends_with('{') { "}" } else { "]" };
            let nested =
                |levels: usize| format!("a: {}1{}", open.repeat(levels), close.repeat(levels));
            // A `{` needs a key: `{1}` is a mapping of `1` to null, so both kinds nest.
            assert_eq!(too_deep(&nested(MAX_DEPTH)), None, "{with}");
            let at = Some(Found::At(3 + open.len() * MAX_DEPTH));
            assert_eq!(too_deep(&nested(MAX_DEPTH + 1)), at, "{with}");
        }
        let verbatim = format!(
            "a: {}1{}",
            "!<tag:x,2024:y> [".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(too_deep(&verbatim).is_some());
        // Properties on a block collection: not a flow one.
        assert!(!opens_flow("&x\n  - [1]"));
        assert!(opens_flow("!t # a comment\n  [1]"));
    }

    #[test]
    fn brackets_in_quotes_comments_and_block_scalars_do_not_count() {
        let many = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(too_deep(&format!("a: \"{many}\"")), None);
        assert_eq!(too_deep(&format!("a: '{many}'")), None);
        assert_eq!(too_deep(&format!("a: \"\\\"{many}\"")), None);
        assert_eq!(too_deep(&format!("a: 'it''s {many}'")), None);
        assert_eq!(too_deep(&format!("a: 1 # {many}\nb: 2")), None);
        assert_eq!(too_deep(&format!("a: |\n  {many}\nb: 2")), None);
        let text = format!("# {many}\nb: [{}]", nested(MAX_DEPTH));
        let at = 2 + many.len() + 1 + 3 + MAX_DEPTH;
        assert_eq!(too_deep(&text), Some(Found::At(at)));
    }

    #[test]
    fn quotes_that_open_no_string_hide_nothing() {
        let deep = nested(100_000);
        for before in [
            "name: Bob's pipeline\n",
            "name: 12\" pipe\n",
            "text: |\n  it's\n",
            "list: [x 'y, 'z ]]]]]]]]]]]]' ]\n",
        ] {
            let text = format!("{before}a: {deep}\n");
            let Some(Found::At(at)) = too_deep(&text) else {
                panic!("{before}: not refused where it nests too deep");
            };
            // Inside the deep nesting, at most where saphyr-parser's own limit stops it.
            let deep_from = before.len() + 3 + MAX_DEPTH;
            assert!((deep_from..deep_from + 256).contains(&at), "{before}: {at}");
        }
    }

    #[test]
    fn a_syntax_error_before_deep_nesting_still_counts_the_brackets() {
        let text = format!("a: [\n  - b: c\n: ]\nz: {}", nested(100_000));
        assert!(too_deep(&text).is_some());
    }

    /// A syntax error saphyr-parser stops at, which libyaml reads: a comment with no space
    /// before it.
    const LAX: &str = "x: {k: 1}#c\n";

    fn unreadable_at_lax(text: &str) -> Option<Found> {
        Some(Found::Unreadable {
            offset: text.find("#c").expect("the comment"),
            message: "comments must be separated from other tokens by whitespace".into(),
        })
    }

    #[test]
    fn quotes_around_a_syntax_error_hide_no_nesting_past_it() {
        let deep = nested(1000);
        for text in [
            format!("name: Bob's\n{LAX}d: {deep}\nn: it's\n"),
            format!("{LAX}name: Bob's\nd: {deep}\nn: it's\n"),
            format!("{LAX}name: 12\" pipe\nd: {deep}\nn: 'x\"'\n"),
        ] {
            assert_eq!(too_deep(&text), unreadable_at_lax(&text), "{text}");
        }
    }

    #[test]
    fn closing_brackets_in_strings_past_a_syntax_error_close_nothing() {
        // 3 * 100 levels deep, with 100 `]` in a string after each 100 `[`.
        let chunk = format!("{}\"{}\", ", "[".repeat(100), "]".repeat(100));
        let text = format!("{LAX}d: {}1{}\n", chunk.repeat(3), "]".repeat(300));
        assert_eq!(too_deep(&text), unreadable_at_lax(&text));
    }

    #[test]
    fn a_syntax_error_with_little_nesting_past_it_is_left_to_the_yaml_parser() {
        // With `{k: 1}`, open where saphyr-parser stops, `MAX_DEPTH` levels at most.
        let within = format!("d: {}\n", "[1], ".repeat(MAX_DEPTH - 1));
        for text in [
            format!("{LAX}y: [1, {{z: 'it''s'}}]\nn: Bob's\n"),
            format!("{LAX}{within}"),
        ] {
            assert_eq!(too_deep(&text), None, "{text}");
        }
        // One more collection open where it stops: one level too many.
        let past = format!("a: [\n  {LAX}{within}");
        assert_eq!(too_deep(&past), unreadable_at_lax(&past));
    }

    #[test]
    fn siblings_do_not_add_up() {
        let text = format!("a: {}", "[[]]".repeat(10_000));
        assert_eq!(too_deep(&text), None);
        let quoted = format!("a: ['x', {}]", "[['y']], ".repeat(10_000));
        assert_eq!(too_deep(&quoted), None);
    }
}
