//! Acquirers' token lists (`api.md` files for acquirers, TK9): the public key they encrypt to.

use actix_web::{web, HttpResponse};

use super::errors::ApiError;
use super::identity::Caller;
use super::lists::Acquirers;
use super::state::{HandlerTimeout, TokenListsHandle};
use crate::actors::token_list_ingestor::GetPublicKey;

/// tkm's armored OpenPGP public key: acquirers encrypt their token lists to it.
#[utoipa::path(get, path = "/token-list/public-key", tag = "token-lists",
    responses((status = 200, content_type = "text/plain", description = "the armored public key")))]
pub async fn public_key(
    _caller: Caller<Acquirers>,
    handle: web::Data<TokenListsHandle>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let key = handle
        .ingestor
        .send(GetPublicKey)
        .timeout(timeout.0)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(key.to_string()))
}

/// The token-list routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/token-list/public-key", "GET").route(web::get().to(public_key)));
}
