//! [`RunId`], the name of one run of a workflow, and [`RunIdError`] for text that cannot be one.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The identifier of one run of a workflow.
///
/// A run id is 1 to 128 bytes of ASCII letters, digits, `_` and `-`, so it can be used
/// as it is for a file name, a database key or a message subject. Ids differ by case
/// (`Nightly` is not `nightly`), which a file system that ignores case (macOS's and
/// Windows's, as they come) does not: there, two such runs would share one journal file,
/// so give runs ids that differ otherwise. [`RunId::new`] makes a
/// fresh one; [`RunId::parse`] (or `str::parse`) checks one given by a user. Cloning is
/// cheap.
///
/// ```
/// use orch_core::RunId;
///
/// let id: RunId = "nightly-2024_06_01".parse()?;
/// assert_eq!(id.as_str(), "nightly-2024_06_01");
/// assert!("nightly/2024".parse::<RunId>().is_err());
///
/// let (a, b) = (RunId::new(), RunId::new());
/// assert_ne!(a, b);
/// // Made of the current UTC time, then parts that tell runs started in the same instant apart.
/// assert!(a.as_str().starts_with("20"));
/// # Ok::<(), orch_core::RunIdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(
    // One word (not a wide `Arc<str>`), so that every event that carries it stays small.
    Arc<String>,
);

/// The longest run id, in bytes.
const MAX_LEN: usize = 128;

/// Why a text is not a valid [`RunId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunIdError {
    /// The text is empty.
    #[error("a run id cannot be empty")]
    Empty,
    /// The text is longer than 128 bytes.
    #[error("a run id has at most 128 bytes; this one has {len}")]
    TooLong {
        /// The length of the text, in bytes.
        len: usize,
    },
    /// The text holds a character other than an ASCII letter, digit, `_` or `-`.
    #[error(
        "run id {id:?} has {found:?} at byte {position}; only ASCII letters, digits, `_` and `-` are allowed"
    )]
    InvalidCharacter {
        /// The text that was given.
        id: String,
        /// The first character that is not allowed.
        found: char,
        /// Its byte offset in the text.
        position: usize,
    },
}

impl RunId {
    /// A fresh id, unique among those made on this machine as long as its clock does not
    /// go back: the current UTC time to the second (`20240601T120000Z`), then the
    /// nanoseconds, the process id and a per-process counter, in hexadecimal.
    #[allow(clippy::new_without_default)] // a default that differs on each call would surprise
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since_epoch.as_secs();
        let (year, month, day) = crate::time::civil_from_days(i128::from(secs / 86_400));
        let time_of_day = secs % 86_400;
        let id = format!(
            "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z-{:08x}-{:x}-{count:x}",
            time_of_day / 3600,
            time_of_day / 60 % 60,
            time_of_day % 60,
            since_epoch.subsec_nanos(),
            std::process::id(),
        );
        Self(Arc::new(id))
    }

    /// Checks `id` and makes it a run id.
    pub fn parse(id: &str) -> Result<Self, RunIdError> {
        check(id)?;
        Ok(Self(Arc::new(id.to_owned())))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

fn check(id: &str) -> Result<(), RunIdError> {
    if id.is_empty() {
        return Err(RunIdError::Empty);
    }
    if id.len() > MAX_LEN {
        return Err(RunIdError::TooLong { len: id.len() });
    }
    match id
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        Some((position, found)) => Err(RunIdError::InvalidCharacter {
            id: id.to_owned(),
            found,
            position,
        }),
        None => Ok(()),
    }
}

impl FromStr for RunId {
    type Err = RunIdError;

    fn from_str(id: &str) -> Result<Self, RunIdError> {
        Self::parse(id)
    }
}

impl TryFrom<&str> for RunId {
    type Error = RunIdError;

    fn try_from(id: &str) -> Result<Self, RunIdError> {
        Self::parse(id)
    }
}

impl TryFrom<String> for RunId {
    type Error = RunIdError;

    fn try_from(id: String) -> Result<Self, RunIdError> {
        check(&id)?;
        Ok(Self(Arc::new(id)))
    }
}

impl AsRef<str> for RunId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for RunId {
    fn eq(&self, other: &str) -> bool {
        self.0.as_str() == other
    }
}

impl PartialEq<&str> for RunId {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_str() == *other
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::try_from(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fresh_ids_are_valid_and_distinct() {
        let ids: Vec<RunId> = (0..1000).map(|_| RunId::new()).collect();
        for id in &ids {
            assert_eq!(RunId::parse(id.as_str()).as_ref(), Ok(id));
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn bad_ids_are_refused_with_the_reason() {
        assert_eq!(RunId::parse(""), Err(RunIdError::Empty));
        assert_eq!(
            RunId::parse(&"a".repeat(129)),
            Err(RunIdError::TooLong { len: 129 })
        );
        assert!(RunId::parse(&"a".repeat(128)).is_ok());
        let err = RunId::parse("ab.c").unwrap_err();
        assert_eq!(
            err.to_string(),
            "run id \"ab.c\" has '.' at byte 2; only ASCII letters, digits, `_` and `-` are allowed"
        );
        assert!(matches!(
            RunId::parse("é"),
            Err(RunIdError::InvalidCharacter {
                found: 'é',
                position: 0,
                ..
            })
        ));
    }

    #[test]
    fn serde_checks_the_text() {
        let id: RunId = serde_json::from_str("\"run-1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"run-1\"");
        let err = serde_json::from_str::<RunId>("\"../etc\"").unwrap_err();
        assert!(err.to_string().contains("only ASCII letters"), "{err}");
    }

    #[test]
    fn display_pads() {
        let id = RunId::parse("r1").unwrap();
        assert_eq!(format!("[{id:<4}]"), "[r1  ]");
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_allowed_texts(text in "\\PC{0,140}|[A-Za-z0-9_-]{1,130}") {
            let allowed = !text.is_empty()
                && text.len() <= 128
                && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let parsed = RunId::parse(&text);
            prop_assert_eq!(parsed.is_ok(), allowed);
            if let Ok(id) = parsed {
                prop_assert_eq!(id.to_string(), text);
            }
        }
    }
}
