//! Text padded to a column's width, for the text tables of `plan` and `runs`.

/// `text` followed by spaces up to `width` characters. Padded by hand: the formatter's
/// own padding (`{:<width$}`) panics on a width over 65535, which a task id may be.
pub(crate) fn pad(text: &str, width: usize) -> String {
    let mut padded = String::with_capacity(text.len() + width);
    padded.push_str(text);
    let count = text.chars().count();
    padded.extend(std::iter::repeat_n(' ', width.saturating_sub(count)));
    padded
}

#[cfg(test)]
mod tests {
    use super::pad;

    #[test]
    fn text_is_padded_to_any_width() {
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(pad("ábc", 2), "ábc");
        assert_eq!(pad("", 70_000).len(), 70_000);
    }
}
