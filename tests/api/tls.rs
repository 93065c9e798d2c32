//! S1: no certificate, another CA, an expired certificate → no TLS session; unmapped certificate or
//! wrong role → 403; subscription keys; request ids.

use std::path::PathBuf;

use awc::http::Method;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
use openssl::x509::{X509NameBuilder, X509};
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{certs, client, spawn_app, spawn_app_with, tax_code, test_settings};

fn client_from_files(cert: &PathBuf, key: &PathBuf) -> awc::Client {
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_ca_file(certs().join("ca.crt")).unwrap();
    b.set_certificate_file(cert, SslFiletype::PEM).unwrap();
    b.set_private_key_file(key, SslFiletype::PEM).unwrap();
    awc::Client::builder()
        .connector(awc::Connector::new().openssl(b.build()))
        .finish()
}

/// A certificate with the io client's subject, signed by the dev CA, expired yesterday.
fn expired_io_certificate() -> (PathBuf, PathBuf) {
    let ca_cert = X509::from_pem(&std::fs::read(certs().join("ca.crt")).unwrap()).unwrap();
    let ca_key =
        PKey::private_key_from_pem(&std::fs::read(certs().join("ca.key")).unwrap()).unwrap();
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("O", "tkm dev").unwrap();
    name.append_entry_by_text("CN", "tkm-dev-io").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(ca_cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    b.set_not_before(&Asn1Time::from_unix(now - 10 * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now - 86_400).unwrap())
        .unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let dir = crate::helpers::root().join("target/test-secrets");
    std::fs::create_dir_all(&dir).unwrap();
    let (c, k) = (dir.join("expired-io.crt"), dir.join("expired-io.key"));
    std::fs::write(&c, b.build().to_pem().unwrap()).unwrap();
    std::fs::write(&k, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (c, k)
}

#[actix_web::test]
async fn a_connection_without_a_client_certificate_gets_no_session() {
    let app = spawn_app().await;
    let res = client(None).get(app.url("/openapi.json")).send().await;
    assert!(
        res.is_err(),
        "expected a TLS failure, got {:?}",
        res.map(|r| r.status())
    );
}

#[actix_web::test]
async fn a_certificate_from_another_ca_gets_no_session_even_with_a_mapped_subject() {
    let app = spawn_app().await;
    let res = client(Some("rogue"))
        .get(app.url("/openapi.json"))
        .send()
        .await;
    assert!(
        res.is_err(),
        "expected a TLS failure, got {:?}",
        res.map(|r| r.status())
    );
}

#[actix_web::test]
async fn an_expired_certificate_gets_no_session() {
    let app = spawn_app().await;
    let (cert, key) = expired_io_certificate();
    let res = client_from_files(&cert, &key)
        .get(app.url("/openapi.json"))
        .send()
        .await;
    assert!(
        res.is_err(),
        "expected a TLS failure, got {:?}",
        res.map(|r| r.status())
    );
}

#[actix_web::test]
async fn an_unmapped_certificate_is_403() {
    let app = spawn_app().await;
    let r = app
        .call(
            "unmapped",
            Method::GET,
            "/consent",
            &[("Tax-Code", &tax_code())],
            None,
        )
        .await;
    r.assert_error(403, 9403);
}

#[actix_web::test]
async fn a_subscription_key_is_required_where_configured() {
    let mut settings = test_settings().await;
    for c in settings.clients.iter_mut().filter(|c| c.name == "dev-io") {
        c.subscription_key = Some(SecretString::from("sk-0123456789".to_owned()));
    }
    let app = spawn_app_with(settings).await;
    let tc = tax_code();
    let body = json!({"consent": "Allow"});
    let h = |key: Option<&'static str>| {
        let mut v = vec![("Tax-Code", tc.clone()), ("Client-Id", "x".to_owned())];
        if let Some(k) = key {
            v.push(("Ocp-Apim-Subscription-Key", k.to_owned()));
        }
        v
    };
    let call = |headers: Vec<(&'static str, String)>| {
        let (app, body) = (&app, body.clone());
        async move {
            let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.call("io", Method::POST, "/consent", &hs, Some(body))
                .await
        }
    };
    call(h(None)).await.assert_error(401, 9401);
    call(h(Some("sk-wrong"))).await.assert_error(401, 9401);
    assert_eq!(call(h(Some("sk-0123456789"))).await.status, 200);
    // Clients without a key are not asked for one.
    let r = app
        .call(
            "issuer",
            Method::GET,
            "/consent",
            &[("Tax-Code", &tc)],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[actix_web::test]
async fn the_request_id_is_echoed_or_made() {
    let app = spawn_app().await;
    let tc = tax_code();
    let given = app
        .call(
            "io",
            Method::GET,
            "/consent",
            &[("Tax-Code", &tc), ("x-request-id", "req-42")],
            None,
        )
        .await;
    assert_eq!(given.headers.get("x-request-id").unwrap(), "req-42");
    let made = app
        .call("io", Method::GET, "/consent", &[("Tax-Code", &tc)], None)
        .await;
    let id = made.headers.get("x-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let pan_like = app
        .call(
            "io",
            Method::GET,
            "/consent",
            &[("Tax-Code", &tc), ("x-request-id", "4111119999990001")],
            None,
        )
        .await;
    let id = pan_like
        .headers
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_ne!(
        id, "4111119999990001",
        "a card-number-like id is replaced, never logged"
    );
}

#[actix_web::test]
async fn cert_identity_matches_what_openssl_prints() {
    let out = std::process::Command::new("openssl")
        .args([
            "x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253", "-in",
        ])
        .arg(certs().join("acquirer.crt"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let cert = X509::from_pem(&std::fs::read(certs().join("acquirer.crt")).unwrap()).unwrap();
    let peer = tkm::api::identity::PeerCert::from_x509(&cert).unwrap();
    assert!(
        text.contains(&format!("subject={}", peer.subject)),
        "{text} vs {}",
        peer.subject
    );
    assert!(
        text.contains(&format!("issuer={}", peer.issuer)),
        "{text} vs {}",
        peer.issuer
    );
}
