//! `tkm ingest-transactions`: a report per file, a non-zero exit for a refused name, and a
//! damaged PGP file rejected before any row is decided.

use std::process::{Command, Stdio};

use secrecy::ExposeSecret;

use super::{env, row};
use crate::helpers::{root, CANARY_SALT};

fn cli(
    config: &std::path::Path,
    s: &tkm::config::Settings,
    files: &[&std::path::Path],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tkm"))
        .current_dir(root())
        .arg("--config")
        .arg(config)
        .arg("ingest-transactions")
        .args(files)
        .env("TKM__DATABASE__URL", s.database.url.expose_secret())
        .env("TKM__HASHING__SALT", CANARY_SALT)
        .env("TKM__STORAGE__DIR", &s.storage.dir)
        .env_remove("TKM_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[actix_web::test]
async fn the_command_reports_each_file_and_fails_on_a_refused_one() {
    let e = env().await;
    e.period(1, -200, 100, 30).await;
    let a = e.citizen(&[]).await;
    let c = e.card("cli-card", &a, None, super::noon(-100), None).await;
    let good = e.file(
        1,
        &[
            row("00", &c, -10, "p1", 5, "", ""),
            row("00", &c, -300, "p2", 5, "", ""),
        ],
    );
    let config = crate::binary::config_file(
        &e.settings,
        &format!("trn-{}", uuid::Uuid::new_v4().simple()),
    );
    let out = cli(&config, &e.settings, &[&good]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("DONE: 2 rows"), "{stdout}");
    assert!(
        stdout.contains("ACCEPTED: 1") && stdout.contains("DISCARDED 02: 1"),
        "{stdout}"
    );

    // A wrong name is refused before anything is read; a PGP file that does not decrypt is
    // rejected with no outcome stored.
    let dir = good.parent().unwrap();
    let badname = dir.join("CSTAR.36081.TRNLOG.bad.csv");
    std::fs::write(&badname, "x").unwrap();
    let damaged = dir.join("CSTAR.36081.TRNLOG.20260101.120000.009.csv.pgp");
    let mut bytes = tkm::crypto::pgp::encrypt_to(
        &std::fs::read(&e.settings.pgp.public_key_file).unwrap(),
        row("00", &c, -10, "p9", 5, "", "").as_bytes(),
        false,
    )
    .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&damaged, &bytes).unwrap();
    let out = cli(&config, &e.settings, &[&badname, &damaged]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("file name must be CSTAR."), "{stderr}");
    assert!(
        stderr.contains("2 of 2 file(s) refused or rejected"),
        "{stderr}"
    );
    assert!(stdout.contains("REJECTED"), "{stdout}");
    let conn = e.pool.get().await.unwrap();
    let n: i64 = conn
        .query_one(
            "SELECT count(*) FROM txn_outcome o JOIN upload u ON u.id = o.source_id WHERE u.state = 'REJECTED'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}
