//! Subjects and patterns: validation by the NATS rules, and a direct (trie-free) matcher.
//!
//! A subject is one or more tokens separated by `.`; no token may be empty or contain
//! whitespace. A pattern is a subject whose tokens may also be `*` (exactly one token)
//! or, as the last token only, `>` (one or more tokens). As in NATS, `*` and `>` are
//! wildcards only as whole tokens: `a*` is an ordinary token. Either has at most
//! [`MAX_TOKENS`] tokens.

use std::{fmt, str::FromStr, sync::Arc};

use arrayvec::ArrayString;

use crate::SubjectError;

/// The most tokens a subject or pattern may have; more is
/// [`SubjectError::TooManyTokens`]. Real subjects have a handful (orch's own have five or
/// six): the limit refuses runaway input and bounds the routing work of each publish.
pub const MAX_TOKENS: usize = 256;

/// A validated subject to publish on, such as `workflow.etl.task.load.completed`.
///
/// Cheap to clone: a short subject is stored inline (no allocation, no shared count), a
/// longer one in an `Arc<str>`. Build it once and publish on it many times to skip
/// validation on the hot path.
#[derive(Clone)]
pub struct Subject(Text);

#[derive(Clone)]
enum Text {
    Inline(ArrayString<{ Subject::INLINE }>),
    Shared(Arc<str>),
}

impl Subject {
    /// The longest subject, in bytes, stored inline.
    pub(crate) const INLINE: usize = 56;

    /// Validates `subject`.
    ///
    /// # Errors
    /// A [`SubjectError`] saying what is wrong and at which token.
    pub fn new(subject: &str) -> Result<Self, SubjectError> {
        validate(subject, false)?;
        Ok(Self(match ArrayString::from(subject) {
            Ok(inline) => Text::Inline(inline),
            Err(_) => Text::Shared(Arc::from(subject)),
        }))
    }

    /// The subject text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Text::Inline(text) => text,
            Text::Shared(text) => text,
        }
    }

    /// The dot-separated tokens.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.as_str().split('.')
    }

    /// The bytes this subject holds outside itself: a long one's shared text.
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.0 {
            Text::Inline(_) => 0,
            Text::Shared(text) => 2 * size_of::<usize>() + text.len(),
        }
    }
}

impl PartialEq for Subject {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Subject {}

impl std::hash::Hash for Subject {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for Subject {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Subject {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// A validated subscription pattern, such as `workflow.*.task.>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern(Arc<str>);

impl Pattern {
    /// Validates `pattern`.
    ///
    /// # Errors
    /// A [`SubjectError`] saying what is wrong and at which token.
    pub fn new(pattern: &str) -> Result<Self, SubjectError> {
        validate(pattern, true)?;
        Ok(Self(Arc::from(pattern)))
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated tokens.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// Whether this pattern matches `subject`, token by token (no trie involved).
    pub fn matches(&self, subject: &Subject) -> bool {
        let mut pattern = self.tokens();
        let mut subject = subject.tokens();
        loop {
            match (pattern.next(), subject.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(p), Some(s)) if p == s => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

#[cfg(test)]
impl Pattern {
    /// A pattern that may have more than [`MAX_TOKENS`] tokens, for tests of the parts
    /// that must not depend on the limit.
    pub(crate) fn unlimited(pattern: &str) -> Self {
        Self(Arc::from(pattern))
    }
}

/// Checks `input` as a pattern (`wildcards`) or as a published subject.
fn validate(input: &str, wildcards: bool) -> Result<(), SubjectError> {
    if is_plainly_valid(input.as_bytes(), wildcards) {
        return Ok(());
    }
    explain(input, wildcards)
}

/// What [`is_plainly_valid`] needs to know of a byte: [`DOT`], [`WILDCARD`] (`*` or `>`),
/// [`UNUSUAL`] (outside `!`..=`~`: a space, a control byte or non-ASCII), or 0 for any
/// other byte.
const BYTE_CLASS: [u8; 256] = {
    let mut classes = [UNUSUAL; 256];
    let mut byte = b'!';
    while byte <= b'~' {
        classes[byte as usize] = 0;
        byte += 1;
    }
    classes[b'.' as usize] = DOT;
    classes[b'*' as usize] = WILDCARD;
    classes[b'>' as usize] = WILDCARD;
    classes
};
const DOT: u8 = 1;
const WILDCARD: u8 = 2;
const UNUSUAL: u8 = 4;

/// The common case, in one pass over the bytes with a table look-up each (a second only
/// for a long input or one with `*` or `>`): printable ASCII, no empty token, not too many
/// tokens, and wildcards only where allowed. False means "look closer", not "invalid":
/// anything else (non-ASCII text, say) is for [`explain`] to decide.
fn is_plainly_valid(input: &[u8], wildcards: bool) -> bool {
    let (Some(&first), Some(&last)) = (input.first(), input.last()) else {
        return false;
    };
    // Every class seen, and every class seen twice in a row (two dots: an empty token).
    let (mut seen, mut twice, mut before) = (0u8, 0u8, 0u8);
    for &byte in input {
        let class = BYTE_CLASS[byte as usize];
        seen |= class;
        twice |= before & class;
        before = class;
    }
    let wild = seen & WILDCARD != 0;
    if seen & UNUSUAL != 0 || twice & DOT != 0 || first == b'.' || last == b'.' {
        return false;
    }
    // Without empty tokens, n bytes hold at most (n - 1) / 2 dots: only a long input can
    // have too many tokens, so only a long one has its dots counted.
    if input.len() > 2 * MAX_TOKENS && input.iter().filter(|&&b| b == b'.').count() >= MAX_TOKENS {
        return false;
    }
    if !wild {
        return true;
    }
    let mut tokens = input.split(|&b| b == b'.').peekable();
    while let Some(token) = tokens.next() {
        match token {
            [b'*'] if !wildcards => return false,
            [b'>'] if !wildcards || tokens.peek().is_some() => return false,
            _ => {}
        }
    }
    true
}

/// Checks `input` token by token and says what is wrong, and where.
fn explain(input: &str, wildcards: bool) -> Result<(), SubjectError> {
    if input.is_empty() {
        return Err(SubjectError::Empty);
    }
    let mut byte = 0;
    for (token, text) in input.split('.').enumerate() {
        if token == MAX_TOKENS {
            return Err(SubjectError::TooManyTokens {
                tokens: input.split('.').count(),
                limit: MAX_TOKENS,
                byte,
            });
        }
        let last = byte + text.len() == input.len();
        if text.is_empty() {
            return Err(SubjectError::EmptyToken {
                input: input.to_owned(),
                token,
                byte,
            });
        }
        if let Some((at, _)) = text.char_indices().find(|(_, c)| c.is_whitespace()) {
            return Err(SubjectError::Whitespace {
                input: input.to_owned(),
                token,
                byte: byte + at,
            });
        }
        match text {
            "*" | ">" if !wildcards => {
                return Err(SubjectError::WildcardInSubject {
                    input: input.to_owned(),
                    token,
                    byte,
                    wildcard: if text == "*" { '*' } else { '>' },
                });
            }
            ">" if !last => {
                return Err(SubjectError::FullWildcardNotLast {
                    input: input.to_owned(),
                    token,
                    byte,
                });
            }
            _ => {}
        }
        byte += text.len() + 1;
    }
    Ok(())
}

macro_rules! text_impls {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            /// The text; a width, fill, alignment or precision given applies, as for a `str`.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl FromStr for $ty {
            type Err = SubjectError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = SubjectError;

            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = SubjectError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(&s)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_impls!(Subject);
text_impls!(Pattern);

/// Anything [`EventBus::publish`](crate::EventBus::publish) accepts as a subject: a
/// [`Subject`] (no validation needed) or text (validated on each call).
pub trait IntoSubject {
    /// Converts into a validated [`Subject`].
    ///
    /// # Errors
    /// A [`SubjectError`] if the text is not a valid subject.
    fn into_subject(self) -> Result<Subject, SubjectError>;
}

impl IntoSubject for Subject {
    fn into_subject(self) -> Result<Subject, SubjectError> {
        Ok(self)
    }
}

impl IntoSubject for &Subject {
    fn into_subject(self) -> Result<Subject, SubjectError> {
        Ok(self.clone())
    }
}

impl IntoSubject for &str {
    fn into_subject(self) -> Result<Subject, SubjectError> {
        Subject::new(self)
    }
}

impl IntoSubject for String {
    fn into_subject(self) -> Result<Subject, SubjectError> {
        Subject::new(&self)
    }
}

impl IntoSubject for &String {
    fn into_subject(self) -> Result<Subject, SubjectError> {
        Subject::new(self)
    }
}

#[cfg(test)]
mod tests;
