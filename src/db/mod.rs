//! PostgreSQL: the connection pool, migrations, and one repository module per table group.

pub mod bin_ranges;
pub mod cards;
pub mod consent;
pub mod jobs;
mod migrations;
pub mod par_lookups;
pub(crate) mod pool;

pub use migrations::{applied_version, expected_version, run_migrations};
pub use pool::{build_pool, pg_config};

/// Failures of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or the pool is exhausted: retry later (503).
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug or a schema mismatch.
    #[error("database error")]
    Unexpected(#[source] anyhow::Error),
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DbError::Unavailable(e.into())
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        // No SQL state means the failure is in the connection, not in the statement.
        let transient = e.is_closed()
            || e.code().is_none()
            || e.code().is_some_and(|c| {
                c.code().starts_with("08")
                    || c.code().starts_with("57P")
                    || *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            });
        if transient {
            DbError::Unavailable(e.into())
        } else {
            DbError::Unexpected(e.into())
        }
    }
}
