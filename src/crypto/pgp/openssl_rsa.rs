//! RSA private operations through OpenSSL: the key converted from rPGP's form once, and the
//! PKCS#1 v1.5 decryption of a PKESK's session key.

use anyhow::{bail, Context};
use openssl::bn::{BigNum, BigNumContext};
use openssl::pkey::Private;
use openssl::rsa::{Padding, Rsa};
use pgp::composed::PlainSessionKey;
use pgp::crypto::rsa::SecretKey as RsaSecretKey;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::ser::Serialize;
use pgp::types::PublicParams;
use zeroize::Zeroizing;

/// Builds the OpenSSL private key of an OpenPGP RSA key, with its CRT parameters.
///
/// OpenPGP stores `d, p, q, u` with `u = p⁻¹ mod q`; OpenSSL wants `iqmp = q⁻¹ mod p`, a
/// different number, so the CRT parameters are computed here rather than copied.
pub(super) fn private_key(
    public: &PublicParams,
    secret: &RsaSecretKey,
) -> anyhow::Result<Rsa<Private>> {
    let PublicParams::RSA(public) = public else {
        bail!("public parameters are not RSA");
    };
    let mut encoded = Vec::new();
    public
        .to_writer(&mut encoded)
        .context("serialising n and e")?;
    let (n, rest) = mpi(&encoded).context("reading n")?;
    let (e, rest) = mpi(rest).context("reading e")?;
    if !rest.is_empty() {
        bail!("trailing bytes after n and e");
    }
    let (d, p, q, _u) = secret.to_bytes();
    let (d, p, q) = (Zeroizing::new(d), Zeroizing::new(p), Zeroizing::new(q));

    let mut ctx = BigNumContext::new_secure()?;
    let (d, p, q) = (secure(&d)?, secure(&p)?, secure(&q)?);
    let one = BigNum::from_u32(1)?;
    let mut p1 = BigNum::new_secure()?;
    p1.checked_sub(&p, &one)?;
    let mut q1 = BigNum::new_secure()?;
    q1.checked_sub(&q, &one)?;
    let mut dmp1 = BigNum::new_secure()?;
    dmp1.nnmod(&d, &p1, &mut ctx)?;
    let mut dmq1 = BigNum::new_secure()?;
    dmq1.nnmod(&d, &q1, &mut ctx)?;
    let mut iqmp = BigNum::new_secure()?;
    iqmp.mod_inverse(&q, &p, &mut ctx)?;
    p1.clear();
    q1.clear();

    let rsa = Rsa::from_private_components(
        BigNum::from_slice(n)?,
        BigNum::from_slice(e)?,
        d,
        p,
        q,
        dmp1,
        dmq1,
        iqmp,
    )?;
    if !rsa.check_key()? {
        bail!("OpenSSL finds the RSA key inconsistent");
    }
    Ok(rsa)
}

/// Decrypts the RSA value of a v3 PKESK and decodes `algorithm ‖ key ‖ checksum`. Every
/// failure is `None`, with no detail: the caller must not tell them apart (Marvin).
///
/// The private operation runs without padding and the PKCS#1 v1.5 type-2 check is done here
/// with masks instead of branches: OpenSSL 3.0 reports a bad padding through its error queue,
/// a measurably slower path than success (implicit rejection only arrived in OpenSSL 3.2).
pub(super) fn session_key(rsa: &Rsa<Private>, ciphertext: &[u8]) -> Option<PlainSessionKey> {
    let k = usize::try_from(rsa.size()).ok()?;
    // Public checks only: the value's length, and (inside OpenSSL) that it is below n.
    let pad = k.checked_sub(ciphertext.len())?;
    let mut input = vec![0u8; k];
    input.get_mut(pad..)?.copy_from_slice(ciphertext);
    let mut em = Zeroizing::new(vec![0u8; k]);
    let len = rsa.private_decrypt(&input, &mut em, Padding::NONE).ok()?;
    let em = em.get(..len)?;
    let (good, start) = pkcs1_type2_payload(em);
    if good != 0xff {
        return None;
    }
    decode_session_key(em.get(start..)?)
}

/// `0x00 ‖ 0x02 ‖ PS (≥ 8 non-zero bytes) ‖ 0x00 ‖ M`: returns `(0xff if well-formed else
/// 0, index of M)`, touching every byte the same way whatever their values.
fn pkcs1_type2_payload(em: &[u8]) -> (u8, usize) {
    let first = em.first().copied().unwrap_or(1);
    let second = em.get(1).copied().unwrap_or(0);
    let mut good = eq_mask(first, 0) & eq_mask(second, 2);
    let mut looking = 0xffu8;
    let mut separator = 0usize;
    for (i, &b) in em.iter().enumerate().skip(2) {
        let found = looking & eq_mask(b, 0);
        separator = select(found, i, separator);
        looking &= !found;
    }
    good &= !looking;
    // PS is em[2..separator]: at least 8 bytes, so the separator is at index 10 or later.
    good &= ge_mask(separator, 10);
    (good, separator.wrapping_add(1))
}

/// 0xff when `a == b`, else 0, computed without a comparison.
fn eq_mask(a: u8, b: u8) -> u8 {
    // (a ^ b) - 1 borrows into the top bit only when a ^ b == 0.
    let equal = (u32::from(a ^ b).wrapping_sub(1) >> 31) & 1;
    0u32.wrapping_sub(equal).to_le_bytes()[0]
}

/// 0xff when `a >= b`, else 0.
fn ge_mask(a: usize, b: usize) -> u8 {
    let (_, borrow) = a.overflowing_sub(b);
    u8::from(borrow).wrapping_sub(1)
}

/// `a` where the byte `mask` is 0xff, `b` where it is 0.
fn select(mask: u8, a: usize, b: usize) -> usize {
    let m = 0usize.wrapping_sub(usize::from(mask & 1));
    (a & m) | (b & !m)
}

/// `algorithm (1) ‖ key ‖ checksum (2, sum of the key bytes mod 65536)` (RFC 9580 §5.1.3).
fn decode_session_key(decrypted: &[u8]) -> Option<PlainSessionKey> {
    let (&algorithm, rest) = decrypted.split_first()?;
    let sym_alg = SymmetricKeyAlgorithm::from(algorithm);
    let key_size = sym_alg.key_size();
    if key_size == 0 || rest.len() != key_size.checked_add(2)? {
        return None;
    }
    let (key, checksum) = rest.split_at(key_size);
    let sum = key
        .iter()
        .fold(0u16, |acc, b| acc.wrapping_add(u16::from(*b)));
    if checksum != sum.to_be_bytes() {
        return None;
    }
    Some(PlainSessionKey::V3_4 {
        sym_alg,
        key: key.into(),
    })
}

/// One OpenPGP MPI (`bit count (2) ‖ big-endian bytes`) and what follows it.
fn mpi(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let bits = u16::from_be_bytes([*buf.first()?, *buf.get(1)?]);
    let len = usize::from(bits).div_ceil(8);
    let end = len.checked_add(2)?;
    Some((buf.get(2..end)?, buf.get(end..)?))
}

fn secure(bytes: &[u8]) -> Result<BigNum, openssl::error::ErrorStack> {
    let mut n = BigNum::new_secure()?;
    n.copy_from_slice(bytes)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_key_decodes_only_with_a_good_checksum_and_length() {
        let key = [7u8; 32];
        let sum = (7u16 * 32).to_be_bytes();
        let mut good = vec![9u8];
        good.extend_from_slice(&key);
        good.extend_from_slice(&sum);
        assert!(matches!(
            decode_session_key(&good),
            Some(PlainSessionKey::V3_4 {
                sym_alg: SymmetricKeyAlgorithm::AES256,
                ..
            })
        ));
        let mut bad_sum = good.clone();
        if let Some(last) = bad_sum.last_mut() {
            *last ^= 1;
        }
        assert!(decode_session_key(&bad_sum).is_none());
        assert!(decode_session_key(&good[..good.len() - 1]).is_none());
        assert!(decode_session_key(&[]).is_none());
        assert!(decode_session_key(&[0, 0, 0]).is_none());
    }

    #[test]
    fn the_pkcs1_check_finds_the_payload_only_in_well_formed_blocks() {
        let mut em = vec![0u8, 2];
        em.extend([0x55; 8]);
        em.push(0);
        em.extend([1, 2, 3]);
        assert_eq!(pkcs1_type2_payload(&em), (0xff, 11));
        let mut short_ps = vec![0u8, 2];
        short_ps.extend([0x55; 7]);
        short_ps.extend([0, 1, 2, 3]);
        assert_eq!(pkcs1_type2_payload(&short_ps).0, 0);
        let mut no_separator = vec![0u8, 2];
        no_separator.extend([0x55; 20]);
        assert_eq!(pkcs1_type2_payload(&no_separator).0, 0);
        let mut wrong_type = em.clone();
        wrong_type[1] = 1;
        assert_eq!(pkcs1_type2_payload(&wrong_type).0, 0);
        let mut wrong_lead = em.clone();
        wrong_lead[0] = 1;
        assert_eq!(pkcs1_type2_payload(&wrong_lead).0, 0);
        let mut empty_message = vec![0u8, 2];
        empty_message.extend([0x55; 9]);
        empty_message.push(0);
        assert_eq!(pkcs1_type2_payload(&empty_message), (0xff, 12));
        assert_eq!(pkcs1_type2_payload(&[]).0, 0);
        for a in 0..=255u8 {
            for b in [0u8, 1, 2, 255, a] {
                assert_eq!(eq_mask(a, b), if a == b { 0xff } else { 0 });
            }
        }
        assert_eq!(
            (ge_mask(10, 10), ge_mask(9, 10), ge_mask(usize::MAX, 0)),
            (0xff, 0, 0xff)
        );
    }

    #[test]
    fn our_unpadding_agrees_with_openssl_pkcs1_on_real_keys() {
        let rsa = Rsa::generate(1024).unwrap();
        let mut ciphertext = vec![0u8; 128];
        for len in [0usize, 1, 19, 35, 117] {
            let message: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
            rsa.public_encrypt(&message, &mut ciphertext, Padding::PKCS1)
                .unwrap();
            let mut em = vec![0u8; 128];
            let n = rsa
                .private_decrypt(&ciphertext, &mut em, Padding::NONE)
                .unwrap();
            let (good, start) = pkcs1_type2_payload(&em[..n]);
            assert_eq!((good, &em[start..n]), (0xff, &message[..]));
        }
    }

    #[test]
    fn mpis_parse_without_reading_past_the_end() {
        assert_eq!(
            mpi(&[0, 9, 1, 0xff, 5]),
            Some((&[1u8, 0xff][..], &[5u8][..]))
        );
        assert_eq!(mpi(&[0, 17, 1, 0]), None);
        assert_eq!(mpi(&[0]), None);
    }
}
