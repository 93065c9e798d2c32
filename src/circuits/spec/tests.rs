//! Live credentials at start-up: loaded typed, and refused naming their key.

use std::path::PathBuf;

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::x509::{X509Builder, X509NameBuilder};

use super::*;
use crate::circuits::protocol::{generate_rsa, public_of};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A directory of credential files for one test.
struct Files(PathBuf);

impl Files {
    fn new() -> Result<Self, std::io::Error> {
        let dir = std::env::temp_dir().join(format!("tkm-creds-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Ok(Files(dir))
    }

    fn put(&self, name: &str, content: &[u8]) -> Result<Option<PathBuf>, std::io::Error> {
        let path = self.0.join(name);
        std::fs::write(&path, content)?;
        Ok(Some(path))
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn certificate(key: &PKey<Private>) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "tkm test")?;
    let name = name.build();
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(key)?;
    b.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
    b.set_not_after(Asn1Time::days_from_now(1)?.as_ref())?;
    b.sign(key, MessageDigest::sha256())?;
    b.build().to_pem()
}

/// The TLS client key, the circuit's key and tkm's own key of these tests.
type Keys = (PKey<Private>, PKey<Private>, PKey<Private>);

/// Three RSA keys, made once for all these tests.
fn keys() -> Option<&'static Keys> {
    static KEYS: std::sync::OnceLock<Option<Keys>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        Some((
            generate_rsa(2048).ok()?,
            generate_rsa(2048).ok()?,
            generate_rsa(2048).ok()?,
        ))
    })
    .as_ref()
}

/// Live settings with every credential of the three circuits valid.
fn live(files: &Files) -> Result<CircuitsSettings, Box<dyn std::error::Error>> {
    let mut c = crate::config::Settings::from_layers(None)?.circuits;
    c.mode = CircuitsMode::Live;
    let (tls, circuit, own) = keys().ok_or("cannot generate RSA keys")?;
    let own_pem = own.private_key_to_pem_pkcs8()?;
    let circuit_public = public_of(circuit)?.public_key_to_pem()?;
    let v = &mut c.visa;
    v.user = Some("tkm".into());
    v.key_id = Some("kid".into());
    v.client_id = Some("client".into());
    v.password_file = files.put("visa-password", b"secret\n")?;
    v.client_cert_file = files.put("visa.crt", &certificate(tls)?)?;
    v.client_key_file = files.put("visa.key", &tls.private_key_to_pem_pkcs8()?)?;
    v.ca_file = files.put("visa-ca.crt", &certificate(circuit)?)?;
    v.circuit_public_key_file = files.put("visa-circuit.pem", &circuit_public)?;
    v.private_key_file = files.put("visa-own.pem", &own_pem)?;
    let m = &mut c.mastercard;
    m.consumer_key = Some("ck".into());
    m.signing_key_file = files.put("mc-signing.pem", &own_pem)?;
    m.circuit_public_key_file = files.put("mc-circuit.pem", &circuit_public)?;
    m.private_key_file = files.put("mc-own.pem", &own_pem)?;
    let a = &mut c.amex;
    a.api_key = Some("amex-key".into());
    a.client_secret_file = files.put("amex-secret", b"mac secret")?;
    Ok(c)
}

/// The configuration key `live_specs` refuses `c` with.
fn refused_key(c: &CircuitsSettings) -> Option<String> {
    match live_specs(c) {
        Err(ConfigError::Invalid { key, .. }) => Some(key),
        _ => None,
    }
}

#[test]
fn live_credentials_are_loaded_typed_at_start_up() -> TestResult {
    let files = Files::new()?;
    let c = live(&files)?;
    let specs = live_specs(&c)?.ok_or("live mode has specs")?;
    assert_eq!(specs.len(), 3);
    let visa = &specs[0];
    let material = visa.tls_material.as_ref().ok_or("TLS material loaded")?;
    assert_eq!(material.roots.len(), 1);
    assert!(material.identity.is_some());
    assert!(
        matches!(&visa.credentials, Credentials::Visa { password, .. } if password.expose_secret() == "secret")
    );
    assert_eq!(visa.base_url, "https://sandbox.api.visa.com");
    // Simulator mode loads nothing here.
    let mut sim = c.clone();
    sim.mode = CircuitsMode::Simulator;
    assert!(live_specs(&sim)?.is_none());
    Ok(())
}

#[test]
fn a_malformed_or_unreadable_key_file_is_refused_naming_its_key() -> TestResult {
    let files = Files::new()?;
    let garbage = b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
    let mut c = live(&files)?;
    c.mastercard.signing_key_file = files.put("bad-signing.pem", garbage)?;
    assert_eq!(
        refused_key(&c).as_deref(),
        Some("circuits.mastercard.signing_key_file")
    );

    let mut c = live(&files)?;
    c.visa.circuit_public_key_file = files.put("bad-public.pem", b"no PEM here")?;
    assert_eq!(
        refused_key(&c).as_deref(),
        Some("circuits.visa.circuit_public_key_file")
    );

    let mut c = live(&files)?;
    c.visa.client_key_file = Some(files.0.join("missing.key"));
    assert_eq!(
        refused_key(&c).as_deref(),
        Some("circuits.visa.client_key_file")
    );

    let mut c = live(&files)?;
    c.visa.client_cert_file = files.put("bad.crt", garbage)?;
    assert_eq!(
        refused_key(&c).as_deref(),
        Some("circuits.visa.client_cert_file")
    );

    let mut c = live(&files)?;
    c.visa.ca_file = files.put("bad-ca.crt", b"")?;
    assert_eq!(refused_key(&c).as_deref(), Some("circuits.visa.ca_file"));
    Ok(())
}

#[test]
fn a_client_key_of_another_certificate_is_refused() -> TestResult {
    let files = Files::new()?;
    let mut c = live(&files)?;
    let other = generate_rsa(2048)?.private_key_to_pem_pkcs8()?;
    c.visa.client_key_file = files.put("other.key", &other)?;
    assert_eq!(
        refused_key(&c).as_deref(),
        Some("circuits.visa.client_key_file")
    );
    // A certificate without its key (or the reverse) is refused too.
    let mut c = live(&files)?;
    c.mastercard.client_cert_file = c.visa.client_cert_file.clone();
    assert_eq!(
        refused_key(&c).as_deref(),
        Some("circuits.mastercard.client_key_file")
    );
    Ok(())
}

#[test]
fn blank_identifiers_and_empty_secrets_are_refused() -> TestResult {
    let files = Files::new()?;
    let mut c = live(&files)?;
    c.visa.key_id = Some(" ".into());
    assert_eq!(refused_key(&c).as_deref(), Some("circuits.visa.key_id"));
    let mut c = live(&files)?;
    c.mastercard.consumer_key = Some(String::new());
    assert_eq!(
        refused_key(&c).as_deref(),
        Some("circuits.mastercard.consumer_key")
    );
    let mut c = live(&files)?;
    c.amex.client_secret_file = files.put("empty-secret", b"\n")?;
    assert_eq!(
        refused_key(&c).as_deref(),
        Some("circuits.amex.client_secret_file")
    );
    let mut c = live(&files)?;
    c.visa.password_file = files.put("empty-password", b"")?;
    assert_eq!(
        refused_key(&c).as_deref(),
        Some("circuits.visa.password_file")
    );
    // A disabled circuit's credentials are not needed.
    c.visa.enabled = false;
    assert_eq!(live_specs(&c)?.map(|s| s.len()), Some(2));
    Ok(())
}
