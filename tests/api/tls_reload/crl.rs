//! CRLs: a new one locks a revoked client out (sessions made before included); an expired one
//! refuses or admits clients by `tls.crl_when_expired`; its `nextUpdate` is published and logged.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use tkm::config::CrlWhenExpired;

use super::{admitted, logged, metrics, settings, Pki, DEADLINE, SIGNALS};
use crate::helpers::{certs, eventually, spawn_app_with};

#[actix_web::test]
async fn a_new_crl_revoking_a_client_locks_it_out_within_the_poll_interval() {
    let pki = Pki::new();
    let app = spawn_app_with(settings(&pki, 1, CrlWhenExpired::Reject).await).await;
    assert!(admitted(&app, "io").await, "io works before its revocation");

    pki.revoke("io");
    pki.write_crl(&["-crldays", "1"]);
    let locked_out = eventually(DEADLINE, || async {
        (!admitted(&app, "io").await).then_some(())
    })
    .await;
    assert!(locked_out.is_some(), "the revoked client still gets in");
    assert!(admitted(&app, "issuer").await, "other clients still get in");
    let m = metrics(&app).await;
    assert!(m.contains("tkm_tls_reloads_total{outcome=\"ok\"} 1"), "{m}");
}

/// `openssl s_client` (the crate's session resumption is `unsafe`) speaking `version`: one
/// request, the session saved to or resumed from `session`; returns its output.
fn s_client(port: u16, version: &str, session: &Path, resume: bool) -> String {
    let (cert, key, ca) = (
        certs().join("io.crt"),
        certs().join("io.key"),
        certs().join("ca.crt"),
    );
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            version,
        ])
        .args(["-servername", "localhost", "-ign_eof", "-cert"])
        .args([&cert, Path::new("-key"), &key, Path::new("-CAfile"), &ca])
        .args([if resume { "-sess_in" } else { "-sess_out" }])
        .arg(session)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const VERSIONS: [&str; 2] = ["-tls1_3", "-tls1_2"];

#[actix_web::test]
async fn a_session_made_before_a_revocation_is_not_resumed_after_it() {
    let _only = SIGNALS.lock().await;
    let pki = Pki::new();
    let app = spawn_app_with(settings(&pki, 1, CrlWhenExpired::Reject).await).await;
    let (port, dir) = (app.api_port, pki.dir.clone());
    let session = move |v: &str| dir.join(format!("io{v}.session"));
    let s = session.clone();
    let before = tokio::task::spawn_blocking(move || {
        VERSIONS.map(|v| {
            (
                s_client(port, v, &s(v), false),
                s_client(port, v, &s(v), true),
            )
        })
    })
    .await
    .unwrap();
    for (first, again) in before {
        assert!(first.contains("HTTP/1.1 200"), "{first}");
        assert!(
            again.contains("Reused,") && again.contains("HTTP/1.1 200"),
            "sessions resume before the reload, or this test proves nothing: {again}"
        );
    }

    pki.revoke("io");
    pki.write_crl(&["-crldays", "1"]);
    let locked_out = eventually(DEADLINE, || async {
        (!admitted(&app, "io").await).then_some(())
    })
    .await;
    assert!(locked_out.is_some(), "the revoked client still gets in");
    let after =
        tokio::task::spawn_blocking(move || VERSIONS.map(|v| s_client(port, v, &session(v), true)))
            .await
            .unwrap();
    for resumed in after {
        assert!(
            !resumed.contains("HTTP/1.1 200") && !resumed.contains("Reused,"),
            "a session from before the revocation let the revoked client in: {resumed}"
        );
    }
}

/// `YYYYMMDDHHMMSSZ` of a Unix time, as `openssl ca -crl_nextupdate` takes it.
fn asn1(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap()
        .format("%Y%m%d%H%M%SZ")
        .to_string()
}

#[actix_web::test]
async fn an_expired_crl_refuses_clients_by_default_and_admits_them_with_warn() {
    // Expired at 2020-01-02T00:00:00Z, and revoking `platform`.
    let expired = 1_577_923_200;
    let validity = [
        "-crl_lastupdate".to_owned(),
        asn1(expired - 86_400),
        "-crl_nextupdate".to_owned(),
        asn1(expired),
    ];
    let validity: Vec<&str> = validity.iter().map(String::as_str).collect();
    for policy in [CrlWhenExpired::Reject, CrlWhenExpired::Warn] {
        let pki = Pki::new();
        pki.revoke("platform");
        pki.write_crl(&validity);
        let app = spawn_app_with(settings(&pki, 1, policy).await).await;
        let io = admitted(&app, "io").await;
        match policy {
            CrlWhenExpired::Reject => assert!(!io, "reject refuses on an expired CRL"),
            CrlWhenExpired::Warn => assert!(io, "warn admits on an expired CRL"),
        }
        assert!(
            !admitted(&app, "platform").await,
            "the stale CRL's revocations still apply ({policy:?})"
        );
        let m = metrics(&app).await;
        assert!(
            m.contains(&format!(
                "tkm_tls_crl_next_update_timestamp_seconds {expired}"
            )),
            "{m}"
        );
        let crl = pki.path("crl.pem").display().to_string();
        assert!(logged(&["past its nextUpdate", &crl]).await);
        assert!(logged(&["checked against an expired CRL", &crl]).await);
    }
}

#[actix_web::test]
async fn a_crl_expiring_within_a_day_is_logged_and_published() {
    let pki = Pki::new();
    let next = tkm::api::tls_material::unix_now() + 2 * 3_600;
    pki.write_crl(&["-crl_nextupdate", &asn1(next)]);
    let app = spawn_app_with(settings(&pki, 1, CrlWhenExpired::Reject).await).await;
    assert!(admitted(&app, "io").await, "a CRL still valid admits");
    let m = metrics(&app).await;
    assert!(
        m.contains(&format!("tkm_tls_crl_next_update_timestamp_seconds {next}")),
        "{m}"
    );
    let crl = pki.path("crl.pem").display().to_string();
    assert!(logged(&["expires in less than a day", &crl]).await);
    // Without a CRL there is no such metric (rather than a 0 that would look expired).
    let mut s = settings(&pki, 1, CrlWhenExpired::Reject).await;
    s.server.crl_file = None;
    let bare = spawn_app_with(s).await;
    assert!(!metrics(&bare)
        .await
        .contains("tkm_tls_crl_next_update_timestamp_seconds"));
}
