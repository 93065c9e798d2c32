//! `/consent` endpoints (TK1–TK3): roles `io`, `issuer`; reads also `platform`; history
//! `platform`, `admin`.

use std::collections::BTreeSet;

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dates;
use super::errors::{ApiError, ErrorBody, Family};
use super::identity::{Caller, Roles};
use super::{input, pgp_input};
use crate::actors::consent_registry::messages::{
    GetConsent, GetConsentHistory, GetConsentStatus, RecordConsent,
};
use crate::actors::consent_registry::views::ConsentView;
use crate::actors::consent_registry::ConsentRegistry;
use crate::config::Role;
use crate::domain::{Consent, ConsentChange, Service, Summary};

const F: Family = Family::Consent;

/// `POST`/`DELETE /consent`.
pub struct Writers;
impl Roles for Writers {
    const ROLES: &'static [Role] = &[Role::Io, Role::Issuer];
}
/// `GET /consent`, `GET /consent/status`.
pub struct Readers;
impl Roles for Readers {
    const ROLES: &'static [Role] = &[Role::Io, Role::Issuer, Role::Platform];
}
/// `GET /consent/history`.
pub struct Auditors;
impl Roles for Auditors {
    const ROLES: &'static [Role] = &[Role::Platform, Role::Admin];
}

pub use super::state::HandlerTimeout;

/// Body of `POST /consent`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRequest {
    /// `Allow` or `Deny`.
    pub consent: Consent,
    /// A card (64 hex, any case).
    #[serde(default)]
    pub hpan: Option<String>,
    /// Issuers only: an armored PGP message holding the PAN.
    #[serde(default)]
    pub pgp_pan: Option<String>,
    /// Some services only.
    #[serde(default)]
    pub services: Option<Vec<Service>>,
}

/// Consent of one service.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceConsent {
    /// `Allow` or `Deny`.
    pub consent: Consent,
    /// `BPD` or `FA`.
    pub service: Service,
}

/// Consent of one card.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardServiceConsent {
    /// The card.
    pub hpan: String,
    /// Per service.
    pub service_consents: Vec<ServiceConsent>,
}

/// `ConsentResponse`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentResponse {
    /// `Allow`, `Deny` or `Partial`.
    pub consent: Summary,
    /// `dd/MM/yyyy HH:mm:ss`, Europe/Rome.
    pub last_update_date: String,
    /// Only for `Partial`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<CardServiceConsent>>,
}

impl From<ConsentView> for ConsentResponse {
    fn from(v: ConsentView) -> Self {
        let details = (v.summary == Summary::Partial).then(|| {
            v.details
                .into_iter()
                .map(|c| CardServiceConsent {
                    hpan: c.hpan.to_string(),
                    service_consents: c
                        .services
                        .into_iter()
                        .map(|(service, consent)| ServiceConsent { consent, service })
                        .collect(),
                })
                .collect()
        });
        Self {
            consent: v.summary,
            last_update_date: dates::legacy(v.last_update),
            details,
        }
    }
}

/// `GET /consent/status` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    /// The citizen.
    pub tax_code: String,
    /// The service.
    pub service: Service,
    /// The card, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpan: Option<String>,
    /// `ACTIVE` or `INACTIVE`.
    pub status: &'static str,
    /// Since when (ISO-8601), `null` when never active up to then.
    pub since: Option<String>,
}

/// One `GET /consent/history` entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When (ISO-8601, Europe/Rome).
    pub at: String,
    /// The client that asked.
    pub by: String,
    /// The consent asked for.
    pub consent: Consent,
    /// The card, for a card consent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpan: Option<String>,
    /// The services, for a per-service or card consent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<Service>>,
    /// The `Client-Id` header of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The state before (`null` when the citizen was created).
    #[schema(value_type = Object)]
    pub before: Option<serde_json::Value>,
    /// The state after.
    #[schema(value_type = Object)]
    pub after: serde_json::Value,
}

/// Sends to the registry with the handler timeout (503 on overload or timeout).
async fn ask<M>(
    addr: &Addr<ConsentRegistry>,
    timeout: HandlerTimeout,
    msg: M,
) -> Result<M::Result, ApiError>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    ConsentRegistry: actix::Handler<M>,
{
    Ok(addr.send(msg).timeout(timeout.0).await?)
}

fn services_set(list: Option<Vec<Service>>) -> Result<Option<BTreeSet<Service>>, ApiError> {
    match list {
        None => Ok(None),
        Some(l) if l.is_empty() => Err(ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            1007,
            "services must not be empty",
        )),
        Some(l) => Ok(Some(l.into_iter().collect())),
    }
}

/// Records a consent.
#[utoipa::path(post, path = "/consent", tag = "consent",
    params(("Tax-Code" = String, Header, description = "fiscal code"),
           ("Client-Id" = String, Header, description = "calling application, ≤ 70 chars")),
    request_body = ConsentRequest,
    responses((status = 200, body = ConsentResponse), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn post_consent(
    caller: Caller<Writers>,
    req: HttpRequest,
    payload: web::Payload,
    limit: web::Data<input::JsonLimit>,
    registry: web::Data<Addr<ConsentRegistry>>,
    shared: web::Data<super::state::PgpInput>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let body = input::body(&req, payload, limit.0, F).await?;
    let tax_code = input::tax_code(&req, F)?;
    let client_id =
        input::header(&req, "Client-Id", F)?.ok_or(ApiError::missing_header(F, "Client-Id"))?;
    if client_id.chars().count() > 70 {
        return Err(ApiError::validation(
            F,
            "header Client-Id is longer than 70 characters",
        ));
    }
    let body: ConsentRequest = input::json(&body, F)?;
    let card = match (body.hpan, body.pgp_pan) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                F,
                "hpan and pgpPan are mutually exclusive",
            ))
        }
        (Some(h), None) => Some(input::hpan(&h, "hpan", F)?),
        (None, Some(_)) if caller.role() != Role::Issuer => {
            return Err(ApiError::forbidden("pgpPan is accepted from issuers only"))
        }
        (None, Some(armored)) => Some(
            pgp_input::hpan_of(&shared, armored.into_bytes())
                .await
                .ok_or_else(|| {
                    ApiError::validation(F, "pgpPan cannot be decrypted to a card number")
                })?,
        ),
        (None, None) => None,
    };
    let services = services_set(body.services)?;
    let change = match (card, services) {
        (Some(h), s) => ConsentChange::Card(
            body.consent,
            h,
            s.unwrap_or_else(|| Service::ALL.into_iter().collect()),
        ),
        (None, Some(s)) => ConsentChange::Services(body.consent, s),
        (None, None) => ConsentChange::All(body.consent),
    };
    let msg = RecordConsent {
        tax_code,
        change,
        by: caller.name().to_owned(),
        client_id: Some(client_id.to_owned()),
    };
    let view = ask(&registry, **timeout, msg).await??;
    Ok(HttpResponse::Ok().json(ConsentResponse::from(view)))
}

/// Reads a citizen's consent.
#[utoipa::path(get, path = "/consent", tag = "consent",
    params(("Tax-Code" = String, Header, description = "fiscal code"),
           ("hpan" = Option<String>, Query, description = "one card"),
           ("services" = Option<String>, Query, description = "comma-separated services")),
    responses((status = 200, body = ConsentResponse), (status = 404, body = ErrorBody)))]
pub async fn get_consent(
    _caller: Caller<Readers>,
    req: HttpRequest,
    registry: web::Data<Addr<ConsentRegistry>>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let tax_code = input::tax_code(&req, F)?;
    let q = input::query(&req, F)?;
    let hpan = q
        .get("hpan")
        .map(|h| input::hpan(h, "hpan", F))
        .transpose()?;
    let services = match q.get("services") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse::<Service>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ApiError::validation(F, "services must be a comma list of BPD, FA"))?,
    };
    let msg = GetConsent {
        tax_code,
        hpan,
        services,
    };
    let view = ask(&registry, **timeout, msg).await??;
    Ok(HttpResponse::Ok().json(ConsentResponse::from(view)))
}

/// Withdraws every consent of a citizen.
#[utoipa::path(delete, path = "/consent", tag = "consent",
    params(("Tax-Code" = String, Header, description = "fiscal code")),
    responses((status = 200, description = "withdrawn"), (status = 404, body = ErrorBody)))]
pub async fn delete_consent(
    caller: Caller<Writers>,
    req: HttpRequest,
    registry: web::Data<Addr<ConsentRegistry>>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let tax_code = input::tax_code(&req, F)?;
    let client_id = input::header(&req, "Client-Id", F)?;
    if client_id.is_some_and(|c| c.chars().count() > 70) {
        return Err(ApiError::validation(
            F,
            "header Client-Id is longer than 70 characters",
        ));
    }
    let msg = RecordConsent {
        tax_code,
        change: ConsentChange::WithdrawAll,
        by: caller.name().to_owned(),
        client_id: client_id.map(str::to_owned),
    };
    ask(&registry, **timeout, msg).await??;
    Ok(HttpResponse::Ok().finish())
}

/// Status of a service at an instant (TK3).
#[utoipa::path(get, path = "/consent/status", tag = "consent",
    params(("Tax-Code" = String, Header, description = "fiscal code"),
           ("service" = String, Query, description = "BPD or FA"),
           ("hpan" = Option<String>, Query, description = "one card"),
           ("at" = Option<String>, Query, description = "ISO-8601 instant, default now")),
    responses((status = 200, body = StatusResponse), (status = 404, body = ErrorBody)))]
pub async fn get_status(
    _caller: Caller<Readers>,
    req: HttpRequest,
    registry: web::Data<Addr<ConsentRegistry>>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let tax_code = input::tax_code(&req, F)?;
    let q = input::query(&req, F)?;
    let service: Service = q
        .get("service")
        .ok_or_else(|| ApiError::validation(F, "query parameter service is required"))?
        .parse()
        .map_err(|_| ApiError::validation(F, "service must be BPD or FA"))?;
    let hpan = q
        .get("hpan")
        .map(|h| input::hpan(h, "hpan", F))
        .transpose()?;
    let at = match q.get("at") {
        Some(a) => input::instant(a, "at", F)?,
        None => chrono::Utc::now(),
    };
    let msg = GetConsentStatus {
        tax_code: tax_code.clone(),
        service,
        hpan: hpan.clone(),
        at,
    };
    let status = ask(&registry, **timeout, msg).await??;
    Ok(HttpResponse::Ok().json(StatusResponse {
        tax_code: tax_code.to_string(),
        service,
        hpan: hpan.map(|h| h.to_string()),
        status: if status.active { "ACTIVE" } else { "INACTIVE" },
        since: status.since.map(dates::iso),
    }))
}

/// The history of a citizen's consent.
#[utoipa::path(get, path = "/consent/history", tag = "consent",
    params(("Tax-Code" = String, Header, description = "fiscal code"),
           ("from" = Option<String>, Query, description = "ISO-8601 instant"),
           ("to" = Option<String>, Query, description = "ISO-8601 instant")),
    responses((status = 200, body = [HistoryEntry]), (status = 404, body = ErrorBody)))]
pub async fn get_history(
    _caller: Caller<Auditors>,
    req: HttpRequest,
    registry: web::Data<Addr<ConsentRegistry>>,
    timeout: web::Data<HandlerTimeout>,
) -> Result<HttpResponse, ApiError> {
    let tax_code = input::tax_code(&req, F)?;
    let q = input::query(&req, F)?;
    let from = q
        .get("from")
        .map(|v| input::instant(v, "from", F))
        .transpose()?;
    let to = q
        .get("to")
        .map(|v| input::instant(v, "to", F))
        .transpose()?;
    let rows = ask(
        &registry,
        **timeout,
        GetConsentHistory { tax_code, from, to },
    )
    .await??;
    let entries: Vec<HistoryEntry> = rows
        .into_iter()
        .map(|r| {
            let req = &r.request;
            let text = |k: &str| req.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            HistoryEntry {
                at: dates::iso(r.at),
                by: r.by,
                consent: if text("consent").as_deref() == Some("Allow") {
                    Consent::Allow
                } else {
                    Consent::Deny
                },
                hpan: text("hpan"),
                services: req
                    .get("services")
                    .and_then(|v| serde_json::from_value(v.clone()).ok()),
                client_id: text("clientId"),
                before: r.before.and_then(|b| serde_json::to_value(b).ok()),
                after: serde_json::to_value(r.after).unwrap_or_default(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(entries))
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/consent", "GET, POST, DELETE")
            .route(web::post().to(post_consent))
            .route(web::get().to(get_consent))
            .route(web::delete().to(delete_consent)),
    )
    .service(super::resource("/consent/status", "GET").route(web::get().to(get_status)))
    .service(super::resource("/consent/history", "GET").route(web::get().to(get_history)));
}
