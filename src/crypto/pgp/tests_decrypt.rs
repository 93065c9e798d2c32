//! Unit tests: round trips, both RSA engines, caps, key loading and masking.

use pgp::composed::{ArmorOptions, MessageBuilder};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::CompressionAlgorithm;
use secrecy::SecretString;

use super::decrypt::RsaEngine;
use super::test_support::{bouncycastle, curve, handmade, literal, locked, rsa2048};
use super::{encrypt_to, PgpError, PgpKey, PgpKeyKind, PgpPublicKey};

const EVENT: &[u8] = br#"{"taxCode":"RSSMRA85T10A562S","pan":"4111111111111111","circuit":"01"}"#;

fn assert_round_trip(key: &PgpKey, public: &PgpPublicKey) {
    for armored in [true, false] {
        let message = public.encrypt(EVENT, armored).unwrap();
        assert_eq!(message.starts_with(b"-----BEGIN PGP MESSAGE-----"), armored);
        let plaintext = key.decrypt(&message, 1024).unwrap();
        assert_eq!(plaintext.as_slice(), EVENT);
    }
}

#[test]
fn a_curve25519_key_decrypts_what_was_encrypted_to_it_armored_or_binary() {
    let k = curve();
    assert_round_trip(&k.key, &k.public);
}

#[test]
fn an_rsa2048_key_decrypts_what_was_encrypted_to_it_armored_or_binary() {
    let k = rsa2048();
    assert_round_trip(&k.key, &k.public);
}

#[test]
fn openssl_and_rpgp_rsa_paths_give_the_same_plaintext() {
    let k = rsa2048();
    let message = k.public.encrypt(EVENT, false).unwrap();
    let fast = k
        .key
        .decrypt_with(&message, 1024, RsaEngine::OpenSsl)
        .unwrap();
    let reference = k
        .key
        .decrypt_with(&message, 1024, RsaEngine::RustCrypto)
        .unwrap();
    assert_eq!(fast.as_slice(), EVENT);
    assert_eq!(reference.as_slice(), EVENT);

    let (key, message, expected) = bouncycastle();
    let fast = key.decrypt_with(message, 1024, RsaEngine::OpenSsl).unwrap();
    let reference = key
        .decrypt_with(message, 1024, RsaEngine::RustCrypto)
        .unwrap();
    assert_eq!(fast.as_slice(), *expected);
    assert_eq!(reference.as_slice(), *expected);
}

#[test]
fn the_legacy_bouncycastle_rsa4096_file_decrypts_to_its_44_bytes() {
    let (key, message, expected) = bouncycastle();
    let plaintext = key.decrypt(message, 44).unwrap();
    assert_eq!(plaintext.as_slice(), *expected);
    assert_eq!(plaintext.len(), 44);
}

#[test]
fn compressed_messages_decrypt_with_every_accepted_algorithm() {
    let k = curve();
    let subkey = &k.key.inner().key.secret_subkeys[0].key.public_key().clone();
    for compression in [
        CompressionAlgorithm::ZIP,
        CompressionAlgorithm::ZLIB,
        CompressionAlgorithm::BZip2,
    ] {
        let mut rng = rand::thread_rng();
        let mut builder = MessageBuilder::from_bytes("", EVENT.to_vec())
            .seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES128);
        builder.compression(compression);
        builder.encrypt_to_key(&mut rng, subkey).unwrap();
        let message = builder
            .to_armored_string(&mut rng, ArmorOptions::default())
            .unwrap();
        let plaintext = k.key.decrypt(message.as_bytes(), 1024).unwrap();
        assert_eq!(plaintext.as_slice(), EVENT, "{compression:?}");
    }
}

#[test]
fn a_plaintext_exactly_at_the_cap_passes_and_one_byte_more_is_too_large() {
    let k = curve();
    let message = k.public.encrypt(EVENT, false).unwrap();
    assert_eq!(
        k.key.decrypt(&message, EVENT.len()).unwrap().as_slice(),
        EVENT
    );
    assert!(matches!(
        k.key.decrypt(&message, EVENT.len() - 1),
        Err(PgpError::TooLarge)
    ));
}

#[test]
fn a_compression_bomb_stops_at_the_cap() {
    let k = curve();
    let subkey = &k.key.inner().key.secret_subkeys[0].key.public_key().clone();
    let zeros = vec![0u8; 8 << 20];
    let mut rng = rand::thread_rng();
    let mut builder =
        MessageBuilder::from_bytes("", zeros).seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
    builder.compression(CompressionAlgorithm::ZLIB);
    builder.encrypt_to_key(&mut rng, subkey).unwrap();
    let message = builder.to_vec(&mut rng).unwrap();
    assert!(message.len() < 64 * 1024, "{} bytes", message.len());
    assert!(matches!(
        k.key.decrypt(&message, 64 * 1024),
        Err(PgpError::TooLarge)
    ));
}

#[test]
fn an_input_longer_than_the_cap_allows_is_too_large_before_parsing() {
    let k = curve();
    let limit = PgpKey::max_message_len(1000);
    assert!(matches!(
        k.key.decrypt(&vec![0u8; limit + 1], 1000),
        Err(PgpError::TooLarge)
    ));
    assert!(matches!(
        k.key.decrypt(&vec![0u8; limit], 1000),
        Err(PgpError::Undecryptable)
    ));
}

#[test]
fn a_handmade_seipd_message_decrypts_which_validates_the_hostile_builders() {
    let k = rsa2048();
    let message = handmade(&k.key, &literal(EVENT), true);
    assert_eq!(k.key.decrypt(&message, 1024).unwrap().as_slice(), EVENT);
}

#[test]
fn a_protected_key_loads_only_with_its_passphrase() {
    let (k, passphrase) = locked();
    let secret = k.secret_armored.as_bytes();
    assert!(matches!(
        PgpKey::from_armored(secret, None),
        Err(PgpError::Passphrase)
    ));
    let wrong = SecretString::from("wrong");
    assert!(matches!(
        PgpKey::from_armored(secret, Some(&wrong)),
        Err(PgpError::Passphrase)
    ));
    let key = PgpKey::from_armored(secret, Some(passphrase)).unwrap();
    let message = k.public.encrypt(EVENT, true).unwrap();
    assert_eq!(key.decrypt(&message, 1024).unwrap().as_slice(), EVENT);
}

#[test]
fn debug_shows_the_fingerprint_and_no_key_material() {
    let k = rsa2048();
    let shown = format!("{:?} {:#?}", k.key, k.key);
    let fingerprint = k.key.fingerprint();
    assert_eq!(fingerprint.len(), 40);
    assert_eq!(
        shown,
        format!(
            "PgpKey {{ fingerprint: \"{fingerprint}\", secret: [REDACTED] }} \
             PgpKey {{ fingerprint: \"{fingerprint}\", secret: [REDACTED] }}"
        )
    );
}

#[test]
fn the_derived_public_key_is_the_generated_one_and_encrypts_to_us() {
    for k in [curve(), rsa2048()] {
        let derived = PgpPublicKey::from_armored(k.key.public_key_armored().as_bytes()).unwrap();
        assert_eq!(derived.fingerprint(), k.key.fingerprint());
        assert_eq!(k.public.fingerprint(), k.key.fingerprint());
        let message = encrypt_to(k.key.public_key_armored().as_bytes(), EVENT, false).unwrap();
        assert_eq!(k.key.decrypt(&message, 1024).unwrap().as_slice(), EVENT);
    }
}

#[test]
fn a_key_is_cheap_to_share_across_threads() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<PgpKey>();
    let k = curve();
    let message = k.public.encrypt(EVENT, false).unwrap();
    let key = k.key.clone();
    let plaintext = std::thread::spawn(move || key.decrypt(&message, 1024).unwrap().to_vec())
        .join()
        .unwrap();
    assert_eq!(plaintext, EVENT);
}

#[test]
fn key_kinds_parse_and_print_their_cli_names() {
    for (name, kind) in [
        ("curve25519", PgpKeyKind::Curve25519),
        ("rsa2048", PgpKeyKind::Rsa2048),
        ("rsa4096", PgpKeyKind::Rsa4096),
    ] {
        assert_eq!(name.parse::<PgpKeyKind>().unwrap(), kind);
        assert_eq!(kind.to_string(), name);
    }
    assert!("dsa".parse::<PgpKeyKind>().is_err());
    assert_eq!(PgpKeyKind::default(), PgpKeyKind::Curve25519);
}

#[test]
fn a_public_key_is_refused_as_a_secret_key_and_garbage_as_either() {
    let k = curve();
    assert!(matches!(
        PgpKey::from_armored(k.key.public_key_armored().as_bytes(), None),
        Err(PgpError::InvalidSecretKey(_))
    ));
    assert!(matches!(
        PgpPublicKey::from_armored(b"not a key"),
        Err(PgpError::InvalidPublicKey(_))
    ));
    assert!(matches!(
        encrypt_to(b"", EVENT, true),
        Err(PgpError::InvalidPublicKey(_))
    ));
}
