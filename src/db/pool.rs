//! The deadpool-postgres pool: explicit size, verified recycling, bounded waits.

use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::ExposeSecret;
use tokio_postgres::NoTls;

use crate::config::{read_secret_file, DatabaseSettings};

/// The connection settings the pool and the dedicated connections (migrations, LISTEN) share.
pub fn pg_config(settings: &DatabaseSettings) -> anyhow::Result<tokio_postgres::Config> {
    let mut pg: tokio_postgres::Config = settings
        .url
        .expose_secret()
        .parse()
        .context("database.url is not a valid PostgreSQL URL")?;
    if let Some(path) = &settings.password_file {
        let pw = read_secret_file("database.password_file", path)?;
        pg.password(pw.expose_secret().as_bytes());
    }
    pg.connect_timeout(Duration::from_millis(settings.connect_timeout_ms));
    pg.application_name("tkm");
    Ok(pg)
}

/// Builds the pool (connections are opened lazily, so this works while the database is down).
pub fn build_pool(settings: &DatabaseSettings) -> anyhow::Result<Pool> {
    let manager = Manager::from_config(
        pg_config(settings)?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(Duration::from_millis(settings.wait_timeout_ms)))
        .create_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .recycle_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .runtime(Runtime::Tokio1)
        .build()
        .context("cannot build the database pool")
}
