//! Messages the ConsentRegistry answers.

use actix::Message;
use chrono::{DateTime, Utc};

use super::status::Status;
use super::views::ConsentView;
use crate::db::consent::HistoryRow;
use crate::domain::{ConsentChange, Hpan, Service, TaxCode};

/// Why a consent request failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// 1004.
    #[error("citizen not found")]
    CitizenNotFound,
    /// 1003.
    #[error("hpan not found for this citizen")]
    HpanNotFound,
    /// 1005.
    #[error("consent is already of the requested type")]
    AlreadySet,
    /// 1002.
    #[error("a card consent cannot be given while the citizen allows every service")]
    NotConsistent,
    /// 9503: the database is unavailable.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 9503: too many requests in flight.
    #[error("overloaded: too many requests in flight")]
    Overloaded,
    /// 9500.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl From<crate::db::DbError> for ConsentError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Unavailable(e) => ConsentError::Unavailable(e),
            crate::db::DbError::Unexpected(e) => ConsentError::Unexpected(e),
        }
    }
}

impl From<super::rules::RuleError> for ConsentError {
    fn from(e: super::rules::RuleError) -> Self {
        use super::rules::RuleError as R;
        match e {
            R::AlreadySet => ConsentError::AlreadySet,
            R::NotConsistent => ConsentError::NotConsistent,
            R::CitizenNotFound => ConsentError::CitizenNotFound,
        }
    }
}

/// Request: record a consent change for a citizen (POST/DELETE /consent).
#[derive(Debug, Message)]
#[rtype(result = "Result<ConsentView, ConsentError>")]
pub struct RecordConsent {
    /// Whose consent.
    pub tax_code: TaxCode,
    /// What changes.
    pub change: ConsentChange,
    /// Client identity (audit).
    pub by: String,
    /// The `Client-Id` header.
    pub client_id: Option<String>,
}

/// Request: the consent summary of a citizen, optionally of one card and some services.
#[derive(Debug, Message)]
#[rtype(result = "Result<ConsentView, ConsentError>")]
pub struct GetConsent {
    /// Whose consent.
    pub tax_code: TaxCode,
    /// One card only.
    pub hpan: Option<Hpan>,
    /// Some services only (all when empty).
    pub services: Vec<Service>,
}

/// Request: the status of a service at an instant (TK3).
#[derive(Debug, Message)]
#[rtype(result = "Result<Status, ConsentError>")]
pub struct GetConsentStatus {
    /// Whose consent.
    pub tax_code: TaxCode,
    /// Which service.
    pub service: Service,
    /// One card, or the citizen.
    pub hpan: Option<Hpan>,
    /// The instant.
    pub at: DateTime<Utc>,
}

/// Request: the history of a citizen's consent between two instants.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<HistoryRow>, ConsentError>")]
pub struct GetConsentHistory {
    /// Whose consent.
    pub tax_code: TaxCode,
    /// From (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// To (inclusive).
    pub to: Option<DateTime<Utc>>,
}

/// Notification: another process committed version `version` for `tax_code` (LISTEN/NOTIFY).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct Invalidate {
    pub tax_code: String,
    pub version: i64,
}

/// Notification: notifications may have been missed (listener reconnected): drop the cache.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct FlushCache;
