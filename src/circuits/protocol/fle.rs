//! Mastercard field-level encryption: AES-128-CBC session key wrapped with RSA-OAEP-SHA512,
//! every value hex-encoded, the recipient's key named by its SHA-256 public key fingerprint.

use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Private, Public};
use openssl::symm::{decrypt, encrypt, Cipher};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{random_bytes, rsa_oaep_decrypt, rsa_oaep_encrypt, ProtocolError};

/// The only OAEP digest we produce and accept.
pub const OAEP_HASHING_ALGORITHM: &str = "SHA512";

/// The encrypted object that replaces a field on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// AES-128-CBC ciphertext of the field's JSON, hex.
    pub encrypted_data: String,
    /// The session key wrapped with RSA-OAEP-SHA512, hex.
    pub encrypted_key: String,
    /// CBC initialisation vector, hex.
    pub iv: String,
    /// `SHA512`.
    pub oaep_hashing_algorithm: String,
    /// SHA-256 of the recipient's public key (DER SubjectPublicKeyInfo), hex.
    pub public_key_fingerprint: String,
}

/// The fingerprint Mastercard names a public key by.
pub fn fingerprint(key: &PKey<Public>) -> Result<String, ProtocolError> {
    let der = key
        .public_key_to_der()
        .map_err(|_| ProtocolError::Crypto("fingerprint"))?;
    let digest =
        hash(MessageDigest::sha256(), &der).map_err(|_| ProtocolError::Crypto("fingerprint"))?;
    Ok(hex::encode(digest))
}

/// Encrypts `plaintext` (the field's JSON) to `recipient`.
pub fn encrypt_field(
    plaintext: &[u8],
    recipient: &PKey<Public>,
) -> Result<Envelope, ProtocolError> {
    let key = Zeroizing::new(random_bytes::<16>()?);
    let iv = random_bytes::<16>()?;
    let data = encrypt(Cipher::aes_128_cbc(), key.as_ref(), Some(&iv), plaintext)
        .map_err(|_| ProtocolError::Crypto("AES-128-CBC encrypt"))?;
    let wrapped = rsa_oaep_encrypt(recipient, MessageDigest::sha512(), key.as_ref())?;
    Ok(Envelope {
        encrypted_data: hex::encode(data),
        encrypted_key: hex::encode(wrapped),
        iv: hex::encode(iv),
        oaep_hashing_algorithm: OAEP_HASHING_ALGORITHM.into(),
        public_key_fingerprint: fingerprint(recipient)?,
    })
}

/// Decrypts an envelope addressed to `key` (whose fingerprint is `expected_fingerprint`).
pub fn decrypt_field(
    envelope: &Envelope,
    key: &PKey<Private>,
    expected_fingerprint: &str,
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    if !envelope
        .oaep_hashing_algorithm
        .eq_ignore_ascii_case(OAEP_HASHING_ALGORITHM)
    {
        return Err(ProtocolError::Unexpected("oaepHashingAlgorithm"));
    }
    if !envelope
        .public_key_fingerprint
        .eq_ignore_ascii_case(expected_fingerprint)
    {
        return Err(ProtocolError::Unexpected("publicKeyFingerprint"));
    }
    let unhex = |value: &str, what: &'static str| {
        hex::decode(value).map_err(|_| ProtocolError::Malformed(what))
    };
    let wrapped = unhex(&envelope.encrypted_key, "encryptedKey")?;
    let iv = unhex(&envelope.iv, "iv")?;
    let data = unhex(&envelope.encrypted_data, "encryptedData")?;
    if iv.len() != 16 {
        return Err(ProtocolError::Malformed("iv"));
    }
    let session = rsa_oaep_decrypt(key, MessageDigest::sha512(), &wrapped)?;
    if session.len() != 16 {
        return Err(ProtocolError::Invalid("encryptedKey"));
    }
    let plain = decrypt(Cipher::aes_128_cbc(), &session, Some(&iv), &data)
        .map_err(|_| ProtocolError::Invalid("encryptedData"))?;
    Ok(Zeroizing::new(plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuits::protocol::{generate_rsa, public_of};

    #[test]
    fn round_trip_and_wrong_key() -> Result<(), ProtocolError> {
        let key = generate_rsa(2048)?;
        let public = public_of(&key)?;
        let fp = fingerprint(&public)?;
        let envelope = encrypt_field(br#"{"accountNumber":"5555"}"#, &public)?;
        assert_eq!(envelope.public_key_fingerprint, fp);
        assert_eq!(
            decrypt_field(&envelope, &key, &fp)?.as_slice(),
            br#"{"accountNumber":"5555"}"#
        );
        let other = generate_rsa(2048)?;
        let other_fp = fingerprint(&public_of(&other)?)?;
        assert_eq!(
            decrypt_field(&envelope, &other, &other_fp).err(),
            Some(ProtocolError::Unexpected("publicKeyFingerprint"))
        );
        // Change the first hex digit for certain (overwriting it with a fixed value would leave
        // it unchanged when it already was that value).
        let mut tampered = envelope.clone();
        let flipped = match tampered.encrypted_key.get(0..1) {
            Some("0") => "1",
            _ => "0",
        };
        tampered.encrypted_key.replace_range(0..1, flipped);
        assert!(decrypt_field(&tampered, &key, &fp).is_err());
        Ok(())
    }
}
