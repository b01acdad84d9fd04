//! Times as text, for every `SystemTime` a platform can hold: RFC 3339 in UTC for the
//! years 0000 to 9999, and beyond them the same form with a signed year of four or more
//! digits (ISO 8601's expanded years), so that no time makes serialisation fail.
//!
//! Dates are proleptic Gregorian with a year 0 (year `-0001` is 2 BC).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECONDS_PER_DAY: i128 = 86_400;
const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// `time` as result files and journals write it: `YYYY-MM-DDTHH:MM:SS.ffffffZ` (RFC
/// 3339 in UTC, microseconds, truncated), or with a signed year (`+10000-...`,
/// `-0001-...`) outside the years 0000 to 9999, so that every time has a form.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let t = UNIX_EPOCH + Duration::from_micros(1_234_567);
/// assert_eq!(orch_core::format_time(t), "1970-01-01T00:00:01.234567Z");
/// let before = UNIX_EPOCH - Duration::from_secs(1);
/// assert_eq!(orch_core::format_time(before), "1969-12-31T23:59:59.000000Z");
/// ```
pub fn format_time(time: SystemTime) -> String {
    let (seconds, nanos) = split(time);
    let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
    let of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (hour, minute, second) = (of_day / 3_600, of_day / 60 % 60, of_day % 60);
    let micros = nanos / 1_000;
    let year = match year {
        0..=9_999 => format!("{year:04}"),
        ..0 => format!("-{:04}", year.unsigned_abs()),
        _ => format!("+{year}"),
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micros:06}Z")
}

/// Why a time could not be read.
#[derive(Debug)]
pub(crate) struct TimeError(&'static str);

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Reads what [`format_time`] writes, and RFC 3339 more loosely: a space or `t` for the
/// `T`, any number of fraction digits (those past nanoseconds are ignored), a UTC offset
/// `±HH:MM` or none at all (UTC), and a leap second `:60` (read as `:59`).
pub(crate) fn parse(text: &str) -> Result<SystemTime, TimeError> {
    let mut cursor = Cursor(text.as_bytes());
    let year = cursor.year()?;
    cursor.expect(b'-')?;
    let month = cursor.digits(2)?;
    cursor.expect(b'-')?;
    let day = cursor.digits(2)?;
    if !matches!(cursor.next(), Some(b'T' | b't' | b' ')) {
        return Err(TimeError("expected `T` between the date and the time"));
    }
    let hour = cursor.digits(2)?;
    cursor.expect(b':')?;
    let minute = cursor.digits(2)?;
    cursor.expect(b':')?;
    let second = cursor.digits(2)?;
    let nanos = cursor.fraction()?;
    let offset = cursor.offset()?;
    if !cursor.0.is_empty() {
        return Err(TimeError("unexpected text after the time"));
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(TimeError("no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(TimeError("no such time of day"));
    }
    let second = second.min(59);
    let seconds =
        days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3_600 + minute * 60 + second
            - offset;
    join(seconds, nanos).ok_or(TimeError("out of the range of times this system holds"))
}

/// Whole seconds since the Unix epoch (rounded down) and the nanoseconds after them.
fn split(time: SystemTime) -> (i128, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => (i128::from(after.as_secs()), after.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            let seconds = -i128::from(before.as_secs());
            match before.subsec_nanos() {
                0 => (seconds, 0),
                nanos => (seconds - 1, NANOS_PER_SECOND - nanos),
            }
        }
    }
}

/// The inverse of [`split`]; `None` outside what `SystemTime` can hold.
fn join(seconds: i128, nanos: u32) -> Option<SystemTime> {
    let fraction = Duration::new(0, nanos);
    if seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(seconds).ok()?) + fraction)
    } else {
        let before = Duration::from_secs(u64::try_from(-seconds).ok()?);
        UNIX_EPOCH.checked_sub(before)?.checked_add(fraction)
    }
}

/// Days since 1970-01-01 of a date (counting in 400-year eras of 146,097 days, each
/// starting on 1 March so that leap days end a year).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day counted from 1970-01-01: the inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The unread rest of a time's text.
struct Cursor<'t>(&'t [u8]);

impl Cursor<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn expect(&mut self, byte: u8) -> Result<(), TimeError> {
        match self.next() {
            Some(found) if found == byte => Ok(()),
            _ => Err(TimeError("not an RFC 3339 time")),
        }
    }

    fn take_digits(&mut self) -> &[u8] {
        let count = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = self.0.split_at(count);
        self.0 = rest;
        digits
    }

    /// Exactly `count` digits.
    fn digits(&mut self, count: usize) -> Result<i128, TimeError> {
        match self.0.get(..count) {
            Some(digits) if digits.iter().all(u8::is_ascii_digit) => {
                self.0 = &self.0[count..];
                Ok(digits.iter().fold(0, |n, d| n * 10 + i128::from(d - b'0')))
            }
            _ => Err(TimeError("not an RFC 3339 time")),
        }
    }

    /// Four digits, or a sign and four or more.
    fn year(&mut self) -> Result<i128, TimeError> {
        let sign = match self.0.first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return self.digits(4),
        };
        self.0 = &self.0[1..];
        let digits = self.take_digits();
        if digits.len() < 4 {
            return Err(TimeError("a signed year needs at least four digits"));
        }
        let magnitude = digits.iter().try_fold(0i128, |n, d| {
            n.checked_mul(10)?.checked_add(i128::from(d - b'0'))
        });
        match magnitude {
            // Far beyond what `SystemTime` holds, and small enough not to overflow later.
            Some(n) if n < 1 << 64 => Ok(sign * n),
            _ => Err(TimeError("out of the range of times this system holds")),
        }
    }

    /// `.` and one or more digits, as nanoseconds; 0 without them.
    fn fraction(&mut self) -> Result<u32, TimeError> {
        if self.0.first() != Some(&b'.') {
            return Ok(0);
        }
        self.0 = &self.0[1..];
        let digits = self.take_digits();
        if digits.is_empty() {
            return Err(TimeError("expected digits after the decimal point"));
        }
        let mut nanos = 0;
        for position in 0..9 {
            nanos = nanos * 10 + digits.get(position).map_or(0, |d| u32::from(d - b'0'));
        }
        Ok(nanos)
    }

    /// The UTC offset in seconds: `Z`, `±HH:MM`, or nothing (UTC).
    fn offset(&mut self) -> Result<i128, TimeError> {
        let sign = match self.0.first() {
            None => return Ok(0),
            Some(b'Z' | b'z') => {
                self.0 = &self.0[1..];
                return Ok(0);
            }
            Some(b'+') => 1,
            Some(b'-') => -1,
            Some(_) => return Err(TimeError("expected `Z` or a UTC offset after the time")),
        };
        self.0 = &self.0[1..];
        let hours = self.digits(2)?;
        self.expect(b':')?;
        let minutes = self.digits(2)?;
        if hours > 23 || minutes > 59 {
            return Err(TimeError("no such UTC offset"));
        }
        Ok(sign * (hours * 3_600 + minutes * 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_from_days_matches_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(10_956), (1999, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_875), (2024, 6, 1));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
    }
}
