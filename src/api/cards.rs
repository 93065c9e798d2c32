//! `/cards`: a card's PAR and tokens (role `platform`) and an issuer's deletion of a citizen's
//! card (role `issuer`, TK5).

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::Serialize;
use utoipa::ToSchema;

use super::consent::HandlerTimeout;
use super::errors::{ApiError, ErrorBody, Family};
use super::identity::{Caller, Roles};
use super::state::PgpInput;
use super::{input, pgp_input};
use crate::actors::card_registry::messages::{ApplyCommands, GetCard};
use crate::actors::card_registry::CardRegistry;
use crate::config::Role;
use crate::domain::cards::Outcome;
use crate::domain::{CardCommand, CardDeletion, Source, Sourced};

const F: Family = Family::Cards;

/// `GET /cards`.
pub struct Readers;
impl Roles for Readers {
    const ROLES: &'static [Role] = &[Role::Platform];
}
/// `DELETE /cards`.
pub struct Issuers;
impl Roles for Issuers {
    const ROLES: &'static [Role] = &[Role::Issuer];
}

/// A live card.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardResponse {
    /// The card.
    pub hpan: String,
    /// Its PAR, while it has consent.
    pub par: Option<String>,
    /// Its live tokens, while it has consent.
    pub htokens: Vec<String>,
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, 2404, "card not found")
}

/// A live card's PAR and tokens.
#[utoipa::path(get, path = "/cards", tag = "cards",
    params(("hpan" = String, Header, description = "the card's HPAN")),
    responses((status = 200, body = CardResponse), (status = 404, body = ErrorBody),
              (status = 400, body = ErrorBody)))]
pub async fn get_card(
    _caller: Caller<Readers>,
    req: HttpRequest,
    registry: web::Data<Addr<CardRegistry>>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let raw = input::header(&req, "hpan", F)?.ok_or(ApiError::missing_header(F, "hpan"))?;
    let hpan = input::hpan(raw, "header hpan", F)?;
    let view = registry
        .send(GetCard { hpan })
        .timeout(timeout.0)
        .await??
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(CardResponse {
        hpan: view.hpan.to_string(),
        par: view.par,
        htokens: view.htokens,
    }))
}

/// Closes a citizen's link to a card, like a deletion event (the payment manager stays master).
#[utoipa::path(delete, path = "/cards", tag = "cards",
    params(("Tax-Code" = String, Header, description = "fiscal code"),
           ("hpan" = Option<String>, Header, description = "the card's HPAN"),
           ("Pgp-Pan" = Option<String>, Header, description = "base64 of a binary PGP message holding the PAN"),
           ("Timestamp" = Option<String>, Header, description = "when it was deleted: yyyy-MM-dd HH:mm:ss:SSSS (Europe/Rome) or ISO-8601 with offset; now by default")),
    responses((status = 204, description = "link closed"), (status = 404, body = ErrorBody),
              (status = 400, body = ErrorBody)))]
pub async fn delete_card(
    caller: Caller<Issuers>,
    req: HttpRequest,
    registry: web::Data<Addr<CardRegistry>>,
    shared: web::Data<PgpInput>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let tax_code = input::tax_code(&req, F)?;
    let hpan = match (
        input::header(&req, "hpan", F)?,
        input::header(&req, "Pgp-Pan", F)?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(F, "give hpan or Pgp-Pan, not both"))
        }
        (Some(h), None) => input::hpan(h, "header hpan", F)?,
        (None, Some(p)) => {
            let message = base64::engine::general_purpose::STANDARD
                .decode(p.trim())
                .map_err(|_| ApiError::validation(F, "header Pgp-Pan is not base64"))?;
            pgp_input::hpan_of(&shared, message).await.ok_or_else(|| {
                ApiError::validation(F, "header Pgp-Pan cannot be decrypted to a card number")
            })?
        }
        (None, None) => return Err(ApiError::missing_header(F, "hpan or Pgp-Pan")),
    };
    // When the deletion happened (orders it against the link's other changes); now by default.
    let timestamp = input::header(&req, "Timestamp", F)?
        .map(|t| {
            crate::domain::parse_event_timestamp(t).map_err(|_| {
                ApiError::validation(
                    F,
                    "header Timestamp is not yyyy-MM-dd HH:mm:ss:SSSS or ISO-8601 with an offset",
                )
            })
        })
        .transpose()?;
    let command = Sourced {
        command: CardCommand::Delete(CardDeletion {
            tax_code,
            hpan,
            timestamp,
        }),
        source: Source::Issuer,
        by: caller.name().to_owned(),
        origin: None,
    };
    let report = registry
        .send(ApplyCommands {
            commands: vec![command],
            by: caller.name().to_owned(),
        })
        .timeout(timeout.0)
        .await??;
    match report.outcomes.first() {
        Some(Outcome::Applied) => Ok(HttpResponse::NoContent().finish()),
        Some(Outcome::Stale) => Err(ApiError::validation(
            F,
            "header Timestamp is older than the link's last change: nothing changed",
        )),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            2404,
            "no live link between this citizen and card",
        )),
    }
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/cards", "GET, DELETE")
            .route(web::get().to(get_card))
            .route(web::delete().to(delete_card)),
    );
}
