//! A kill -9 of `tkm ingest-transactions` in the middle of a 100 000-row file, then the same
//! command again: every line decided once, no record taken for a duplicate of itself, the
//! reversals (read again on resume) correlated, the same outcomes as an uninterrupted run.

use std::process::{Command, Stdio};
use std::time::Duration;

use secrecy::ExposeSecret;

use super::{env, row};
use crate::helpers::{eventually, root, sha, CANARY_SALT};

const ROWS: u64 = 100_000;

fn cli(config: &std::path::Path, s: &tkm::config::Settings, file: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tkm"));
    c.current_dir(root())
        .arg("--config")
        .arg(config)
        .arg("ingest-transactions")
        .arg(file)
        .env("TKM__DATABASE__URL", s.database.url.expose_secret())
        .env("TKM__HASHING__SALT", CANARY_SALT)
        .env("TKM__STORAGE__DIR", &s.storage.dir)
        .env("TKM__MATCHING__BATCH_ROWS", "2000")
        .env_remove("TKM_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[actix_web::test]
async fn a_kill_9_mid_file_resumes_and_decides_each_line_once() {
    let e = env().await;
    e.period(1, -200, 100, 30).await;
    let tc = e.citizen(&[]).await;
    let card = e
        .card("crash-card", &tc, None, super::noon(-100), None)
        .await;
    // Every tenth row a payment of the card, every thousandth a reversal of one of them (on
    // the resumed side of the kill, so they are read again); the rest unknown.
    let rows: Vec<String> = (0..ROWS)
        .map(|i| match i {
            i if i % 1000 == 999 => row("01", &card, -10, &format!("r{i}"), 1000 + i - 9, "", ""),
            i if i % 10 == 0 => row("00", &card, -10, &format!("p{i}"), 1000 + i, "", ""),
            i => row(
                "00",
                &sha(&format!("nobody{i}")),
                -10,
                &format!("n{i}"),
                5,
                "",
                "",
            ),
        })
        .collect();
    let path = e.file(7, &rows);
    let config = crate::binary::config_file(
        &e.settings,
        &format!("trn-crash-{}", uuid::Uuid::new_v4().simple()),
    );

    let (client, conn) = tokio_postgres::connect(
        e.settings.database.url.expose_secret(),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    actix_web::rt::spawn(conn);
    let mut child = cli(&config, &e.settings, &path).spawn().unwrap();
    let midway = eventually(Duration::from_secs(120), || async {
        let row = client
            .query_opt("SELECT last_line FROM upload", &[])
            .await
            .ok()
            .flatten()?;
        let line: i64 = row.get(0);
        (line >= 20_000).then_some(line)
    })
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    let line = midway.expect("the command commits batches");
    assert!((line as u64) < ROWS, "killed midway (line {line})");

    let out = cli(&config, &e.settings, &path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("received before"), "{stdout}");
    let counts: Vec<(String, Option<String>, i64)> = client
        .query(
            "SELECT outcome, reason, count(*) FROM txn_outcome GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let n = |o: &str| counts.iter().filter(|c| c.0 == o).map(|c| c.2).sum::<i64>();
    assert_eq!(n("ACCEPTED"), 10_000, "{counts:?}");
    assert_eq!(n("REVERSAL_TOTAL"), 100, "{counts:?}");
    assert_eq!(n("DISCARDED"), 89_900, "{counts:?}");
    assert!(
        !counts.iter().any(|c| c.1.as_deref() == Some("12")),
        "no line is its own duplicate: {counts:?}"
    );
    let lines: i64 = client
        .query_one("SELECT count(DISTINCT line) FROM txn_outcome", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(lines as u64, ROWS);
}
