//! Text padded to a column's width, for the text tables of `plan` and `runs`.

/// The widest a column is padded to: a longer cell overflows its column rather than
/// pad every other row of the table (a task id has no length limit).
pub(crate) const MAX_WIDTH: usize = 64;

/// The width of a column of `cells`: its widest cell, at least `at_least`, at most
/// [`MAX_WIDTH`].
pub(crate) fn width<'a>(cells: impl Iterator<Item = &'a str>, at_least: usize) -> usize {
    cells
        .map(|cell| cell.chars().count())
        .max()
        .unwrap_or(0)
        .max(at_least)
        .min(MAX_WIDTH)
}

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
    use super::{MAX_WIDTH, pad, width};

    #[test]
    fn a_column_is_as_wide_as_its_widest_cell_up_to_a_limit() {
        assert_eq!(width(["ab", "abc"].into_iter(), 4), 4);
        assert_eq!(width(["abcdef", "a"].into_iter(), 4), 6);
        let long = "x".repeat(1 << 20);
        assert_eq!(width([long.as_str(), "a"].into_iter(), 4), MAX_WIDTH);
    }

    #[test]
    fn text_is_padded_to_any_width() {
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(pad("ábc", 2), "ábc");
        assert_eq!(pad("", 70_000).len(), 70_000);
    }
}
