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

mod changes;
mod concurrency;
mod reads;
mod refusals;
