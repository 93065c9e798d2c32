//! Transaction files through the mTLS API: award periods (admin), a plain file with a clear PAN
//! stored encrypted and matched, its report and outcome CSV, another acquirer's view, the same
//! file again, and a name refused before anything is stored.

use std::time::Duration;

use awc::http::Method;
use serde_json::json;

use super::{row, Env, ABI};
use crate::helpers::{eventually, sha, spawn_app, upload, TestApp};

const PAN: &str = "4000123412341234";

async fn finished(app: &TestApp, id: &str) -> serde_json::Value {
    eventually(Duration::from_secs(60), || async {
        let r = app
            .call(
                "acquirer",
                Method::GET,
                &format!("/transactions/{id}"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        matches!(r.json["state"].as_str(), Some("DONE" | "REJECTED")).then_some(r.json)
    })
    .await
    .expect("the file is matched")
}

#[actix_web::test]
async fn award_periods_are_managed_by_admins() {
    let app = spawn_app().await;
    let p = json!({"id": "2026-h1", "start": "2026-01-01", "end": "2026-06-30", "graceDays": 10});
    let r = app
        .call(
            "admin",
            Method::POST,
            "/admin/award-periods",
            &[],
            Some(p.clone()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let again = app
        .call("admin", Method::POST, "/admin/award-periods", &[], Some(p))
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    let overlap = json!({"id": "other", "start": "2026-06-30", "end": "2026-12-31"});
    let r = app
        .call(
            "admin",
            Method::POST,
            "/admin/award-periods",
            &[],
            Some(overlap),
        )
        .await;
    r.assert_error(400, 4000);
    let backwards = json!({"id": "back", "start": "2027-02-01", "end": "2027-01-01"});
    let r = app
        .call(
            "admin",
            Method::POST,
            "/admin/award-periods",
            &[],
            Some(backwards),
        )
        .await;
    r.assert_error(400, 4000);
    let no_grace = json!({"id": "2026-h2", "start": "2026-07-01", "end": "2026-12-31"});
    let r = app
        .call(
            "admin",
            Method::POST,
            "/admin/award-periods",
            &[],
            Some(no_grace),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let list = app
        .call("admin", Method::GET, "/admin/award-periods", &[], None)
        .await;
    assert_eq!(
        list.json,
        json!([
            {"id": "2026-h1", "start": "2026-01-01", "end": "2026-06-30", "graceDays": 10},
            {"id": "2026-h2", "start": "2026-07-01", "end": "2026-12-31", "graceDays": 30}
        ])
    );
    let r = app
        .call("acquirer", Method::GET, "/admin/award-periods", &[], None)
        .await;
    assert_eq!(r.status, 403);
}

#[actix_web::test]
async fn a_plain_file_is_stored_encrypted_matched_and_reported() {
    let app = spawn_app().await;
    let e = Env::of(&app);
    e.period(1, -200, 100, 30).await;
    let tc = e.citizen(&[]).await;
    let card = e.card(PAN, &tc, None, super::noon(-100), None).await;
    let text = [
        row("00", PAN, -10, "clear-1", 700, "", ""),
        row("00", &card, -10, "hashed-1", 800, "", ""),
        row("00", &sha("nobody"), -10, "nobody-1", 900, "", ""),
        row("00", &card, -10, "bad-1", 1, "", "").replace(";acq1;", ";;"),
    ]
    .join("\r\n");
    let name = format!("CSTAR.{ABI}.TRNLOG.20260101.120000.001.csv");
    let r = upload(&app, "acquirer", "/transactions", &name, text.as_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json["filename"], name);

    let report = finished(&app, &id).await;
    assert_eq!(report["state"], "DONE", "{report}");
    assert_eq!(report["rows"], 4);
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["discarded"], json!({"10": 1, "11": 1}));
    assert_eq!(
        report["reversals"],
        json!({"total": 0, "partial": 0, "uncorrelated": 0})
    );
    let csv = app
        .call(
            "acquirer",
            Method::GET,
            &format!("/transactions/{id}/outcomes"),
            &[],
            None,
        )
        .await;
    assert_eq!(csv.status, 200);
    assert_eq!(
        csv.text,
        "1;clear-1;ACCEPTED;;HPAN;\n2;hashed-1;ACCEPTED;;HPAN;\n3;nobody-1;DISCARDED;10;NONE;\n4;bad-1;DISCARDED;11;NONE;acquirer_id\n"
    );

    // The outcomes are published once, through the outbox: accepted records with their details,
    // discarded ones minimised.
    crate::broker::wait_for_topology(&app).await;
    let (_conn, ch) = crate::broker::channel().await;
    let queue = app.settings.rabbitmq.outcomes_queue.clone();
    let message = crate::broker::next(&ch, &queue, Duration::from_secs(30))
        .await
        .expect("an outcome message");
    let body: serde_json::Value = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(body["source"], json!({"file": name, "id": id}));
    let records = body["records"].as_array().unwrap();
    assert_eq!(records.len(), 4);
    assert_eq!(records[1]["outcome"], "ACCEPTED");
    assert_eq!(records[1]["hpan"], card.as_str());
    assert_eq!(records[1]["amount"], 800);
    assert_eq!(records[1]["acquirerCode"], ABI);
    assert_eq!(records[1]["operationType"], "00");
    assert_eq!(
        records[0]["hpan"],
        sha(PAN).as_str(),
        "the clear PAN is published as its hash"
    );
    assert_eq!(
        records[2],
        json!({"line": 3, "idTrxAcquirer": "nobody-1", "outcome": "DISCARDED", "reason": "10", "match": "NONE"})
    );
    assert!(!String::from_utf8_lossy(&message.delivery.data).contains(PAN));
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"tkm_transactions_total{outcome="ACCEPTED",reason=""} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"tkm_transactions_total{outcome="DISCARDED",reason="11"} 1"#));

    // No table holds the clear PAN (the file on disk: see the sealing test below).
    assert_eq!(app.columns_holding(PAN, &[]).await, Vec::<String>::new());

    // Explanations: the owner, the platform and admins; another acquirer gets 404.
    let path = format!("/transactions/{id}/outcomes/3/explain");
    for role in ["acquirer", "platform", "admin"] {
        let x = app.call(role, Method::GET, &path, &[], None).await;
        assert_eq!(x.status, 200, "{role}: {}", x.text);
        assert_eq!(x.json["decidedBy"], "INSTRUMENT");
        assert_eq!(x.json["agrees"], true);
    }
    app.call("acquirer2", Method::GET, &path, &[], None)
        .await
        .assert_error(404, 4001);
    let none = format!("/transactions/{id}/outcomes/99/explain");
    app.call("acquirer", Method::GET, &none, &[], None)
        .await
        .assert_error(404, 4001);
    let io = app.call("io", Method::GET, &path, &[], None).await;
    assert_eq!(io.status, 403);

    // Another acquirer sees nothing; the platform sees it.
    let other = app
        .call(
            "acquirer2",
            Method::GET,
            &format!("/transactions/{id}"),
            &[],
            None,
        )
        .await;
    other.assert_error(404, 4001);
    let other = app
        .call(
            "acquirer2",
            Method::GET,
            &format!("/transactions/{id}/outcomes"),
            &[],
            None,
        )
        .await;
    other.assert_error(404, 4001);
    let platform = app
        .call(
            "platform",
            Method::GET,
            &format!("/transactions/{id}"),
            &[],
            None,
        )
        .await;
    assert_eq!(platform.status, 200);

    // The same file again: the first id, matched once.
    let again = upload(&app, "acquirer", "/transactions", &name, text.as_bytes()).await;
    assert_eq!(again.json["id"], id.as_str());
    let dir = app.settings.storage.dir.join("uploads");
    let emptied = eventually(Duration::from_secs(10), || async {
        (std::fs::read_dir(&dir).unwrap().count() == 0).then_some(())
    })
    .await;
    assert!(
        emptied.is_some(),
        "the matched file and the duplicate's copy are removed"
    );

    // Another ABI in the name is refused before anything is stored.
    let foreign = upload(
        &app,
        "acquirer",
        "/transactions",
        "CSTAR.88888.TRNLOG.20260101.120000.001.csv",
        b"x",
    )
    .await;
    foreign.assert_error(422, 4003);
    let unknown = app
        .call(
            "acquirer",
            Method::GET,
            "/transactions/not-a-uuid",
            &[],
            None,
        )
        .await;
    unknown.assert_error(404, 4001);
}

#[actix_web::test]
async fn a_plain_upload_reaches_the_disk_only_encrypted_to_tkms_key() {
    let s = crate::helpers::test_settings().await;
    let dir = s.storage.dir.join("sealing");
    let store = tkm::files::uploads::UploadStore::new(&dir);
    store.prepare().unwrap();
    let public = std::fs::read(&s.pgp.public_key_file).unwrap();
    let key = tkm::crypto::pgp::PgpPublicKey::from_armored(&public).unwrap();
    let plain: Vec<u8> = (0..5000)
        .flat_map(|i| {
            row("00", PAN, -1, &format!("t{i}"), 1, "", "")
                .into_bytes()
                .into_iter()
                .chain([b'\n'])
        })
        .collect();
    let mut incoming = store.receive_with(10 << 20, Some(key)).await.unwrap();
    for chunk in plain.chunks(7000) {
        incoming.write(chunk).await.unwrap();
    }
    let stored = incoming.finish().await.unwrap();
    let bytes = std::fs::read(store.path(stored.id)).unwrap();
    assert_eq!(tkm::files::uploads::looks_like_pgp(&bytes), Some(true));
    assert!(
        !bytes.windows(PAN.len()).any(|w| w == PAN.as_bytes()),
        "no clear PAN on disk"
    );
    let pgp = tkm::crypto::pgp::PgpKey::load(&s.pgp).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(
        &mut pgp
            .decrypt_stream(std::io::BufReader::new(bytes.as_slice()), 1 << 30)
            .unwrap(),
        &mut back,
    )
    .unwrap();
    assert_eq!(back, plain, "tkm reads back exactly what was sent");
    use sha2::Digest;
    assert_eq!(
        stored.sha256,
        hex::encode(sha2::Sha256::digest(&plain)),
        "the SHA-256 is the client's bytes'"
    );
    // Without a sealing key, plain content is refused (token lists).
    let mut refused = store.receive(1 << 20).await.unwrap();
    assert!(refused.write(&plain[..5000]).await.is_err());
}
