//! Each list holds exactly what `files.md` says, against a registry filled here: consent per
//! service and per card, closed links, shared PARs, tokens of non-consenting cards, unattached
//! tokens, BIN ranges of every circuit.

use awc::http::Method;

use super::{build, full_list, header, link_path, unzip_lines};
use crate::helpers::{sha, spawn_app, tax_code, TestApp, CANARY_SALT};

const ALLOW: &str = r#"{"services": {"BPD": "Allow", "FA": "Allow"}}"#;
const FA_ONLY: &str = r#"{"services": {"BPD": "Deny", "FA": "Allow"}}"#;
const DENY: &str = r#"{"services": {"BPD": "Deny", "FA": "Deny"}}"#;

async fn citizen(app: &TestApp, state: &str) -> String {
    let tc = tax_code();
    let conn = app.pool.get().await.unwrap();
    conn.execute(
        "INSERT INTO consent_citizen (tax_code, version, state, created_by, updated_by) \
         VALUES ($1, 1, $2::text::jsonb, 't', 't')",
        &[&tc, &state],
    )
    .await
    .unwrap();
    tc
}

/// A card of `tc` (its link live or closed) with an optional PAR; returns its HPAN.
async fn card(app: &TestApp, name: &str, tc: &str, live: bool, par: Option<&str>) -> String {
    let hpan = sha(name);
    let conn = app.pool.get().await.unwrap();
    let id: i64 = conn
        .query_one(
            "INSERT INTO card (hpan, circuit, active, par, par_key, par_source, created_by, updated_by) \
             VALUES ($1, 'VISA', $2, $3, upper($3), CASE WHEN $3 IS NOT NULL THEN 'issuer' END, 't', 't') \
             RETURNING id",
            &[&hpan, &live, &par],
        )
        .await
        .unwrap()
        .get(0);
    conn.execute(
        "INSERT INTO card_link (card_id, tax_code, live, opened_at, closed_at, changed_at, created_by, updated_by) \
         VALUES ($1, $2, $3, now(), CASE WHEN $3 THEN NULL ELSE now() END, now(), 't', 't')",
        &[&id, &tc, &live],
    )
    .await
    .unwrap();
    hpan
}

/// A token of a PAR, of a card (by HPAN) or of neither; returns its HTOKEN.
async fn token(
    app: &TestApp,
    name: &str,
    par: Option<&str>,
    card: Option<&str>,
    deleted: bool,
) -> String {
    let htoken = sha(name);
    let conn = app.pool.get().await.unwrap();
    conn.execute(
        "INSERT INTO token (htoken, circuit, par, par_key, card_id, source, deleted, created_by, updated_by) \
         VALUES ($1, 'VISA', $2, upper($2), (SELECT id FROM card WHERE hpan = $3), \
                 CASE WHEN $2 IS NULL AND $3 IS NULL THEN 'token-list' ELSE 'issuer' END, $4, 't', 't')",
        &[&htoken, &par, &card, &deleted],
    )
    .await
    .unwrap();
    htoken
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[actix_web::test]
async fn each_list_holds_exactly_its_members() {
    let app = spawn_app().await;
    let (p1, p2, p3) = (
        "V0010013817000000000000000001",
        "V0010013817000000000000000002",
        "V0010013817000000000000000003",
    );
    let allow = citizen(&app, ALLOW).await;
    let fa_only = citizen(&app, FA_ONLY).await;
    let deny = citizen(&app, DENY).await;
    let overridden = citizen(&app, DENY).await;

    let c1 = card(&app, "card-1", &allow, true, Some(p1)).await;
    // A reissued card of the same account: its PAR is listed once.
    let c4 = card(&app, "card-4", &fa_only, true, Some(p1)).await;
    let t1 = token(&app, "token-1", Some(p1), None, false).await;
    let _t1_deleted = token(&app, "token-1-deleted", Some(p1), None, true).await;
    // Enrolled without consent: its HPAN is listed, its PAR and tokens are not.
    let c2 = card(&app, "card-2", &deny, true, Some(p2)).await;
    let t2 = token(&app, "token-2", Some(p2), None, false).await;
    // No longer enrolled (link closed): in no list, nor its PAR's token.
    let _c3 = card(&app, "card-3", &allow, false, Some(p3)).await;
    let _t3 = token(&app, "token-3", Some(p3), None, false).await;
    // A card override gives consent where the citizen denied; its token waits on the card.
    let c5 = card(&app, "card-5", &overridden, true, None).await;
    app.pool
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO consent_card_override (tax_code, hpan, service, allowed, created_by, updated_by) \
             VALUES ($1, $2, 'FA', true, 't', 't')",
            &[&overridden, &c5],
        )
        .await
        .unwrap();
    let t5 = token(&app, "token-5", None, Some(&c5), false).await;
    // From acquirers' lists, owned by no card yet: known hashes only.
    let t6 = token(&app, "token-6", None, None, false).await;
    let t7 = token(
        &app,
        "token-7",
        Some("V0010013817000000000000000007"),
        None,
        false,
    )
    .await;
    app.pool
        .get()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO bin_range (circuit, min_bound, max_bound, token, created_by, updated_by) VALUES \
             ('VISA', '4000000000', '4000009999', true, 't', 't'), \
             ('AMEX', '370000', '370099', true, 't', 't'), \
             ('MASTERCARD', '5100000000000000000', '5100000000000000999', true, 't', 't'), \
             ('VISA', '4111110000', '4111119999', false, 't', 't')",
        )
        .await
        .unwrap();
    build(&app, "").await;

    let (hpans, _) = full_list(&app, "/rtd/payment-instrument-manager/hashed-pans").await;
    assert_eq!(
        hpans,
        sorted(vec![
            c1.clone(),
            c2.clone(),
            c4.clone(),
            c5.clone(),
            t1.clone(),
            t5.clone()
        ])
    );
    let (pars, _) = full_list(&app, "/rtd/payment-instrument-manager/par-list").await;
    assert_eq!(pars, vec![p1.to_owned()]);
    let metrics = app.metrics().await;
    for line in [
        "tkm_list_entries{list=\"hpans\"} 6",
        "tkm_list_entries{list=\"pars\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in /metrics");
    }
    assert!(metrics.contains("tkm_list_build_seconds{list=\"known-hashes\"}"));

    let links = app
        .call("platform", Method::GET, "/known-hashes/links", &[], None)
        .await;
    assert_eq!(links.status, 200, "{}", links.text);
    assert_eq!(links.json["numberOfFiles"], 1);
    let url = links.json["fileLinks"][0].as_str().unwrap().to_owned();
    let file = app
        .call("platform", Method::GET, &link_path(&app, &url), &[], None)
        .await;
    assert_eq!(file.status, 200, "{}", file.text);
    let day = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Rome)
        .format("%Y%m%d");
    assert_eq!(
        header(&file, "content-disposition"),
        format!("attachment; filename=\"KNOWN_HASHES_GEN_DEV_{day}_0.csv.zip\"")
    );
    assert_eq!(
        unzip_lines(&file),
        sorted(vec![c1, c2, c4, c5, t1, t2, t5, t6, t7])
    );

    let links = app
        .call("acquirer", Method::GET, "/bin-ranges/links", &[], None)
        .await;
    assert_eq!(links.status, 200, "{}", links.text);
    for field in ["availableUntil", "generationDate"] {
        let v = links.json[field].as_str().unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(v, "%d/%m/%Y %H:%M:%S").is_ok(),
            "{field}: {v}"
        );
    }
    let expires = links.json["expiredIn"].as_i64().unwrap();
    assert!(
        (60..=120).contains(&expires),
        "one part: 2 minutes, got {expires} s"
    );
    let url = links.json["fileLinks"][0].as_str().unwrap().to_owned();
    let file = app
        .call("acquirer", Method::GET, &link_path(&app, &url), &[], None)
        .await;
    assert_eq!(
        unzip_lines(&file),
        vec![
            "370000;370099",
            "4000000000;4000009999",
            "5100000000000000000;5100000000000000999"
        ]
    );

    // The salt: to acquirers only, its reading logged without the value.
    let salt = app
        .call(
            "acquirer",
            Method::GET,
            "/rtd/payment-instrument-manager/salt",
            &[],
            None,
        )
        .await;
    assert_eq!((salt.status, salt.text.as_str()), (200, CANARY_SALT));
    let logs =
        String::from_utf8_lossy(&crate::helpers::captured_logs().lock().unwrap()).into_owned();
    assert!(
        logs.lines()
            .any(|l| l.contains("salt read") && l.contains("dev-acquirer")),
        "the salt's reading is logged with the client"
    );
    assert!(!logs.contains(CANARY_SALT), "never its value");
    app.call(
        "platform",
        Method::GET,
        "/rtd/payment-instrument-manager/salt",
        &[],
        None,
    )
    .await
    .assert_error(403, 9403);
    app.call(
        "io",
        Method::GET,
        "/rtd/payment-instrument-manager/hashed-pans",
        &[],
        None,
    )
    .await
    .assert_error(403, 9403);
}
