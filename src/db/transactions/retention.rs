//! Erasure of transaction outcomes past `matching.retention_days` (`matching.md`): the outcomes
//! of records processed before the cutoff day, and the duplicate keys, payments and reversals
//! stored before it. A page at a time, so the erasure never holds long locks.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;

use crate::db::DbError;

/// Rows deleted per statement.
const PAGE: i64 = 10_000;

/// Deletes what is past retention; answers how many outcomes went (keys, payments and reversals
/// go with them, uncounted).
pub async fn erase_old(
    pool: &Pool,
    cutoff_day: NaiveDate,
    cutoff: DateTime<Utc>,
) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    let mut outcomes = 0u64;
    loop {
        let n = conn
            .execute(
                "DELETE FROM txn_outcome WHERE (source_id, line) IN ( \
                 SELECT source_id, line FROM txn_outcome WHERE processing_day < $1 LIMIT $2)",
                &[&cutoff_day, &PAGE],
            )
            .await?;
        outcomes = outcomes.saturating_add(n);
        if n == 0 {
            break;
        }
    }
    for table in ["txn_key", "txn_payment", "txn_reversal"] {
        let (key, columns) = if table == "txn_key" {
            ("key", "key")
        } else {
            ("(source_id, line)", "source_id, line")
        };
        let statement = format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {columns} FROM {table} WHERE created_at < $1 LIMIT $2)"
        );
        while conn.execute(&statement, &[&cutoff, &PAGE]).await? > 0 {}
    }
    Ok(outcomes)
}
