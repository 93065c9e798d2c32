//! The `award_period` table: seeded from `[matching]`, then managed through the admin API.

use chrono::NaiveDate;
use deadpool_postgres::Pool;

use crate::db::DbError;
use crate::domain::matching::{AwardPeriod, AwardPeriods};

/// Why an award period was not added.
#[derive(Debug, thiserror::Error)]
pub enum AddPeriodError {
    /// A period with that id exists (409).
    #[error("an award period with this id exists")]
    Exists,
    /// It overlaps a stored period (400).
    #[error("the award period overlaps another")]
    Overlaps,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

fn to_period(row: &tokio_postgres::Row) -> Result<AwardPeriod, DbError> {
    let grace: i32 = row.try_get(3)?;
    Ok(AwardPeriod {
        id: row.try_get(0)?,
        start: row.try_get::<_, NaiveDate>(1)?,
        end: row.try_get::<_, NaiveDate>(2)?,
        grace_days: u32::try_from(grace).unwrap_or(0),
    })
}

/// Every stored period.
pub async fn list(pool: &Pool) -> Result<Vec<AwardPeriod>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT id, starts_on, ends_on, grace_days FROM award_period ORDER BY starts_on",
            &[],
        )
        .await?;
    rows.iter().map(to_period).collect()
}

/// The stored periods, validated (the exclusion constraint already keeps them apart).
pub async fn load(pool: &Pool) -> Result<AwardPeriods, DbError> {
    AwardPeriods::new(list(pool).await?).map_err(|e| DbError::Unexpected(e.into()))
}

/// Adds one period.
pub async fn add(pool: &Pool, p: &AwardPeriod, by: &str) -> Result<(), AddPeriodError> {
    let conn = pool.get().await.map_err(DbError::from)?;
    let grace = i32::try_from(p.grace_days).unwrap_or(i32::MAX);
    let result = conn
        .execute(
            "INSERT INTO award_period (id, starts_on, ends_on, grace_days, created_by, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $5)",
            &[&p.id, &p.start, &p.end, &grace, &by],
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            Err(AddPeriodError::Exists)
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::EXCLUSION_VIOLATION) => {
            Err(AddPeriodError::Overlaps)
        }
        Err(e) => Err(AddPeriodError::Db(e.into())),
    }
}

/// Seeds the configured periods at start-up: a period is added unless its id is taken or it
/// overlaps a stored one (what the admin API stored wins). Returns how many were added.
pub async fn seed(pool: &Pool, configured: &AwardPeriods) -> Result<usize, DbError> {
    let mut added = 0;
    for p in configured.all() {
        match add(pool, p, "config").await {
            Ok(()) => added += 1,
            Err(AddPeriodError::Exists | AddPeriodError::Overlaps) => {}
            Err(AddPeriodError::Db(e)) => return Err(e),
        }
    }
    Ok(added)
}
