//! Unit tests with hostile input: tampering, unprotected packets, garbage, truncation, random
//! mutations, a crafted RSA padding. Every one must be `Undecryptable` and none may panic.

use openssl::rsa::Padding;
use pgp::composed::Message;
use pgp::types::{KeyDetails, Password};
use rand::{Rng, SeedableRng};

use super::test_support::{curve, handmade, literal, packet, rsa2048, seipd_rewritten_as_sed};
use super::{PgpError, PgpKey};

const EVENT: &[u8] = br#"{"hpan":"0000000000000000000000000000000000000000000000000000000000000000","circuit":"02"}"#;

fn undecryptable(key: &PgpKey, message: &[u8]) -> bool {
    matches!(key.decrypt(message, 4096), Err(PgpError::Undecryptable))
}

#[test]
fn every_single_bit_flip_in_the_encrypted_packet_is_undecryptable() {
    for k in [curve(), rsa2048()] {
        let message = k.public.encrypt(EVENT, false).unwrap();
        // The SEIPD packet is the tail: the prefix, the literal and the 22-byte MDC.
        let seipd = EVENT.len() + 22 + 18;
        for i in message.len() - seipd..message.len() {
            let mut tampered = message.clone();
            tampered[i] ^= 0x01 << (i % 8);
            assert!(undecryptable(&k.key, &tampered), "byte {i}");
        }
        // Anywhere else a flip either fails the same way or changes nothing that matters.
        for i in 0..message.len() - seipd {
            let mut tampered = message.clone();
            tampered[i] ^= 0x80 >> (i % 8);
            match k.key.decrypt(&tampered, 4096) {
                Ok(plaintext) => assert_eq!(plaintext.as_slice(), EVENT, "byte {i}"),
                Err(e) => assert!(matches!(e, PgpError::Undecryptable), "byte {i}: {e}"),
            }
        }
    }
}

#[test]
fn a_tampered_armored_message_is_undecryptable() {
    let k = curve();
    let armored = String::from_utf8(k.public.encrypt(EVENT, true).unwrap()).unwrap();
    let lines: Vec<&str> = armored.lines().collect();
    let blank = lines.iter().position(|l| l.is_empty()).unwrap();
    let body_line = lines[blank + 1].to_owned();
    let flipped: String = body_line
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 10 {
                if c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                c
            }
        })
        .collect();
    let tampered = armored.replacen(&body_line, &flipped, 1);
    assert!(undecryptable(&k.key, tampered.as_bytes()));
}

#[test]
fn a_seipd_packet_rewritten_as_tag_9_sed_is_refused() {
    for k in [curve(), rsa2048()] {
        let message = seipd_rewritten_as_sed(&k.key, &literal(EVENT));
        assert!(undecryptable(&k.key, &message));
    }
}

#[test]
fn a_valid_sed_message_that_rpgp_legacy_mode_reads_is_refused() {
    let k = rsa2048();
    let message = handmade(&k.key, &literal(EVENT), false);
    // Proof that the packet is genuine SED: rPGP's opt-in legacy mode decrypts it.
    let mut legacy = Message::from_bytes(&message[..])
        .unwrap()
        .decrypt_legacy(&Password::empty(), &k.key.inner().key)
        .unwrap();
    assert_eq!(legacy.as_data_vec().unwrap(), EVENT);
    assert!(undecryptable(&k.key, &message));
}

#[test]
fn garbage_empty_and_unencrypted_input_is_undecryptable() {
    let k = curve();
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\n".to_vec(),
        b"hello".to_vec(),
        vec![0xff; 300],
        vec![0x00; 300],
        b"-----BEGIN PGP MESSAGE-----\n\n-----END PGP MESSAGE-----\n".to_vec(),
        b"-----BEGIN PGP MESSAGE-----\n\nAAAA\n=AAAA\n-----END PGP MESSAGE-----\n".to_vec(),
        b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n".to_vec(),
        k.key.public_key_armored().into_bytes(),
        literal(EVENT),
        packet(8, &[1, 0x78, 0x9c]),
        packet(18, &[1]),
        packet(18, &[2, 9, 2, 16]),
        packet(9, &[0; 40]),
        packet(1, &[3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 8, 1]),
    ];
    for (i, case) in cases.iter().enumerate() {
        assert!(undecryptable(&k.key, case), "case {i}");
    }
}

#[test]
fn a_message_for_another_key_is_undecryptable() {
    let message = rsa2048().public.encrypt(EVENT, false).unwrap();
    assert!(undecryptable(&curve().key, &message));
    let message = curve().public.encrypt(EVENT, true).unwrap();
    assert!(undecryptable(&rsa2048().key, &message));
}

#[test]
fn every_truncation_is_undecryptable() {
    for k in [curve(), rsa2048()] {
        for armored in [false, true] {
            let message = k.public.encrypt(EVENT, armored).unwrap();
            for len in 0..message.len() - usize::from(armored) * 30 {
                assert!(
                    undecryptable(&k.key, &message[..len]),
                    "{len} of {}",
                    message.len()
                );
            }
        }
    }
}

#[test]
fn random_mutations_never_panic_and_never_yield_another_plaintext() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261123);
    for k in [curve(), rsa2048()] {
        for armored in [false, true] {
            let message = k.public.encrypt(EVENT, armored).unwrap();
            for _ in 0..1500 {
                let mut m = message.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..m.len());
                    match rng.gen_range(0..4) {
                        0 => m[at] = rng.gen(),
                        1 => m.insert(at, rng.gen()),
                        2 => {
                            m.remove(at);
                        }
                        _ => m.truncate(at),
                    }
                    if m.is_empty() {
                        break;
                    }
                }
                match k.key.decrypt(&m, 4096) {
                    Ok(plaintext) => assert_eq!(plaintext.as_slice(), EVENT),
                    Err(e) => assert!(matches!(e, PgpError::Undecryptable), "{e}"),
                }
            }
        }
    }
}

/// rPGP 0.21's own RSA path indexes the first byte of the PKCS#1 payload and panics when it is
/// empty (separator in the last position: anyone holding the public key can send this). Our
/// OpenSSL path must make it an ordinary failure — and RSA must never fall back to rPGP's.
#[test]
fn an_rsa_pkesk_with_an_empty_pkcs1_payload_is_undecryptable() {
    let k = rsa2048();
    let sub = &k.key.inner().key.secret_subkeys[0].key;
    let rsa = k
        .key
        .inner()
        .decryptors
        .iter()
        .find_map(|d| match &d.kind {
            super::key::DecryptorKind::Rsa(rsa) => Some(rsa),
            _ => None,
        })
        .unwrap();
    let size = usize::try_from(rsa.size()).unwrap();
    let mut ciphertext = vec![0u8; size];
    while ciphertext[0] == 0 {
        let mut em = vec![0u8; size];
        em[1] = 2;
        for b in &mut em[2..size - 1] {
            *b = rand::thread_rng().gen_range(1..=255);
        }
        let n = rsa
            .public_encrypt(&em, &mut ciphertext, Padding::NONE)
            .unwrap();
        assert_eq!(n, size);
    }
    let leading = usize::try_from(ciphertext[0].leading_zeros()).unwrap();
    let bits = u16::try_from(size * 8 - leading).unwrap();
    let mut body = vec![3u8];
    body.extend_from_slice(sub.public_key().legacy_key_id().as_ref());
    body.push(1);
    body.extend_from_slice(&bits.to_be_bytes());
    body.extend_from_slice(&ciphertext[..]);
    let mut message = packet(1, &body);
    let honest = handmade(&k.key, &literal(EVENT), true);
    let pkesk_len = honest.len() - (EVENT.len() + 6 + 2 + 1 + 18 + 22 + 2);
    message.extend_from_slice(&honest[pkesk_len..]);
    assert!(undecryptable(&k.key, &message));
}

/// Offering the RSA signing key's private operation to strangers' ciphertexts would make it a
/// signing oracle (Bleichenbacher): only components flagged for encryption decrypt.
#[test]
fn a_message_to_the_signing_only_rsa_primary_is_refused() {
    let k = rsa2048();
    assert_eq!(k.key.inner().decryptors.len(), 1);
    let primary = k.key.inner().key.primary_key.public_key().clone();
    let mut rng = rand::thread_rng();
    let mut builder = pgp::composed::MessageBuilder::from_bytes("", EVENT.to_vec())
        .seipd_v1(&mut rng, pgp::crypto::sym::SymmetricKeyAlgorithm::AES256);
    builder.encrypt_to_key(&mut rng, &primary).unwrap();
    let message = builder.to_vec(&mut rng).unwrap();
    assert!(undecryptable(&k.key, &message));
}
