//! Durations in workflow files: a number of seconds (`1.5`), or text (`30s`, `1m 30s`,
//! `250ms`, `123456789.123456789s`).
//!
//! A duration is written as a number of seconds when that number reads back as exactly
//! the same duration, and otherwise as exact text in seconds, so that a workflow written
//! and read back is equal to the original, to the nanosecond.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;

/// Serde helpers for a required duration.
pub(crate) mod secs {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let secs = d.as_secs_f64();
        if Duration::try_from_secs_f64(secs) == Ok(*d) {
            s.serialize_f64(secs)
        } else {
            s.serialize_str(&exact_text(*d))
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

/// Serde helpers for an optional duration: `null` (or a missing key) is none.
pub(crate) mod secs_opt {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => secs::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        d.deserialize_option(OptionalDurationVisitor)
    }
}

/// Whole seconds and up to nine decimals, with the unit: `123456789.123456789s`.
fn exact_text(d: Duration) -> String {
    match d.subsec_nanos() {
        0 => format!("{}s", d.as_secs()),
        nanos => {
            let fraction = format!("{nanos:09}");
            format!("{}.{}s", d.as_secs(), fraction.trim_end_matches('0'))
        }
    }
}

/// Reads decimal seconds exactly (`1.25`, `1.25s`), and otherwise human-readable text
/// (`1m 30s`, `250ms`, `2h`).
fn parse_text(text: &str) -> Option<Duration> {
    let text = text.trim();
    let number = text.strip_suffix('s').unwrap_or(text);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !whole.is_empty() && is_digits(whole) && is_digits(fraction) && fraction.len() <= 9 {
        if number.ends_with('.') {
            return None;
        }
        let nanos = format!("{fraction:0<9}").parse().ok()?;
        return Some(Duration::new(whole.parse().ok()?, nanos));
    }
    humantime::parse_duration(text).ok()
}

const EXPECTED: &str =
    "a duration: a number of seconds, or text such as `30s`, `1m 30s` or `250ms`";

struct DurationVisitor;

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(secs))
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
        match u64::try_from(secs) {
            Ok(secs) => Ok(Duration::from_secs(secs)),
            Err(_) => Err(negative(secs)),
        }
    }

    fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(secs).map_err(|_| negative(secs))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_text(text).ok_or_else(|| {
            E::custom(format!(
                "invalid duration `{text}`: expected a number of seconds, or text such as `30s`, `1m 30s` or `250ms`"
            ))
        })
    }
}

fn negative<E: de::Error>(secs: impl fmt::Display) -> E {
    E::custom(format!(
        "invalid duration {secs}: expected a non-negative, finite number of seconds"
    ))
}

struct OptionalDurationVisitor;

impl<'de> Visitor<'de> for OptionalDurationVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{EXPECTED}, or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        secs::deserialize(d).map(Some)
    }
}
