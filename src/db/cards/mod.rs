//! Card registry tables (`card`, `card_link`, `card_link_interval`, `token`,
//! `association_event`): a batch of commands in one transaction — lock and load the slice it
//! touches, apply the rules of `domain::cards`, write back what changed with the card updates
//! (outbox), the PAR lookups owed and the messages applied — and the read of one card.

mod apply;
mod load;
pub mod retention;
pub mod rotation;
mod save;

pub use apply::{
    apply_batch, apply_upload_batch, reconcile_citizens, view, BatchReport, UploadStep,
};
pub use load::{load_unlocked, lock_and_load, Keys};
pub use save::save;

use sha2::{Digest, Sha256};

/// The advisory lock key of a card, token or PAR: work on one of them is serialised across
/// transactions, actors and replicas.
pub fn lock_key(kind: &str, value: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(kind.as_bytes())
        .chain_update(b":")
        .chain_update(value.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}
