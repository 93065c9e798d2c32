//! Processing: GnuPG-made lists with every discard reason and their lines, a token an issuer
//! attached to another PAR, the BouncyCastle fixture, a compression bomb.

use std::time::Duration;

use serde_json::json;

use super::{finished, list_name, par, seed_ranges};
use crate::broker::{channel, encrypt, gpg_encrypt, publish, wait_for_topology};
use crate::helpers::{
    consent, eventually, root, sha, spawn_app, spawn_app_with, tax_code, test_settings, upload,
};

#[actix_web::test]
async fn a_gnupg_list_is_applied_with_every_discard_reason_on_its_line() {
    let app = spawn_app().await;
    wait_for_topology(&app).await;
    seed_ranges(&app).await;
    // An issuer attached a token to its PAR first (a more trusted source).
    let tc = tax_code();
    consent(&app, &tc, "Allow").await;
    let issuer_par = par("V001", 7);
    let issuer_token = "4000501234567890";
    let event = json!({"taxCode": tc, "pan": "4000001111111111", "circuit": "VISA",
        "par": issuer_par, "tokens": [{"token": issuer_token}]});
    let (_c, ch) = channel().await;
    publish(
        &ch,
        &app.settings.rabbitmq.card_events_queue,
        &encrypt(&app, &serde_json::to_vec(&event).unwrap()),
        "issuer-1",
    )
    .await;
    let conn = app.pool.get().await.unwrap();
    let issued = eventually(Duration::from_secs(20), || async {
        let n: i64 = conn
            .query_one(
                "SELECT count(*) FROM token WHERE htoken = $1",
                &[&sha(issuer_token)],
            )
            .await
            .unwrap()
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    assert!(issued.is_some(), "the issuer's token is stored");

    let (p1, p2, p3) = (par("V001", 1), par("A001", 2), par("5001", 3));
    let text = format!(
        "#sha256sum:0000\r\n\
         4000001234567890;01;{p1}\r\n\
         370000123456789;{p2}\r\n\
         5300000000000000;02;{p3}\r\n\
         \r\n\
         6011000000000004;05;{p1}\r\n\
         6011000000000004;{p1}\r\n\
         4100000000000000;01;{p1}\r\n\
         4000001234567891;01;NOT-A-PAR\r\n\
         4000001234567890;01;{p1}\r\n\
         {issuer_token};01;{p1}\r\n\
         4999990000000000;01;{p1}\r\n\
         a;b;c;d\r\n\
         4000001234567892;01;{p1}"
    );
    let content = gpg_encrypt(&app, text.as_bytes(), true, "zlib");
    let r = upload(&app, "acquirer", "/token-list", &list_name(1), &content).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let report = finished(&app, r.json["id"].as_str().unwrap()).await;
    assert_eq!(report["state"], "DONE", "{report}");
    assert_eq!(report["rows"], 12, "{report}");
    assert_eq!(report["accepted"], 4, "{report}");
    let d = &report["discarded"];
    assert_eq!(d["UNSUPPORTED_CIRCUIT"], 1, "{report}");
    assert_eq!(d["UNKNOWN_CIRCUIT"], 1, "{report}");
    assert_eq!(
        d["NOT_IN_TOKEN_BIN_RANGE"], 2,
        "a non-token range holds nothing: {report}"
    );
    assert_eq!(d["INVALID_RECORD"], 2, "{report}");
    assert_eq!(d["ALREADY_KNOWN"], 1, "{report}");
    assert_eq!(d["PAR_CONFLICT"], 1, "{report}");
    let lines: Vec<(u64, String, Option<String>)> = report["discardedRows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
                r["field"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let expected = [
        (6, "UNSUPPORTED_CIRCUIT", None),
        (7, "UNKNOWN_CIRCUIT", None),
        (8, "NOT_IN_TOKEN_BIN_RANGE", None),
        (9, "INVALID_RECORD", Some("par")),
        (10, "ALREADY_KNOWN", None),
        (11, "PAR_CONFLICT", None),
        (12, "NOT_IN_TOKEN_BIN_RANGE", None),
        (13, "INVALID_RECORD", Some("fields")),
    ];
    let expected: Vec<(u64, String, Option<String>)> = expected
        .iter()
        .map(|(l, r, f)| (*l, (*r).to_owned(), f.map(str::to_owned)))
        .collect();
    assert_eq!(lines, expected);

    // Kept rows: provisional tokens of their PARs, encrypted (the resolver's checks of them
    // are tested in circuits::token_lists).
    let rows = conn
        .query(
            "SELECT t.htoken, t.par, t.source, t.circuit, t.token_ct IS NOT NULL \
             FROM token t WHERE t.source = 'token-list' ORDER BY t.par",
            &[],
        )
        .await
        .unwrap();
    let kept: Vec<(String, String, String, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(3), r.get(4)))
        .collect();
    let visa = || "VISA".to_owned();
    let mut want = vec![
        (sha("4000001234567890"), p1.clone(), visa(), true),
        (sha("4000001234567892"), p1.clone(), visa(), true),
        (sha("370000123456789"), p2.clone(), "AMEX".to_owned(), true),
        (
            sha("5300000000000000"),
            p3.clone(),
            "MASTERCARD".to_owned(),
            true,
        ),
    ];
    want.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    let mut kept = kept;
    kept.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    assert_eq!(kept, want);
    // The issuer's association is kept.
    let issuer_row = conn
        .query_one(
            "SELECT par, source FROM token WHERE htoken = $1",
            &[&sha(issuer_token)],
        )
        .await
        .unwrap();
    assert_eq!(issuer_row.get::<_, String>(0), issuer_par);
    assert_eq!(issuer_row.get::<_, String>(1), "issuer");
    // No clear token PAN in any column but the sealed ones.
    for t in ["4000001234567890", "370000123456789", "5300000000000000"] {
        assert!(app.columns_holding(t, &["token_ct"]).await.is_empty());
    }
}

#[actix_web::test]
async fn the_legacy_bouncycastle_file_is_read() {
    let dir = root().join("../shared/fixtures/legacy-bouncycastle");
    let mut s = test_settings().await;
    let passphrase = s.storage.dir.with_extension("passphrase");
    std::fs::create_dir_all(passphrase.parent().unwrap()).unwrap();
    std::fs::write(&passphrase, "passphrase").unwrap();
    s.pgp.private_key_file = dir.join("junit_pgp_private.asc");
    s.pgp.public_key_file = dir.join("junit_pgp_public.asc");
    s.pgp.passphrase_file = Some(passphrase);
    let app = spawn_app_with(s).await;
    let content = std::fs::read(dir.join("TKM.acquirer.junit.csv.pgp")).unwrap();
    let r = upload(&app, "acquirer", "/token-list", &list_name(1), &content).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let report = finished(&app, r.json["id"].as_str().unwrap()).await;
    // Two rows whose 10-digit tokens and 7-character PARs break the rules.
    assert_eq!(report["state"], "DONE", "{report}");
    assert_eq!(report["rows"], 2, "{report}");
    assert_eq!(report["discarded"]["INVALID_RECORD"], 2, "{report}");
    assert_eq!(report["discardedRows"][1]["line"], 2, "{report}");
    assert_eq!(report["discardedRows"][1]["field"], "token_pan", "{report}");
}

#[actix_web::test]
async fn a_compression_bomb_is_rejected_at_the_cap_and_nothing_is_applied() {
    let app = spawn_app().await;
    let row = format!("5300000000000000;02;{}\n", par("5001", 9));
    let text = row.repeat(400_000);
    let content = gpg_encrypt(&app, text.as_bytes(), false, "zlib");
    assert!(
        content.len() * 20 < text.len(),
        "compresses past max_ratio ({} → {})",
        text.len(),
        content.len()
    );
    let r = upload(&app, "acquirer", "/token-list", &list_name(1), &content).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let report = finished(&app, r.json["id"].as_str().unwrap()).await;
    assert_eq!(report["state"], "REJECTED", "{report}");
    assert!(
        report["error"].as_str().unwrap().contains("max_ratio"),
        "{report}"
    );
    assert_eq!(report["accepted"], 0);
    let n: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM token", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "nothing applied");
    // A rejected file can be sent again (a new upload, processed again).
    let again = upload(&app, "acquirer", "/token-list", &list_name(1), &content).await;
    assert_eq!(again.status, 202);
    assert_ne!(again.json["id"], r.json["id"]);
}

#[actix_web::test]
async fn a_damaged_file_is_rejected_with_its_reason() {
    let app = spawn_app().await;
    let mut content = encrypt(&app, &b"# comment\n".repeat(10_000));
    let at = content.len() - 5;
    content[at] ^= 0x55;
    let r = upload(&app, "acquirer", "/token-list", &list_name(2), &content).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let report = finished(&app, r.json["id"].as_str().unwrap()).await;
    assert_eq!(report["state"], "REJECTED", "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("cannot be decrypted"),
        "{report}"
    );
}
