//! Talking to the application through the real RabbitMQ: publish to its inbound queues, read its
//! outbound and dead-letter queues, encrypt with the real GnuPG.

use std::process::{Command, Stdio};
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::support::helpers::TestApp;

/// A confirm-mode channel to the local broker.
pub async fn channel() -> (Connection, Channel) {
    let conn = Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ runs on 127.0.0.1:5672 (scripts/services.sh starts it)");
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (conn, ch)
}

/// Publishes `body` to `queue` (default exchange) with a message id, and waits for the confirm.
pub async fn publish(ch: &Channel, queue: &str, body: &[u8], message_id: &str) {
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            body,
            BasicProperties::default()
                .with_message_id(message_id.into())
                .with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        confirm.is_ack() && confirm.take_message().is_none(),
        "{queue} must exist"
    );
}

/// Waits until the application has declared its topology (its queues exist).
pub async fn wait_for_topology(app: &TestApp) {
    let ready = crate::support::helpers::eventually(Duration::from_secs(15), || async {
        let mut res = awc::Client::default()
            .get(app.ops_url("/health/ready"))
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = res.json().await.ok()?;
        (body["broker"] == "up").then_some(())
    })
    .await;
    if ready.is_none() {
        let mut res = awc::Client::default()
            .get(app.ops_url("/health/ready"))
            .send()
            .await
            .unwrap();
        panic!("the bridge did not connect: {:?}", res.body().await);
    }
}

/// Takes the next message from `queue`, waiting up to `deadline`.
pub async fn next(
    ch: &Channel,
    queue: &str,
    deadline: Duration,
) -> Option<lapin::message::BasicGetMessage> {
    crate::support::helpers::eventually(deadline, || async {
        let got = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .ok()??;
        got.delivery.ack(BasicAckOptions::default()).await.ok()?;
        Some(got)
    })
    .await
}

/// Everything in `queue` now (after waiting `settle` for stragglers).
pub async fn drain(
    ch: &Channel,
    queue: &str,
    settle: Duration,
) -> Vec<lapin::message::BasicGetMessage> {
    actix_web::rt::time::sleep(settle).await;
    let mut all = Vec::new();
    while let Some(m) = next(ch, queue, Duration::from_millis(50)).await {
        all.push(m);
    }
    all
}

/// Encrypts with the real GnuPG to the application's public key (armored when asked).
pub fn gpg_encrypt(app: &TestApp, plaintext: &[u8], armor: bool, compress: &str) -> Vec<u8> {
    let home = tempdir();
    let gpg = |args: &[&str]| {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", &home)
            .args(["--batch", "--yes", "--quiet", "--trust-model", "always"])
            .args(args);
        c
    };
    let status = gpg(&["--import"])
        .arg(&app.settings.pgp.public_key_file)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "gpg --import");
    let mut cmd = gpg(&[
        "--encrypt",
        "--recipient",
        "tkm@test",
        "--compress-algo",
        compress,
    ]);
    if armor {
        cmd.arg("--armor");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(plaintext).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gpg --encrypt");
    let _ = std::fs::remove_dir_all(&home);
    out.stdout
}

/// Encrypts with tkm's own OpenPGP code (fast, for volume).
pub fn encrypt(app: &TestApp, plaintext: &[u8]) -> Vec<u8> {
    let public = std::fs::read(&app.settings.pgp.public_key_file).unwrap();
    tkm::crypto::pgp::encrypt_to(&public, plaintext, false).unwrap()
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tkm-gpg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    d
}

/// The header `name` of a message as text.
pub fn header(m: &lapin::message::BasicGetMessage, name: &str) -> Option<String> {
    let headers = m.delivery.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        lapin::types::AMQPValue::LongString(s) => {
            Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        other => Some(format!("{other:?}")),
    }
}
