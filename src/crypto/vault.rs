//! The PAN vault: AES-256-GCM under a key ring, AAD bound to the value's hash and the key id.
//!
//! Layout of a sealed value: `version (1 byte) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, stored
//! with the key id beside it. AAD = `tkm-vault|v1|<key id>|<HPAN or HTOKEN>`, so a ciphertext
//! moved to another row or relabelled with another key id does not decrypt.

use std::collections::HashMap;
use std::fmt;

use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use zeroize::Zeroizing;

use super::CryptoError;
use crate::domain::{Hpan, Htoken, Pan, TokenPan};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// One 256-bit data key and its id.
pub struct VaultKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl VaultKey {
    /// Wraps key material under an id.
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Self {
        Self {
            id: id.into(),
            key: Zeroizing::new(key),
        }
    }

    /// Makes a fresh random key (for `tkm keys generate` and tests).
    pub fn generate(id: impl Into<String>) -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0u8; 32]);
        openssl::rand::rand_bytes(key.as_mut())?;
        Ok(Self { id: id.into(), key })
    }

    /// The key material, for writing a freshly generated key to its file.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultKey {{ id: {:?}, key: [REDACTED] }}", self.id)
    }
}

/// A sealed (encrypted) value and the id of the key that sealed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the key in the ring.
    pub key_id: String,
    /// `version ‖ nonce ‖ ciphertext ‖ tag`.
    pub blob: Vec<u8>,
}

/// The vault's keys: every key that may have sealed a stored value, and the active one.
pub struct KeyRing {
    keys: HashMap<String, VaultKey>,
    active: String,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        write!(f, "KeyRing {{ active: {:?}, keys: {ids:?} }}", self.active)
    }
}

impl KeyRing {
    /// Builds a ring; the active key must be one of `keys`.
    pub fn new(keys: Vec<VaultKey>, active: &str) -> Result<Self, CryptoError> {
        let keys: HashMap<String, VaultKey> = keys.into_iter().map(|k| (k.id.clone(), k)).collect();
        if !keys.contains_key(active) {
            return Err(CryptoError::UnknownKey);
        }
        Ok(Self {
            keys,
            active: active.to_owned(),
        })
    }

    /// The id new values are sealed under.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// The key ring of `vault.keys`, with `vault.active_key` active.
    pub fn from_settings(
        settings: &crate::config::Settings,
    ) -> Result<Self, crate::config::ConfigError> {
        let keys = settings
            .vault_keys()?
            .into_iter()
            .map(|(id, material)| VaultKey::new(id, *material))
            .collect();
        KeyRing::new(keys, &settings.vault.active_key).map_err(|_| {
            crate::config::ConfigError::Invalid {
                key: "vault.active_key".into(),
                reason: "not in the ring".into(),
            }
        })
    }

    fn aad(key_id: &str, hash: &str) -> Vec<u8> {
        format!("tkm-vault|v{VERSION}|{key_id}|{hash}").into_bytes()
    }

    fn seal(&self, plaintext: &[u8], hash: &str) -> Result<Sealed, CryptoError> {
        let key = self.keys.get(&self.active).ok_or(CryptoError::UnknownKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut tag = [0u8; TAG_LEN];
        let aad = Self::aad(&key.id, hash);
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            key.key.as_ref(),
            Some(&nonce),
            &aad,
            plaintext,
            &mut tag,
        )?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + ct.len() + TAG_LEN);
        blob.push(VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        blob.extend_from_slice(&tag);
        Ok(Sealed {
            key_id: key.id.clone(),
            blob,
        })
    }

    fn open(&self, sealed: &Sealed, hash: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self
            .keys
            .get(&sealed.key_id)
            .ok_or(CryptoError::UnknownKey)?;
        let blob = &sealed.blob;
        if blob.len() < 1 + NONCE_LEN + TAG_LEN || blob.first() != Some(&VERSION) {
            return Err(CryptoError::Malformed);
        }
        let (nonce, rest) = blob[1..].split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let aad = Self::aad(&key.id, hash);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            key.key.as_ref(),
            Some(nonce),
            &aad,
            ct,
            tag,
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Unauthenticated)
    }

    /// Encrypts a PAN bound to its HPAN.
    pub fn seal_pan(&self, pan: &Pan, hpan: &Hpan) -> Result<Sealed, CryptoError> {
        self.seal(pan.expose().as_bytes(), hpan.as_str())
    }

    /// Decrypts a PAN stored for `hpan`.
    pub fn open_pan(&self, sealed: &Sealed, hpan: &Hpan) -> Result<Pan, CryptoError> {
        let plain = self.open(sealed, hpan.as_str())?;
        let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::NotACardNumber)?;
        Pan::parse(text).map_err(|_| CryptoError::NotACardNumber)
    }

    /// Encrypts a token PAN bound to its HTOKEN.
    pub fn seal_token(&self, token: &TokenPan, htoken: &Htoken) -> Result<Sealed, CryptoError> {
        self.seal(token.expose().as_bytes(), htoken.as_str())
    }

    /// Encrypts an opaque value that may hold card data (a dead letter's original body), bound
    /// to `context` (e.g. `dead-letter:<id>`), which can never be a hash.
    pub fn seal_blob(&self, plaintext: &[u8], context: &str) -> Result<Sealed, CryptoError> {
        self.seal(plaintext, &format!("blob:{context}"))
    }

    /// Decrypts a value sealed with [`KeyRing::seal_blob`] for `context`.
    pub fn open_blob(
        &self,
        sealed: &Sealed,
        context: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.open(sealed, &format!("blob:{context}"))
    }

    /// Re-encrypts a PAN or token PAN sealed for `hash` (its HPAN or HTOKEN) under the active key
    /// (`tkm keys rotate`); the clear value never leaves this function.
    pub fn reseal(&self, sealed: &Sealed, hash: &str) -> Result<Sealed, CryptoError> {
        let plain = self.open(sealed, hash)?;
        self.seal(&plain, hash)
    }

    /// [`KeyRing::reseal`] for a value sealed with [`KeyRing::seal_blob`] for `context`.
    pub fn reseal_blob(&self, sealed: &Sealed, context: &str) -> Result<Sealed, CryptoError> {
        self.reseal(sealed, &format!("blob:{context}"))
    }

    /// Decrypts a token PAN stored for `htoken`.
    pub fn open_token(&self, sealed: &Sealed, htoken: &Htoken) -> Result<TokenPan, CryptoError> {
        let plain = self.open(sealed, htoken.as_str())?;
        let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::NotACardNumber)?;
        TokenPan::parse(text).map_err(|_| CryptoError::NotACardNumber)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(vec![VaultKey::new("k1", [7u8; 32])], "k1").unwrap()
    }

    #[test]
    fn blobs_open_only_in_their_context() {
        let r = ring();
        let sealed = r
            .seal_blob(b"{\"pan\":\"4111111111111111\"}", "dead-letter:1")
            .unwrap();
        assert_eq!(
            r.open_blob(&sealed, "dead-letter:1").unwrap().as_slice(),
            b"{\"pan\":\"4111111111111111\"}"
        );
        assert!(r.open_blob(&sealed, "dead-letter:2").is_err());
    }

    fn h(s: &str) -> Hpan {
        Hpan::parse(&s.repeat(64)).unwrap()
    }

    /// AES-256-GCM test case 16 of McGrew & Viega, "The Galois/Counter Mode of Operation".
    #[test]
    fn openssl_gcm_matches_the_published_vector() {
        let key = hex::decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .unwrap();
        let iv = hex::decode("cafebabefacedbaddecaf888").unwrap();
        let pt = hex::decode(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        )
        .unwrap();
        let aad = hex::decode("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(Cipher::aes_256_gcm(), &key, Some(&iv), &aad, &pt, &mut tag).unwrap();
        assert_eq!(
            hex::encode(ct),
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        );
        assert_eq!(hex::encode(tag), "76fc6ece0f4e1768cddf8853bb2d551b");
    }

    #[test]
    fn round_trips_and_uses_a_fresh_nonce_each_time() {
        let ring = ring();
        let pan = Pan::parse("4111111111111111").unwrap();
        let a = ring.seal_pan(&pan, &h("a")).unwrap();
        let b = ring.seal_pan(&pan, &h("a")).unwrap();
        assert_ne!(a.blob, b.blob);
        assert_eq!(ring.open_pan(&a, &h("a")).unwrap(), pan);
        assert!(
            !a.blob.windows(4).any(|w| w == b"1111"),
            "no clear digits in the blob"
        );
    }

    #[test]
    fn refuses_another_hpan_another_key_or_tampering() {
        let ring = ring();
        let pan = Pan::parse("4111111111111111").unwrap();
        let sealed = ring.seal_pan(&pan, &h("a")).unwrap();
        assert!(matches!(
            ring.open_pan(&sealed, &h("b")),
            Err(CryptoError::Unauthenticated)
        ));

        let other = KeyRing::new(vec![VaultKey::new("k1", [8u8; 32])], "k1").unwrap();
        assert!(matches!(
            other.open_pan(&sealed, &h("a")),
            Err(CryptoError::Unauthenticated)
        ));

        let mut tampered = sealed.clone();
        let last = tampered.blob.len() - 1;
        tampered.blob[last] ^= 1;
        assert!(ring.open_pan(&tampered, &h("a")).is_err());

        let relabelled = Sealed {
            key_id: "k2".into(),
            ..sealed
        };
        assert!(matches!(
            ring.open_pan(&relabelled, &h("a")),
            Err(CryptoError::UnknownKey)
        ));
    }

    #[test]
    fn old_keys_still_open_after_rotation() {
        let old = KeyRing::new(vec![VaultKey::new("k1", [1u8; 32])], "k1").unwrap();
        let pan = Pan::parse("5255000012340001").unwrap();
        let sealed = old.seal_pan(&pan, &h("c")).unwrap();
        let rotated = KeyRing::new(
            vec![
                VaultKey::new("k1", [1u8; 32]),
                VaultKey::new("k2", [2u8; 32]),
            ],
            "k2",
        )
        .unwrap();
        assert_eq!(rotated.open_pan(&sealed, &h("c")).unwrap(), pan);
        assert_eq!(rotated.seal_pan(&pan, &h("c")).unwrap().key_id, "k2");
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = VaultKey::new("k1", [0xAB; 32]);
        assert!(!format!("{key:?}").to_lowercase().contains("abab"));
        assert!(format!("{:?}", ring()).contains("k1"));
    }
}
