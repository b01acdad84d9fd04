//! Text padded to a column's width, for the text tables of `plan` and `runs` and the
//! names of `gantt`. Widths are terminal columns: a CJK character or an emoji takes two,
//! a combining accent none.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The widest a column is padded to: a longer cell overflows its column rather than
/// pad every other row of the table (a task id has no length limit).
pub(crate) const MAX_WIDTH: usize = 64;

/// The width of a column of `cells`: its widest cell, at least `at_least`, at most
/// [`MAX_WIDTH`].
pub(crate) fn width<'a>(cells: impl Iterator<Item = &'a str>, at_least: usize) -> usize {
    cells
        .map(UnicodeWidthStr::width)
        .max()
        .unwrap_or(0)
        .max(at_least)
        .min(MAX_WIDTH)
}

/// `text` followed by spaces up to `width` columns. Padded by hand: the formatter's own
/// padding (`{:<width$}`) counts characters, not columns, and panics on a width over
/// 65535, which a task id may be.
pub(crate) fn pad(text: &str, width: usize) -> String {
    let mut padded = String::with_capacity(text.len() + width);
    padded.push_str(text);
    let taken = text.width();
    padded.extend(std::iter::repeat_n(' ', width.saturating_sub(taken)));
    padded
}

/// The longest start of `text` at most `width` columns wide, measured as [`pad`] and
/// [`width`] measure it: as a whole, where a sequence may be wider than its characters
/// (an emoji with its presentation selector takes two columns, its characters one).
pub(crate) fn cut(text: &str, width: usize) -> &str {
    let mut taken = 0;
    let mut end = text.len();
    for (at, c) in text.char_indices() {
        taken += c.width().unwrap_or(0);
        if taken > width {
            end = at;
            break;
        }
    }
    if text[..end].width() <= width {
        return &text[..end];
    }
    // A sequence made it wider than its characters: the longest start that fits, found
    // by halving (one measure per step, however many zero-width characters it holds).
    let (mut fits, mut too_wide) = (0, end);
    while let Some(middle) = boundary_between(text, fits, too_wide) {
        match text[..middle].width() <= width {
            true => fits = middle,
            false => too_wide = middle,
        }
    }
    &text[..fits]
}

/// A character boundary of `text` strictly between `low` and `high`, near their middle.
fn boundary_between(text: &str, low: usize, high: usize) -> Option<usize> {
    let middle = low + (high - low) / 2;
    let below = (low + 1..=middle)
        .rev()
        .find(|&at| text.is_char_boundary(at));
    below.or_else(|| (middle + 1..high).find(|&at| text.is_char_boundary(at)))
}

#[cfg(test)]
mod tests {
    use unicode_width::UnicodeWidthStr;

    use super::{MAX_WIDTH, cut, pad, width};

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

    #[test]
    fn wide_and_combining_characters_take_the_columns_a_terminal_gives_them() {
        // Two columns per ideograph; the combining acute accent takes none.
        assert_eq!(width(["読込", "e\u{301}"].into_iter(), 0), 4);
        assert_eq!(pad("読込", 6), "読込  ");
        assert_eq!(pad("e\u{301}", 3), "e\u{301}  ");
        assert_eq!(cut("読込み", 5), "読込");
        assert_eq!(cut("読込み", 6), "読込み");
        assert_eq!(cut("abc", 0), "");
    }

    #[test]
    fn a_cut_is_no_wider_than_asked_where_a_sequence_is_wider_than_its_characters() {
        // The gear with its emoji presentation selector: two columns, its characters one.
        let gear = "\u{2699}\u{FE0F}";
        assert_eq!(pad(gear, 2), gear);
        assert_eq!(cut(&format!("{gear}abc"), 2), gear);
        assert_eq!(cut(&format!("{gear}abc"), 3), format!("{gear}a"));
        let many = gear.repeat(40);
        assert!(cut(&many, 30).width() <= 30);
        // Many zero-width characters after the sequences: the cut is still exact.
        let spaced = format!("{}{}", gear.repeat(16), "\u{200B}".repeat(100_000));
        assert_eq!(cut(&spaced, 30), gear.repeat(15));
        assert_eq!(cut(&spaced, 31), format!("{}\u{2699}", gear.repeat(15)));
    }
}
