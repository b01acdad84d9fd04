//! Lower-case hexadecimal text for bytes, so binary data can travel in a task's JSON
//! result.

/// The bytes as lower-case hex, two digits each.
///
/// ```
/// assert_eq!(examples::hex::encode(&[0x00, 0xab, 0x7f]), "00ab7f");
/// ```
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// The bytes of hex text (either case); `None` for an odd length or a non-hex character.
///
/// ```
/// assert_eq!(examples::hex::decode("00AB7f"), Some(vec![0x00, 0xab, 0x7f]));
/// assert_eq!(examples::hex::decode("abc"), None);
/// assert_eq!(examples::hex::decode("zz"), None);
/// ```
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let high = char::from(pair[0]).to_digit(16)?;
            let low = char::from(pair[1]).to_digit(16)?;
            u8::try_from(high * 16 + low).ok()
        })
        .collect()
}
