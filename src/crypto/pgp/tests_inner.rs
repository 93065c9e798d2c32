//! Unit tests with hostile content behind a valid MDC: anyone holding the public key can
//! encrypt arbitrary packets to tkm, so the parser of the decrypted stream must hold too.

use pgp::composed::MessageBuilder;
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{CompressionAlgorithm, Password};
use rand::{Rng, SeedableRng};

use super::test_support::{curve, handmade, literal, packet};
use super::PgpError;

const EVENT: &[u8] = br#"{"taxCode":"RSSMRA85T10A562S","hpan":"ab12","circuit":"05"}"#;

/// Unencrypted OpenPGP messages (the content of a SEIPD packet) in the shapes producers send.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let signer = &curve().key.inner().key.primary_key;
    let mut rng = rand::thread_rng();
    let mut seeds = vec![("literal", literal(EVENT))];
    for (name, compression) in [
        ("zip", CompressionAlgorithm::ZIP),
        ("zlib", CompressionAlgorithm::ZLIB),
        ("bzip2", CompressionAlgorithm::BZip2),
    ] {
        let mut builder = MessageBuilder::from_bytes("", EVENT.to_vec());
        builder.compression(compression);
        seeds.push((name, builder.to_vec(&mut rng).unwrap()));
    }
    let mut builder = MessageBuilder::from_bytes("", EVENT.to_vec());
    builder.compression(CompressionAlgorithm::ZLIB);
    builder.sign(signer, Password::empty(), HashAlgorithm::Sha256);
    seeds.push(("signed", builder.to_vec(&mut rng).unwrap()));
    seeds
}

#[test]
fn every_producer_shape_decrypts_to_the_literal() {
    let k = curve();
    for (name, inner) in seeds() {
        let message = handmade(&k.key, &inner, true);
        assert_eq!(
            k.key.decrypt(&message, 4096).unwrap().as_slice(),
            EVENT,
            "{name}"
        );
    }
}

#[test]
fn nesting_beyond_two_compression_layers_or_a_nested_encryption_is_refused() {
    let k = curve();
    let zlib = |inner: &[u8]| {
        let mut body = vec![2u8];
        body.extend(miniz_stored(inner));
        packet(8, &body)
    };
    let two = zlib(&zlib(&literal(EVENT)));
    assert_eq!(
        k.key
            .decrypt(&handmade(&k.key, &two, true), 4096)
            .unwrap()
            .as_slice(),
        EVENT
    );
    let three = zlib(&two);
    assert!(matches!(
        k.key.decrypt(&handmade(&k.key, &three, true), 4096),
        Err(PgpError::Undecryptable)
    ));
    let nested = handmade(&k.key, &literal(EVENT), true);
    assert!(matches!(
        k.key.decrypt(&handmade(&k.key, &nested, true), 4096),
        Err(PgpError::Undecryptable)
    ));
    let two_literals = [literal(EVENT), literal(EVENT)].concat();
    assert!(matches!(
        k.key.decrypt(&handmade(&k.key, &two_literals, true), 4096),
        Err(PgpError::Undecryptable)
    ));
}

/// A zlib stream of stored (uncompressed) deflate blocks, enough to nest packets by hand.
fn miniz_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = u16::try_from(chunk.len()).unwrap();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    if chunks.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

#[test]
fn mutated_content_behind_a_valid_mdc_never_panics() {
    let k = curve();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (name, seed) in seeds() {
        for _ in 0..600 {
            let mut inner = seed.clone();
            for _ in 0..rng.gen_range(1..4) {
                if inner.is_empty() {
                    break;
                }
                let at = rng.gen_range(0..inner.len());
                match rng.gen_range(0..4) {
                    0 => inner[at] = rng.gen(),
                    1 => inner.insert(at, rng.gen()),
                    2 => {
                        inner.remove(at);
                    }
                    _ => inner.truncate(at),
                }
            }
            let message = handmade(&k.key, &inner, true);
            match k.key.decrypt(&message, 4096) {
                Ok(_) => {}
                Err(PgpError::Undecryptable | PgpError::TooLarge) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }
}
