//! JWE compact serialisation, `RSA-OAEP-256` + `A128GCM` (Visa's message level encryption).
//!
//! The protected header carries `kid` (the key id the receiver looks up) and `iat` (milliseconds),
//! which the receiver checks for freshness. The header's base64url text is the GCM AAD, as RFC 7516
//! says, so a changed header fails the tag.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{random_bytes, rsa_oaep_decrypt, rsa_oaep_encrypt, ProtocolError};

/// The only key management algorithm we produce and accept.
pub const ALG: &str = "RSA-OAEP-256";
/// The only content encryption we produce and accept.
pub const ENC: &str = "A128GCM";

/// The protected header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Key management algorithm.
    pub alg: String,
    /// Content encryption.
    pub enc: String,
    /// Id of the key the content key is wrapped with.
    pub kid: String,
    /// Issued at, milliseconds since the epoch.
    pub iat: i64,
}

/// Encrypts `plaintext` to `recipient`, naming it `kid`, issued at `iat_ms`.
pub fn encrypt(
    plaintext: &[u8],
    recipient: &PKey<Public>,
    kid: &str,
    iat_ms: i64,
) -> Result<String, ProtocolError> {
    let header = Header {
        alg: ALG.into(),
        enc: ENC.into(),
        kid: kid.into(),
        iat: iat_ms,
    };
    let header_json = serde_json::to_vec(&header).map_err(|_| ProtocolError::Crypto("header"))?;
    let header_b64 = URL_SAFE_NO_PAD.encode(header_json);
    let cek = Zeroizing::new(random_bytes::<16>()?);
    let iv = random_bytes::<12>()?;
    let wrapped = rsa_oaep_encrypt(recipient, MessageDigest::sha256(), cek.as_ref())?;
    let mut tag = [0u8; 16];
    let ciphertext = encrypt_aead(
        Cipher::aes_128_gcm(),
        cek.as_ref(),
        Some(&iv),
        header_b64.as_bytes(),
        plaintext,
        &mut tag,
    )
    .map_err(|_| ProtocolError::Crypto("A128GCM encrypt"))?;
    Ok(format!(
        "{header_b64}.{}.{}.{}.{}",
        URL_SAFE_NO_PAD.encode(wrapped),
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(ciphertext),
        URL_SAFE_NO_PAD.encode(tag)
    ))
}

/// Reads the protected header without decrypting (to pick the key by `kid`).
pub fn peek_header(compact: &str) -> Result<Header, ProtocolError> {
    let first = compact
        .split('.')
        .next()
        .ok_or(ProtocolError::Malformed("JWE"))?;
    let json = URL_SAFE_NO_PAD
        .decode(first)
        .map_err(|_| ProtocolError::Malformed("JWE header"))?;
    serde_json::from_slice(&json).map_err(|_| ProtocolError::Malformed("JWE header"))
}

/// Decrypts a compact JWE with `key`; refuses any other `alg`/`enc`.
pub fn decrypt(
    compact: &str,
    key: &PKey<Private>,
) -> Result<(Header, Zeroizing<Vec<u8>>), ProtocolError> {
    let parts: Vec<&str> = compact.split('.').collect();
    let [header_b64, wrapped, iv, ciphertext, tag] = parts.as_slice() else {
        return Err(ProtocolError::Malformed("JWE"));
    };
    let header = peek_header(header_b64)?;
    if header.alg != ALG {
        return Err(ProtocolError::Unexpected("JWE alg"));
    }
    if header.enc != ENC {
        return Err(ProtocolError::Unexpected("JWE enc"));
    }
    let decode = |part: &str, what: &'static str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| ProtocolError::Malformed(what))
    };
    let wrapped = decode(wrapped, "JWE encrypted key")?;
    let iv = decode(iv, "JWE iv")?;
    let ciphertext = decode(ciphertext, "JWE ciphertext")?;
    let tag = decode(tag, "JWE tag")?;
    if iv.len() != 12 || tag.len() != 16 {
        return Err(ProtocolError::Malformed("JWE iv or tag"));
    }
    let cek = rsa_oaep_decrypt(key, MessageDigest::sha256(), &wrapped)?;
    if cek.len() != 16 {
        return Err(ProtocolError::Invalid("JWE encrypted key"));
    }
    let plaintext = decrypt_aead(
        Cipher::aes_128_gcm(),
        &cek,
        Some(&iv),
        header_b64.as_bytes(),
        &ciphertext,
        &tag,
    )
    .map_err(|_| ProtocolError::Invalid("JWE tag"))?;
    Ok((header, Zeroizing::new(plaintext)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuits::protocol::{generate_rsa, public_of};

    #[test]
    fn round_trip_and_tamper() -> Result<(), ProtocolError> {
        let key = generate_rsa(2048)?;
        let public = public_of(&key)?;
        let jwe = encrypt(b"{\"a\":1}", &public, "kid-1", 1_700_000_000_000)?;
        let (header, plain) = decrypt(&jwe, &key)?;
        assert_eq!(header.kid, "kid-1");
        assert_eq!(header.iat, 1_700_000_000_000);
        assert_eq!(plain.as_slice(), b"{\"a\":1}");

        // A changed header (the AAD) fails the tag.
        let other = URL_SAFE_NO_PAD
            .encode(br#"{"alg":"RSA-OAEP-256","enc":"A128GCM","kid":"kid-2","iat":1700000000000}"#);
        let rest = jwe.split_once('.').map(|(_, r)| r).unwrap_or_default();
        let forged = format!("{other}.{rest}");
        assert_eq!(
            decrypt(&forged, &key).err(),
            Some(ProtocolError::Invalid("JWE tag"))
        );

        // Another key cannot unwrap it.
        let stranger = generate_rsa(2048)?;
        assert!(decrypt(&jwe, &stranger).is_err());
        assert_eq!(
            decrypt("a.b.c", &key).err(),
            Some(ProtocolError::Malformed("JWE"))
        );
        Ok(())
    }
}
