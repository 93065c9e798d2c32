//! The duplicate key of `matching.md` (check 2): (`codice_acquirer`, `id_trx_acquirer`,
//! `date_time` as an instant, `tipo_operazione`), digested to 16 bytes.

use sha2::{Digest, Sha256};

use super::Record;
use crate::domain::Abi;

/// A record's duplicate key: the first 16 bytes of a SHA-256 over its parts (a collision at this
/// size is out of reach for any file count).
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
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Self(out)
    }
}
