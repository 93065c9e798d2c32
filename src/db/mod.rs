//! PostgreSQL: the connection pool, migrations, and one repository module per table group.

/// SQL: card `$c` (an alias) has a live citizen link whose citizen consents to at least one
/// service — a card override of a service wins over the citizen's choice. One text for every
/// reader of the rule (the PAR resolver's eligibility, the published lists).
macro_rules! consenting_link_sql {
    ($c:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM card_link l JOIN consent_citizen cc ON cc.tax_code = l.tax_code \
             WHERE l.card_id = ", $c, ".id AND l.live AND ",
            $crate::db::consent_of_link_sql!($c),
            ")"
        )
    };
}
pub(crate) use consenting_link_sql;

/// SQL: the citizen `cc` of link `l` of card `$c` consents to at least one service for it.
macro_rules! consent_of_link_sql {
    ($c:literal) => {
        concat!(
            "(COALESCE((SELECT o.allowed FROM consent_card_override o WHERE o.tax_code = l.tax_code \
                        AND o.hpan = ", $c, ".hpan AND o.service = 'BPD'), cc.bpd_allowed) \
           OR COALESCE((SELECT o.allowed FROM consent_card_override o WHERE o.tax_code = l.tax_code \
                        AND o.hpan = ", $c, ".hpan AND o.service = 'FA'), cc.fa_allowed))"
        )
    };
}
pub(crate) use consent_of_link_sql;

pub mod bin_ranges;
pub mod cards;
pub mod consent;
pub mod dead_letters;
pub mod inbound;
pub mod jobs;
pub mod lists;
mod migrations;
pub mod outbox;
pub mod par_lookups;
pub(crate) mod pool;
pub mod transactions;
pub mod uploads;

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
        // No connection, whatever the reason (server down, database gone, login refused, too
        // many connections): unavailable, so messages wait and clients retry.
        match e {
            deadpool_postgres::PoolError::Backend(e) => {
                DbError::Unavailable(anyhow::Error::new(PgFailure::of(&e)))
            }
            other => DbError::Unavailable(anyhow::anyhow!("connection pool: {other}")),
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        // No SQL state means the failure is in the connection, not in the statement.
        let transient = e.is_closed() || e.code().is_none_or(is_transient);
        let failure = anyhow::Error::new(PgFailure::of(&e));
        if transient {
            DbError::Unavailable(failure)
        } else {
            DbError::Unexpected(failure)
        }
    }
}

/// Whether a SQLSTATE means "try again later" rather than "this statement is wrong": the
/// connection failed (08…), the server is shutting down or starting (57P…), the transaction lost
/// a race (40001, 40P01), the database is read-only for now (25006, e.g. during a failover), or
/// it lacks resources (53…: disk full, out of memory, too many connections, configuration
/// limits). Consumers pause on these instead of spending a message's delivery limit.
pub fn is_transient(code: &tokio_postgres::error::SqlState) -> bool {
    let c = code.code();
    c.starts_with("08")
        || c.starts_with("57P")
        || c.starts_with("53")
        || c == "40001"
        || c == "40P01"
        || c == "25006"
}

/// A PostgreSQL failure in the form it may be logged: SQLSTATE, constraint, table, column and
/// the primary message — never PostgreSQL's DETAIL, HINT or WHERE text, which can quote the
/// values of a row.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct PgFailure {
    /// The SQLSTATE of a server error.
    pub code: Option<tokio_postgres::error::SqlState>,
    /// The constraint a server error names, if any.
    pub constraint: Option<String>,
    text: String,
}

impl PgFailure {
    /// The loggable form of `e`.
    pub fn of(e: &tokio_postgres::Error) -> Self {
        use std::error::Error as _;
        let text = match e.as_db_error() {
            Some(db) => {
                let mut t = format!(
                    "PostgreSQL {} {}: {}",
                    db.severity(),
                    db.code().code(),
                    db.message()
                );
                for (name, value) in [
                    ("constraint", db.constraint()),
                    ("table", db.table()),
                    ("column", db.column()),
                ] {
                    if let Some(v) = value {
                        t.push_str(&format!(" [{name} {v}]"));
                    }
                }
                t
            }
            // Client-side failures: the kind and its cause (I/O, protocol), never row values.
            None => match e.source() {
                Some(cause) => format!("PostgreSQL client: {e}: {cause}"),
                None => format!("PostgreSQL client: {e}"),
            },
        };
        Self {
            code: e.code().cloned(),
            constraint: e
                .as_db_error()
                .and_then(|db| db.constraint())
                .map(str::to_owned),
            text,
        }
    }
}

impl DbError {
    /// The PostgreSQL failure behind this error, when there is one.
    pub fn failure(&self) -> Option<&PgFailure> {
        let (DbError::Unavailable(e) | DbError::Unexpected(e)) = self;
        e.chain().find_map(|c| c.downcast_ref::<PgFailure>())
    }

    /// The SQLSTATE behind this error, when PostgreSQL answered one.
    pub fn sqlstate(&self) -> Option<&tokio_postgres::error::SqlState> {
        self.failure().and_then(|f| f.code.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::error::SqlState;

    use super::is_transient;

    #[test]
    fn transient_sqlstates_are_classed_transient_and_the_others_not() {
        let table = [
            ("08000", true),  // connection_exception
            ("08006", true),  // connection_failure
            ("57P01", true),  // admin_shutdown
            ("57P03", true),  // cannot_connect_now
            ("40001", true),  // serialization_failure
            ("40P01", true),  // deadlock_detected
            ("25006", true),  // read_only_sql_transaction (failover)
            ("53000", true),  // insufficient_resources
            ("53100", true),  // disk_full
            ("53200", true),  // out_of_memory
            ("53300", true),  // too_many_connections
            ("53400", true),  // configuration_limit_exceeded
            ("23505", false), // unique_violation
            ("23514", false), // check_violation
            ("42P01", false), // undefined_table
            ("22001", false), // string_data_right_truncation
            ("25P02", false), // in_failed_sql_transaction
            ("57014", false), // query_canceled (statement_timeout: the statement is too slow)
            ("28P01", false), // invalid_password
        ];
        for (code, transient) in table {
            assert_eq!(
                is_transient(&SqlState::from_code(code)),
                transient,
                "SQLSTATE {code}"
            );
        }
    }
}
