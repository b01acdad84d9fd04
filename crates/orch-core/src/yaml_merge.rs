//! Finding YAML merge keys (`<<: *defaults`), which orch refuses: the YAML parser that
//! reads workflows takes `<<` as an ordinary key, so a merge written in a task's
//! `config` would silently become a key named `<<` instead of the keys it merges.
//!
//! A merge key is a plain (unquoted, untagged) `<<` in a mapping's key position; a
//! quoted `"<<"` is an ordinary key and passes.

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::yaml_depth::Chars;

/// Where the first merge key of `text` is, as a byte offset. A document with a syntax
/// error before one has none found here: the YAML parser reports the error.
pub(crate) fn merge_key(text: &str) -> Option<usize> {
    if !text.contains("<<") {
        return None;
    }
    let mut chars = Chars::new(text);
    // For each open collection: `Some(next is a key)` for a mapping, `None` for a list.
    let mut open: Vec<Option<bool>> = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        match event {
            Event::Scalar(value, style, _, tag) => {
                let key = open.last() == Some(&Some(true));
                if key && style == ScalarStyle::Plain && tag.is_none() && value == "<<" {
                    return Some(chars.byte_offset(span.start.index()));
                }
                node_ended(&mut open);
            }
            Event::Alias(_) => node_ended(&mut open),
            Event::SequenceStart(..) => open.push(None),
            Event::MappingStart(..) => open.push(Some(true)),
            Event::SequenceEnd | Event::MappingEnd => {
                open.pop();
                node_ended(&mut open);
            }
            Event::StreamEnd => break,
            _ => {}
        }
    }
    None
}

/// A node ended inside the innermost open collection: in a mapping, a key is followed
/// by its value and a value by the next key.
fn node_ended(open: &mut [Option<bool>]) {
    if let Some(Some(next_is_key)) = open.last_mut() {
        *next_is_key = !*next_is_key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_merge_key_is_found_where_it_is_written() {
        let text = "a: &x {k: 1}\nb:\n  y: 2\n  <<: *x\n";
        assert_eq!(merge_key(text), text.find("<<"));
        let flow = "a: [1, {<<: {k: 1}}]";
        assert_eq!(merge_key(flow), flow.find("<<"));
        let listed = "- &t {k: 1}\n- <<: *t\n  j: 2\n";
        assert_eq!(merge_key(listed), listed.find("<<"));
    }

    #[test]
    fn quoted_keys_values_and_text_that_holds_the_characters_are_not_merges() {
        for text in [
            "\"<<\": 1",
            "'<<': 1",
            "a: <<",
            "a: [<<, b]",
            "a: x << y",
            "a: |\n  <<: 1\n",
            "a: {b: c, d: <<}",
            "<<x: 1",
        ] {
            assert_eq!(merge_key(text), None, "{text}");
        }
    }

    #[test]
    fn a_key_after_a_nested_value_is_still_seen_as_a_key() {
        let text = "a:\n  b: [1, 2]\n  c: {d: e}\n  <<: {f: g}\n";
        assert_eq!(merge_key(text), text.find("<<"));
    }
}
