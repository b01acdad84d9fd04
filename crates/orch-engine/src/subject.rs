//! [`subject_token`]: how an id is written as one token of an event's subject.

use std::borrow::Cow;

/// `id` (a workflow id, a task id) as the engine writes it into the subjects of its
/// events: itself when it is one subject token already, else with what a token cannot
/// hold (`.`, `*`, `>`, `%`, white space, control characters) percent-escaped, and `%`
/// for the empty id. Use it to build a subscription pattern from an id.
///
/// ```
/// use orch_engine::subject_token;
///
/// assert_eq!(subject_token("load.v2"), "load%2Ev2");
/// let pattern = format!("workflow.{}.task.>", subject_token("sales.daily"));
/// assert_eq!(pattern, "workflow.sales%2Edaily.task.>");
/// ```
pub fn subject_token(id: &str) -> Cow<'_, str> {
    // A lone `%`: no escape is one, so no other id's token is this.
    if id.is_empty() {
        return Cow::Borrowed("%");
    }
    let plain = |b: &u8| (b'!'..=b'~').contains(b) && !matches!(b, b'.' | b'*' | b'>' | b'%');
    if id.as_bytes().iter().all(plain) {
        return Cow::Borrowed(id);
    }
    let mut out = String::with_capacity(id.len() + 8);
    for c in id.chars() {
        if matches!(c, '.' | '*' | '>' | '%') || c.is_whitespace() || c.is_control() {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::subject_token as token;

    #[test]
    fn ids_become_single_subject_tokens() {
        assert_eq!(token("load"), "load");
        assert_eq!(token("load.v2"), "load%2Ev2");
        assert_eq!(token("a*b>c"), "a%2Ab%3Ec");
        assert_eq!(token("50% off"), "50%25%20off");
        assert_eq!(token("tab\there"), "tab%09here");
        assert_eq!(token("é"), "é");
        assert_eq!(token(""), "%");
        // Not the token of the id made of a NUL character.
        assert_eq!(token("\0"), "%00");
        assert!(
            matches!(token("load"), Cow::Borrowed(_)),
            "a plain id is not copied"
        );
    }
}
