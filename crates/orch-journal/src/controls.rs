//! Control characters that serde_json leaves as they are in the JSON it writes.

/// Writes DEL and the C1 controls (U+007F to U+009F) in `buf[start..]`, JSON text, as
/// JSON escapes (`\u009b`), as serde_json does the other control characters: a terminal
/// showing the file (`tail -f`) then runs no escape sequence a task's output held. In
/// JSON they can only be inside strings, where the escape stands for them.
pub(crate) fn escape_c1(buf: &mut Vec<u8>, start: usize) {
    // The code point and the length in bytes of a control at `i`: in UTF-8, U+0080 to
    // U+009F are 0xC2 followed by 0x80 to 0x9F.
    let control_at = |bytes: &[u8], i: usize| match (bytes[i], bytes.get(i + 1)) {
        (0x7f, _) => Some((0x7f, 1)),
        (0xc2, Some(&next)) if (0x80..=0x9f).contains(&next) => Some((next, 2)),
        _ => None,
    };
    // A plain scan for the two lead bytes first: most lines hold neither.
    if !buf[start..].iter().any(|&b| b == 0x7f || b == 0xc2) {
        return;
    }
    let Some(first) = (start..buf.len()).find(|&i| control_at(buf, i).is_some()) else {
        return;
    };
    let tail = buf.split_off(first);
    let mut i = 0;
    while i < tail.len() {
        match control_at(&tail, i) {
            Some((code, length)) => {
                buf.extend_from_slice(format!("\\u{code:04x}").as_bytes());
                i += length;
            }
            None => {
                buf.push(tail[i]);
                i += 1;
            }
        }
    }
}
