//! `[matching]` (`matching.md`, TK11): the service rewarded, the date rule and zone, the award
//! periods seeded at start-up, outcome retention and batch size.

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::domain::matching::{AwardPeriod, AwardPeriods, DateRule, DEFAULT_GRACE_DAYS};
use crate::domain::Service;

/// One configured award period.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodSetting {
    /// Its id (1 to 64 characters).
    pub id: String,
    /// First day, `yyyy-MM-dd`.
    pub start: NaiveDate,
    /// Last day, `yyyy-MM-dd`.
    pub end: NaiveDate,
    /// Grace days after `end` (default 30).
    pub grace_days: Option<u32>,
}

/// `[matching]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingSettings {
    /// The service whose consent token and PAR matches need (`BPD`).
    pub service: Service,
    /// `design` (default) or `bpd`.
    pub date_rule: DateRule,
    /// The zone of transaction and enrolment days (an IANA name).
    pub zone: String,
    /// Days outcomes are kept.
    pub retention_days: u32,
    /// Records per transaction and per resume point.
    pub batch_rows: usize,
    /// A file of at most this many records (and a queue message) is matched against a snapshot
    /// of only what its records name; a larger one against the whole snapshot, kept in memory
    /// and caught up before each file.
    pub targeted_max_records: usize,
    /// Award periods seeded into the database at start-up (the admin API's wins).
    #[serde(default)]
    pub award_periods: Vec<PeriodSetting>,
}

impl MatchingSettings {
    /// The zone.
    pub fn zone(&self) -> Result<Tz, ConfigError> {
        self.zone.parse().map_err(|_| {
            invalid(
                "matching.zone",
                "must be an IANA zone name such as Europe/Rome",
            )
        })
    }

    /// The configured periods, validated.
    pub fn periods(&self) -> Result<AwardPeriods, ConfigError> {
        let periods = self
            .award_periods
            .iter()
            .map(|p| AwardPeriod {
                id: p.id.clone(),
                start: p.start,
                end: p.end,
                grace_days: p.grace_days.unwrap_or(DEFAULT_GRACE_DAYS),
            })
            .collect();
        AwardPeriods::new(periods).map_err(|e| invalid("matching.award_periods", e.to_string()))
    }

    /// Checks every value, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.zone()?;
        self.periods()?;
        if self.retention_days == 0 {
            return Err(invalid("matching.retention_days", "must be at least 1"));
        }
        if !(1..=100_000).contains(&self.batch_rows) {
            return Err(invalid("matching.batch_rows", "must be 1 to 100000"));
        }
        Ok(())
    }
}
