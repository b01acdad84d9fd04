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

/// Reads a duration as workflow files write it: a number of seconds, read exactly
/// (`1.25`, `1.25s`), or human-readable text (`1m 30s`, `250ms`, `2h`, `1.5h`; units from
/// `ns` to `y`, a month being 30.44 days and a year 365.25 days). Surrounding white space
/// is ignored. What `orch` takes on its command line for a duration, too.
///
/// # Errors
/// [`DurationError::Invalid`] for text that is not a duration, and
/// [`DurationError::TooLarge`] for one longer than the longest [`Duration`] (about 584
/// billion years).
///
/// ```
/// use std::time::Duration;
/// use orch_core::{DurationError, parse_duration};
///
/// assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
/// assert!(matches!(parse_duration("soon"), Err(DurationError::Invalid(_))));
/// assert!(matches!(parse_duration("1e9y"), Err(DurationError::Invalid(_))));
/// assert!(matches!(
///     parse_duration("18446744073709551615s 1000ms"),
///     Err(DurationError::TooLarge(_))
/// ));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let number = trimmed.strip_suffix('s').unwrap_or(trimmed);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !whole.is_empty() && is_digits(whole) && is_digits(fraction) && fraction.len() <= 9 {
        if number.ends_with('.') {
            return Err(DurationError::Invalid(text.to_owned()));
        }
        let nanos = format!("{fraction:0<9}")
            .parse()
            .map_err(|_| DurationError::Invalid(text.to_owned()))?;
        let secs = whole
            .parse()
            .map_err(|_| DurationError::TooLarge(text.to_owned()))?;
        return Ok(Duration::new(secs, nanos));
    }
    // `humantime` panics on some sums past the longest duration instead of failing.
    if most_nanos(trimmed) >= u128::from(u64::MAX) * NANOS_PER_SEC {
        return Err(DurationError::TooLarge(text.to_owned()));
    }
    humantime::parse_duration(trimmed).map_err(|error| match error {
        humantime::DurationError::NumberOverflow => DurationError::TooLarge(text.to_owned()),
        _ => DurationError::Invalid(text.to_owned()),
    })
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// At least what human-readable duration text adds up to, in nanoseconds (saturating):
/// each number whole with its digits run together and rounded up, in its unit (an
/// unknown unit counted as a year, the longest).
fn most_nanos(text: &str) -> u128 {
    let unit_nanos = |unit: &str| -> u128 {
        let secs: u128 = match unit {
            "nanos" | "nsec" | "ns" => return 1,
            "usec" | "us" | "µs" => return 1_000,
            "millis" | "msec" | "ms" => return 1_000_000,
            "seconds" | "second" | "secs" | "sec" | "s" => 1,
            "minutes" | "minute" | "min" | "mins" | "m" => 60,
            "hours" | "hour" | "hr" | "hrs" | "h" => 3_600,
            "days" | "day" | "d" => 86_400,
            "weeks" | "week" | "wk" | "wks" | "w" => 604_800,
            "months" | "month" | "M" => 2_630_016,
            _ => 31_557_600,
        };
        secs * NANOS_PER_SEC
    };
    let is_unit = |c: char| c.is_ascii_alphabetic() || c == 'µ';
    let (mut total, mut number, mut fraction) = (0u128, 0u128, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(digit) = c.to_digit(10) {
            if !fraction {
                number = number.saturating_mul(10).saturating_add(u128::from(digit));
            }
        } else if c == '.' {
            fraction = true;
        } else if is_unit(c) {
            let mut unit = String::from(c);
            while let Some(&c) = chars.peek().filter(|&&c| is_unit(c)) {
                unit.push(c);
                chars.next();
            }
            let whole = number.saturating_add(u128::from(fraction));
            total = total.saturating_add(whole.saturating_mul(unit_nanos(&unit)));
            (number, fraction) = (0, false);
        }
    }
    total
}

/// Why a text is not a duration (see [`parse_duration`]). Each variant holds the text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationError {
    /// Neither a number of seconds nor duration text such as `30s` or `1m 30s`.
    Invalid(String),
    /// Longer than the longest duration (about 584 billion years).
    TooLarge(String),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, problem) = match self {
            Self::Invalid(text) => (
                text,
                "expected a number of seconds, or text such as `30s`, `1m 30s` or `250ms`",
            ),
            Self::TooLarge(text) => (
                text,
                "longer than the longest duration (about 584 billion years)",
            ),
        };
        write!(f, "invalid duration `{}`: {problem}", text.escape_debug())
    }
}

impl std::error::Error for DurationError {}

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
        Duration::try_from_secs_f64(secs).map_err(|_| {
            if secs.is_finite() && secs > 0.0 {
                E::custom(DurationError::TooLarge(secs.to_string()))
            } else {
                negative(secs)
            }
        })
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(E::custom)
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::most_nanos;

    fn term() -> impl Strategy<Value = String> {
        let unit = prop::sample::select(vec![
            "ns", "us", "µs", "ms", "s", "sec", "m", "min", "h", "hr", "d", "w", "M", "y",
        ]);
        (
            0u64..1_000_000_000,
            prop::option::of(0u32..1000),
            unit,
            " ?",
        )
            .prop_map(|(whole, fraction, unit, space)| match fraction {
                Some(fraction) => format!("{whole}.{fraction}{space}{unit}"),
                None => format!("{whole}{space}{unit}"),
            })
    }

    proptest! {
        /// The bound that keeps too-large text away from `humantime` is never below what
        /// `humantime` reads.
        #[test]
        fn the_bound_is_at_least_the_duration(terms in prop::collection::vec(term(), 1..5), joiner in " ?") {
            let text = terms.join(&joiner);
            if let Ok(duration) = humantime::parse_duration(&text) {
                prop_assert!(most_nanos(&text) >= duration.as_nanos(), "{text}");
            }
        }
    }
}
