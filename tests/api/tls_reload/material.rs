//! Server certificate, key and client CAs: new connections get the new ones, open connections
//! are kept, a broken file keeps the material in force, SIGHUP reloads without polling.

use std::process::Command;

use tkm::config::CrlWhenExpired;

use super::{
    admitted, connect, fingerprint, get, logged, metrics, peer_fingerprint, served_fingerprint,
    settings, Pki, DEADLINE, SIGNALS,
};
use crate::helpers::{certs, eventually, spawn_app_with};

/// The client CA names a new connection's CertificateRequest carries, as `openssl s_client`
/// prints them.
fn advertised_ca_names(port: u16) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-cert",
        ])
        .args([certs().join("io.crt").as_os_str(), "-key".as_ref()])
        .args([certs().join("io.key").as_os_str(), "-CAfile".as_ref()])
        .arg(certs().join("ca.crt"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("Acceptable client certificate CA names")
        .nth(1)
        .and_then(|rest| rest.split("Requested Signature Algorithms").next())
        .unwrap_or_default()
        .to_owned()
}

#[actix_web::test]
async fn the_names_of_new_client_cas_are_advertised() {
    let pki = Pki::new();
    let mut s = settings(&pki, 1, CrlWhenExpired::Reject).await;
    s.server.crl_file = None;
    let app = spawn_app_with(s).await;
    let port = app.api_port;
    let names = tokio::task::spawn_blocking(move || advertised_ca_names(port))
        .await
        .unwrap();
    assert!(names.contains("CN = tkm dev CA"), "{names}");
    assert!(!names.contains("CN = tkm reload test CA"), "{names}");

    // The dev CA and another one.
    let (key, crt) = (pki.path("extra-ca.key"), pki.path("extra-ca.crt"));
    super::openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/O=tkm test/CN=tkm reload test CA",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
    ]);
    let both = [certs().join("ca.crt"), crt].map(|f| std::fs::read_to_string(f).unwrap());
    let tmp = pki.path("ca.crt.new");
    std::fs::write(&tmp, both.concat()).unwrap();
    std::fs::rename(&tmp, pki.path("ca.crt")).unwrap();
    let advertised = eventually(DEADLINE, || async {
        let names = tokio::task::spawn_blocking(move || advertised_ca_names(port))
            .await
            .unwrap();
        (names.contains("CN = tkm reload test CA") && names.contains("CN = tkm dev CA"))
            .then_some(())
    })
    .await;
    assert!(advertised.is_some(), "the new CA's name is not advertised");
    assert!(admitted(&app, "io").await);
}

#[actix_web::test]
async fn new_client_cas_apply_to_new_connections() {
    let pki = Pki::new();
    let mut s = settings(&pki, 1, CrlWhenExpired::Reject).await;
    s.server.crl_file = None;
    let app = spawn_app_with(s).await;
    assert!(admitted(&app, "io").await);
    assert!(!admitted(&app, "rogue").await);

    let tmp = pki.path("ca.crt.new");
    std::fs::copy(certs().join("rogue-ca.crt"), &tmp).unwrap();
    std::fs::rename(&tmp, pki.path("ca.crt")).unwrap();
    let switched = eventually(DEADLINE, || async {
        (!admitted(&app, "io").await).then_some(())
    })
    .await;
    assert!(switched.is_some(), "a client of the old CA still gets in");
    assert!(
        admitted(&app, "rogue").await,
        "a client of the new CA gets in"
    );
}

#[actix_web::test]
async fn a_new_server_certificate_reaches_new_connections_and_open_ones_are_kept() {
    let pki = Pki::new();
    let app = spawn_app_with(settings(&pki, 1, CrlWhenExpired::Reject).await).await;
    let port = app.api_port;
    let old = fingerprint(&pki.path("server.crt"));
    let mut open = tokio::task::spawn_blocking(move || connect(port, "io"))
        .await
        .unwrap()
        .expect("a keep-alive connection");
    assert_eq!(peer_fingerprint(&open), old);

    let new = pki.renew_server_certificate();
    assert_ne!(new, old);
    let shown = eventually(DEADLINE, || async {
        served_fingerprint(port).await.filter(|fp| *fp == new)
    })
    .await;
    assert!(
        shown.is_some(),
        "new connections still see the old certificate"
    );

    let (open, status) = tokio::task::spawn_blocking(move || {
        let status = get(&mut open);
        (open, status)
    })
    .await
    .unwrap();
    assert_eq!(
        status,
        Ok(200),
        "the connection opened before the reload still works"
    );
    assert_eq!(peer_fingerprint(&open), old);
}

#[actix_web::test]
async fn a_broken_file_keeps_the_material_in_force_and_names_the_setting() {
    let pki = Pki::new();
    let app = spawn_app_with(settings(&pki, 1, CrlWhenExpired::Reject).await).await;
    let port = app.api_port;
    let old = fingerprint(&pki.path("server.crt"));

    // A key that is not the certificate's.
    let tmp = pki.path("server.key.new");
    std::fs::copy(certs().join("io.key"), &tmp).unwrap();
    std::fs::rename(&tmp, pki.path("server.key")).unwrap();
    let key_file = pki.path("server.key").display().to_string();
    let failed = eventually(DEADLINE, || async {
        metrics(&app)
            .await
            .contains("tkm_tls_reloads_total{outcome=\"failed\"} 1")
            .then_some(())
    })
    .await;
    assert!(failed.is_some(), "{}", metrics(&app).await);
    assert!(logged(&["not reloaded", "server.key_file", &key_file]).await);
    assert_eq!(
        served_fingerprint(port).await,
        Some(old),
        "old material serves"
    );

    let new = pki.renew_server_certificate();
    let shown = eventually(DEADLINE, || async {
        served_fingerprint(port).await.filter(|fp| *fp == new)
    })
    .await;
    assert!(shown.is_some(), "a fixed file is loaded");
}

#[actix_web::test]
async fn sighup_reloads_without_polling() {
    let _only = SIGNALS.lock().await;
    let pki = Pki::new();
    let app = spawn_app_with(settings(&pki, 0, CrlWhenExpired::Reject).await).await;
    let port = app.api_port;
    let new = pki.renew_server_certificate();
    let status = Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let shown = eventually(DEADLINE, || async {
        served_fingerprint(port).await.filter(|fp| *fp == new)
    })
    .await;
    assert!(
        shown.is_some(),
        "SIGHUP did not reload the server certificate"
    );
}
