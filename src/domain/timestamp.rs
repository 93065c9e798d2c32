//! The platform's timestamp format `yyyy-MM-dd HH:mm:ss:SSSS` (Europe/Rome, four fraction digits:
//! tenths of milliseconds), as read in card events and written in card updates.

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Rome;

use super::ParseError;

/// The resolution of the format: 100 µs.
pub fn tick() -> Duration {
    Duration::microseconds(100)
}

/// Parses `2022-10-19 12:17:10:1770` (Europe/Rome) or an ISO-8601 instant with offset or `Z`.
pub fn parse_event_timestamp(input: &str) -> Result<DateTime<Utc>, ParseError> {
    let input = input.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(input) {
        return Ok(t.with_timezone(&Utc));
    }
    let (base, frac) = input
        .rsplit_once(':')
        .filter(|(_, f)| f.len() == 4 && f.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(ParseError(
            "must be yyyy-MM-dd HH:mm:ss:SSSS or ISO-8601 with offset",
        ))?;
    let naive = NaiveDateTime::parse_from_str(base, "%Y-%m-%d %H:%M:%S")
        .map_err(|_| ParseError("must be yyyy-MM-dd HH:mm:ss:SSSS or ISO-8601 with offset"))?;
    let tenths: i64 = frac.parse().map_err(|_| ParseError("bad fraction"))?;
    let local = Rome
        .from_local_datetime(&naive)
        .earliest()
        .ok_or(ParseError("is not a valid Europe/Rome local time"))?;
    Ok(local.with_timezone(&Utc) + Duration::microseconds(tenths * 100))
}

/// Formats an instant as `yyyy-MM-dd HH:mm:ss:SSSS` in Europe/Rome (truncated to the tick).
pub fn format_update_timestamp(t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&Rome);
    let tenths = local.timestamp_subsec_micros() / 100;
    format!("{}:{tenths:04}", local.format("%Y-%m-%d %H:%M:%S"))
}

/// Truncates to the format's resolution, so a stored timestamp equals what was published.
pub fn truncate_to_tick(t: DateTime<Utc>) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros - micros.rem_euclid(100)).unwrap_or(t)
}

/// The next update timestamp of a card: `max(previous + 1 tick, now)`, on the tick grid.
pub fn next_update_timestamp(previous: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    let now = truncate_to_tick(now);
    match previous {
        Some(p) if truncate_to_tick(p) >= now => truncate_to_tick(p) + tick(),
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_legacy_format_in_rome_time() {
        let t = parse_event_timestamp("2022-10-19 12:17:10:1770").unwrap();
        assert_eq!(t.to_rfc3339(), "2022-10-19T10:17:10.177+00:00");
        let winter = parse_event_timestamp("2026-11-24 09:00:00:0000").unwrap();
        assert_eq!(winter.to_rfc3339(), "2026-11-24T08:00:00+00:00");
        let frac = parse_event_timestamp("2026-11-23 10:15:01:2345").unwrap();
        assert_eq!(frac.timestamp_subsec_micros(), 234_500);
    }

    #[test]
    fn parses_iso_with_offset() {
        let t = parse_event_timestamp("2026-11-23T10:15:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T09:15:00+00:00");
        assert!(parse_event_timestamp("2026-11-23T10:15:00Z").is_ok());
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "2022-10-19 12:17:10",
            "2022-10-19 12:17:10:177",
            "2022-10-19 12:17:10.1770",
            "",
            "yesterday",
        ] {
            assert!(parse_event_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_with_four_fraction_digits_and_round_trips() {
        let t = parse_event_timestamp("2026-11-23 10:15:01:2345").unwrap();
        assert_eq!(format_update_timestamp(t), "2026-11-23 10:15:01:2345");
        let summer = parse_event_timestamp("2026-07-01 00:00:00:0001").unwrap();
        assert_eq!(format_update_timestamp(summer), "2026-07-01 00:00:00:0001");
    }

    #[test]
    fn update_timestamps_strictly_increase_on_the_tick_grid() {
        let now = parse_event_timestamp("2026-11-23 10:00:00:0000").unwrap();
        assert_eq!(next_update_timestamp(None, now), now);
        assert_eq!(next_update_timestamp(Some(now), now), now + tick());
        let later = now + Duration::seconds(1);
        assert_eq!(next_update_timestamp(Some(later), now), later + tick());
        let odd = now + Duration::microseconds(1234);
        assert_eq!(
            next_update_timestamp(None, odd),
            now + Duration::microseconds(1200)
        );
    }
}
