//! Byte-level mutations, shared by every target: flips, insertions, deletions, truncation,
//! splicing, duplication, and edits that often find bugs in parsers (byte-order marks,
//! invalid UTF-8, extreme numbers, repeated lines, words from a dictionary).

use fastrand::Rng;

/// Words worth inserting into any text input.
const WORDS: &[&str] = &[
    "null",
    "true",
    "false",
    "-1",
    "0",
    "-0",
    "1e999",
    "-1e999",
    "NaN",
    "inf",
    "\\u0000",
    "\\ud800",
    "[]",
    "{}",
    "\"\"",
    "18446744073709551616",
    "4294967296",
    "4294967295",
    "9223372036854775808",
    "-9223372036854775809",
    "1.7976931348623157e308",
    "5e-324",
    "123456789.123456789",
    ".",
    "..",
    "*",
    ">",
    " ",
    "\t",
    "\n",
    "\r\n",
    "#",
    "\"",
    "'",
    "\\",
    "%",
    "~",
    "&a",
    "*a",
    "<<",
    "!!str",
    "!!merge",
    // Line breaks to libyaml (YAML 1.1), not to YAML 1.2 parsers.
    "\u{85}",
    "\u{2028}",
    "\u{2029}",
    "é",
    "\u{feff}",
    "\u{10ffff}",
];

/// Numbers at the edges of the usual integer and float ranges.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "255",
    "65536",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "1e309",
    "-1e309",
    "1e-400",
    "0.1",
    "1e20",
    "123456789.123456789",
    "0.000000001",
    "99999999999999999999999999999",
];

/// One random mutation of `input`; `other` is spliced from.
pub(crate) fn bytes(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    bytes_with(rng, input, other, &[])
}

/// As [`bytes`], also inserting words of a target's own `dictionary`.
pub(crate) fn bytes_with(
    rng: &mut Rng,
    input: &[u8],
    other: &[u8],
    dictionary: &[&str],
) -> Vec<u8> {
    let mut out = input.to_vec();
    let at = |rng: &mut Rng, len: usize| rng.usize(..=len);
    match rng.u8(..12) {
        0 if !out.is_empty() => {
            let i = rng.usize(..out.len());
            out[i] ^= 1 << rng.u8(..8);
        }
        1 if !out.is_empty() => {
            let i = rng.usize(..out.len());
            out[i] = *rng.choice(b"\0\xff\x80\"{}[]\n.*> \\:,=-#&'").unwrap_or(&0);
        }
        2 => {
            let i = at(rng, out.len());
            let len = rng.usize(1..8);
            let noise: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
            out.splice(i..i, noise);
        }
        3 if !out.is_empty() => {
            let start = rng.usize(..out.len());
            let end = (start + rng.usize(1..=16)).min(out.len());
            out.drain(start..end);
        }
        4 => out.truncate(at(rng, input.len())),
        5 if !out.is_empty() => {
            let start = rng.usize(..out.len());
            let end = (start + rng.usize(1..=64)).min(out.len());
            let copy = out[start..end].to_vec();
            let times = if rng.bool() { 1 } else { rng.usize(2..200) };
            let i = at(rng, out.len());
            out.splice(i..i, copy.repeat(times));
        }
        6 => {
            let keep = at(rng, out.len());
            out.truncate(keep);
            out.extend_from_slice(&other[at(rng, other.len())..]);
        }
        7 => {
            out.splice(0..0, *b"\xef\xbb\xbf");
        }
        8 => {
            let bad: &[&[u8]] = &[
                b"\xff",
                b"\xc0\x80",
                b"\x80",
                b"\xe2\x82",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
            ];
            let i = at(rng, out.len());
            out.splice(
                i..i,
                rng.choice(bad).copied().unwrap_or(b"\xff").iter().copied(),
            );
        }
        9 => replace_number(rng, &mut out),
        10 => {
            let words = if !dictionary.is_empty() && rng.bool() {
                dictionary
            } else {
                WORDS
            };
            let word = rng.choice(words).copied().unwrap_or("null");
            let i = char_boundary(&out, at(rng, out.len()));
            out.splice(i..i, word.bytes());
        }
        _ => repeat_line(rng, &mut out),
    }
    out
}

/// Replaces a run of digits with an edge number.
fn replace_number(rng: &mut Rng, out: &mut Vec<u8>) {
    let digits: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].is_ascii_digit())
        .collect();
    let Some(&start) = rng.choice(&digits) else {
        return;
    };
    let mut end = start;
    while end < out.len() && (out[end].is_ascii_digit() || out[end] == b'.') {
        end += 1;
    }
    let number = rng.choice(NUMBERS).copied().unwrap_or("0");
    out.splice(start..end, number.bytes());
}

/// Repeats one line many times: long lists, many keys, many aliases.
fn repeat_line(rng: &mut Rng, out: &mut Vec<u8>) {
    let lines: Vec<(usize, usize)> = line_spans(out);
    let Some(&(start, end)) = rng.choice(&lines) else {
        return;
    };
    let line = out[start..end].to_vec();
    let times = if rng.u8(..8) == 0 {
        rng.usize(100..5000)
    } else {
        rng.usize(2..20)
    };
    let times = times.min((1 << 20) / line.len().max(1));
    out.splice(end..end, line.repeat(times));
}

/// The spans of each line of `bytes`, newline included.
pub(crate) fn line_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            spans.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < bytes.len() {
        spans.push((start, bytes.len()));
    }
    spans
}

/// `i` moved back to the start of the UTF-8 character it falls in, so inserted words do
/// not cut a character in two (other mutations do that on purpose).
fn char_boundary(bytes: &[u8], mut i: usize) -> usize {
    while i > 0 && i < bytes.len() && bytes[i] & 0xc0 == 0x80 {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_change_the_input_and_stay_deterministic_per_seed() {
        let input = b"{\"a\": [1, 2, 3],\n \"b\": \"text\"}\n";
        let run = |seed| {
            let mut rng = Rng::with_seed(seed);
            (0..200)
                .map(|_| bytes(&mut rng, input, b"other\n"))
                .collect::<Vec<_>>()
        };
        let first = run(1);
        assert_eq!(first, run(1));
        assert!(first.iter().filter(|m| m.as_slice() != input).count() > 150);
        assert!(
            first.iter().any(|m| m.starts_with(b"\xef\xbb\xbf")),
            "a byte-order mark"
        );
        assert!(
            first.iter().any(|m| std::str::from_utf8(m).is_err()),
            "invalid UTF-8"
        );
    }

    #[test]
    fn lines_are_found_with_their_newlines() {
        assert_eq!(line_spans(b"ab\ncd"), [(0, 3), (3, 5)]);
        assert_eq!(char_boundary("é".as_bytes(), 1), 0);
    }
}
