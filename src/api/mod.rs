//! The HTTP API: mTLS listener for clients, plain ops listener, errors, identity, middleware.

pub mod admin;
pub mod admin_queues;
pub mod cards;
pub mod consent;
pub mod dates;
pub mod error_map;
pub mod errors;
pub mod identity;
pub mod input;
pub mod lists;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod pgp_input;
pub mod state;
pub mod tls;
pub mod tls_material;
pub mod tls_reload;
pub mod token_lists;
pub mod transactions;
pub mod uploads;

use actix_web::{web, HttpResponse, ResponseError};

/// Answer for paths that exist nowhere, in the error format (both listeners).
pub async fn not_found() -> HttpResponse {
    errors::ApiError::no_such_endpoint().error_response()
}

/// A resource whose methods are `allow` (e.g. `"GET, DELETE"`): any other method answers 405
/// in the error format with the `Allow` header. The routes are added by the caller.
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        let mut answer = errors::ApiError::method_not_allowed(allow).error_response();
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allow) {
            answer
                .headers_mut()
                .insert(actix_web::http::header::ALLOW, value);
        }
        answer
    }))
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
        .configure(admin_queues::routes)
        .configure(lists::routes)
        .configure(token_lists::routes)
        .configure(transactions::routes)
        .service(resource("/openapi.json", "GET").route(web::get().to(openapi)))
        .service(resource("/health/live", "GET").route(web::get().to(live)))
        .default_service(web::to(not_found));
}
