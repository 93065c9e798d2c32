//! Acquirers' token lists: the public key they encrypt to.

use awc::http::Method;

use crate::helpers::spawn_app;

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
