//! The HTTP API: mTLS listener for clients, plain ops listener, errors, identity, middleware.

pub mod admin;
pub mod cards;
pub mod consent;
pub mod dates;
pub mod errors;
pub mod identity;
pub mod input;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod pgp_input;
pub mod tls;
pub mod tls_material;
pub mod tls_reload;

use actix_web::{web, HttpResponse};

/// Answer for paths that exist nowhere, in the error format.
async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(errors::ErrorBody {
        status_code: 404,
        message: "no such endpoint".to_owned(),
    })
}

/// Every mapped client, whatever its role.
pub struct AnyRole;
impl identity::Roles for AnyRole {
    const ROLES: &'static [crate::config::Role] = &[
        crate::config::Role::Io,
        crate::config::Role::Issuer,
        crate::config::Role::Acquirer,
        crate::config::Role::Platform,
        crate::config::Role::Admin,
    ];
}

/// `/openapi.json` over mTLS: for mapped clients only, like everything on this listener.
async fn openapi(_: identity::Caller<AnyRole>) -> HttpResponse {
    ops::openapi().await
}

/// A trivial answer for clients' connectivity checks (and the benchmarks' baseline).
async fn live(_: identity::Caller<AnyRole>) -> HttpResponse {
    ops::live().await
}

/// Every route of the mTLS listener.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(consent::routes)
        .configure(cards::routes)
        .configure(admin::routes)
        .route("/openapi.json", web::get().to(openapi))
        .route("/health/live", web::get().to(live))
        .default_service(web::to(not_found));
}
