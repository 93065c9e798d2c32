//! Single-core decryption rates (release mode, ignored by default):
//! `cargo test --release --lib crypto::pgp::bench -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use super::decrypt::RsaEngine;
use super::test_support::{bouncycastle, curve, rsa2048};
use super::{PgpKey, PgpPublicKey};

/// A card event of about 300 bytes.
fn event() -> Vec<u8> {
    let mut event = br#"{"taxCode":"RSSMRA85T10A562S","pan":"4111111111111111","par":"V0010013020001234567890123456","circuit":"01","timestamp":"2026-11-23 10:15:00:0000","tokens":["#.to_vec();
    while event.len() < 280 {
        event.extend_from_slice(br#"{"token":"4895370012345678"},"#);
    }
    event.extend_from_slice(br#"{"htoken":"x","deleted":true}]}"#);
    event
}

fn rate(label: &str, key: &PgpKey, message: &[u8], expected: &[u8], engine: RsaEngine) -> f64 {
    let budget = Duration::from_secs(3);
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget {
        let plaintext = key.decrypt_with(message, 4096, engine).unwrap();
        assert_eq!(plaintext.as_slice(), expected);
        n += 1;
    }
    let per_second = f64::from(n) / start.elapsed().as_secs_f64();
    println!(
        "{label:<28} {per_second:>9.0} decryptions/s ({n} in {:?})",
        start.elapsed()
    );
    per_second
}

#[test]
#[ignore = "measurement: run in release mode with --ignored --nocapture"]
fn measure_single_core_decrypt_rates() {
    let event = event();
    println!("message plaintext: {} bytes", event.len());
    let k = curve();
    let message = k.public.encrypt(&event, false).unwrap();
    rate("Curve25519", &k.key, &message, &event, RsaEngine::OpenSsl);

    let k = rsa2048();
    let message = k.public.encrypt(&event, false).unwrap();
    rate(
        "RSA-2048 (OpenSSL)",
        &k.key,
        &message,
        &event,
        RsaEngine::OpenSsl,
    );
    rate(
        "RSA-2048 (rPGP/rsa)",
        &k.key,
        &message,
        &event,
        RsaEngine::RustCrypto,
    );

    let (key, _, _) = bouncycastle();
    let public = PgpPublicKey::from_armored(key.public_key_armored().as_bytes()).unwrap();
    let message = public.encrypt(&event, false).unwrap();
    rate(
        "RSA-4096 (OpenSSL)",
        key,
        &message,
        &event,
        RsaEngine::OpenSsl,
    );
    rate(
        "RSA-4096 (rPGP/rsa)",
        key,
        &message,
        &event,
        RsaEngine::RustCrypto,
    );
}
