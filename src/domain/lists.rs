//! The published lists (`files.md`, TK8) as values: which list, and how its parts are named.

use chrono::NaiveDate;

/// One of the four lists acquirers filter with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListKind {
    /// Enrolled HPANs and the HTOKENs of consenting cards' PARs.
    Hpans,
    /// PARs of enrolled, consenting cards.
    Pars,
    /// Token BIN ranges of every circuit.
    BinRanges,
    /// Every live HPAN and HTOKEN.
    KnownHashes,
}

impl ListKind {
    /// Every list, in build order.
    pub const ALL: [ListKind; 4] = [
        ListKind::Hpans,
        ListKind::Pars,
        ListKind::BinRanges,
        ListKind::KnownHashes,
    ];

    /// The name in `kinds=`, job scopes, metrics and storage paths.
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Hpans => "hpans",
            ListKind::Pars => "pars",
            ListKind::BinRanges => "bin-ranges",
            ListKind::KnownHashes => "known-hashes",
        }
    }

    /// Parses a `kinds=` item.
    pub fn parse(value: &str) -> Option<Self> {
        ListKind::ALL
            .into_iter()
            .find(|k| k.as_str() == value.trim())
    }

    /// The names of part `n` (from 0) of a generation made on `day`: the ZIP file and its single
    /// entry (`^[a-z0-9_]+\.csv$`, case-insensitive).
    pub fn part_names(self, env: &str, day: NaiveDate, n: usize) -> (String, String) {
        let ymd = day.format("%Y%m%d");
        match self {
            ListKind::Hpans => (format!("hashedPans_{n}.zip"), "hashedPans.csv".into()),
            ListKind::Pars => (format!("parList_{n}.zip"), "parList.csv".into()),
            ListKind::BinRanges => {
                let entry = format!("BIN_RANGE_GEN_{env}_{ymd}_{n}.csv");
                (format!("{entry}.zip"), entry)
            }
            ListKind::KnownHashes => {
                let entry = format!("KNOWN_HASHES_GEN_{env}_{ymd}_{n}.csv");
                (format!("{entry}.zip"), entry)
            }
        }
    }

    /// Parts the list may have at most (`None`: as many as its rows need).
    pub fn max_parts(self) -> Option<usize> {
        match self {
            ListKind::BinRanges => Some(10),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        assert_eq!(
            ListKind::Hpans.part_names("PROD", day, 0),
            ("hashedPans_0.zip".into(), "hashedPans.csv".into())
        );
        assert_eq!(
            ListKind::BinRanges.part_names("PROD", day, 2),
            (
                "BIN_RANGE_GEN_PROD_20261204_2.csv.zip".into(),
                "BIN_RANGE_GEN_PROD_20261204_2.csv".into()
            )
        );
        let (_, entry) = ListKind::KnownHashes.part_names("UAT", day, 0);
        assert!(entry
            .trim_end_matches(".csv")
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert_eq!(
            ListKind::parse(" known-hashes"),
            Some(ListKind::KnownHashes)
        );
        assert_eq!(ListKind::parse("nope"), None);
    }
}
