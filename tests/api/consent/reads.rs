//! Reading consent: status at any instant, history.

use super::*;

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
