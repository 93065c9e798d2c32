//! Message protection of each circuit's API, pure functions over openssl primitives.
//!
//! Shared by the clients (`circuits::{visa,mastercard,amex}`) and the simulator, which verifies
//! what the clients produce. Independent vectors in `tests/protocol_vectors.rs` keep the two
//! sides honest.

pub mod amex_mac;
pub mod fle;
pub mod jwe;
pub mod oauth1;

use openssl::pkey::{PKey, Private, Public};

/// Why a protected message could not be made or read. Never carries the protected data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The message does not have the protocol's shape (the reason names the part).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A signature, MAC, tag or body hash does not verify.
    #[error("{0} does not verify")]
    Invalid(&'static str),
    /// The message names a key or algorithm we do not hold or accept.
    #[error("unexpected {0}")]
    Unexpected(&'static str),
    /// The crypto library failed (bad key material).
    #[error("crypto failure in {0}")]
    Crypto(&'static str),
}

/// Reads a PEM private key (PKCS#8 or traditional RSA).
pub fn private_key_from_pem(pem: &[u8]) -> Result<PKey<Private>, ProtocolError> {
    PKey::private_key_from_pem(pem).map_err(|_| ProtocolError::Malformed("private key"))
}

/// Reads a PEM public key (SubjectPublicKeyInfo) or the public key of a PEM certificate.
pub fn public_key_from_pem(pem: &[u8]) -> Result<PKey<Public>, ProtocolError> {
    if let Ok(key) = PKey::public_key_from_pem(pem) {
        return Ok(key);
    }
    openssl::x509::X509::from_pem(pem)
        .and_then(|cert| cert.public_key())
        .map_err(|_| ProtocolError::Malformed("public key"))
}

/// The public half of a private key.
pub fn public_of(key: &PKey<Private>) -> Result<PKey<Public>, ProtocolError> {
    let der = key
        .public_key_to_der()
        .map_err(|_| ProtocolError::Crypto("public key"))?;
    PKey::public_key_from_der(&der).map_err(|_| ProtocolError::Crypto("public key"))
}

/// A fresh RSA key (simulator and tests; real keys come from configuration).
pub fn generate_rsa(bits: u32) -> Result<PKey<Private>, ProtocolError> {
    openssl::rsa::Rsa::generate(bits)
        .and_then(PKey::from_rsa)
        .map_err(|_| ProtocolError::Crypto("key generation"))
}

/// RSA-OAEP with the same digest for OAEP and MGF1 (SHA-256 for JWE, SHA-512 for Mastercard).
pub(crate) fn rsa_oaep_encrypt(
    key: &PKey<Public>,
    md: openssl::hash::MessageDigest,
    data: &[u8],
) -> Result<Vec<u8>, ProtocolError> {
    let fail = |_| ProtocolError::Crypto("RSA-OAEP encrypt");
    let mut enc = openssl::encrypt::Encrypter::new(key).map_err(fail)?;
    enc.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)
        .map_err(fail)?;
    enc.set_rsa_oaep_md(md).map_err(fail)?;
    enc.set_rsa_mgf1_md(md).map_err(fail)?;
    let mut out = vec![0; enc.encrypt_len(data).map_err(fail)?];
    let n = enc.encrypt(data, &mut out).map_err(fail)?;
    out.truncate(n);
    Ok(out)
}

/// The inverse of [`rsa_oaep_encrypt`]; a wrong key or digest is `Invalid("wrapped key")`.
pub(crate) fn rsa_oaep_decrypt(
    key: &PKey<Private>,
    md: openssl::hash::MessageDigest,
    data: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, ProtocolError> {
    let fail = |_| ProtocolError::Crypto("RSA-OAEP decrypt");
    let mut dec = openssl::encrypt::Decrypter::new(key).map_err(fail)?;
    dec.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)
        .map_err(fail)?;
    dec.set_rsa_oaep_md(md).map_err(fail)?;
    dec.set_rsa_mgf1_md(md).map_err(fail)?;
    let mut out = zeroize::Zeroizing::new(vec![0; dec.decrypt_len(data).map_err(fail)?]);
    let n = dec
        .decrypt(data, &mut out)
        .map_err(|_| ProtocolError::Invalid("wrapped key"))?;
    out.truncate(n);
    Ok(out)
}

/// Random bytes from openssl's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], ProtocolError> {
    let mut buf = [0u8; N];
    openssl::rand::rand_bytes(&mut buf).map_err(|_| ProtocolError::Crypto("random"))?;
    Ok(buf)
}
