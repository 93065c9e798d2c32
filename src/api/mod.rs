//! The HTTP API: mTLS listener for clients, plain ops listener, errors, identity, middleware.

pub mod consent;
pub mod dates;
pub mod errors;
pub mod identity;
pub mod input;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod tls;

use actix_web::{web, HttpResponse};

/// Answer for paths that exist nowhere, in the error format.
async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(errors::ErrorBody {
        status_code: 404,
        message: "no such endpoint".to_owned(),
    })
}

/// Every route of the mTLS listener.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(consent::routes)
        .route("/openapi.json", web::get().to(ops::openapi))
        // A trivial answer for clients' connectivity checks (and the benchmarks' baseline).
        .route("/health/live", web::get().to(ops::live))
        .default_service(web::to(not_found));
}
