//! Shared fixtures for the PGP unit tests: keys generated once per test binary, and helpers
//! that build OpenPGP packets by hand (for messages no honest library emits).

use std::sync::OnceLock;

use pgp::composed::{Esk, RawSessionKey};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::PublicKeyEncryptedSessionKey;
use pgp::ser::Serialize;
use secrecy::SecretString;

use super::{generate, PgpKey, PgpKeyKind, PgpPublicKey};

/// A generated key pair.
pub(super) struct TestKey {
    pub(super) key: PgpKey,
    pub(super) public: PgpPublicKey,
    pub(super) secret_armored: String,
}

fn make(kind: PgpKeyKind, passphrase: Option<&SecretString>) -> TestKey {
    let (secret_armored, public_armored) =
        generate(kind, "tkm test <test@localhost>", passphrase).unwrap();
    let key = PgpKey::from_armored(secret_armored.as_bytes(), passphrase).unwrap();
    let public = PgpPublicKey::from_armored(public_armored.as_bytes()).unwrap();
    TestKey {
        key,
        public,
        secret_armored,
    }
}

/// The Curve25519 key (made once).
pub(super) fn curve() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| make(PgpKeyKind::Curve25519, None))
}

/// The RSA-2048 key (made once).
pub(super) fn rsa2048() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| make(PgpKeyKind::Rsa2048, None))
}

/// A passphrase-protected Curve25519 key and its passphrase (made once).
pub(super) fn locked() -> &'static (TestKey, SecretString) {
    static KEY: OnceLock<(TestKey, SecretString)> = OnceLock::new();
    KEY.get_or_init(|| {
        let passphrase = SecretString::from("correct horse battery staple");
        (make(PgpKeyKind::Curve25519, Some(&passphrase)), passphrase)
    })
}

/// The legacy BouncyCastle RSA-4096 fixture: (key, message, expected plaintext).
pub(super) fn bouncycastle() -> &'static (PgpKey, Vec<u8>, &'static [u8]) {
    static FIXTURE: OnceLock<(PgpKey, Vec<u8>, &'static [u8])> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/legacy-bouncycastle/"
        );
        let secret = std::fs::read(format!("{dir}junit_pgp_private.asc")).unwrap();
        let message = std::fs::read(format!("{dir}TKM.acquirer.junit.csv.pgp")).unwrap();
        let passphrase = SecretString::from("passphrase");
        let key = PgpKey::from_armored(&secret, Some(&passphrase)).unwrap();
        (
            key,
            message,
            b"0000000000;02;0000000\r\n0000000001;02;0000001",
        )
    })
}

/// A new-format packet: `tag ‖ length ‖ body`.
pub(super) fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xC0 | tag];
    let len = body.len();
    if len < 192 {
        out.push(u8::try_from(len).unwrap());
    } else if len < 8384 {
        let l = len - 192;
        out.push(u8::try_from(l / 256 + 192).unwrap());
        out.push(u8::try_from(l % 256).unwrap());
    } else {
        out.push(0xFF);
        out.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// A binary literal data packet holding `data`.
pub(super) fn literal(data: &[u8]) -> Vec<u8> {
    let mut body = vec![b'b', 0, 0, 0, 0, 0];
    body.extend_from_slice(data);
    packet(11, &body)
}

/// A v3 PKESK carrying an AES-256 `session_key` to `key`'s first secret subkey.
pub(super) fn pkesk(key: &PgpKey, session_key: &[u8]) -> Vec<u8> {
    let subkey = key.inner().key.secret_subkeys[0].key.public_key();
    let raw = RawSessionKey::from(session_key);
    let esk = PublicKeyEncryptedSessionKey::from_session_key_v3(
        rand::thread_rng(),
        &raw,
        SymmetricKeyAlgorithm::AES256,
        subkey,
    )
    .unwrap();
    let mut out = Vec::new();
    Esk::PublicKeyEncryptedSessionKey(esk)
        .to_writer(&mut out)
        .unwrap();
    out
}

/// A message built by hand: PKESK to `key`, then `inner` (packets) encrypted under AES-256
/// either as SEIPD v1 with MDC (`protected`) or as a legacy SED packet (tag 9).
pub(super) fn handmade(key: &PgpKey, inner: &[u8], protected: bool) -> Vec<u8> {
    let session_key: [u8; 32] = rand::random();
    let mut out = pkesk(key, &session_key);
    let alg = SymmetricKeyAlgorithm::AES256;
    if protected {
        let mut body = vec![1u8];
        body.extend(
            alg.encrypt_protected(rand::thread_rng(), &session_key, inner)
                .unwrap(),
        );
        out.extend(packet(18, &body));
    } else {
        let body = alg
            .encrypt(rand::thread_rng(), &session_key, inner)
            .unwrap();
        out.extend(packet(9, &body));
    }
    out
}

/// A SEIPD v1 message whose encrypted packet becomes a tag-9 SED packet: tag changed, version
/// byte dropped, ciphertext kept.
pub(super) fn seipd_rewritten_as_sed(key: &PgpKey, inner: &[u8]) -> Vec<u8> {
    let session_key: [u8; 32] = rand::random();
    let mut out = pkesk(key, &session_key);
    let ciphertext = SymmetricKeyAlgorithm::AES256
        .encrypt_protected(rand::thread_rng(), &session_key, inner)
        .unwrap();
    out.extend(packet(9, &ciphertext));
    out
}
