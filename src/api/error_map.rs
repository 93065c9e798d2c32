//! Every actor's typed error mapped, once, to the spec's HTTP status and code (`api.md`): the
//! handlers just use `?`.

use actix_web::http::StatusCode as S;

use super::errors::ApiError;
use crate::actors::broker::BrokerError;
use crate::actors::card_registry::messages::CardError;
use crate::actors::consent_registry::messages::ConsentError;
use crate::actors::job_runner::JobError;
use crate::db::DbError;

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(e) => ApiError::unavailable(e),
            DbError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<ConsentError> for ApiError {
    fn from(e: ConsentError) -> Self {
        match e {
            ConsentError::CitizenNotFound => {
                ApiError::new(S::NOT_FOUND, 1004, "citizen not found")
            }
            ConsentError::HpanNotFound => ApiError::new(S::NOT_FOUND, 1003, "hpan not found"),
            ConsentError::AlreadySet => {
                ApiError::new(S::BAD_REQUEST, 1005, "consent type already set")
            }
            ConsentError::NotConsistent => ApiError::new(
                S::BAD_REQUEST,
                1002,
                "consent type not consistent: a card consent needs a citizen consent other than Allow",
            ),
            ConsentError::Unavailable(e) => ApiError::unavailable(e),
            e @ ConsentError::Overloaded => ApiError::unavailable(e),
            ConsentError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<CardError> for ApiError {
    fn from(e: CardError) -> Self {
        match e {
            CardError::Unavailable(e) => ApiError::unavailable(e),
            e @ CardError::Overloaded => ApiError::unavailable(e),
            CardError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Db(e) => e.into(),
            JobError::DisabledCircuit(_) => ApiError::new(
                S::BAD_REQUEST,
                4000,
                "query circuit names a disabled circuit",
            ),
            e @ JobError::Starting => ApiError::unavailable(e),
        }
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::NotFound => ApiError::new(S::NOT_FOUND, 4001, "not found"),
            BrokerError::Db(e) => e.into(),
            e @ BrokerError::Broker(_) => ApiError::unavailable(e),
            e @ BrokerError::Sealed => ApiError::internal(e),
        }
    }
}

impl From<crate::actors::list_builder::ListError> for ApiError {
    fn from(e: crate::actors::list_builder::ListError) -> Self {
        use crate::actors::list_builder::ListError as L;
        match e {
            L::Db(e) => e.into(),
            e @ L::Io(_) => ApiError::internal(e),
            e @ (L::NoGeneration(_) | L::NoSuchPart(_) | L::NoDelta(_) | L::LinkUnknown) => {
                ApiError::new(S::NOT_FOUND, 4001, e.to_string())
            }
            e @ L::LinkGone => ApiError::new(S::GONE, 4002, e.to_string()),
        }
    }
}
