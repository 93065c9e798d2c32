//! Encryption to an OpenPGP public key (SEIPD v1 with MDC, AES-256): for tests and tools.

use pgp::composed::{
    ArmorOptions, Deserializable, MessageBuilder, SignedPublicKey, SignedPublicSubKey,
};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::{KeyFlags, Signature};
use pgp::types::KeyDetails;

use super::PgpError;

/// A parsed, binding-checked OpenPGP public key (transferable public key).
#[derive(Clone, Debug)]
pub struct PgpPublicKey {
    key: SignedPublicKey,
    fingerprint: String,
}

impl PgpPublicKey {
    /// Parses an ASCII-armored or binary public key and verifies its self-signatures.
    pub fn from_armored(public: &[u8]) -> Result<Self, PgpError> {
        let (key, _headers) = SignedPublicKey::from_reader_single(public).map_err(|e| {
            tracing::debug!(cause = %e, "cannot parse an OpenPGP public key");
            PgpError::InvalidPublicKey("not an OpenPGP transferable public key")
        })?;
        key.verify_bindings().map_err(|e| {
            tracing::debug!(cause = %e, "OpenPGP public key bindings do not verify");
            PgpError::InvalidPublicKey("its binding signatures do not verify")
        })?;
        let fingerprint = hex::encode(key.primary_key.fingerprint().as_bytes());
        Ok(Self { key, fingerprint })
    }

    /// Lower-case hex fingerprint of the primary key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Encrypts `plaintext` (one literal data packet, binary, no name) to the key's encryption
    /// subkey — or to the primary when no subkey may encrypt and the primary's flags allow it
    /// (the legacy BouncyCastle keys are a lone RSA primary flagged for encryption).
    pub fn encrypt(&self, plaintext: &[u8], armored: bool) -> Result<Vec<u8>, PgpError> {
        let mut rng = rand::thread_rng();
        let mut builder = MessageBuilder::from_bytes("", plaintext.to_vec())
            .seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
        self.add_recipient(&mut builder)?;
        if armored {
            builder
                .to_armored_string(&mut rng, ArmorOptions::default())
                .map(String::into_bytes)
        } else {
            builder.to_vec(&mut rng)
        }
        .map_err(|e| PgpError::operation("encryption", e))
    }

    /// Encrypts a stream (binary output, partial packets: memory independent of its size).
    pub fn encrypt_stream<R: std::io::Read, W: std::io::Write>(
        &self,
        plaintext: R,
        out: W,
    ) -> Result<(), PgpError> {
        let mut rng = rand::thread_rng();
        let mut builder = MessageBuilder::from_reader("", plaintext)
            .seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
        self.add_recipient(&mut builder)?;
        builder
            .to_writer(&mut rng, out)
            .map_err(|e| PgpError::operation("encryption", e))
    }

    fn add_recipient<R: std::io::Read>(
        &self,
        builder: &mut MessageBuilder<'_, R, pgp::composed::EncryptionSeipdV1>,
    ) -> Result<(), PgpError> {
        let mut rng = rand::thread_rng();
        match encryption_subkey(&self.key) {
            Some(subkey) => builder.encrypt_to_key(&mut rng, subkey),
            None if primary_can_encrypt(&self.key) => {
                builder.encrypt_to_key(&mut rng, &self.key.primary_key)
            }
            None => return Err(PgpError::InvalidPublicKey("it has no key that can encrypt")),
        }
        .map(|_| ())
        .map_err(|e| PgpError::operation("encryption", e))
    }
}

/// Encrypts `plaintext` to an ASCII-armored or binary public key; `armored` chooses the output.
pub fn encrypt_to(
    public_key_armored: &[u8],
    plaintext: &[u8],
    armored: bool,
) -> Result<Vec<u8>, PgpError> {
    PgpPublicKey::from_armored(public_key_armored)?.encrypt(plaintext, armored)
}

/// The first subkey whose algorithm can encrypt and whose binding flags allow it.
fn encryption_subkey(key: &SignedPublicKey) -> Option<&SignedPublicSubKey> {
    key.public_subkeys.iter().find(|sub| {
        sub.key.algorithm().can_encrypt() && flags_allow_encryption(sub.signatures.iter(), false)
    })
}

/// The primary may encrypt when its algorithm can and its self-signatures allow it.
fn primary_can_encrypt(key: &SignedPublicKey) -> bool {
    key.primary_key.algorithm().can_encrypt()
        && flags_allow_encryption(
            key.details
                .direct_signatures
                .iter()
                .chain(key.details.users.iter().flat_map(|u| u.signatures.iter())),
            true,
        )
}

/// Whether a component's (self-)signatures flag it for encryption. A key whose signatures carry
/// no key flags at all predates them: `unflagged` says what that means here.
pub(super) fn flags_allow_encryption<'a>(
    signatures: impl Iterator<Item = &'a Signature>,
    unflagged: bool,
) -> bool {
    let none = KeyFlags::default();
    let mut any_flags = false;
    for flags in signatures.map(Signature::key_flags) {
        if flags.encrypt_comms() || flags.encrypt_storage() {
            return true;
        }
        any_flags |= flags != none;
    }
    !any_flags && unflagged
}
