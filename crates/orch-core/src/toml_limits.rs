//! What the TOML reader refuses on its own, before orch's own nesting limit: arrays and
//! inline tables nested more than [`BRACKETS`] deep, and keys of more than [`KEY_PARTS`]
//! dotted parts. Its messages say neither the limit nor, for a key, where it is.

use toml_parser::lexer::TokenKind;

/// The deepest arrays and inline tables nest in a TOML file.
pub(crate) const BRACKETS: usize = 80;

/// The most dotted parts a TOML key has (`a.b.c` has 3).
pub(crate) const KEY_PARTS: usize = 80;

/// The reader's message for arrays and inline tables nested too deep.
const TOO_DEEP: &str = "cannot recurse further; max recursion depth met";

/// The reader's message for a key of too many parts.
const TOO_LONG_KEY: &str = "recursion limit";

/// `message` from the TOML reader, saying which of its limits was passed if one was.
pub(crate) fn explained(message: &str) -> Option<String> {
    match message {
        TOO_DEEP => Some(format!(
            "arrays and inline tables nested more than {BRACKETS} deep, the most the TOML \
             reader takes"
        )),
        TOO_LONG_KEY => Some(format!(
            "a key of more than {KEY_PARTS} dotted parts, the most the TOML reader takes"
        )),
        _ => None,
    }
}

/// Where the first key of more than [`KEY_PARTS`] parts in `text` begins, when the
/// reader's `message` says it refused one (it gives no place for it).
pub(crate) fn long_key_at(text: &str, message: &str) -> Option<usize> {
    if message != TOO_LONG_KEY {
        return None;
    }
    let mut parts = 0;
    let mut start = 0;
    let mut after_dot = false;
    for token in toml_parser::Source::new(text).lex() {
        match token.kind() {
            TokenKind::Atom | TokenKind::BasicString | TokenKind::LiteralString => {
                if !after_dot {
                    (parts, start) = (0, token.span().start());
                }
                parts += 1;
                after_dot = false;
                if parts > KEY_PARTS {
                    return Some(start);
                }
            }
            TokenKind::Dot => after_dot = true,
            TokenKind::Whitespace => {}
            _ => (parts, after_dot) = (0, false),
        }
    }
    None
}
