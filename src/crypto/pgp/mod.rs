//! OpenPGP: tkm's secret key (unlocked once at load), decryption of inbound messages with a
//! single failure outcome, encryption (tests and tools) and key generation.
//!
//! What [`PgpKey::decrypt`] accepts, per `spec/messages.md` ("Inbound card event"): an
//! ASCII-armored or binary message whose PKESK (v3) is for one of our RSA or ECDH keys, a SEIPD
//! v1 packet with MDC under AES-128/192/256, and inside it literal data, possibly compressed
//! (ZIP, ZLIB, BZIP2) and possibly signed (signatures are not checked). The MDC is verified
//! before any plaintext is released. Anything else — a Symmetrically Encrypted Data packet
//! without integrity protection (tag 9), SEIPD v2, another cipher, a tampered byte, a foreign
//! key, garbage — is [`PgpError::Undecryptable`], whatever the cause, so a queue consumer cannot
//! serve as a decryption oracle; the cause goes to a `debug` log line only.
//!
//! RSA private operations run in OpenSSL, not in the pure-Rust `rsa` crate rPGP uses: about six
//! times faster, and it keeps RUSTSEC-2023-0071 (Marvin) off the decryption path. A PKCS#1
//! failure is not reported early: decryption continues with a random session key and fails
//! on the MDC like any other bad message (implicit rejection).

mod decrypt;
mod encrypt;
mod generate;
mod key;
mod openssl_rsa;
mod stream;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests_decrypt;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_inner;

pub use encrypt::{encrypt_to, PgpPublicKey};
pub use generate::{generate, PgpKeyKind};
pub use key::PgpKey;
pub use stream::{PlainStream, StreamError};

/// Failures of the OpenPGP layer. Variants carry no message content and no key material.
#[derive(Debug, thiserror::Error)]
pub enum PgpError {
    /// The message cannot be decrypted: one outcome for every cryptographic or format cause.
    #[error("the PGP message cannot be decrypted")]
    Undecryptable,
    /// The message, or its (decompressed) plaintext, is larger than the caller's limit.
    #[error("the PGP message or its plaintext is larger than allowed")]
    TooLarge,
    /// A key, passphrase or file named by the configuration cannot be read.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The secret key does not parse or has no RSA/ECDH key that can decrypt.
    #[error("not a usable OpenPGP secret key: {0}")]
    InvalidSecretKey(&'static str),
    /// The secret key is protected and the passphrase is wrong or missing.
    #[error("wrong or missing passphrase for the OpenPGP secret key")]
    Passphrase,
    /// The public key does not parse, its bindings do not verify, or it cannot encrypt.
    #[error("not a usable OpenPGP public key: {0}")]
    InvalidPublicKey(&'static str),
    /// Key generation, encryption or serialisation failed inside rPGP or OpenSSL.
    #[error("OpenPGP {what} failed: {cause}")]
    Operation {
        /// What was being done.
        what: &'static str,
        /// The library's message (never key material or plaintext).
        cause: String,
    },
}

impl PgpError {
    fn operation(what: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::Operation {
            what,
            cause: cause.to_string(),
        }
    }
}
