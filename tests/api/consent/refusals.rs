//! Refused consent requests: validation, bodies, unknown citizens, roles.

use super::*;

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
