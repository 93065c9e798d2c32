//! The API error: an HTTP status, the spec's stable numeric code and a message that names the
//! offending field or header but never echoes a value.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Which resource family an error belongs to (the validation codes differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `/consent` (1000, 1001).
    Consent,
    /// `/cards` (2000, 2010).
    Cards,
    /// Files and lists (4000).
    Files,
}

impl Family {
    fn validation_code(self) -> u16 {
        match self {
            Family::Consent => 1000,
            Family::Cards => 2000,
            Family::Files => 4000,
        }
    }

    fn missing_header_code(self) -> u16 {
        match self {
            Family::Consent => 1001,
            Family::Cards => 2010,
            Family::Files => 4000,
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The spec's numeric code (e.g. 1005).
    pub status_code: u16,
    /// What went wrong, naming the field.
    pub message: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: u16,
    message: Cow<'static, str>,
    cause: Option<anyhow::Error>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: u16, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// 400, the family's REQUEST_VALIDATION_FAILED.
    pub fn validation(family: Family, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, family.validation_code(), message)
    }

    /// 400, the family's MISSING_HEADERS.
    pub fn missing_header(family: Family, header: &'static str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            family.missing_header_code(),
            format!("missing header {header}"),
        )
    }

    /// 403 9403.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, 9403, message)
    }

    /// 401 9401.
    pub fn bad_subscription_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            9401,
            "missing or invalid Ocp-Apim-Subscription-Key",
        )
    }

    /// 413 9413.
    pub fn payload_too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, 9413, "payload too large")
    }

    /// 404 9404: no such endpoint.
    pub fn no_such_endpoint() -> Self {
        Self::new(StatusCode::NOT_FOUND, 9404, "no such endpoint")
    }

    /// 405 9405: the endpoint exists, not with this method (the answer carries `Allow`).
    pub fn method_not_allowed(allow: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            9405,
            format!("method not allowed; allowed: {allow}"),
        )
    }

    /// 503 9503; the cause is logged, not sent.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                9503,
                "service temporarily unavailable, retry later",
            )
        }
    }

    /// 500 9500; the cause is logged with the request id, never sent.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                9500,
                "internal error; quote the x-request-id header when reporting it",
            )
        }
    }

    /// The numeric code.
    pub fn code(&self) -> u16 {
        self.code
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.cause {
            // The one place the chain is logged; the request span carries the request id.
            tracing::error!(code = self.code, error = ?cause, "request failed");
        }
        HttpResponse::build(self.status).json(ErrorBody {
            status_code: self.code,
            message: self.message.to_string(),
        })
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::unavailable(anyhow::anyhow!("actor did not answer: {e}"))
    }
}
