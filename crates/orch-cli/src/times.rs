//! Times as text: the RFC 3339 form orch writes in result files and journals
//! (`orch::core::format_time`: UTC, a signed year outside 0000 to 9999), which any time
//! has, unlike humantime's (which cannot write times before 1970 and cuts years past
//! 9999), at the precision a display wants.

use std::time::SystemTime;

/// `time` in RFC 3339 with `fraction_digits` digits of the second (at most 6, truncated).
pub(crate) fn rfc3339(time: SystemTime, fraction_digits: usize) -> String {
    let text = orch::core::format_time(time);
    // `...:SS.ffffffZ`: keep the wanted digits (and the point only with some).
    match text.rsplit_once('.') {
        Some((whole, _)) if fraction_digits == 0 => format!("{whole}Z"),
        Some((whole, fraction)) => {
            let digits = fraction.trim_end_matches('Z');
            format!("{whole}.{}Z", &digits[..fraction_digits.min(digits.len())])
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn any_time_is_written_at_the_precision_asked() {
        let t = UNIX_EPOCH + Duration::from_micros(1_234_567);
        assert_eq!(rfc3339(t, 0), "1970-01-01T00:00:01Z");
        assert_eq!(rfc3339(t, 3), "1970-01-01T00:00:01.234Z");
        assert_eq!(rfc3339(t, 6), "1970-01-01T00:00:01.234567Z");
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before, 0), "1969-12-31T23:59:59Z");
        // 10000-01-01T00:00:00Z
        let far = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert_eq!(rfc3339(far, 3), "+10000-01-01T00:00:00.000Z");
    }
}
