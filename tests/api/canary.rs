//! S2, every flow: canary PANs and token PANs go through card events (good and poison),
//! deletions, PAR lookups, a token list, a transaction file, a transaction message and the list
//! builds; then the logs, every error body and report, the metrics, every message tkm published
//! (card updates, outcomes, dead letters), the files under `storage.dir` and the temp dir, and
//! every database column but the vault's ciphertexts are searched for them and for the salt. One
//! hit fails the test.

use std::path::Path;
use std::time::{Duration, SystemTime};

use awc::http::Method;
use serde_json::json;

use crate::broker::{channel, drain, encrypt, gpg_encrypt, publish, wait_for_topology};
use crate::helpers::{
    captured_logs, eventually, job_end, sha, spawn_app, tax_code, upload, TestApp, CANARY_SALT,
};

/// Unique to this test (Luhn is not required), so other tests' output cannot hide a leak.
const CARD: &str = "4000017777777771";
const TOKEN: &str = "4000027777777772";
const LISTED_TOKEN: &str = "4000037777777773";
const FILE_PAN: &str = "4000047777777774";
const MESSAGE_PAN: &str = "4000057777777775";
const POISON_PAN: &str = "4000067777777776";
const ALL: [&str; 6] = [CARD, TOKEN, LISTED_TOKEN, FILE_PAN, MESSAGE_PAN, POISON_PAN];

/// The columns that hold vault ciphertexts (AES-256-GCM).
const SEALED: [&str; 3] = ["card.pan_ct", "token.token_ct", "dead_letter.sealed"];

fn leaks(what: &str, text: &str) -> Vec<String> {
    ALL.iter()
        .chain(std::iter::once(&CANARY_SALT))
        .filter(|c| text.contains(**c))
        .map(|c| format!("{what} holds {}…", &c[..6]))
        .collect()
}

/// Files under `dir` changed since `since` (up to 64 MiB each), searched as bytes.
fn scan_files(dir: &Path, since: SystemTime, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            scan_files(&path, since, found);
        } else if meta.is_file()
            && meta.len() <= 64 << 20
            && meta.modified().is_ok_and(|m| m >= since)
        {
            if let Ok(bytes) = std::fs::read(&path) {
                found.extend(leaks(
                    &path.display().to_string(),
                    &String::from_utf8_lossy(&bytes),
                ));
            }
        }
    }
}

async fn published_so_far(app: &TestApp, bodies: &mut Vec<String>) {
    let (_c, ch) = channel().await;
    let r = &app.settings.rabbitmq;
    for queue in [
        &r.card_updates_queue,
        &r.outcomes_queue,
        &r.dead_letter_queue,
    ] {
        for m in drain(&ch, queue, Duration::from_millis(300)).await {
            let headers = format!("{:?}", m.delivery.properties.headers());
            bodies.push(format!(
                "{queue}: {} {headers}",
                String::from_utf8_lossy(&m.delivery.data)
            ));
        }
    }
}

/// Uploads `content` to `path` as the acquirer and waits until it is done: (id, report text).
async fn processed(app: &TestApp, path: &str, name: &str, content: &[u8]) -> (String, String) {
    let sent = upload(app, "acquirer", path, name, content).await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let id = sent.json["id"].as_str().unwrap().to_owned();
    let report = eventually(Duration::from_secs(60), || async {
        let r = app
            .call("acquirer", Method::GET, &format!("{path}/{id}"), &[], None)
            .await;
        (r.json["state"] == "DONE").then_some(r.text)
    })
    .await
    .unwrap_or_else(|| panic!("{name} is processed"));
    (id, report)
}

fn trnlog_row(hash_pan: &str, id: &str, acquirer_id: &str) -> String {
    let at = (chrono::Utc::now() - chrono::Duration::days(2)).format("%Y-%m-%dT%H:%M:%S%.3f+00:00");
    format!("99999;00;01;{hash_pan};{at};{id};;;1000;978;{acquirer_id};m1;t1;400012;5411;")
}

#[actix_web::test]
async fn no_card_number_or_salt_leaks_from_any_flow() {
    let since = SystemTime::now() - Duration::from_secs(1);
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    let mut seen: Vec<String> = Vec::new();
    let tc = tax_code();
    let consent = app
        .call(
            "io",
            Method::POST,
            "/consent",
            &[("Tax-Code", &tc), ("Client-Id", "canary")],
            Some(json!({"consent": "Allow"})),
        )
        .await;
    assert!(consent.status < 300, "{}", consent.text);

    // Card events: one good (a card and a token), one poison (plain JSON, not PGP), and a
    // deletion whose hpan is a card number.
    let (_c, ch) = channel().await;
    let r = app.settings.rabbitmq.clone();
    let event = json!({"taxCode": tc, "pan": CARD, "circuit": "VISA",
        "tokens": [{"token": TOKEN}]});
    let body = encrypt(&app, &serde_json::to_vec(&event).unwrap());
    publish(&ch, &r.card_events_queue, &body, "canary-1").await;
    let poison = json!({"taxCode": tc, "pan": POISON_PAN, "circuit": "VISA"});
    let poison = serde_json::to_vec(&poison).unwrap();
    publish(&ch, &r.card_events_queue, &poison, "canary-2").await;
    let deletion =
        json!({"taxCode": tc, "hpan": POISON_PAN, "timestamp": "2026-11-23 10:15:00:0000"});
    let deletion = serde_json::to_vec(&deletion).unwrap();
    publish(&ch, &r.card_deletions_queue, &deletion, "canary-3").await;
    let stored = eventually(Duration::from_secs(30), || async {
        let n: i64 = app
            .pool
            .get()
            .await
            .ok()?
            .query_one("SELECT count(*) FROM card WHERE hpan = $1", &[&sha(CARD)])
            .await
            .ok()?
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the card is stored");

    // PAR lookups through the simulator (the card number goes to the circuit, nowhere else).
    let refresh = app
        .call("admin", Method::POST, "/admin/par/refresh", &[], None)
        .await;
    assert_eq!(refresh.status, 202, "{}", refresh.text);
    job_end(&app, refresh.json["jobId"].as_str().unwrap()).await;

    // A token list: one kept row, one refused row.
    app.pool
        .get()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO bin_range (circuit, min_bound, max_bound, token, created_by, updated_by) \
             VALUES ('VISA', '400000', '400099', true, 't', 't')",
        )
        .await
        .unwrap();
    let list = format!(
        "{LISTED_TOKEN};01;V0010000000000000000000007777\n{POISON_PAN};77;V0010000000000000000000007777\n"
    );
    let sealed = gpg_encrypt(&app, list.as_bytes(), false, "zlib");
    let name = "TKM.99999.TKNLST.20261123.101500.001.csv.pgp";
    let (_, report) = processed(&app, "/token-list", name, &sealed).await;
    seen.push(format!("token-list report: {report}"));

    // A transaction file with clear PANs in column 4 (one row valid, one invalid).
    let rows = [
        trnlog_row(FILE_PAN, "canary-trx-1", "acq1"),
        trnlog_row(FILE_PAN, "canary-trx-2", ""),
    ];
    let name = "CSTAR.99999.TRNLOG.20261123.101500.001.csv";
    let (id, report) = processed(&app, "/transactions", name, rows.join("\n").as_bytes()).await;
    seen.push(format!("transactions report: {report}"));
    for path in [
        format!("/transactions/{id}/outcomes"),
        format!("/transactions/{id}/outcomes/1/explain"),
        format!("/transactions/{id}/outcomes/2/explain"),
    ] {
        let r = app.call("acquirer", Method::GET, &path, &[], None).await;
        seen.push(format!("{path}: {}", r.text));
    }

    // A transaction message with a clear PAN (dead-lettered as its SHA-256).
    let message = json!([{"acquirerCode": "99999", "operationType": "00", "circuitType": "01",
        "hpan": MESSAGE_PAN, "trxDate": "2026-11-20T10:00:00.000+01:00", "idTrxAcquirer": "m-1",
        "amount": 100, "acquirerId": "a", "merchantId": "m", "terminalId": "t",
        "bin": "400012", "mcc": "5411"}]);
    publish(
        &ch,
        &r.transactions_queue,
        &serde_json::to_vec(&message).unwrap(),
        "canary-4",
    )
    .await;

    // The lists.
    let build = app
        .call("admin", Method::POST, "/admin/lists/generate", &[], None)
        .await;
    if build.status == 202 {
        job_end(&app, build.json["jobId"].as_str().unwrap()).await;
    }

    // Error bodies that could echo a number: names, paths, queries.
    for (path, role) in [
        (format!("/cards?hpan={CARD}"), "platform"),
        (format!("/transactions/{CARD}"), "acquirer"),
        (format!("/token-list/{TOKEN}"), "acquirer"),
    ] {
        let r = app.call(role, Method::GET, &path, &[], None).await;
        assert!(r.status >= 400, "{}", r.status);
        seen.push(format!("error body ({role}, {}): {}", r.status, r.text));
    }
    let refused = upload(
        &app,
        "acquirer",
        "/transactions",
        &format!("CSTAR.99999.TRNLOG.{CARD}.csv"),
        b"x",
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    seen.push(format!("refused upload: {}", refused.text));

    // Everything tkm published, once the dead letters are in.
    let lettered = eventually(Duration::from_secs(20), || async {
        let m = app.metrics().await;
        (m.matches(r#"outcome="dead-lettered""#).count() >= 3).then_some(())
    })
    .await;
    assert!(
        lettered.is_some(),
        "three dead letters: {}",
        app.metrics().await
    );
    published_so_far(&app, &mut seen).await;
    seen.push(app.metrics().await);
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();

    let mut found: Vec<String> = seen
        .iter()
        .flat_map(|s| leaks(&s[..s.len().min(60)], s))
        .collect();
    found.extend(leaks("the logs", &logs));
    scan_files(&app.settings.storage.dir, since, &mut found);
    scan_files(&std::env::temp_dir(), since, &mut found);
    for canary in ALL.iter().chain(std::iter::once(&CANARY_SALT)) {
        for column in app.columns_holding(canary, &SEALED).await {
            found.push(format!("{column} holds {}…", &canary[..6]));
        }
    }
    assert!(found.is_empty(), "leaks: {found:#?}");
    // The flows really ran: what was published is there, hashed.
    let all = seen.join("\n");
    assert!(
        all.contains(&sha(FILE_PAN)),
        "the file's PAN is published hashed"
    );
    let dlq = format!("{}: ", r.dead_letter_queue);
    let dead = seen.iter().filter(|s| s.starts_with(&dlq)).count();
    assert!(dead >= 3, "the dead letters were read: {dead}");
}
