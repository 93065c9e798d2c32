//! How long a circuit's `429` makes tkm wait: its `Retry-After` (RFC 9110 §10.2.3: delta-seconds
//! or an HTTP-date) read by [`parse`], or, when it gives none that can be used, the normal
//! backoff of [`backoff`]. Both are never above the configured cap, so an absurd value from
//! outside can neither overflow time arithmetic nor stall a circuit for longer than the cap.

use std::time::{Duration, SystemTime};

/// The wait a `Retry-After` value asks for, at most `cap`; `None` for garbage (the caller then
/// backs off normally).
///
/// - delta-seconds (digits only): that many seconds; a number too large for any clock is `cap`;
/// - an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms): the time until then
///   from `now`, 0 when it is past;
/// - anything else (`-5`, `abc`, empty, `1.5`): `None`.
pub fn parse(value: &str, now: SystemTime, cap: Duration) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: the one way to fail is a number beyond u64, which is beyond the cap.
        let wait = value.parse::<u64>().map_or(cap, Duration::from_secs);
        return Some(wait.min(cap));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(cap))
}

/// The wait after the `streak`-th consecutive `429` (1-based) that gave no usable `Retry-After`:
/// `default`·2^(streak−1), at most `cap`.
pub fn backoff(default: Duration, streak: u32, cap: Duration) -> Duration {
    let doublings = streak.saturating_sub(1).min(31);
    default.saturating_mul(1u32 << doublings).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(unix_secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_secs)
    }

    /// Sun, 06 Nov 1994 08:49:37 GMT (the RFC's example).
    const EXAMPLE: u64 = 784_111_777;

    #[test]
    fn delta_seconds_are_taken_and_capped() {
        let now = at(EXAMPLE);
        assert_eq!(parse("0", now, HOUR), Some(Duration::ZERO));
        assert_eq!(parse("120", now, HOUR), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 7 ", now, HOUR), Some(Duration::from_secs(7)));
        assert_eq!(parse("3600", now, HOUR), Some(HOUR));
        assert_eq!(parse("3601", now, HOUR), Some(HOUR));
        for huge in [
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "000000000000000000000000000000000000000000005",
            &"9".repeat(500),
        ] {
            let got = parse(huge, now, HOUR);
            assert!(got.is_some_and(|d| d <= HOUR), "{huge}: {got:?}");
        }
        assert_eq!(parse("99999999999999999999", now, HOUR), Some(HOUR));
        assert_eq!(
            parse("000000000000000000000000000000000000000000005", now, HOUR),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn http_dates_in_all_three_forms_count_from_now() {
        let now = at(EXAMPLE - 30);
        let thirty = Some(Duration::from_secs(30));
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT", now, HOUR), thirty);
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT", now, HOUR), thirty);
        assert_eq!(parse("Sun Nov  6 08:49:37 1994", now, HOUR), thirty);
        // Past: no wait. Far ahead: the cap.
        let later = at(EXAMPLE + 1);
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:49:37 GMT", later, HOUR),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse("Fri, 31 Dec 9999 23:59:59 GMT", now, HOUR),
            Some(HOUR)
        );
    }

    #[test]
    fn garbage_is_no_retry_after() {
        let now = at(EXAMPLE);
        for garbage in [
            "",
            "   ",
            "-5",
            "+5",
            "abc",
            "1.5",
            "5s",
            "0x10",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "٣",
            "Sun, 06 Nov 1994 08:49:37 GMT…",
        ] {
            assert_eq!(parse(garbage, now, HOUR), None, "{garbage:?}");
        }
    }

    #[test]
    fn the_backoff_doubles_from_the_default_up_to_the_cap() {
        let minute = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=8)
            .map(|s| backoff(minute, s, HOUR).as_secs())
            .collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(minute, 0, HOUR), minute);
        assert_eq!(backoff(minute, u32::MAX, HOUR), HOUR);
        assert_eq!(backoff(Duration::MAX, 1, HOUR), HOUR);
        // A default above the cap is the cap.
        assert_eq!(backoff(HOUR * 2, 1, HOUR), HOUR);
    }
}
