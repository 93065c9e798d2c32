//! Card numbers that arrive PGP-encrypted in API requests (issuers' `pgpPan`, `Pgp-Pan`):
//! decrypted off the HTTP worker, parsed, and reduced to their HPAN at once.

use actix_web::web;

use super::state::PgpInput;
use crate::domain::{Hpan, Pan};

/// The largest plaintext a PGP-wrapped card number may have.
const MAX_PLAINTEXT: usize = 1024;

/// Decrypts a PGP message holding a PAN and returns its HPAN; `None` for any failure (one
/// outcome for every cause: the API is no decryption oracle).
pub async fn hpan_of(shared: &PgpInput, message: Vec<u8>) -> Option<Hpan> {
    let s = shared.clone();
    web::block(move || {
        let plain = s.pgp.decrypt(&message, MAX_PLAINTEXT).ok()?;
        let text = std::str::from_utf8(&plain).ok()?;
        let pan = Pan::parse(text.trim()).ok()?;
        Some(s.hasher.hpan(&pan))
    })
    .await
    .ok()
    .flatten()
}
