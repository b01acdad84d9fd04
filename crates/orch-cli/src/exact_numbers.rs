//! Whether a command's output, read as JSON, keeps the value of every number in it:
//! under `capture: auto`, output whose numbers JSON would round stays text.

/// Whether every number in `json` (valid JSON text) keeps its value when serde_json
/// reads it: not an integer past 64 bits, nor a decimal with more digits than a 64-bit
/// float holds, which it reads as the nearest float (`123456789012345678901234567890`
/// as `1.2345678901234568e29`). `1.50` or `1e3` keep theirs, written another way.
pub(crate) fn numbers_read_exactly(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        i += 1;
        match byte {
            // Past the string, whose escapes may hold a `"`.
            b'"' => {
                while let Some(&byte) = bytes.get(i) {
                    i += if byte == b'\\' { 2 } else { 1 };
                    if byte == b'"' {
                        break;
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i - 1;
                while bytes
                    .get(i)
                    .is_some_and(|b| matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    i += 1;
                }
                let literal = &json[start..i];
                // Most numbers are integers that fit in 64 bits: read exactly, with nothing
                // to compare.
                let digits = literal.strip_prefix('-').unwrap_or(literal);
                if digits.bytes().all(|b| b.is_ascii_digit()) {
                    // An integer past 64 bits is read as a float, even one that keeps
                    // its value (`100000000000000000000` as `1e20`).
                    let fits = digits.len() <= 18
                        || literal.parse::<i64>().is_ok()
                        || literal.parse::<u64>().is_ok();
                    match fits {
                        true => continue,
                        false => return false,
                    }
                }
                let read = serde_json::from_str::<serde_json::Number>(literal);
                let read = read.ok().and_then(|number| decimal(&number.to_string()));
                if read.is_none() || read != decimal(literal) {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// The value a JSON number's text stands for, as its sign, its significant digits (no
/// leading or trailing zeros) and the power of ten they are multiplied by: `-1.50` and
/// `-15e-1` are `(true, "15", -1)`, any zero `(false, "", 0)`. `None` for an exponent
/// past 64 bits.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_end_matches('0');
    let trailing_zeros = digits.len() - significant.len();
    let significant = significant.trim_start_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let exponent = exponent
        .parse::<i64>()
        .ok()?
        .checked_sub(i64::try_from(fraction.len()).ok()?)?
        .checked_add(i64::try_from(trailing_zeros).ok()?)?;
    Some((negative, significant.to_owned(), exponent))
}

#[cfg(test)]
mod tests {
    use super::{decimal, numbers_read_exactly};

    #[test]
    fn an_integer_past_64_bits_is_not_read_exactly_even_when_a_float_holds_it() {
        for past in [
            "100000000000000000000",
            "-9223372036854775809",
            "18446744073709551616",
        ] {
            assert!(!numbers_read_exactly(past), "{past}");
            assert!(!numbers_read_exactly(&format!("[1, {past}]")), "{past}");
        }
        for within in ["18446744073709551615", "-9223372036854775808", "1e20", "-0"] {
            assert!(numbers_read_exactly(within), "{within}");
        }
    }

    #[test]
    fn decimals_are_read_to_their_value() {
        let value = decimal;
        assert_eq!(value("-1.50"), Some((true, "15".into(), -1)));
        assert_eq!(value("-15e-1"), value("-1.50"));
        assert_eq!(value("1000.0"), Some((false, "1".into(), 3)));
        assert_eq!(value("1E+3"), value("1000.0"));
        assert_eq!(value("0.00120"), Some((false, "12".into(), -4)));
        assert_eq!(value("-0.0e5"), Some((false, String::new(), 0)));
        assert_eq!(value("1e99999999999999999999"), None);
    }
}
