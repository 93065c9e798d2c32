//! The `tkm` binary itself: `serve` on a configuration from the environment, graceful SIGTERM;
//! `check-config` names a bad key.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use crate::helpers::{root, test_settings};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[actix_web::test]
async fn serve_answers_and_exits_cleanly_on_sigterm() {
    let s = test_settings().await;
    let (api, ops) = (free_port(), free_port());
    // The dev configuration plus this test's secrets.
    let dev = std::fs::read_to_string(root().join("config/dev.toml")).unwrap();
    let key_file = s.vault.keys[0].key_file.clone().unwrap();
    let r = &s.rabbitmq;
    let empty_passphrase = root().join(format!("target/test-secrets/empty-passphrase-{api}"));
    std::fs::write(&empty_passphrase, "").unwrap();
    let config = root().join(format!("target/test-secrets/serve-{api}.toml"));
    std::fs::write(
        &config,
        format!(
            "{dev}\n[vault]\nkeys = [{{ id = \"dev1\", key_file = \"{}\" }}]\n\
             [pgp]\nprivate_key_file = \"{}\"\npublic_key_file = \"{}\"\npassphrase_file = \"{}\"\n\
             [rabbitmq]\ncard_events_queue = \"{}\"\ncard_deletions_queue = \"{}\"\n\
             transactions_queue = \"{}\"\nout_exchange = \"{}\"\ncard_updates_queue = \"{}\"\n\
             outcomes_queue = \"{}\"\ndead_letter_exchange = \"{}\"\ndead_letter_queue = \"{}\"\ndead_letter_audit_queue = \"{}\"\n\
             queue_expires_ms = 600000\n",
            key_file.display(),
            s.pgp.private_key_file.display(),
            s.pgp.public_key_file.display(),
            empty_passphrase.display(),
            r.card_events_queue,
            r.card_deletions_queue,
            r.transactions_queue,
            r.out_exchange,
            r.card_updates_queue,
            r.outcomes_queue,
            r.dead_letter_exchange,
            r.dead_letter_queue,
            r.dead_letter_audit_queue,
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tkm"))
        .current_dir(root())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("TKM__SERVER__BIND", format!("127.0.0.1:{api}"))
        .env("TKM__SERVER__OPS_BIND", format!("127.0.0.1:{ops}"))
        .env("TKM__DATABASE__URL", s.database.url.expose_secret())
        .env("TKM__HASHING__SALT", crate::helpers::CANARY_SALT)
        .env_remove("TKM_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = crate::helpers::eventually(Duration::from_secs(30), || async move {
        let res = awc::Client::default()
            .get(format!("http://127.0.0.1:{ops}/health/ready"))
            .send()
            .await;
        res.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;
    if ready.is_none() {
        let _ = child.kill();
        panic!("tkm serve did not become ready");
    }
    let live = crate::helpers::client(Some("io"))
        .get(format!("https://localhost:{api}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("tkm did not exit within 30 s of SIGTERM");
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn check_config_names_the_bad_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_tkm"))
        .current_dir(root())
        .args(["check-config"])
        .env("TKM__DATABASE__POOL_SIZE", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database.pool_size"), "{err}");
}

#[test]
fn production_never_runs_on_the_simulator_by_accident() {
    // The embedded defaults answer the circuits with the simulator: without `dev = true` tkm
    // refuses to start and names the setting.
    let out = Command::new(env!("CARGO_BIN_EXE_tkm"))
        .current_dir(root())
        .args(["check-config"])
        .env_remove("TKM_CONFIG")
        .env("TKM__DEV", "false")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("circuits.mode"), "{err}");
    assert!(err.contains("dev = true"), "{err}");
    // With `dev = true` (config/dev.toml) the same defaults pass that check.
    let (private, public) = crate::helpers::pgp_key_files();
    let out = Command::new(env!("CARGO_BIN_EXE_tkm"))
        .current_dir(root())
        .args(["--config", "config/dev.toml", "check-config"])
        .env_remove("TKM_CONFIG")
        .env("TKM__PGP__PRIVATE_KEY_FILE", &private)
        .env("TKM__PGP__PUBLIC_KEY_FILE", &public)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("circuits.mode"), "{err}");
}
