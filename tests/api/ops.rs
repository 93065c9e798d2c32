//! The ops listener: liveness, readiness (and its failure), metrics, OpenAPI; 503 when the
//! database is gone.

use awc::http::Method;
use serde_json::json;

use crate::helpers::{spawn_app, tax_code};

async fn get(url: String) -> (u16, String) {
    let mut res = awc::Client::default().get(url).send().await.unwrap();
    let body = res.body().limit(4 * 1024 * 1024).await.unwrap();
    (
        res.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_web::test]
async fn live_and_ready_report_each_component() {
    let app = spawn_app().await;
    let (status, body) = get(app.ops_url("/health/live")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(app.ops_url("/health/ready")).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["database"], "up");
    assert_eq!(v["migrations"], "applied");
    assert_eq!(v["actors"]["consent-registry"], "up");
}

#[actix_web::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = spawn_app().await;
    app.call(
        "io",
        Method::GET,
        "/consent",
        &[("Tax-Code", &tax_code())],
        None,
    )
    .await;
    let (status, body) = get(app.ops_url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"tkm_http_requests_total{route="/consent",status="404"} 1"#),
        "{body}"
    );
    assert!(body.contains("tkm_http_request_duration_seconds_bucket"));
    assert!(body.contains(r#"tkm_actor_mailbox{actor="consent-registry"}"#));
    // The pool as it stands at the scrape (deploy/prometheus/tkm-alerts.yml alerts on it).
    let max = app.settings.database.pool_size;
    assert!(
        body.contains(&format!(r#"tkm_db_pool_connections{{state="max"}} {max}"#)),
        "{body}"
    );
    assert!(body.contains(r#"tkm_db_pool_connections{state="waiting"} 0"#));
}

#[actix_web::test]
async fn openapi_lists_the_consent_paths_on_both_listeners() {
    let app = spawn_app().await;
    let (status, body) = get(app.ops_url("/openapi.json")).await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/consent", "/consent/status", "/consent/history"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["ConsentResponse"].is_object());
    let over_tls = app
        .call("admin", Method::GET, "/openapi.json", &[], None)
        .await;
    assert_eq!(over_tls.json, doc);
}

#[actix_web::test]
async fn a_lost_database_gives_503_and_readiness_fails() {
    let app = spawn_app().await;
    let tc = tax_code();
    let ok = app
        .call(
            "io",
            Method::POST,
            "/consent",
            &[("Tax-Code", &tc), ("Client-Id", "x")],
            Some(json!({"consent": "Allow"})),
        )
        .await;
    assert_eq!(ok.status, 200);
    let db: String = {
        let c = app.pool.get().await.unwrap();
        c.query_one("SELECT current_database()", &[])
            .await
            .unwrap()
            .get(0)
    };
    let (admin, conn) =
        tokio_postgres::connect(&crate::helpers::admin_db_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    actix_web::rt::spawn(conn);
    admin
        .batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
        .await
        .unwrap();

    let r = app
        .call(
            "io",
            Method::POST,
            "/consent",
            &[("Tax-Code", &tax_code()), ("Client-Id", "x")],
            Some(json!({"consent": "Allow"})),
        )
        .await;
    r.assert_error(503, 9503);
    let (status, body) = get(app.ops_url("/health/ready")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""database":"down""#), "{body}");
}

#[actix_web::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow_in_the_error_shape() {
    let app = spawn_app().await;
    let r = app
        .call("admin", Method::GET, "/no/such/thing", &[], None)
        .await;
    r.assert_error(404, 9404);
    let r = app.call("admin", Method::PUT, "/consent", &[], None).await;
    r.assert_error(405, 9405);
    let allow = r.headers.get("allow").and_then(|v| v.to_str().ok());
    assert_eq!(allow, Some("GET, POST, DELETE"));
    let r = app
        .call("admin", Method::DELETE, "/admin/status", &[], None)
        .await;
    r.assert_error(405, 9405);
    assert_eq!(
        r.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("GET")
    );
    // The ops listener answers the same way.
    let mut res = awc::Client::default()
        .post(app.ops_url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(
        res.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("GET")
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["statusCode"], 9405);
    let (status, body) = get(app.ops_url("/nothing")).await;
    assert_eq!(status, 404);
    assert!(body.contains("9404"), "{body}");
}
