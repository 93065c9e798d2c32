//! Cryptography: salted HPAN/HTOKEN hashing and the PAN vault (AES-256-GCM with a key ring).

mod hashing;
pub mod pgp;
mod vault;

pub use hashing::Hasher;
pub use vault::{KeyRing, Sealed, VaultKey};

/// Failures of the crypto layer. Variants carry no values: never a PAN, key or salt.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext names a key id that is not in the ring.
    #[error("vault key id not in the key ring")]
    UnknownKey,
    /// Authentication failed: wrong key, wrong AAD (HPAN) or tampered ciphertext.
    #[error("vault ciphertext does not authenticate")]
    Unauthenticated,
    /// The stored blob has the wrong layout or version.
    #[error("vault ciphertext is malformed")]
    Malformed,
    /// The decrypted value is not a valid card number.
    #[error("vault plaintext is not a card number")]
    NotACardNumber,
    /// OpenSSL failed (random source, cipher initialisation).
    #[error("openssl failure: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}
