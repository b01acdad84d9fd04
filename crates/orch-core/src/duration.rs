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

/// Reads a duration as workflow files write it: a number of seconds, read exactly to the
/// nanosecond (`1.25`, `1.25s`; decimals past the ninth round to the nearest
/// nanosecond), or human-readable text (`1m 30s`, `250ms`, `2h`, `1.5h`; units from
/// `ns` to `y`, a month being 30.44 days and a year 365.25 days; any number may have
/// decimals, as in `0.001h`, and the text adds up to the nearest nanosecond). Surrounding
/// white space is ignored. What `orch` takes on its command line for a duration, too.
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
    if !whole.is_empty() && is_digits(whole) && is_digits(fraction) {
        if fraction.len() > 9 {
            // Past nanoseconds: to the nearest one, as with the unit written out.
            return parse_text(text, &format!("{number}s"));
        }
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
    parse_text(text, trimmed)
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Reads `trimmed`, the trimmed `text`, as human-readable duration text: numbers (with
/// decimals, any number of them) each followed by a unit, `1h 30m`, `1.5h`, `0.001h`,
/// added up to the nearest nanosecond.
fn parse_text(text: &str, trimmed: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
    let too_large = || DurationError::TooLarge(text.to_owned());
    if trimmed.is_empty() {
        return Err(invalid());
    }
    let mut rest = trimmed;
    let mut total: u128 = 0;
    // What the fractions add past whole nanoseconds, in units of 10^-20 ns: rounded once,
    // at the end, so that `0.5ns 0.5ns` is 1ns.
    let mut below: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.');
        let (number, after) = rest.split_at(number_end.unwrap_or(rest.len()));
        let after = after.trim_start();
        let unit_end = after.find(|c: char| !c.is_ascii_alphabetic() && c != 'µ');
        let (unit, after) = after.split_at(unit_end.unwrap_or(after.len()));
        let unit = unit_nanos(unit).ok_or_else(invalid)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || number.ends_with('.') || fraction.contains('.') {
            return Err(invalid());
        }
        // Only digits: a number that does not parse has too many of them.
        let whole: u128 = whole.parse().map_err(|_| too_large())?;
        let mut nanos = whole.checked_mul(unit).ok_or_else(too_large)?;
        if !fraction.is_empty() {
            // Digits past the twentieth move a year by less than a thousandth of a
            // nanosecond.
            let digits = &fraction[..fraction.len().min(20)];
            let numerator: u128 = digits.parse().map_err(|_| invalid())?;
            // At most 10^20 * a year in nanoseconds: within u128.
            let scaled = numerator * unit * 10u128.pow(20 - digits.len() as u32);
            nanos = nanos
                .checked_add(scaled / SUB_NANOS)
                .ok_or_else(too_large)?;
            below += scaled % SUB_NANOS;
            nanos = nanos.checked_add(below / SUB_NANOS).ok_or_else(too_large)?;
            below %= SUB_NANOS;
        }
        total = total.checked_add(nanos).ok_or_else(too_large)?;
        rest = after.trim_start();
    }
    if below >= SUB_NANOS / 2 {
        total = total.checked_add(1).ok_or_else(too_large)?;
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| too_large())?;
    Ok(Duration::new(secs, (total % NANOS_PER_SEC) as u32))
}

/// 10^-20 ns, the unit the fractions of duration text add up in.
const SUB_NANOS: u128 = 10u128.pow(20);

/// How many nanoseconds a unit of duration text stands for (a month is 30.44 days, a
/// year 365.25 days).
fn unit_nanos(unit: &str) -> Option<u128> {
    let secs: u128 = match unit {
        "nanos" | "nsec" | "ns" => return Some(1),
        "usec" | "us" | "µs" => return Some(1_000),
        "millis" | "msec" | "ms" => return Some(1_000_000),
        "seconds" | "second" | "secs" | "sec" | "s" => 1,
        "minutes" | "minute" | "min" | "mins" | "m" => 60,
        "hours" | "hour" | "hr" | "hrs" | "h" => 3_600,
        "days" | "day" | "d" => 86_400,
        "weeks" | "week" | "wk" | "wks" | "w" => 604_800,
        "months" | "month" | "M" => 2_630_016,
        "years" | "year" | "yr" | "yrs" | "y" => 31_557_600,
        _ => return None,
    };
    Some(secs * NANOS_PER_SEC)
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
        write!(
            f,
            "invalid duration `{}`: {problem}",
            crate::error::quoted(text)
        )
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

    /// A whole number past 64 bits (YAML reads one as such).
    fn visit_u128<E: de::Error>(self, secs: u128) -> Result<Duration, E> {
        match u64::try_from(secs) {
            Ok(secs) => Ok(Duration::from_secs(secs)),
            Err(_) => Err(E::custom(DurationError::TooLarge(secs.to_string()))),
        }
    }

    fn visit_i128<E: de::Error>(self, secs: i128) -> Result<Duration, E> {
        match u128::try_from(secs) {
            Ok(secs) => self.visit_u128(secs),
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
    use std::time::Duration;

    use proptest::prelude::*;

    use super::{DurationError, parse_duration};

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
        /// Wherever `humantime` reads duration text, it reads the same duration.
        #[test]
        fn text_reads_as_humantime_reads_it(terms in prop::collection::vec(term(), 1..5), joiner in " ?") {
            let text = terms.join(&joiner);
            if let Ok(duration) = humantime::parse_duration(&text) {
                prop_assert_eq!(parse_duration(&text), Ok(duration), "{}", text);
            }
        }
    }

    proptest! {
        /// A number of seconds reads the same with its unit written out or not, however
        /// many decimals it has.
        #[test]
        fn seconds_read_the_same_with_or_without_their_unit(seconds in "[0-9]{1,5}(\\.[0-9]{1,15})?") {
            prop_assert_eq!(parse_duration(&seconds), parse_duration(&format!("{seconds}s")));
            prop_assert!(parse_duration(&seconds).is_ok(), "{}", seconds);
        }
    }

    #[test]
    fn fractions_of_any_unit_read_to_the_nearest_nanosecond() {
        assert_eq!(parse_duration("0.001h"), Ok(Duration::from_millis(3600)));
        assert_eq!(parse_duration("0.123h"), Ok(Duration::from_millis(442_800)));
        assert_eq!(parse_duration("1.0000000001s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("0.5ns"), Ok(Duration::from_nanos(1)));
        // The fractions add up first, and the total rounds once.
        let nanos = |text: &str| parse_duration(text).map(|d| d.as_nanos());
        assert_eq!(nanos("0.5ns 0.5ns"), Ok(1));
        assert_eq!(nanos("0.4ns 0.4ns"), Ok(1));
        assert_eq!(nanos("0.2ns 0.2ns"), Ok(0));
        assert_eq!(nanos("0.25ns 0.25ns"), Ok(1));
        assert_eq!(nanos(&"0.1ns ".repeat(15)), Ok(2));
        assert_eq!(nanos("1.0000000004s 0.0000000004s"), Ok(1_000_000_001));
        assert_eq!(parse_duration("1.5 h 2m"), Ok(Duration::from_secs(5520)));
        for text in [
            "", "h", "1.h", "1..5h", "1.2.3h", ".5h", "1m 30", "-1s", "1 0s",
        ] {
            let read = parse_duration(text);
            assert!(
                matches!(read, Err(DurationError::Invalid(_))),
                "{text:?}: {read:?}"
            );
        }
        let huge = format!("{}y", "9".repeat(60));
        assert!(matches!(
            parse_duration(&huge),
            Err(DurationError::TooLarge(_))
        ));
        // The fraction tips the largest whole number of nanoseconds over.
        let brim = format!("{}.9ns", u128::MAX);
        let read = parse_duration(&brim);
        assert!(matches!(read, Err(DurationError::TooLarge(_))), "{read:?}");
    }
}
