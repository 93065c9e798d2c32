//! The names of acquirers' files (`files.md`): `TKM.<ABI>.TKNLST.<yyyyMMdd>.<HHmmss>.<nnn>.csv[.pgp]`
//! for token lists, `CSTAR.<ABI>.TRNLOG.…` for transactions. Checked before anything is stored.

use super::{Abi, ParseError};

/// Which kind of file an acquirer uploads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadKind {
    /// A token list (TK9).
    TokenList,
    /// A transaction file (TK10).
    Transactions,
    /// A `tkm-transactions` queue message (named by its `message_id`, never by a file name).
    TransactionMessage,
}

impl UploadKind {
    fn prefix_and_tag(self) -> (&'static str, &'static str) {
        match self {
            UploadKind::TokenList => ("TKM", "TKNLST"),
            UploadKind::Transactions | UploadKind::TransactionMessage => ("CSTAR", "TRNLOG"),
        }
    }
}

/// A valid file name, split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadName {
    /// The kind the name says.
    pub kind: UploadKind,
    /// The acquirer's bank code in the name.
    pub abi: Abi,
    /// `yyyyMMdd`.
    pub date: String,
    /// `HHmmss`.
    pub time: String,
    /// `nnn`.
    pub seq: String,
    /// Ends in `.pgp`.
    pub pgp: bool,
    /// The whole name as received.
    pub name: String,
}

fn digits(part: &str, n: usize) -> bool {
    part.len() == n && part.bytes().all(|b| b.is_ascii_digit())
}

impl UploadName {
    /// Parses `name` as a file of `kind`; the error says what is wrong, never echoes the name.
    pub fn parse(kind: UploadKind, name: &str) -> Result<Self, ParseError> {
        let (prefix, tag) = kind.prefix_and_tag();
        let bad = || {
            ParseError(match kind {
                UploadKind::TokenList => {
                    "file name must be TKM.<ABI>.TKNLST.<yyyyMMdd>.<HHmmss>.<nnn>.csv[.pgp]"
                }
                UploadKind::Transactions | UploadKind::TransactionMessage => {
                    "file name must be CSTAR.<ABI>.TRNLOG.<yyyyMMdd>.<HHmmss>.<nnn>.csv[.pgp]"
                }
            })
        };
        let (stem, pgp) = match name.strip_suffix(".pgp") {
            Some(stem) => (stem, true),
            None => (name, false),
        };
        let stem = stem.strip_suffix(".csv").ok_or_else(bad)?;
        let parts: Vec<&str> = stem.split('.').collect();
        let [p, abi, t, date, time, seq] = parts.as_slice() else {
            return Err(bad());
        };
        if *p != prefix || *t != tag || !digits(date, 8) || !digits(time, 6) || !digits(seq, 3) {
            return Err(bad());
        }
        let abi = Abi::parse(abi).map_err(|_| bad())?;
        Ok(UploadName {
            kind,
            abi,
            date: (*date).to_owned(),
            time: (*time).to_owned(),
            seq: (*seq).to_owned(),
            pgp,
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_patterns() {
        let n = UploadName::parse(
            UploadKind::TokenList,
            "TKM.99999.TKNLST.20261204.101500.001.csv.pgp",
        )
        .unwrap();
        assert_eq!(
            (n.abi.as_str(), n.pgp, n.seq.as_str()),
            ("99999", true, "001")
        );
        let t = UploadName::parse(
            UploadKind::Transactions,
            "CSTAR.STPAY.TRNLOG.20261204.101500.002.csv",
        )
        .unwrap();
        assert!(!t.pgp);
        for bad in [
            "TKM.99999.TKNLST.20261204.101500.001.txt",
            "TKM.9999.TKNLST.20261204.101500.001.csv",
            "TKM.99999.TRNLOG.20261204.101500.001.csv",
            "TKM.99999.TKNLST.2026124.101500.001.csv",
            "TKM.99999.TKNLST.20261204.101500.01.csv",
            "TKM.99999.TKNLST.20261204.101500.001.extra.csv",
            "../TKM.99999.TKNLST.20261204.101500.001.csv",
            "",
        ] {
            let e = UploadName::parse(UploadKind::TokenList, bad).unwrap_err();
            assert!(e.0.starts_with("file name must be TKM."), "{bad}");
        }
        assert!(UploadName::parse(
            UploadKind::Transactions,
            "TKM.99999.TKNLST.20261204.101500.001.csv"
        )
        .is_err());
    }
}
