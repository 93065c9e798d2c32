//! Acquirers' token lists (TK9): the public key they encrypt to, uploads and their reports,
//! processing (GnuPG and BouncyCastle files, every discard reason, the size cap), a crash in
//! the middle of a file.

mod crash;
mod ingest;
mod race;
mod upload;

use std::time::Duration;

use awc::http::Method;
use serde_json::Value;

use crate::helpers::{eventually, spawn_app, TestApp};

/// A token list's name for the dev acquirer (ABI 99999), numbered `seq`.
pub fn list_name(seq: u32) -> String {
    format!("TKM.99999.TKNLST.20261123.101500.{seq:03}.csv.pgp")
}

/// A PAR of 29 characters ending in `n`.
pub fn par(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:0>25}")
}

/// Token BIN ranges: Visa 400000–400099 (6 digits), Amex 370000000000–370000999999.
pub async fn seed_ranges(app: &TestApp) {
    app.pool
        .get()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO bin_range (circuit, min_bound, max_bound, token, created_by, updated_by) VALUES \
             ('VISA', '400000', '400099', true, 't', 't'), \
             ('AMEX', '370000000000', '370000999999', true, 't', 't'), \
             ('VISA', '490000', '499999', false, 't', 't')",
        )
        .await
        .unwrap();
}

/// A report as `role`.
pub async fn report(app: &TestApp, role: &str, id: &str) -> crate::helpers::Reply {
    app.call(role, Method::GET, &format!("/token-list/{id}"), &[], None)
        .await
}

/// Waits until the upload is DONE or REJECTED and returns its report.
pub async fn finished(app: &TestApp, id: &str) -> Value {
    eventually(Duration::from_secs(60), || async {
        let r = report(app, "acquirer", id).await;
        assert_eq!(r.status, 200, "{}", r.text);
        matches!(r.json["state"].as_str(), Some("DONE" | "REJECTED")).then_some(r.json)
    })
    .await
    .expect("the upload is processed")
}

#[actix_web::test]
async fn acquirers_get_the_public_key_gnupg_encrypts_to() {
    let app = spawn_app().await;
    let r = app
        .call("acquirer", Method::GET, "/token-list/public-key", &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let file = std::fs::read_to_string(&app.settings.pgp.public_key_file).unwrap();
    assert_eq!(r.text, file);
    assert!(r.text.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    // What is served is a key GnuPG takes.
    let home = std::env::temp_dir().join(format!("tkm-gpg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&home).unwrap();
    let key = home.join("served.asc");
    std::fs::write(&key, &r.bytes).unwrap();
    let status = std::process::Command::new("gpg")
        .env("GNUPGHOME", &home)
        .args(["--batch", "--quiet", "--import"])
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&home);
    assert!(status.success(), "gpg --import of the served key");

    for role in ["platform", "issuer", "io"] {
        app.call(role, Method::GET, "/token-list/public-key", &[], None)
            .await
            .assert_error(403, 9403);
    }
}
