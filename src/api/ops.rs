//! The ops listener (plain HTTP, local by default): liveness, readiness, metrics, OpenAPI.

use std::time::Duration;

use actix::Recipient;
use actix_web::{web, HttpResponse};
use deadpool_postgres::Pool;
use serde_json::json;

use crate::actors::Ping;
use crate::db;
use crate::metrics::Metrics;

/// What readiness checks: the database, the migrations, every actor.
#[derive(Clone)]
pub struct Readiness {
    /// The pool.
    pub pool: Pool,
    /// Each actor by name.
    pub actors: Vec<(&'static str, Recipient<Ping>)>,
    /// The broker connection (reported, never failing readiness: the API works without it).
    pub broker: std::sync::Arc<crate::actors::broker::BrokerStatus>,
}

/// `/health/live`: the process answers.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "live" }))
}

/// `/health/ready`: 200 when the database is reachable, migrations applied and every actor
/// answers; 503 otherwise; JSON detail per component either way.
pub async fn ready(r: web::Data<Readiness>) -> HttpResponse {
    let (database, migrations) = match r.pool.get().await {
        Err(e) => {
            let e = crate::db::DbError::from(e);
            tracing::warn!(error = ?e, "readiness: database unavailable");
            ("down", "unknown")
        }
        Ok(conn) => match db::applied_version(&conn).await {
            Ok(v) if v >= db::expected_version() => ("up", "applied"),
            Ok(_) => ("up", "pending"),
            Err(e) => {
                tracing::warn!(error = %db::PgFailure::of(&e), "readiness: cannot read migration state");
                ("up", "unknown")
            }
        },
    };
    let mut actors = serde_json::Map::new();
    let mut all_up = true;
    for (name, addr) in &r.actors {
        let up = addr
            .send(Ping)
            .timeout(Duration::from_secs(2))
            .await
            .is_ok();
        all_up &= up;
        actors.insert((*name).to_owned(), json!(if up { "up" } else { "down" }));
    }
    let ok = database == "up" && migrations == "applied" && all_up;
    let body = json!({
        "status": if ok { "ready" } else { "not-ready" },
        "database": database,
        "migrations": migrations,
        "actors": actors,
        "broker": if r.broker.connected() { "up" } else { "degraded" },
    });
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `/metrics`: Prometheus text format (the pool's state read now).
pub async fn metrics(m: web::Data<Metrics>, r: web::Data<Readiness>) -> HttpResponse {
    let pool = r.pool.status();
    m.set_db_pool(pool.max_size, pool.size, pool.available, pool.waiting);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(m.render())
}

/// `/openapi.json`.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(super::openapi::document())
}

/// Registers the ops routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/health/live", "GET").route(web::get().to(live)))
        .service(resource("/health/ready", "GET").route(web::get().to(ready)))
        .service(resource("/metrics", "GET").route(web::get().to(metrics)))
        .service(resource("/openapi.json", "GET").route(web::get().to(openapi)))
        .default_service(web::to(super::not_found));
}
