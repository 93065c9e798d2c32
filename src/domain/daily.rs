//! Daily times: the next `HH:MM` in Europe/Rome after now and the last one before it, across
//! DST changes (BIN refreshes, list builds).

use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Rome;

/// How long until the next `at` (Rome time) strictly after `now`.
pub fn until_next(now: DateTime<Utc>, at: NaiveTime) -> Duration {
    let local = now.with_timezone(&Rome);
    let mut day = local.date_naive();
    for _ in 0..3 {
        // `earliest` picks the first of a repeated hour; a skipped hour (spring) moves a day on.
        if let Some(next) = Rome.from_local_datetime(&day.and_time(at)).earliest() {
            let next = next.with_timezone(&Utc);
            if next > now {
                return (next - now).to_std().unwrap_or(Duration::from_secs(60));
            }
        }
        day = day.checked_add_days(Days::new(1)).unwrap_or(day);
    }
    Duration::from_secs(24 * 3600)
}

/// The latest `at` (Rome time) at or before `now`: the scheduled time a refresh that ran since
/// then has caught up with.
pub fn last_at_or_before(now: DateTime<Utc>, at: NaiveTime) -> DateTime<Utc> {
    let local = now.with_timezone(&Rome);
    let mut day = local.date_naive();
    for _ in 0..3 {
        if let Some(slot) = Rome.from_local_datetime(&day.and_time(at)).earliest() {
            let slot = slot.with_timezone(&Utc);
            if slot <= now {
                return slot;
            }
        }
        day = day.checked_sub_days(Days::new(1)).unwrap_or(day);
    }
    now - chrono::Duration::days(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn next_refresh_is_rome_time() {
        let three = NaiveTime::from_hms_opt(3, 0, 0).unwrap_or_default();
        // 01:00 UTC in winter is 02:00 in Rome: one hour to go.
        assert_eq!(
            until_next(utc("2026-01-10T01:00:00Z"), three),
            Duration::from_secs(3600)
        );
        // Just past 03:00 Rome (02:00 UTC): tomorrow.
        assert_eq!(
            until_next(utc("2026-01-10T02:00:01Z"), three),
            Duration::from_secs(24 * 3600 - 1)
        );
        // The slot a start-up refresh catches up with: today's once past, else yesterday's.
        assert_eq!(
            last_at_or_before(utc("2026-01-10T02:00:01Z"), three),
            utc("2026-01-10T02:00:00Z")
        );
        assert_eq!(
            last_at_or_before(utc("2026-01-10T01:59:59Z"), three),
            utc("2026-01-09T02:00:00Z")
        );
        assert_eq!(
            last_at_or_before(utc("2026-07-10T01:00:00Z"), three),
            utc("2026-07-10T01:00:00Z")
        );
        // Summer: 03:00 Rome is 01:00 UTC.
        assert_eq!(
            until_next(utc("2026-07-10T00:30:00Z"), three),
            Duration::from_secs(1800)
        );
    }
}
