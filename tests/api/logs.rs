//! S2 (as far as this flows reach): canary PANs and the salt never appear in logs,
//! error bodies or metrics.

use awc::http::Method;
use serde_json::json;

use crate::helpers::{captured_logs, spawn_app, tax_code, CANARY_SALT};

const CANARY_PAN: &str = "4999991234567897";

#[actix_web::test]
async fn canary_card_numbers_and_the_salt_never_leak() {
    let app = spawn_app().await;
    let tc = tax_code();
    let h = [("Tax-Code", tc.as_str()), ("Client-Id", "x")];
    let mut bodies = Vec::new();
    for body in [
        json!({"consent": "Allow", "hpan": CANARY_PAN}),
        json!({"consent": CANARY_PAN}),
        json!({"consent": "Allow", "services": [CANARY_PAN]}),
        json!({"consent": "Allow", "hpan": [CANARY_PAN]}),
    ] {
        bodies.push(
            app.call("io", Method::POST, "/consent", &h, Some(body))
                .await
                .text,
        );
    }
    bodies.push(
        app.call(
            "io",
            Method::GET,
            &format!("/consent?hpan={CANARY_PAN}"),
            &h,
            None,
        )
        .await
        .text,
    );
    bodies.push(
        app.call(
            "io",
            Method::GET,
            &format!("/consent/status?service=BPD&at={CANARY_PAN}"),
            &h,
            None,
        )
        .await
        .text,
    );
    bodies.push(
        app.call(
            "io",
            Method::GET,
            "/consent",
            &[("Tax-Code", CANARY_PAN)],
            None,
        )
        .await
        .text,
    );
    bodies.push(
        app.call(
            "io",
            Method::GET,
            "/consent",
            &[("Tax-Code", &tc), ("x-request-id", CANARY_PAN)],
            None,
        )
        .await
        .text,
    );
    let c = crate::helpers::client(Some("io"));
    let mut res = c
        .post(app.url("/consent"))
        .insert_header(("Tax-Code", tc.as_str()))
        .insert_header(("Client-Id", "x"))
        .send_body(format!("{{\"consent\": {CANARY_PAN}x}}"))
        .await
        .unwrap();
    bodies.push(String::from_utf8_lossy(&res.body().await.unwrap()).into_owned());

    for b in &bodies {
        assert!(
            b.contains("statusCode"),
            "every one of these is an error: {b}"
        );
        assert!(!b.contains(CANARY_PAN), "an error body echoes the PAN: {b}");
    }
    let metrics = app.metrics().await;
    assert!(!metrics.contains(CANARY_PAN));

    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(logs.contains("request"), "logs were captured");
    assert!(
        !logs.contains(CANARY_PAN),
        "a log line holds the canary PAN"
    );
    assert!(!logs.contains(CANARY_SALT), "a log line holds the salt");
    assert!(!logs.contains(&tc), "a log line holds a whole tax code");
}
