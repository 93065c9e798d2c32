//! Decryption of one inbound message: session key from our PKESK (OpenSSL for RSA), SEIPD v1
//! with the MDC checked first, at most two compression layers, a bounded read of the literal.

use std::fmt::Display;
use std::io::{BufRead, ErrorKind, Read};

use pgp::composed::{DecryptionOptions, Esk, Message, PlainSessionKey, TheRing};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::PublicKeyEncryptedSessionKey;
use pgp::types::{DecryptionKey, EskType, Password, PkeskBytes, PkeskVersion, Seipdv1ReadMode};
use zeroize::Zeroizing;

use super::key::{DecryptorKind, Inner, Slot};
use super::{openssl_rsa, PgpError, PgpKey};

/// Room for armor, packet headers, PKESKs and MDC beyond the 4/3 growth of base64 (a
/// 4096-bit PKESK is ~520 bytes; armor adds a line break every 64 characters).
const FRAMING_ALLOWANCE: usize = 64 * 1024;
/// Compressed packets nested deeper than this are refused.
const MAX_COMPRESSION_LAYERS: usize = 2;
const READ_CHUNK: usize = 8 * 1024;

/// Who performs RSA private operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RsaEngine {
    OpenSsl,
    /// rPGP's pure-Rust RSA: a reference for tests only (it panics on an empty PKCS#1 payload).
    #[cfg(test)]
    RustCrypto,
}

pub(super) enum Failure {
    TooLarge,
    Bad(String),
}

pub(super) fn bad(cause: impl Display) -> Failure {
    Failure::Bad(cause.to_string())
}

impl PgpKey {
    /// Decrypts an ASCII-armored or binary OpenPGP message for this key, returning at most
    /// `max_plaintext` bytes of literal data.
    ///
    /// Every cryptographic or format failure is [`PgpError::Undecryptable`]; a message longer
    /// than [`PgpKey::max_message_len`] or a plaintext over `max_plaintext` is
    /// [`PgpError::TooLarge`]. CPU-bound: call it from a blocking pool, not an async thread.
    pub fn decrypt(
        &self,
        message: &[u8],
        max_plaintext: usize,
    ) -> Result<Zeroizing<Vec<u8>>, PgpError> {
        self.decrypt_with(message, max_plaintext, RsaEngine::OpenSsl)
    }

    /// The longest message (armored or binary) [`PgpKey::decrypt`] reads for a plaintext cap:
    /// callers that receive a stream stop reading past it.
    pub fn max_message_len(max_plaintext: usize) -> usize {
        max_plaintext
            .saturating_add(max_plaintext / 2)
            .saturating_add(FRAMING_ALLOWANCE)
    }

    pub(super) fn decrypt_with(
        &self,
        message: &[u8],
        max_plaintext: usize,
        engine: RsaEngine,
    ) -> Result<Zeroizing<Vec<u8>>, PgpError> {
        if message.len() > Self::max_message_len(max_plaintext) {
            return Err(PgpError::TooLarge);
        }
        match decrypt_message(self.inner(), message, max_plaintext, engine) {
            Ok(plaintext) => Ok(plaintext),
            Err(Failure::TooLarge) => Err(PgpError::TooLarge),
            Err(Failure::Bad(cause)) => {
                tracing::debug!(key = %self.fingerprint(), %cause, "PGP message undecryptable");
                Err(PgpError::Undecryptable)
            }
        }
    }
}

fn decrypt_message(
    inner: &Inner,
    input: &[u8],
    max_plaintext: usize,
    engine: RsaEngine,
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    // SEIPD v1 is read whole and its MDC checked before a byte is released.
    let mode = Seipdv1ReadMode::CheckFirst {
        max_message_size: input.len(),
    };
    let mut message = open_literal(inner, input, mode, engine)?;
    read_bounded(&mut message, max_plaintext)
}

/// Opens an encrypted message down to its literal data: the session key from our PKESK, the
/// SEIPD v1 packet read in `mode` (legacy SED, tag 9, and GnuPG's AEAD packets stay disabled),
/// at most [`MAX_COMPRESSION_LAYERS`] compression layers and one signature layer.
pub(super) fn open_literal<'a, R>(
    inner: &Inner,
    input: R,
    mode: Seipdv1ReadMode,
    engine: RsaEngine,
) -> Result<Message<'a>, Failure>
where
    R: BufRead + std::fmt::Debug + Send + 'a,
{
    let (message, _headers) = Message::from_reader(input).map_err(bad)?;
    let Message::Encrypted {
        esk,
        edata,
        is_nested,
    } = message
    else {
        return Err(bad("not an encrypted message"));
    };
    let session_key = session_key(inner, &esk, engine)?;
    let options = DecryptionOptions::new().set_seipdv1_read_mode(mode);
    let ring = TheRing {
        session_keys: vec![session_key],
        decrypt_options: options,
        ..TheRing::default()
    };
    let encrypted = Message::Encrypted {
        esk,
        edata,
        is_nested,
    };
    let (mut message, _) = encrypted.decrypt_the_ring(ring, true).map_err(bad)?;
    for _ in 0..MAX_COMPRESSION_LAYERS {
        if !message.is_compressed() {
            break;
        }
        message = message.decompress().map_err(bad)?;
    }
    if message.is_signed() {
        message = message.decompress().map_err(bad)?;
    }
    let literal = match &message {
        Message::Literal { .. } => true,
        Message::Signed { reader, .. } => reader.get_ref().is_literal(),
        _ => false,
    };
    if !literal {
        return Err(bad("the encrypted packet holds no literal data"));
    }
    Ok(message)
}

/// The session key from the first of our PKESKs that decrypts to an AES key. When one for an
/// RSA key fails, a random key stands in so the failure surfaces only at the MDC, like any
/// other (implicit rejection: no early-exit timing for a padding oracle).
fn session_key(inner: &Inner, esks: &[Esk], engine: RsaEngine) -> Result<PlainSessionKey, Failure> {
    let mut rsa_rejected = false;
    for esk in esks {
        let Esk::PublicKeyEncryptedSessionKey(pkesk) = esk else {
            continue;
        };
        if pkesk.version() != PkeskVersion::V3 {
            continue;
        }
        let Ok(values) = pkesk.values() else {
            continue;
        };
        for decryptor in &inner.decryptors {
            if !addressed_to(inner, decryptor.slot, pkesk) {
                continue;
            }
            let key = match (&decryptor.kind, values) {
                (DecryptorKind::Rsa(rsa), PkeskBytes::Rsa { mpi }) => {
                    let key = match engine {
                        RsaEngine::OpenSsl => openssl_rsa::session_key(rsa, mpi.as_ref()),
                        #[cfg(test)]
                        RsaEngine::RustCrypto => rpgp_session_key(inner, decryptor.slot, values),
                    }
                    .filter(is_aes);
                    rsa_rejected |= key.is_none();
                    key
                }
                (DecryptorKind::Ecdh, PkeskBytes::Ecdh { .. })
                | (DecryptorKind::X25519, PkeskBytes::X25519 { .. })
                | (DecryptorKind::X448, PkeskBytes::X448 { .. }) => {
                    rpgp_session_key(inner, decryptor.slot, values).filter(is_aes)
                }
                _ => None,
            };
            if let Some(key) = key {
                return Ok(key);
            }
        }
    }
    if rsa_rejected {
        let mut key = Zeroizing::new([0u8; 32]);
        openssl::rand::rand_bytes(key.as_mut()).map_err(bad)?;
        return Ok(PlainSessionKey::V3_4 {
            sym_alg: SymmetricKeyAlgorithm::AES256,
            key: key.as_slice().into(),
        });
    }
    Err(bad("no session key for this key decrypts to an AES key"))
}

fn addressed_to(inner: &Inner, slot: Slot, pkesk: &PublicKeyEncryptedSessionKey) -> bool {
    match slot {
        Slot::Primary => pkesk.match_identity(inner.key.primary_key.public_key()),
        Slot::Subkey(i) => inner
            .key
            .secret_subkeys
            .get(i)
            .is_some_and(|s| pkesk.match_identity(s.key.public_key())),
    }
}

/// rPGP's own session-key decryption (ECDH, X25519, X448, and RSA on the reference path).
fn rpgp_session_key(inner: &Inner, slot: Slot, values: &PkeskBytes) -> Option<PlainSessionKey> {
    let password = Password::empty();
    let result = match slot {
        Slot::Primary => {
            DecryptionKey::decrypt(&inner.key.primary_key, &password, values, EskType::V3_4)
        }
        Slot::Subkey(i) => DecryptionKey::decrypt(
            &inner.key.secret_subkeys.get(i)?.key,
            &password,
            values,
            EskType::V3_4,
        ),
    };
    match result {
        Ok(Ok(key)) => Some(key),
        Ok(Err(e)) | Err(e) => {
            tracing::debug!(cause = %e, "PKESK does not decrypt");
            None
        }
    }
}

fn is_aes(key: &PlainSessionKey) -> bool {
    matches!(
        key,
        PlainSessionKey::V3_4 {
            sym_alg: SymmetricKeyAlgorithm::AES128
                | SymmetricKeyAlgorithm::AES192
                | SymmetricKeyAlgorithm::AES256,
            ..
        }
    )
}

/// Reads to the end (which makes rPGP check for trailing data), never holding more than
/// `max + 1` bytes; buffers are zeroized when they grow.
fn read_bounded(reader: &mut impl Read, max: usize) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut out = Zeroizing::new(Vec::new());
    let mut chunk = Zeroizing::new([0u8; READ_CHUNK]);
    loop {
        let n = match reader.read(chunk.as_mut()) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(bad(e)),
        };
        let Some(read) = chunk.get(..n) else {
            return Err(bad("reader overran its buffer"));
        };
        if read.is_empty() {
            return Ok(out);
        }
        let len = out.len().saturating_add(read.len());
        if len > max {
            return Err(Failure::TooLarge);
        }
        if len > out.capacity() {
            let capacity = len.max(out.capacity().saturating_mul(2)).min(max);
            let mut grown = Zeroizing::new(Vec::with_capacity(capacity));
            grown.extend_from_slice(&out);
            out = grown;
        }
        out.extend_from_slice(read);
    }
}
