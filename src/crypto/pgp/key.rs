//! tkm's OpenPGP secret key: parsed and unlocked once, shared cheaply between threads.

use std::fmt;
use std::sync::Arc;

use openssl::pkey::Private;
use openssl::rsa::Rsa;
use pgp::composed::{ArmorOptions, Deserializable, SignedSecretKey};
use pgp::types::{KeyDetails, Password, PlainSecretParams, SecretParams};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::encrypt::flags_allow_encryption;
use super::{openssl_rsa, PgpError, PgpPublicKey};
use crate::config::{read_secret_file, ConfigError, PgpSettings};

/// tkm's OpenPGP secret key, unlocked. `Clone` shares it (an `Arc` inside); `Debug` shows only
/// the fingerprint.
#[derive(Clone)]
pub struct PgpKey(Arc<Inner>);

pub(super) struct Inner {
    /// The transferable secret key, unlocked (only a GnuPG stub primary may stay locked).
    pub(super) key: SignedSecretKey,
    /// The components that can decrypt a PKESK, in key order.
    pub(super) decryptors: Vec<Decryptor>,
    fingerprint: String,
    public_armored: String,
}

/// Which component of the transferable key a [`Decryptor`] is.
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    Primary,
    Subkey(usize),
}

/// A component that can decrypt session keys.
pub(super) struct Decryptor {
    pub(super) slot: Slot,
    pub(super) kind: DecryptorKind,
}

/// The algorithm of a [`Decryptor`]; RSA carries its OpenSSL twin.
pub(super) enum DecryptorKind {
    Rsa(Rsa<Private>),
    Ecdh,
    X25519,
    X448,
}

impl PgpKey {
    /// Loads `pgp.private_key_file` (with `pgp.passphrase_file` when set) and checks that
    /// `pgp.public_key_file` is its public half, so acquirers never encrypt to a key tkm lacks.
    pub fn load(settings: &PgpSettings) -> Result<Self, PgpError> {
        let secret = read_file("pgp.private_key_file", &settings.private_key_file)?;
        let passphrase = settings
            .passphrase_file
            .as_deref()
            .map(|p| read_secret_file("pgp.passphrase_file", p))
            .transpose()?;
        let key = Self::from_armored(&secret, passphrase.as_ref())?;
        let public = read_file("pgp.public_key_file", &settings.public_key_file)?;
        let public = PgpPublicKey::from_armored(&public).map_err(|e| ConfigError::Invalid {
            key: "pgp.public_key_file".into(),
            reason: e.to_string(),
        })?;
        if public.fingerprint() != key.fingerprint() {
            return Err(ConfigError::Invalid {
                key: "pgp.public_key_file".into(),
                reason: format!(
                    "key {} is not the public half of pgp.private_key_file (key {})",
                    public.fingerprint(),
                    key.fingerprint()
                ),
            }
            .into());
        }
        Ok(key)
    }

    /// Parses a transferable secret key (ASCII-armored or binary) and unlocks every secret
    /// component with `passphrase` once, so that decryption never re-runs the S2K.
    pub fn from_armored(
        secret: &[u8],
        passphrase: Option<&SecretString>,
    ) -> Result<Self, PgpError> {
        let (mut key, _headers) = SignedSecretKey::from_reader_single(secret).map_err(|e| {
            tracing::debug!(cause = %e, "cannot parse the OpenPGP secret key");
            PgpError::InvalidSecretKey("not an OpenPGP transferable secret key")
        })?;
        let password = passphrase
            .map(|p| Password::from(p.expose_secret()))
            .unwrap_or_else(Password::empty);
        // A primary that stays locked is tolerated when every subkey unlocks: GnuPG's
        // `--export-secret-subkeys` leaves a stub primary (the certifying key kept offline).
        let primary_unlocked = key.primary_key.remove_password(&password).is_ok();
        for sub in &mut key.secret_subkeys {
            sub.key
                .remove_password(&password)
                .map_err(|_| PgpError::Passphrase)?;
        }
        if !primary_unlocked && key.secret_subkeys.is_empty() {
            return Err(PgpError::Passphrase);
        }
        if let Err(e) = key.verify_bindings() {
            tracing::warn!(cause = %e, "the OpenPGP secret key has a binding signature that does not verify");
        }
        let decryptors = decryptors(&key)?;
        if decryptors.is_empty() {
            return Err(PgpError::InvalidSecretKey(
                "it has no RSA or ECDH key that can decrypt",
            ));
        }
        let public_armored = key
            .to_public_key()
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| PgpError::operation("public key export", e))?;
        let fingerprint = hex::encode(key.primary_key.fingerprint().as_bytes());
        Ok(Self(Arc::new(Inner {
            key,
            decryptors,
            fingerprint,
            public_armored,
        })))
    }

    /// The armored public key derived from this secret key (what others encrypt to).
    pub fn public_key_armored(&self) -> String {
        self.0.public_armored.clone()
    }

    /// Lower-case hex fingerprint of the primary key, for logs and the configuration check.
    pub fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }

    pub(super) fn inner(&self) -> &Inner {
        &self.0
    }
}

impl fmt::Debug for PgpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PgpKey {{ fingerprint: {:?}, secret: [REDACTED] }}",
            self.0.fingerprint
        )
    }
}

fn read_file(key: &str, path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>, PgpError> {
    std::fs::read(path).map(Zeroizing::new).map_err(|e| {
        ConfigError::Invalid {
            key: key.into(),
            reason: format!("cannot read {}: {e}", path.display()),
        }
        .into()
    })
}

/// The components that may decrypt: RSA (converted to OpenSSL keys), ECDH, X25519 and X448
/// ones whose self-signatures flag them for encryption — never a signing-only RSA primary,
/// whose private operation must not be offered to strangers' ciphertexts. A lone primary with no
/// key flags at all (keys older than flags) counts as an encryption key.
fn decryptors(key: &SignedSecretKey) -> Result<Vec<Decryptor>, PgpError> {
    let mut out = Vec::new();
    let primary_sigs = key
        .details
        .direct_signatures
        .iter()
        .chain(key.details.users.iter().flat_map(|u| u.signatures.iter()));
    let primary = std::iter::once((
        Slot::Primary,
        flags_allow_encryption(primary_sigs, key.secret_subkeys.is_empty()),
        key.primary_key.secret_params(),
        key.primary_key.public_key().public_params(),
    ));
    let subkeys = key.secret_subkeys.iter().enumerate().map(|(i, s)| {
        (
            Slot::Subkey(i),
            flags_allow_encryption(s.signatures.iter(), true),
            s.key.secret_params(),
            s.key.public_key().public_params(),
        )
    });
    for (slot, may_encrypt, secret, public) in primary.chain(subkeys) {
        if !may_encrypt {
            continue;
        }
        let SecretParams::Plain(plain) = secret else {
            continue;
        };
        match plain {
            PlainSecretParams::RSA(rsa) => {
                let rsa = openssl_rsa::private_key(public, rsa).map_err(|e| {
                    tracing::debug!(cause = %e, "cannot convert the RSA key for OpenSSL");
                    PgpError::InvalidSecretKey("an RSA component is inconsistent")
                })?;
                out.push(Decryptor {
                    slot,
                    kind: DecryptorKind::Rsa(rsa),
                });
            }
            PlainSecretParams::ECDH(_) => out.push(Decryptor {
                slot,
                kind: DecryptorKind::Ecdh,
            }),
            PlainSecretParams::X25519(_) => out.push(Decryptor {
                slot,
                kind: DecryptorKind::X25519,
            }),
            PlainSecretParams::X448(_) => out.push(Decryptor {
                slot,
                kind: DecryptorKind::X448,
            }),
            _ => {}
        }
    }
    Ok(out)
}
