//! Each circuit's error answer shape, and the refusals and injected failures that use it. Messages
//! are fixed texts: never an account number.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use crate::domain::Circuit;

/// A refusal or failure, rendered in the circuit's own error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// Where the problem is (Mastercard's `Source`).
    pub source: &'static str,
    /// The circuit's code (Visa: 4 digits; Mastercard `ReasonCode`; Amex `error_code`).
    pub code: &'static str,
    /// Fixed text.
    pub message: &'static str,
    /// A 429's `Retry-After` (`1` when `None`).
    pub retry_after: Option<String>,
}

impl Refusal {
    /// 401.
    pub const fn unauthorized(
        source: &'static str,
        code: &'static str,
        message: &'static str,
    ) -> Self {
        Refusal {
            status: StatusCode::UNAUTHORIZED,
            source,
            code,
            message,
            retry_after: None,
        }
    }

    /// 400.
    pub const fn bad_request(
        source: &'static str,
        code: &'static str,
        message: &'static str,
    ) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            source,
            code,
            message,
            retry_after: None,
        }
    }

    /// An injected or internal failure with `status` in `circuit`'s vocabulary.
    pub fn failure(circuit: Circuit, status: StatusCode) -> Self {
        let (visa, other, message) = match status.as_u16() {
            429 => ("9429", "TOO_MANY_REQUESTS", "contract rate exceeded"),
            503 => ("9503", "SERVICE_UNAVAILABLE", "service unavailable"),
            504 => ("9504", "GATEWAY_TIMEOUT", "upstream timed out"),
            _ => ("9500", "SYSTEM_ERROR", "internal error"),
        };
        let code = if circuit == Circuit::Visa {
            visa
        } else {
            other
        };
        Refusal {
            status,
            source: "System",
            code,
            message,
            retry_after: None,
        }
    }

    /// A 429 with `retry_after` as its `Retry-After` (the `retryAfter` fault), sent as given.
    pub fn too_many_requests(circuit: Circuit, retry_after: Option<String>) -> Self {
        Refusal {
            retry_after,
            ..Refusal::failure(circuit, StatusCode::TOO_MANY_REQUESTS)
        }
    }

    /// The circuit's error answer.
    pub fn into_response(self, circuit: Circuit) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // `Faults::validate` accepted only values a header can carry.
            let value = self.retry_after.as_deref().unwrap_or("1");
            builder.insert_header(("Retry-After", value));
        }
        builder.json(self.body(circuit))
    }

    /// The error body alone (Mastercard also sends it inside a 200).
    pub fn body(&self, circuit: Circuit) -> serde_json::Value {
        match circuit {
            Circuit::Visa => json!({"responseStatus": {
                "status": self.status.as_u16(),
                "code": self.code,
                "severity": "ERROR",
                "message": self.message,
            }}),
            Circuit::Mastercard => json!({"Errors": {"Error": [{
                "Source": self.source,
                "ReasonCode": self.code,
                "Description": self.message,
                "Recoverable": self.status.is_server_error()
                    || self.status == StatusCode::TOO_MANY_REQUESTS,
            }]}}),
            Circuit::Amex => json!({"error_code": self.code, "message": self.message}),
        }
    }
}

/// The `malformed` fault: 200 with a body no client can read.
pub fn malformed() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body("{\"simulated\": garbage<<")
}

/// Mastercard's error inside a 200 (the `errorInBody` fault).
pub fn error_in_body() -> HttpResponse {
    let refusal = Refusal {
        status: StatusCode::OK,
        source: "System",
        code: "SYSTEM_ERROR",
        message: "simulated error in a 200 answer",
        retry_after: None,
    };
    HttpResponse::Ok().json(refusal.body(Circuit::Mastercard))
}
