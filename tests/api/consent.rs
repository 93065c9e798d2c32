//! `/consent`: every behaviour of `api.md` and the consent model of `data.md`, over mTLS.

use awc::http::Method;
use serde_json::json;

use crate::helpers::{hpan, spawn_app, tax_code, TestApp};

async fn post(
    app: &TestApp,
    role: &str,
    tc: &str,
    body: serde_json::Value,
) -> crate::helpers::Reply {
    app.call(
        role,
        Method::POST,
        "/consent",
        &[("Tax-Code", tc), ("Client-Id", "test-app")],
        Some(body),
    )
    .await
}

async fn get(app: &TestApp, role: &str, tc: &str, query: &str) -> crate::helpers::Reply {
    app.call(
        role,
        Method::GET,
        &format!("/consent{query}"),
        &[("Tax-Code", tc)],
        None,
    )
    .await
}

async fn count(app: &TestApp, sql: &str, tc: &str) -> i64 {
    let c = app.pool.get().await.unwrap();
    c.query_one(sql, &[&tc]).await.unwrap().get(0)
}

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
async fn request_validation_follows_the_error_table() {
    let app = spawn_app().await;
    let tc = tax_code();
    post(&app, "io", &tc, json!({"consent": "Allow", "services": []}))
        .await
        .assert_error(400, 1007);
    post(
        &app,
        "issuer",
        &tc,
        json!({"consent": "Allow", "hpan": hpan('a'), "pgpPan": "x"}),
    )
    .await
    .assert_error(400, 1000);
    post(&app, "io", &tc, json!({"consent": "Allow", "pgpPan": "x"}))
        .await
        .assert_error(403, 9403);
    post(&app, "io", &tc, json!({"consent": "Maybe"}))
        .await
        .assert_error(400, 1000);
    post(&app, "io", &tc, json!({"services": ["BPD"]}))
        .await
        .assert_error(400, 1000);
    post(
        &app,
        "io",
        &tc,
        json!({"consent": "Allow", "services": ["XX"]}),
    )
    .await
    .assert_error(400, 1000);

    let no_tc = app
        .call(
            "io",
            Method::POST,
            "/consent",
            &[("Client-Id", "x")],
            Some(json!({"consent": "Allow"})),
        )
        .await;
    no_tc.assert_error(400, 1001);
    let bad_tc = app
        .call(
            "io",
            Method::POST,
            "/consent",
            &[("Tax-Code", "RSSMRA85T10A562T"), ("Client-Id", "x")],
            Some(json!({"consent": "Allow"})),
        )
        .await;
    bad_tc.assert_error(400, 1000);
    assert!(bad_tc.json["message"]
        .as_str()
        .unwrap()
        .contains("Tax-Code"));
    let no_client = app
        .call(
            "io",
            Method::POST,
            "/consent",
            &[("Tax-Code", &tc)],
            Some(json!({"consent": "Allow"})),
        )
        .await;
    no_client.assert_error(400, 1001);
    let long_client = "c".repeat(71);
    let r = app
        .call(
            "io",
            Method::POST,
            "/consent",
            &[("Tax-Code", &tc), ("Client-Id", &long_client)],
            Some(json!({"consent": "Allow"})),
        )
        .await;
    r.assert_error(400, 1000);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM consent_citizen WHERE tax_code = $1",
            &tc
        )
        .await,
        0,
        "nothing stored"
    );
}

#[actix_web::test]
async fn bodies_that_are_not_json_or_too_large_are_refused() {
    let app = spawn_app().await;
    let tc = tax_code();
    let c = crate::helpers::client(Some("io"));
    let mut r = c
        .post(app.url("/consent"))
        .insert_header(("Tax-Code", tc.as_str()))
        .insert_header(("Client-Id", "x"))
        .insert_header(("Content-Type", "application/json"))
        .send_body("{not json")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["statusCode"], 1000);

    let big = format!(
        "{{\"consent\":\"Allow\",\"pad\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let mut r = c
        .post(app.url("/consent"))
        .insert_header(("Tax-Code", tc.as_str()))
        .insert_header(("Client-Id", "x"))
        .send_body(big)
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["statusCode"], 9413);
}

#[actix_web::test]
async fn unknown_citizens_are_404_1004() {
    let app = spawn_app().await;
    let tc = tax_code();
    get(&app, "io", &tc, "").await.assert_error(404, 1004);
    app.call("io", Method::DELETE, "/consent", &[("Tax-Code", &tc)], None)
        .await
        .assert_error(404, 1004);
    app.call(
        "io",
        Method::GET,
        "/consent/status?service=BPD",
        &[("Tax-Code", &tc)],
        None,
    )
    .await
    .assert_error(404, 1004);
    app.call(
        "platform",
        Method::GET,
        "/consent/history",
        &[("Tax-Code", &tc)],
        None,
    )
    .await
    .assert_error(404, 1004);
    // The cached "unknown" answer does not survive the citizen's creation.
    post(&app, "io", &tc, json!({"consent": "Allow"})).await;
    assert_eq!(get(&app, "io", &tc, "").await.json["consent"], "Allow");
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

#[actix_web::test]
async fn status_answers_for_any_past_instant_with_since() {
    let app = spawn_app().await;
    let tc = tax_code();
    let card = hpan('d');
    let status = |q: String| {
        let app = &app;
        let tc = tc.clone();
        async move {
            app.call(
                "platform",
                Method::GET,
                &format!("/consent/status?{q}"),
                &[("Tax-Code", &tc)],
                None,
            )
            .await
        }
    };

    post(&app, "io", &tc, json!({"consent": "Deny"})).await;
    let denied = status("service=BPD".into()).await;
    assert_eq!(denied.status, 200, "{}", denied.text);
    assert_eq!(denied.json["status"], "INACTIVE");
    assert_eq!(denied.json["since"], serde_json::Value::Null);
    assert_eq!(denied.json["taxCode"], tc.as_str());

    post(&app, "io", &tc, json!({"consent": "Allow"})).await;
    let active = status("service=FA".into()).await;
    assert_eq!(active.json["status"], "ACTIVE");
    let since = active.json["since"].as_str().unwrap().to_owned();

    app.call("io", Method::DELETE, "/consent", &[("Tax-Code", &tc)], None)
        .await;
    assert_eq!(status("service=FA".into()).await.json["status"], "INACTIVE");
    let enc = |s: &str| s.replace('+', "%2B");
    let then = status(format!("service=FA&at={}", enc(&since))).await;
    assert_eq!(then.json["status"], "ACTIVE", "{}", then.text);
    assert_eq!(then.json["since"], since.as_str());
    let before = status("service=FA&at=2000-01-01T00:00:00Z".into()).await;
    assert_eq!(before.json["status"], "INACTIVE");

    post(
        &app,
        "io",
        &tc,
        json!({"consent": "Allow", "hpan": card, "services": ["BPD"]}),
    )
    .await;
    let card_bpd = status(format!("service=BPD&hpan={card}")).await;
    assert_eq!(card_bpd.json["status"], "ACTIVE");
    assert_eq!(card_bpd.json["hpan"], card.as_str());
    assert_eq!(
        status(format!("service=FA&hpan={card}")).await.json["status"],
        "INACTIVE"
    );
    assert_eq!(
        status("service=BPD".into()).await.json["status"],
        "ACTIVE",
        "a card override allows"
    );

    status("".into()).await.assert_error(400, 1000);
    status("service=XX".into()).await.assert_error(400, 1000);
    status("service=BPD&at=yesterday".into())
        .await
        .assert_error(400, 1000);
}

#[actix_web::test]
async fn history_lists_every_change_for_platform_and_admin_only() {
    let app = spawn_app().await;
    let tc = tax_code();
    post(&app, "io", &tc, json!({"consent": "Deny"})).await;
    post(
        &app,
        "issuer",
        &tc,
        json!({"consent": "Allow", "hpan": hpan('e'), "services": ["FA"]}),
    )
    .await;
    app.call("io", Method::DELETE, "/consent", &[("Tax-Code", &tc)], None)
        .await;

    let h = app
        .call(
            "admin",
            Method::GET,
            "/consent/history",
            &[("Tax-Code", &tc)],
            None,
        )
        .await;
    assert_eq!(h.status, 200, "{}", h.text);
    let entries = h.json.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["by"], "dev-io");
    assert_eq!(entries[0]["before"], serde_json::Value::Null);
    assert_eq!(entries[1]["by"], "dev-issuer");
    assert_eq!(entries[1]["hpan"], hpan('e').as_str());
    assert_eq!(entries[1]["services"], json!(["FA"]));
    assert_eq!(entries[1]["clientId"], "test-app");
    assert_eq!(entries[1]["after"]["cards"][hpan('e')]["FA"], "Allow");
    assert_eq!(entries[2]["consent"], "Deny");

    let second_at = entries[1]["at"].as_str().unwrap().replace('+', "%2B");
    let from = app
        .call(
            "platform",
            Method::GET,
            &format!("/consent/history?from={second_at}"),
            &[("Tax-Code", &tc)],
            None,
        )
        .await;
    assert_eq!(from.json.as_array().unwrap().len(), 2);
    let to = app
        .call(
            "platform",
            Method::GET,
            &format!("/consent/history?to={second_at}"),
            &[("Tax-Code", &tc)],
            None,
        )
        .await;
    assert_eq!(to.json.as_array().unwrap().len(), 2);

    for role in ["io", "issuer", "acquirer"] {
        app.call(
            role,
            Method::GET,
            "/consent/history",
            &[("Tax-Code", &tc)],
            None,
        )
        .await
        .assert_error(403, 9403);
    }
}

#[actix_web::test]
async fn roles_not_open_to_an_endpoint_get_403() {
    let app = spawn_app().await;
    let tc = tax_code();
    for role in ["acquirer", "platform", "admin"] {
        post(&app, role, &tc, json!({"consent": "Allow"}))
            .await
            .assert_error(403, 9403);
    }
    for role in ["acquirer", "admin"] {
        get(&app, role, &tc, "").await.assert_error(403, 9403);
    }
    app.call(
        "platform",
        Method::DELETE,
        "/consent",
        &[("Tax-Code", &tc)],
        None,
    )
    .await
    .assert_error(403, 9403);
}

#[actix_web::test]
async fn concurrent_changes_for_one_citizen_are_serialised() {
    let app = spawn_app().await;
    let tc = tax_code();
    post(&app, "io", &tc, json!({"consent": "Deny"})).await;
    let requests = (0..24).map(|i| {
        let (app, tc) = (&app, tc.clone());
        let service = if i % 2 == 0 { "BPD" } else { "FA" };
        let consent = if i % 3 == 0 { "Allow" } else { "Deny" };
        async move {
            post(
                app,
                "io",
                &tc,
                json!({"consent": consent, "services": [service]}),
            )
            .await
            .status
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let c = app.pool.get().await.unwrap();
    let versions: Vec<i64> = c
        .query(
            "SELECT version FROM consent_history WHERE tax_code = $1 ORDER BY at",
            &[&tc],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        (1..=25).collect::<Vec<i64>>(),
        "one version per change, in time order"
    );
    let last: serde_json::Value = c
        .query_one(
            "SELECT after FROM consent_history WHERE tax_code = $1 AND version = 25",
            &[&tc],
        )
        .await
        .unwrap()
        .get(0);
    let row = c
        .query_one(
            "SELECT state, bpd_allowed, fa_allowed FROM consent_citizen WHERE tax_code = $1",
            &[&tc],
        )
        .await
        .unwrap();
    let state: serde_json::Value = row.get(0);
    assert_eq!(state, last, "the live row holds the last history state");
    assert_eq!(row.get::<_, bool>(1), last["services"]["BPD"] == "Allow");
    assert_eq!(row.get::<_, bool>(2), last["services"]["FA"] == "Allow");
    let api = get(&app, "io", &tc, "?services=BPD").await;
    assert_eq!(
        api.json["consent"], last["services"]["BPD"],
        "the cache agrees with the database"
    );
}

#[actix_web::test]
async fn a_change_on_one_replica_is_read_on_another_within_a_second() {
    let settings = crate::helpers::test_settings().await;
    let a = crate::helpers::spawn_app_with(settings.clone()).await;
    let b = crate::helpers::spawn_app_with(settings).await;
    let tc = tax_code();
    post(&a, "io", &tc, json!({"consent": "Deny"})).await;
    assert_eq!(
        get(&b, "io", &tc, "").await.json["consent"],
        "Deny",
        "b caches Deny"
    );
    post(&a, "io", &tc, json!({"consent": "Allow"})).await;
    let seen = crate::helpers::eventually(std::time::Duration::from_secs(1), || async {
        (get(&b, "io", &tc, "").await.json["consent"] == "Allow").then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "replica b still shows the old consent after 1 s"
    );
}

#[actix_web::test]
async fn status_of_an_instant_older_than_the_cached_changes_comes_from_the_database() {
    let app = spawn_app().await;
    let tc = tax_code();
    post(&app, "io", &tc, json!({"consent": "Allow"})).await;
    let first = app
        .call(
            "platform",
            Method::GET,
            "/consent/status?service=BPD",
            &[("Tax-Code", &tc)],
            None,
        )
        .await;
    let since = first.json["since"].as_str().unwrap().to_owned();
    // 70 more changes of FA: the cache keeps only the latest 64.
    for i in 0..70 {
        let consent = if i % 2 == 0 { "Deny" } else { "Allow" };
        post(
            &app,
            "io",
            &tc,
            json!({"consent": consent, "services": ["FA"]}),
        )
        .await;
    }
    let at = since.replace('+', "%2B");
    let old = app
        .call(
            "platform",
            Method::GET,
            &format!("/consent/status?service=FA&at={at}"),
            &[("Tax-Code", &tc)],
            None,
        )
        .await;
    assert_eq!(old.json["status"], "ACTIVE", "{}", old.text);
    assert_eq!(old.json["since"], since.as_str());
    let bpd = app
        .call(
            "platform",
            Method::GET,
            "/consent/status?service=BPD",
            &[("Tax-Code", &tc)],
            None,
        )
        .await;
    assert_eq!(
        bpd.json["since"],
        since.as_str(),
        "BPD has been active since the first change"
    );
}
