//! Parsing request parts at the edge: headers, query strings, JSON bodies, dates. Messages name
//! the field, never its value.

use std::collections::HashMap;

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::errors::{ApiError, Family};
use crate::domain::{Hpan, TaxCode};

/// The `Tax-Code` header: missing → MISSING_HEADERS, malformed → REQUEST_VALIDATION_FAILED.
pub fn tax_code(req: &HttpRequest, family: Family) -> Result<TaxCode, ApiError> {
    let raw =
        header(req, "Tax-Code", family)?.ok_or(ApiError::missing_header(family, "Tax-Code"))?;
    TaxCode::parse(raw.trim())
        .map_err(|e| ApiError::validation(family, format!("header Tax-Code {e}")))
}

/// An optional header as text (`None` when absent or empty).
pub fn header<'a>(
    req: &'a HttpRequest,
    name: &'static str,
    family: Family,
) -> Result<Option<&'a str>, ApiError> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| (!s.is_empty()).then_some(s))
            .map_err(|_| ApiError::validation(family, format!("header {name} is not ASCII text"))),
    }
}

/// An HPAN from a query parameter or header (any case accepted, lower-cased).
pub fn hpan(raw: &str, field: &str, family: Family) -> Result<Hpan, ApiError> {
    Hpan::parse(raw.trim()).map_err(|e| ApiError::validation(family, format!("{field} {e}")))
}

/// The query string as a map; a repeated parameter or undecodable string is refused.
pub fn query(req: &HttpRequest, family: Family) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::validation(family, "query string is malformed"))?;
    let mut map = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if map.insert(k.clone(), v).is_some() {
            return Err(ApiError::validation(
                family,
                format!("query parameter {k} is repeated"),
            ));
        }
    }
    Ok(map)
}

/// An ISO-8601 instant with offset (or `Z`).
pub fn instant(raw: &str, field: &str, family: Family) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::validation(
                family,
                format!("{field} must be an ISO-8601 instant with offset"),
            )
        })
}

/// A JSON body; errors name the JSON path of the bad field, never its value.
pub fn json<T: DeserializeOwned>(body: &[u8], family: Family) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = if e.inner().is_syntax() || e.inner().is_eof() {
            "body is not valid JSON".to_owned()
        } else if path == "." {
            "body does not have the expected shape".to_owned()
        } else {
            format!("field {path} is missing or invalid")
        };
        ApiError::validation(family, msg)
    })
}

pub use super::state::JsonLimit;

/// Reads a request body up to `limit` bytes: larger (by `Content-Length` or as it streams) →
/// 413 9413, so an oversized body is never buffered whole.
pub async fn body(
    req: &HttpRequest,
    mut payload: actix_web::web::Payload,
    limit: usize,
    family: Family,
) -> Result<actix_web::web::Bytes, ApiError> {
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::payload_too_large());
    }
    let mut buf = actix_web::web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::validation(family, "request body could not be read"))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
