//! Forward-only SQL migrations from `sql/`, embedded, applied under an advisory lock.

use anyhow::Context;
use tokio_postgres::NoTls;

use super::pool::pg_config;
use crate::config::DatabaseSettings;

mod embedded {
    refinery::embed_migrations!("sql");
}

/// Advisory lock key that serialises migrations across processes ("tkm-migr").
const MIGRATION_LOCK: i64 = 0x746b_6d2d_6d69_6772;

/// Applies pending migrations on a dedicated connection, holding the advisory lock meanwhile.
pub async fn run_migrations(settings: &DatabaseSettings) -> anyhow::Result<usize> {
    let (mut client, connection) = pg_config(settings)?
        .connect(NoTls)
        .await
        .context("cannot connect to PostgreSQL to migrate (is it running? see database.url)")?;
    let conn_task = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("cannot take the migration lock")?;
    let result = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    drop(client);
    conn_task.abort();
    let report = result.context("migration failed")?;
    unlock.context("cannot release the migration lock")?;
    Ok(report.applied_migrations().len())
}

/// The newest migration version embedded in this binary.
pub fn expected_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The newest migration version applied to the database (0 when none).
pub async fn applied_version(
    client: &tokio_postgres::Client,
) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM refinery_schema_history",
            &[],
        )
        .await?;
    row.try_get(0)
}
