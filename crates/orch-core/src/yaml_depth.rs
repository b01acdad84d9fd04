//! A bound on how deeply a YAML document nests flow collections, checked before the YAML
//! parser that reads workflows (libyaml's, through serde_yaml_ng) sees the text: its work
//! grows with the square of the depth of flow collections (`[[[...`) before its own
//! limit can refuse the document.
//!
//! Telling brackets that are structure from brackets that are text takes a YAML scanner
//! (a quote in a plain scalar, `Bob's`, opens nothing; one after `: ` opens a string), so
//! the check reads the document's events with a second parser, saphyr-parser, which
//! stops deep flow nesting early by itself, and stops at the first flow collection
//! nested deeper than [`MAX_DEPTH`] (or where saphyr-parser's own limit stopped it). Two shortcuts:
//! - a document with no quote, comment or block scalar character has its brackets
//!   counted instead: each is then structure, or text in a plain scalar outside any flow
//!   collection (where counting it can only make the check stricter);
//! - if saphyr-parser finds a syntax error before a verdict, the brackets are counted
//!   skipping what looks quoted or commented (the YAML parser then reports the error).

use saphyr_parser::{Event, Parser};

/// The deepest nesting of flow collections a workflow file may use.
pub(crate) const MAX_DEPTH: usize = 128;

/// Where the flow nesting of `text` first goes past [`MAX_DEPTH`], as a byte offset.
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    let plain = !text
        .bytes()
        .any(|b| matches!(b, b'"' | b'\'' | b'#' | b'|' | b'>'));
    if plain {
        return counted(text, false);
    }
    match by_events(text) {
        Ok(verdict) => verdict,
        Err(()) => counted(text, true),
    }
}

/// The first flow collection nested too deeply, read from the document's events; `Err`
/// if the document has a syntax error before any.
fn by_events(text: &str) -> Result<Option<usize>, ()> {
    let mut chars = Chars::new(text);
    // Whether each open collection is a flow one, and how many of them are.
    let (mut open, mut depth) = (Vec::new(), 0usize);
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            // Its own limit on flow nesting (somewhere past ours).
            Err(error) if error.info() == "recursion limit exceeded" => {
                return Ok(Some(chars.byte_offset(error.marker().index())));
            }
            Err(_) => return Err(()),
        };
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let at = chars.byte_offset(span.start.index());
                let flow = matches!(text.as_bytes().get(at), Some(b'[' | b'{'));
                open.push(flow);
                depth += usize::from(flow);
                if depth > MAX_DEPTH {
                    return Ok(Some(at));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                depth -= usize::from(open.pop().unwrap_or(false));
            }
            Event::StreamEnd => break,
            _ => {}
        }
    }
    Ok(None)
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

/// Where the bracket nesting first goes past [`MAX_DEPTH`], skipping (with `skipping`)
/// what is between quotes and after a `#` that follows white space.
fn counted(text: &str, skipping: bool) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut comment = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match (quote, byte) {
            _ if comment => comment = byte != b'\n',
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), _) if byte == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') if skipping => quote = Some(byte),
            (None, b'#') if skipping && (i == 0 || bytes[i - 1].is_ascii_whitespace()) => {
                comment = true;
            }
            (None, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            (None, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
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
            assert_eq!(too_deep(&deep), Some(prefix.len() + MAX_DEPTH), "{prefix}");
        }
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
        assert_eq!(too_deep(&text), Some(2 + many.len() + 1 + 3 + MAX_DEPTH));
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
            let at = too_deep(&text).unwrap_or_else(|| panic!("{before}: not refused"));
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

    #[test]
    fn siblings_do_not_add_up() {
        let text = format!("a: {}", "[[]]".repeat(10_000));
        assert_eq!(too_deep(&text), None);
        let quoted = format!("a: ['x', {}]", "[['y']], ".repeat(10_000));
        assert_eq!(too_deep(&quoted), None);
    }
}
