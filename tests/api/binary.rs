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

/// The dev configuration plus this test's secrets and queue names, written to a file for a
/// `tkm` child process (`tag` makes its name unique).
pub fn config_file(s: &tkm::config::Settings, tag: &str) -> std::path::PathBuf {
    let dev = std::fs::read_to_string(root().join("config/dev.toml")).unwrap();
    let key_file = s.vault.keys[0].key_file.clone().unwrap();
    let r = &s.rabbitmq;
    let empty_passphrase = root().join(format!("target/test-secrets/empty-passphrase-{tag}"));
    std::fs::write(&empty_passphrase, "").unwrap();
    let config = root().join(format!("target/test-secrets/serve-{tag}.toml"));
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
    config
}

/// Starts `tkm serve` on the dev configuration with this test's database, secrets and queues,
/// plus `env`; waits until it is ready. Answers the child and its API and ops ports.
async fn serve(env: &[(&str, &str)], wait_ready: bool) -> (std::process::Child, u16, u16) {
    let s = test_settings().await;
    let (api, ops) = (free_port(), free_port());
    let config = config_file(&s, &api.to_string());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tkm"))
        .current_dir(root())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("TKM__SERVER__BIND", format!("127.0.0.1:{api}"))
        .env("TKM__SERVER__OPS_BIND", format!("127.0.0.1:{ops}"))
        .env("TKM__DATABASE__URL", s.database.url.expose_secret())
        .env("TKM__HASHING__SALT", crate::helpers::CANARY_SALT)
        // Its own simulator: several of these tests run at once.
        .env("TKM__CIRCUITS__SIMULATOR__BIND", "127.0.0.1:0")
        .env(
            "TKM__CIRCUITS__SIMULATOR__KEYS_DIR",
            root().join(format!("target/test-secrets/simulator-serve-{api}")),
        )
        .env_remove("TKM_CONFIG")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let patience = Duration::from_secs(if wait_ready { 30 } else { 0 });
    let ready = crate::helpers::eventually(patience, || async move {
        let res = awc::Client::default()
            .get(format!("http://127.0.0.1:{ops}/health/ready"))
            .send()
            .await;
        res.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;
    if wait_ready && ready.is_none() {
        let _ = child.kill();
        panic!("tkm serve did not become ready");
    }
    (child, api, ops)
}

/// What a child writes on stderr, read as it comes: a pipe nobody reads fills up and blocks the
/// child's next write, which would look like a process that never exits.
#[derive(Clone, Default)]
struct Stderr(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Stderr {
    fn drain(child: &mut std::process::Child) -> Self {
        let out = Self::default();
        if let Some(mut pipe) = child.stderr.take() {
            let sink = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = std::io::Read::read(&mut pipe, &mut buf) {
                    sink.0.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        out
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Waits up to `limit` for the child to exit; answers its status and what it wrote on stderr
/// (read until the pipe closes, within the same limit).
async fn exit_within(
    child: &mut std::process::Child,
    limit: Duration,
) -> (std::process::ExitStatus, String) {
    let stderr = Stderr::drain(child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "tkm did not exit within {limit:?}; its stderr: {}",
                stderr.text()
            );
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    // The reader thread sees the pipe close once the process is gone.
    while std::sync::Arc::strong_count(&stderr.0) > 1 && started.elapsed() < limit {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    (status, stderr.text())
}

#[actix_web::test]
async fn serve_answers_and_exits_cleanly_on_sigterm() {
    let (mut child, api, _ops) = serve(&[], true).await;
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
    let (status, stderr) = exit_within(&mut child, Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status}: {stderr}");
}

#[actix_web::test]
async fn a_panic_in_an_actor_ends_the_process_with_a_non_zero_code() {
    // A development installation can be told to send an actor a message that panics.
    let (mut child, _api, _ops) = serve(&[("TKM_TEST_PANIC_AFTER_MS", "1000")], false).await;
    // The timer starts once the actors do, however long start-up takes on a loaded machine.
    let (status, stderr) = exit_within(&mut child, Duration::from_secs(90)).await;
    assert_eq!(status.code(), Some(70), "exit status {status}: {stderr}");
    assert!(stderr.contains("panic at src/actors/"), "{stderr}");
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
