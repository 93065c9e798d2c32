//! `[storage]` and `[lists]`: where files live, and how the published lists are built and served.

use std::path::PathBuf;

use chrono::NaiveTime;
use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[storage]`: the directory of published lists (and, later, uploads). Replicas share it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// The directory (created at start-up when missing).
    pub dir: PathBuf,
}

/// `[lists]` (`files.md`, TK8).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListsSettings {
    /// Daily build time, `HH:MM` in Europe/Rome.
    pub build_at: String,
    /// Rows per ZIP part at most.
    pub max_rows_per_file: u64,
    /// Lifetime of a one-shot link; 0 = `min(10, 2 × parts)` minutes.
    pub link_minutes: u32,
    /// Days a generation is kept (the newest ready one always is).
    pub retention_days: u32,
    /// `<ENV>` in the BIN range and known-hashes file names.
    pub env_name: String,
    /// Deflate level of the parts (1 fastest … 9 smallest).
    pub zip_level: i64,
    /// Build, at start-up, the lists that have no generation yet (a fresh installation serves
    /// them at once instead of answering 404 until the daily build).
    pub build_on_start: bool,
}

impl ListsSettings {
    /// The daily build time.
    pub fn build_time(&self) -> Result<NaiveTime, ConfigError> {
        NaiveTime::parse_from_str(&self.build_at, "%H:%M")
            .map_err(|_| invalid("lists.build_at", "must be HH:MM (Europe/Rome)"))
    }

    /// Checks every value, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.build_time()?;
        if self.max_rows_per_file == 0 {
            return Err(invalid("lists.max_rows_per_file", "must be at least 1"));
        }
        if self.retention_days == 0 {
            return Err(invalid("lists.retention_days", "must be at least 1"));
        }
        if !(1..=9).contains(&self.zip_level) {
            return Err(invalid("lists.zip_level", "must be 1 to 9"));
        }
        let env_ok = !self.env_name.is_empty()
            && self.env_name.len() <= 16
            && self.env_name.bytes().all(|b| b.is_ascii_alphanumeric());
        if !env_ok {
            return Err(invalid(
                "lists.env_name",
                "must be 1 to 16 letters or digits (it is part of file names)",
            ));
        }
        Ok(())
    }

    /// A link's lifetime for a generation of `parts` files.
    pub fn link_lifetime(&self, parts: usize) -> chrono::Duration {
        let minutes = if self.link_minutes > 0 {
            i64::from(self.link_minutes)
        } else {
            i64::try_from(parts.saturating_mul(2))
                .unwrap_or(i64::MAX)
                .clamp(2, 10)
        };
        chrono::Duration::minutes(minutes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> ListsSettings {
        ListsSettings {
            build_at: "01:00".into(),
            max_rows_per_file: 1_000_000,
            link_minutes: 0,
            retention_days: 3,
            env_name: "PROD".into(),
            zip_level: 6,
            build_on_start: true,
        }
    }

    #[test]
    fn links_live_two_minutes_a_part_up_to_ten() {
        let l = lists();
        assert_eq!(l.link_lifetime(1).num_minutes(), 2);
        assert_eq!(l.link_lifetime(4).num_minutes(), 8);
        assert_eq!(l.link_lifetime(40).num_minutes(), 10);
        let fixed = ListsSettings {
            link_minutes: 30,
            ..lists()
        };
        assert_eq!(fixed.link_lifetime(1).num_minutes(), 30);
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |l: ListsSettings| l.validate().unwrap_err().to_string();
        assert!(bad(ListsSettings {
            build_at: "25:00".into(),
            ..lists()
        })
        .contains("lists.build_at"));
        assert!(bad(ListsSettings {
            env_name: "P/1".into(),
            ..lists()
        })
        .contains("lists.env_name"));
        assert!(bad(ListsSettings {
            zip_level: 0,
            ..lists()
        })
        .contains("lists.zip_level"));
        assert!(lists().validate().is_ok());
    }

    #[test]
    fn upload_batches_must_fit_the_lock_table() {
        let uploads = |batch_rows| UploadsSettings {
            max_bytes: 1,
            max_ratio: 20,
            batch_rows,
        };
        assert!(uploads(1000).validate().is_ok());
        assert!(uploads(MAX_UPLOAD_BATCH_ROWS).validate().is_ok());
        let refused = uploads(MAX_UPLOAD_BATCH_ROWS + 1).validate().unwrap_err();
        assert!(
            refused.to_string().contains("uploads.batch_rows"),
            "{refused}"
        );
    }
}

/// The largest `uploads.batch_rows` (see [`UploadsSettings::validate`]).
pub const MAX_UPLOAD_BATCH_ROWS: usize = 1500;

/// `[uploads]` (`files.md`, uploads): acquirers' token lists and transaction files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadsSettings {
    /// The largest file accepted, in bytes (checked before anything is stored).
    pub max_bytes: u64,
    /// The decompressed content may be at most this many times the upload.
    pub max_ratio: u64,
    /// Rows applied per transaction.
    pub batch_rows: usize,
}

impl UploadsSettings {
    /// Checks every value, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_bytes == 0 {
            return Err(invalid("uploads.max_bytes", "must be at least 1"));
        }
        if !(1..=1000).contains(&self.max_ratio) {
            return Err(invalid("uploads.max_ratio", "must be 1 to 1000"));
        }
        // Each row takes up to two advisory locks and two batches are in flight: beyond this,
        // PostgreSQL's default lock table (max_locks_per_transaction × max_connections, 6 400)
        // overflows ("out of shared memory") and every batch of the file fails.
        if !(1..=MAX_UPLOAD_BATCH_ROWS).contains(&self.batch_rows) {
            return Err(invalid(
                "uploads.batch_rows",
                "must be 1 to 1500 (4 × batch_rows advisory locks must fit PostgreSQL's lock table)",
            ));
        }
        Ok(())
    }

    /// The most plaintext a stored file of `bytes` may decrypt to.
    pub fn max_plaintext(&self, bytes: u64) -> u64 {
        bytes.saturating_mul(self.max_ratio)
    }
}
