//! Consent changes: the state machine, per-service and card consents, history and outbox.

use super::*;

#[actix_web::test]
async fn a_first_deny_creates_the_citizen_and_the_same_summary_again_is_1005() {
    let app = spawn_app().await;
    let tc = tax_code();

    let r = post(&app, "io", &tc, json!({"consent": "Deny"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["consent"], "Deny");
    assert!(r.json.get("details").is_none());
    let date = r.json["lastUpdateDate"].as_str().unwrap();
    assert_eq!(date.len(), 19, "dd/MM/yyyy HH:mm:ss: {date}");
    assert_eq!(&date[2..3], "/");

    post(&app, "io", &tc, json!({"consent": "Deny"}))
        .await
        .assert_error(400, 1005);
    let r = post(&app, "issuer", &tc, json!({"consent": "Allow"})).await;
    assert_eq!(r.json["consent"], "Allow");
    post(&app, "io", &tc, json!({"consent": "Allow"}))
        .await
        .assert_error(400, 1005);
    assert_eq!(
        get(&app, "platform", &tc, "").await.json["consent"],
        "Allow"
    );
}

#[actix_web::test]
async fn a_first_allow_creates_an_allowing_citizen() {
    let app = spawn_app().await;
    let tc = tax_code();
    let r = post(&app, "io", &tc, json!({"consent": "Allow"})).await;
    assert_eq!((r.status, r.json["consent"].as_str()), (200, Some("Allow")));
    let rows = count(
        &app,
        "SELECT count(*) FROM consent_citizen WHERE tax_code = $1 AND bpd_allowed AND fa_allowed",
        &tc,
    )
    .await;
    assert_eq!(rows, 1, "both services stored as allowed");
}

#[actix_web::test]
async fn per_service_consent_sets_those_services_only() {
    let app = spawn_app().await;
    let tc = tax_code();
    post(&app, "io", &tc, json!({"consent": "Allow"})).await;
    let r = post(
        &app,
        "io",
        &tc,
        json!({"consent": "Deny", "services": ["FA"]}),
    )
    .await;
    assert_eq!(r.json["consent"], "Partial", "{}", r.text);
    let bpd = get(&app, "io", &tc, "?services=BPD").await;
    assert_eq!(bpd.json["consent"], "Allow");
    let fa = get(&app, "io", &tc, "?services=FA").await;
    assert_eq!(fa.json["consent"], "Deny");
    let both = get(&app, "io", &tc, "?services=BPD,FA").await;
    assert_eq!(both.json["consent"], "Partial");
    get(&app, "io", &tc, "?services=XYZ")
        .await
        .assert_error(400, 1000);
}

#[actix_web::test]
async fn a_card_override_gives_partial_with_details_and_is_refused_from_allow() {
    let app = spawn_app().await;
    let tc = tax_code();
    let card = hpan('a');

    let r = post(
        &app,
        "io",
        &tc,
        json!({"consent": "Allow", "hpan": card.to_uppercase(), "services": ["BPD"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["consent"], "Partial");
    assert_eq!(
        r.json["details"],
        json!([{"hpan": card, "serviceConsents": [
            {"consent": "Allow", "service": "BPD"}, {"consent": "Deny", "service": "FA"}]}])
    );
    let one = get(&app, "io", &tc, &format!("?hpan={}", card.to_uppercase())).await;
    assert_eq!(one.json["consent"], "Partial");
    let one_bpd = get(&app, "io", &tc, &format!("?hpan={card}&services=BPD")).await;
    assert_eq!(one_bpd.json["consent"], "Allow");
    get(&app, "io", &tc, &format!("?hpan={}", hpan('b')))
        .await
        .assert_error(404, 1003);
    get(&app, "io", &tc, "?hpan=notahash")
        .await
        .assert_error(400, 1000);
    let stored = count(
        &app,
        "SELECT count(*) FROM consent_card_override WHERE tax_code = $1",
        &tc,
    )
    .await;
    assert_eq!(stored, 1);

    post(&app, "io", &tc, json!({"consent": "Allow"})).await;
    let overrides = count(
        &app,
        "SELECT count(*) FROM consent_card_override WHERE tax_code = $1",
        &tc,
    )
    .await;
    assert_eq!(overrides, 0, "a citizen-level consent clears overrides");
    post(&app, "io", &tc, json!({"consent": "Deny", "hpan": card}))
        .await
        .assert_error(400, 1002);
}

#[actix_web::test]
async fn delete_withdraws_everything_and_always_writes_history() {
    let app = spawn_app().await;
    let tc = tax_code();
    post(&app, "io", &tc, json!({"consent": "Deny"})).await;
    post(
        &app,
        "io",
        &tc,
        json!({"consent": "Allow", "hpan": hpan('c')}),
    )
    .await;
    let r = app
        .call(
            "issuer",
            Method::DELETE,
            "/consent",
            &[("Tax-Code", &tc)],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(get(&app, "io", &tc, "").await.json["consent"], "Deny");
    let again = app
        .call("io", Method::DELETE, "/consent", &[("Tax-Code", &tc)], None)
        .await;
    assert_eq!(again.status, 200, "already Deny is still 200");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM consent_history WHERE tax_code = $1",
            &tc
        )
        .await,
        4
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM consent_card_override WHERE tax_code = $1",
            &tc
        )
        .await,
        0
    );
}

#[actix_web::test]
async fn every_change_writes_its_outbox_row_in_the_same_transaction() {
    // Hold the relay's leader lock so the rows stay in the outbox for inspection.
    let settings = crate::helpers::test_settings().await;
    let _lock = crate::helpers::hold_relay_lock(&settings).await;
    let app = crate::helpers::spawn_app_with(settings).await;
    let tc = tax_code();
    post(&app, "io", &tc, json!({"consent": "Allow"})).await;
    post(&app, "io", &tc, json!({"consent": "Allow"}))
        .await
        .assert_error(400, 1005);
    post(
        &app,
        "io",
        &tc,
        json!({"consent": "Deny", "services": ["FA"]}),
    )
    .await;
    app.call("io", Method::DELETE, "/consent", &[("Tax-Code", &tc)], None)
        .await;
    app.call("io", Method::DELETE, "/consent", &[("Tax-Code", &tc)], None)
        .await;
    let c = app.pool.get().await.unwrap();
    let rows = c
        .query(
            "SELECT kind, payload FROM outbox WHERE partition_key = $1 ORDER BY id",
            &[&tc],
        )
        .await
        .unwrap();
    // Allow, FA withdrawn, everything withdrawn; the refused request and the no-op DELETE add none.
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r.get::<_, String>(0), "consent.changed");
    }
    let last: serde_json::Value = rows[2].get(1);
    assert_eq!(last["taxCode"], tc.as_str());
    assert_eq!(
        last["after"]["services"],
        json!({"BPD": "Deny", "FA": "Deny"})
    );
    assert_eq!(
        last["before"]["services"],
        json!({"BPD": "Allow", "FA": "Deny"})
    );
}
