//! A bound on how deeply a YAML document nests flow collections (`[[[...` or `{{{...`),
//! checked before the YAML parser sees the text: the parser's work grows with the square
//! of that depth before any later check can refuse the document.

/// The deepest nesting of flow collections a workflow file may use.
pub(crate) const MAX_FLOW_DEPTH: usize = 128;

/// Where the flow nesting of `text` first goes past [`MAX_FLOW_DEPTH`], as a byte offset.
///
/// Brackets inside quoted scalars and comments are not counted. Brackets in plain block
/// scalars (`key: a[b`) are counted, which can only make the check stricter for a
/// document that opens over a hundred of them without closing them.
pub(crate) fn too_deep(text: &str) -> Option<usize> {
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
            (None, b'"' | b'\'') => quote = Some(byte),
            (None, b'#') if i == 0 || bytes[i - 1].is_ascii_whitespace() => comment = true,
            (None, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
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

    #[test]
    fn nesting_up_to_the_limit_passes_and_one_more_is_found_where_it_opens() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_FLOW_DEPTH),
            "]".repeat(MAX_FLOW_DEPTH)
        );
        assert_eq!(too_deep(&ok), None);
        let deep = format!("a: {}", "[".repeat(MAX_FLOW_DEPTH + 1));
        assert_eq!(too_deep(&deep), Some(3 + MAX_FLOW_DEPTH));
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let many = "[".repeat(MAX_FLOW_DEPTH + 1);
        assert_eq!(too_deep(&format!("a: \"{many}\"")), None);
        assert_eq!(too_deep(&format!("a: '{many}'")), None);
        assert_eq!(too_deep(&format!("a: \"\\\"{many}\"")), None);
        assert_eq!(too_deep(&format!("a: 1 # {many}\nb: 2")), None);
        let text = format!("# {many}\nb: [{many}");
        let comment = 2 + many.len() + 1;
        assert_eq!(too_deep(&text), Some(comment + 3 + MAX_FLOW_DEPTH));
    }

    #[test]
    fn siblings_do_not_add_up() {
        let text = "[[]]".repeat(10_000);
        assert_eq!(too_deep(&text), None);
    }
}
