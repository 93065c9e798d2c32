//! Date formats of the wire: `dd/MM/yyyy HH:mm:ss` (legacy fields) and ISO-8601, in Europe/Rome.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Europe::Rome;

/// `dd/MM/yyyy HH:mm:ss` in Europe/Rome (consent `lastUpdateDate`, links dates).
pub fn legacy(t: DateTime<Utc>) -> String {
    t.with_timezone(&Rome)
        .format("%d/%m/%Y %H:%M:%S")
        .to_string()
}

/// ISO-8601 with the Europe/Rome offset, with as many fraction digits as needed to be exact (so
/// a value sent back as `at=` denotes the same instant).
pub fn iso(t: DateTime<Utc>) -> String {
    t.with_timezone(&Rome)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_in_rome_time() {
        let winter = Utc.with_ymd_and_hms(2026, 11, 23, 9, 5, 7).unwrap();
        assert_eq!(legacy(winter), "23/11/2026 10:05:07");
        assert_eq!(iso(winter), "2026-11-23T10:05:07+01:00");
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 9, 0, 0).unwrap()
            + chrono::Duration::microseconds(1500);
        assert_eq!(iso(summer), "2026-07-01T11:00:00.001500+02:00");
    }
}
