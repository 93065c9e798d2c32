//! The duplicate key of `matching.md` (check 2): (`codice_acquirer`, `id_trx_acquirer`,
//! `date_time` as an instant, `tipo_operazione`), digested to 16 bytes.

use sha2::{Digest, Sha256};

use super::Record;
use crate::domain::Abi;

/// A record's duplicate key: the transaction's day (2 bytes, days since 1970 — so that a file's
/// keys, which span a few days, land together in the key index instead of all over it) then the
/// first 14 bytes of a SHA-256 over its parts (a collision within one day is out of reach).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DupKey(pub [u8; 16]);

impl DupKey {
    /// The key of `record` in a file of `abi`.
    pub fn of(abi: &Abi, record: &Record) -> Self {
        let mut h = Sha256::new();
        // Lengths before each part, so that no two tuples share a byte string.
        for part in [abi.as_str().as_bytes(), record.id_trx_acquirer.as_bytes()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.update(record.at.timestamp_micros().to_be_bytes());
        h.update(record.operation.code().as_bytes());
        let digest = h.finalize();
        let day = record
            .at
            .timestamp()
            .div_euclid(86_400)
            .clamp(0, i64::from(u16::MAX));
        let day = u16::try_from(day).unwrap_or(u16::MAX);
        let mut out = [0u8; 16];
        out[..2].copy_from_slice(&day.to_be_bytes());
        out[2..].copy_from_slice(&digest[..14]);
        Self(out)
    }
}
