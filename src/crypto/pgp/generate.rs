//! Key generation for tkm (`tkm pgp generate`): GnuPG 2.2-compatible shapes with explicit
//! algorithm preferences (rPGP leaves them empty, and GnuPG then encrypts with 3DES).

use std::fmt;
use std::str::FromStr;

use pgp::composed::{
    ArmorOptions, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SubkeyParamsBuilder,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::CompressionAlgorithm;
use secrecy::{ExposeSecret, SecretString};

use super::PgpError;

/// The shape of a generated key: a certifying/signing primary and one encryption subkey.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PgpKeyKind {
    /// v4 "legacy" Ed25519 primary + Curve25519 ECDH subkey (what GnuPG 2.2 makes by default).
    #[default]
    Curve25519,
    /// RSA-2048 primary + RSA-2048 encryption subkey.
    Rsa2048,
    /// RSA-4096 primary + RSA-4096 encryption subkey.
    Rsa4096,
}

impl PgpKeyKind {
    const NAMES: [(&'static str, Self); 3] = [
        ("curve25519", Self::Curve25519),
        ("rsa2048", Self::Rsa2048),
        ("rsa4096", Self::Rsa4096),
    ];
}

impl FromStr for PgpKeyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, kind)| *kind)
            .ok_or_else(|| format!("unknown key kind `{s}` (curve25519, rsa2048, rsa4096)"))
    }
}

impl fmt::Display for PgpKeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::NAMES
            .iter()
            .find(|(_, kind)| kind == self)
            .map_or("?", |(name, _)| name);
        f.write_str(name)
    }
}

/// Generates a key pair; returns `(armored secret key, armored public key)`. With a
/// passphrase, the primary and the subkey are both locked with it (iterated+salted S2K).
pub fn generate(
    kind: PgpKeyKind,
    user_id: &str,
    passphrase: Option<&SecretString>,
) -> Result<(String, String), PgpError> {
    let (primary_type, subkey_type) = match kind {
        PgpKeyKind::Curve25519 => (
            KeyType::Ed25519Legacy,
            KeyType::ECDH(ECCCurve::Curve25519Legacy),
        ),
        PgpKeyKind::Rsa2048 => (KeyType::Rsa(2048), KeyType::Rsa(2048)),
        PgpKeyKind::Rsa4096 => (KeyType::Rsa(4096), KeyType::Rsa(4096)),
    };
    let passphrase = passphrase.map(|p| p.expose_secret().to_owned());
    let subkey = SubkeyParamsBuilder::default()
        .key_type(subkey_type)
        .can_encrypt(EncryptionCaps::All)
        .passphrase(passphrase.clone())
        .build()
        .map_err(|e| PgpError::operation("key generation", e))?;
    let params = SecretKeyParamsBuilder::default()
        .key_type(primary_type)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(user_id.to_owned())
        .preferred_symmetric_algorithms(
            vec![
                SymmetricKeyAlgorithm::AES256,
                SymmetricKeyAlgorithm::AES192,
                SymmetricKeyAlgorithm::AES128,
            ]
            .into(),
        )
        .preferred_hash_algorithms(vec![HashAlgorithm::Sha256, HashAlgorithm::Sha512].into())
        .preferred_compression_algorithms(
            vec![
                CompressionAlgorithm::ZLIB,
                CompressionAlgorithm::ZIP,
                CompressionAlgorithm::Uncompressed,
            ]
            .into(),
        )
        .passphrase(passphrase)
        .subkeys(vec![subkey])
        .build()
        .map_err(|e| PgpError::operation("key generation", e))?;
    let secret = params
        .generate(rand::thread_rng())
        .map_err(|e| PgpError::operation("key generation", e))?;
    let secret_armored = secret
        .to_armored_string(ArmorOptions::default())
        .map_err(|e| PgpError::operation("key export", e))?;
    let public_armored = secret
        .to_public_key()
        .to_armored_string(ArmorOptions::default())
        .map_err(|e| PgpError::operation("key export", e))?;
    Ok((secret_armored, public_armored))
}
