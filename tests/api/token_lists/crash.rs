//! A crash (kill -9) in the middle of a 200 000-row list, then a restart: every row applied
//! exactly once (a row applied twice would be reported `ALREADY_KNOWN`).

use std::process::{Command, Stdio};
use std::time::Duration;

use secrecy::ExposeSecret;

use super::{list_name, par};
use crate::helpers::{eventually, root, test_settings, CANARY_SALT};

const ROWS: u64 = 200_000;

fn cli(config: &std::path::Path, s: &tkm::config::Settings, file: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tkm"));
    c.current_dir(root())
        .arg("--config")
        .arg(config)
        .arg("ingest-token-list")
        .arg(file)
        .env("TKM__DATABASE__URL", s.database.url.expose_secret())
        .env("TKM__HASHING__SALT", CANARY_SALT)
        .env("TKM__STORAGE__DIR", &s.storage.dir)
        .env("TKM__UPLOADS__BATCH_ROWS", "1000")
        .env_remove("TKM_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[actix_web::test]
async fn a_kill_9_mid_file_resumes_and_applies_each_row_once() {
    let s = test_settings().await;
    let config =
        crate::binary::config_file(&s, &format!("crash-{}", uuid::Uuid::new_v4().simple()));
    // Mastercard tokens (exempt from the range check), ten per PAR.
    let mut text = String::with_capacity(ROWS as usize * 50);
    for i in 0..ROWS {
        text.push_str(&format!("53{i:014};02;{}\n", par("5001", i / 10)));
    }
    let public = std::fs::read(&s.pgp.public_key_file).unwrap();
    let content = tkm::crypto::pgp::encrypt_to(&public, text.as_bytes(), false).unwrap();
    std::fs::create_dir_all(&s.storage.dir).unwrap();
    let file = s.storage.dir.with_extension("in").join(list_name(1));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &content).unwrap();

    let (pool_client, conn) =
        tokio_postgres::connect(s.database.url.expose_secret(), tokio_postgres::NoTls)
            .await
            .unwrap();
    actix_web::rt::spawn(conn);
    let mut child = cli(&config, &s, &file).spawn().unwrap();
    // Killed once some batches are committed, well before the end.
    let midway = eventually(Duration::from_secs(120), || async {
        let row = pool_client
            .query_opt("SELECT last_line, state FROM upload", &[])
            .await
            .ok()
            .flatten()?;
        let (line, state): (i64, String) = (row.get(0), row.get(1));
        (line >= 20_000).then_some((line, state))
    })
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    let (line, state) = midway.expect("the CLI commits batches");
    assert_eq!(state, "PROCESSING");
    assert!((line as u64) < ROWS, "killed midway (line {line})");

    // The same command again: the same file is recognised and resumed after its last line.
    let out = cli(&config, &s, &file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("uploaded before"), "{stdout}");
    let row = pool_client
        .query_one(
            "SELECT state, rows, accepted, discarded::text, (SELECT count(*) FROM upload), \
             (SELECT count(*) FROM token WHERE source = 'token-list') FROM upload",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "DONE");
    assert_eq!(row.get::<_, i64>(1), ROWS as i64);
    assert_eq!(row.get::<_, i64>(2), ROWS as i64, "every row applied");
    assert_eq!(row.get::<_, String>(3), "{}", "no row applied twice");
    assert_eq!(row.get::<_, i64>(4), 1, "one upload");
    assert_eq!(row.get::<_, i64>(5), ROWS as i64);
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}
