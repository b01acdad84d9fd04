//! Finding YAML merge keys (`<<: *defaults`), which orch refuses: the YAML parser that
//! reads workflows takes `<<` as an ordinary key, so a merge written in a task's
//! `config` would silently become a key named `<<` instead of the keys it merges.
//!
//! A merge key is a plain (unquoted) `<<` in a mapping's key position, untagged or
//! tagged as a merge (`!!merge`, or the same tag spelled in full or through a `%TAG`
//! handle); a quoted `"<<"` (or one tagged `!!str`) is an ordinary key and passes.

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::yaml_depth::{Chars, Found, unread_past};

/// The merge key's tag in full.
const MERGE_TAG: &str = "tag:yaml.org,2002:merge";

/// Where the first merge key of `text` is ([`Found::At`], a byte offset), or the syntax
/// error saphyr-parser stops at before one when `<<` is written past it: saphyr-parser
/// stops at some text the YAML parser that reads workflows accepts (a comment with no
/// space before it, `{k: 1}#c`), so past that point a `<<` may be a merge key. A syntax
/// error with no `<<` past it is left to the YAML parser to report.
pub(crate) fn merge_key(text: &str) -> Option<Found> {
    if !text.contains("<<") {
        return None;
    }
    let mut chars = Chars::new(text);
    // For each open collection: `Some(next is a key)` for a mapping, `None` for a list.
    let mut open: Vec<Option<bool>> = Vec::new();
    // The character index where the last event read starts.
    let mut last = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            Err(error) => {
                let (from, unreadable) = unread_past(&mut chars, last, &error);
                return text[from..].contains("<<").then_some(unreadable);
            }
        };
        last = span.start.index();
        match event {
            Event::Scalar(value, style, _, tag) => {
                let key = open.last() == Some(&Some(true));
                // Untagged, or tagged as the merge it is, however the tag is spelled
                // (`!!merge`, `!<tag:yaml.org,2002:merge>`, a `%TAG` handle).
                let merge_tag = tag.as_ref().is_none_or(|t| {
                    MERGE_TAG.strip_prefix(t.handle.as_str()) == Some(t.suffix.as_str())
                });
                if key && style == ScalarStyle::Plain && merge_tag && value == "<<" {
                    return Some(Found::At(chars.byte_offset(span.start.index())));
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

    fn at_first_merge(text: &str) -> Option<Found> {
        text.find("<<").map(Found::At)
    }

    #[test]
    fn a_plain_merge_key_is_found_where_it_is_written() {
        let text = "a: &x {k: 1}\nb:\n  y: 2\n  <<: *x\n";
        assert_eq!(merge_key(text), at_first_merge(text));
        let flow = "a: [1, {<<: {k: 1}}]";
        assert_eq!(merge_key(flow), at_first_merge(flow));
        let listed = "- &t {k: 1}\n- <<: *t\n  j: 2\n";
        assert_eq!(merge_key(listed), at_first_merge(listed));
    }

    #[test]
    fn a_merge_key_tagged_in_any_spelling_of_the_merge_tag_is_found() {
        for text in [
            "a: &x {k: 1}\nb:\n  !!merge <<: *x\n",
            "a: &x {k: 1}\nb:\n  !<tag:yaml.org,2002:merge> <<: *x\n",
            "%TAG !e! tag:yaml.org,2002:mer\n---\na: &x {k: 1}\nb:\n  !e!ge <<: *x\n",
        ] {
            let key_line = text.rfind("\n  ").map(|at| Found::At(at + 3));
            assert_eq!(merge_key(text), key_line, "{text}");
        }
        for text in ["a: {!!str <<: 1}", "a: {!<tag:yaml.org,2002:str> <<: 1}"] {
            assert_eq!(merge_key(text), None, "{text}");
        }
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
        assert_eq!(merge_key(text), at_first_merge(text));
    }

    #[test]
    fn a_syntax_error_before_a_possible_merge_key_is_found_where_it_is() {
        // saphyr-parser stops at `}#c`, which the YAML parser reads as a comment.
        for text in [
            "a:\n  x: {k: 1}#c\n  m: {<<: {k: 2}}\n",
            "a:\n  x: {k: 1}#c\n  <<: {k: 2}\n",
            "a: 'it''s'\nx: [1]#c\ny: \"<<\"\n",
        ] {
            let error = Found::Unreadable {
                offset: text.find("#c").expect("the comment"),
                message: "comments must be separated from other tokens by whitespace".into(),
            };
            assert_eq!(merge_key(text), Some(error), "{text}");
        }
    }

    #[test]
    fn a_merge_key_before_a_syntax_error_is_found_and_one_with_no_merge_past_it_passes() {
        let text = "a: {<<: {k: 1}}\nx: {k: 1}#c\n";
        assert_eq!(merge_key(text), at_first_merge(text));
        assert_eq!(merge_key("a: \"<<\"\nx: {k: 1}#c\ny: 2\n"), None);
    }
}
