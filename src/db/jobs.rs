//! Stored jobs (BIN refreshes, PAR cycles, list builds) with their progress, for `/admin/jobs`.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use super::DbError;

/// A job as `/admin/jobs` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: Uuid,
    /// What it does (`bin-refresh`, `par-refresh`, …).
    pub kind: String,
    /// What it covers (a circuit, or empty for all).
    pub scope: String,
    /// `QUEUED`, `RUNNING`, `SUCCEEDED` or `FAILED`.
    pub state: String,
    /// Units done.
    pub done: i64,
    /// Units in all, when known.
    pub total: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started running.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, kind, scope, state, done, total, error, started_at, finished_at";

fn job(row: &Row) -> Job {
    Job {
        id: row.get(0),
        kind: row.get(1),
        scope: row.get(2),
        state: row.get(3),
        done: row.get(4),
        total: row.get(5),
        error: row.get(6),
        started_at: row.get(7),
        finished_at: row.get(8),
    }
}

/// A job whose owner has not beaten for this long is taken as cut off.
pub const STALE_AFTER_SECS: f64 = 30.0;
/// How often a process beats for its running jobs.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// The identity of a job owner: one per job runner, so each replica (each `Application`, even
/// two in one test process) owns its own jobs.
pub fn new_owner() -> Uuid {
    Uuid::new_v4()
}

/// Starts a running job of `kind` over `scope`, or returns the unfinished one of the same kind
/// and scope (one whose owner stopped beating is ended `interrupted` first). `Ok((id, true))` when
/// this call created it.
pub async fn start(
    pool: &Pool,
    owner: Uuid,
    kind: &str,
    scope: &str,
    by: &str,
) -> Result<(Uuid, bool), DbError> {
    let conn = pool.get().await?;
    let id = Uuid::new_v4();
    let inserted = conn
        .execute(
            "INSERT INTO job (id, kind, scope, state, started_at, owner, created_by, updated_by) \
             VALUES ($1, $2, $3, 'RUNNING', now(), $5, $4, $4) ON CONFLICT DO NOTHING",
            &[&id, &kind, &scope, &by, &owner],
        )
        .await?;
    if inserted == 1 {
        return Ok((id, true));
    }
    let row = conn
        .query_opt(
            "SELECT id, heartbeat_at < now() - make_interval(secs => $3) FROM job \
             WHERE kind = $1 AND scope = $2 AND state IN ('QUEUED', 'RUNNING')",
            &[&kind, &scope, &STALE_AFTER_SECS],
        )
        .await?;
    match row {
        Some(r) if r.get::<_, bool>(1) => {
            fail_interrupted(pool).await?;
            Box::pin(start(pool, owner, kind, scope, by)).await
        }
        Some(r) => Ok((r.get(0), false)),
        // It finished between the two statements: start a new one.
        None => Box::pin(start(pool, owner, kind, scope, by)).await,
    }
}

/// Records progress.
pub async fn progress(pool: &Pool, id: Uuid, done: i64, total: Option<i64>) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE job SET done = $2, total = COALESCE($3, total), updated_at = now() WHERE id = $1",
        &[&id, &done, &total],
    )
    .await?;
    Ok(())
}

/// Ends a job: `SUCCEEDED`, or `FAILED` with the reason.
pub async fn finish(pool: &Pool, id: Uuid, outcome: Result<(), &str>) -> Result<(), DbError> {
    let conn = pool.get().await?;
    let (state, error) = match outcome {
        Ok(()) => ("SUCCEEDED", None),
        Err(e) => ("FAILED", Some(e)),
    };
    conn.execute(
        "UPDATE job SET state = $2, error = $3, finished_at = now(), updated_at = now() \
         WHERE id = $1 AND state IN ('QUEUED', 'RUNNING')",
        &[&id, &state, &error],
    )
    .await?;
    Ok(())
}

/// Ends as `FAILED` (`interrupted`) the unfinished jobs whose owner stopped beating.
pub async fn fail_interrupted(pool: &Pool) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .execute(
            "UPDATE job SET state = 'FAILED', error = 'interrupted', finished_at = now(), \
             updated_at = now(), updated_by = 'job-keeper' WHERE state IN ('QUEUED', 'RUNNING') \
             AND heartbeat_at < now() - make_interval(secs => $1)",
            &[&STALE_AFTER_SECS],
        )
        .await?)
}

/// Beats for `owner`'s unfinished jobs.
pub async fn heartbeat(pool: &Pool, owner: Uuid) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .execute(
            "UPDATE job SET heartbeat_at = now() WHERE owner = $1 AND state IN ('QUEUED', 'RUNNING')",
            &[&owner],
        )
        .await?)
}

/// Forgets a job (a scheduled cycle that found nothing to do).
pub async fn discard(pool: &Pool, id: Uuid) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute("DELETE FROM job WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

/// Deletes finished jobs older than `days`.
pub async fn prune(pool: &Pool, days: i32) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .execute(
            "DELETE FROM job WHERE state IN ('SUCCEEDED', 'FAILED') \
             AND finished_at < now() - make_interval(days => $1)",
            &[&days],
        )
        .await?)
}

/// Runs for the life of the process: beats for its jobs, ends the jobs of processes that
/// stopped beating, and prunes old finished jobs.
pub async fn keeper(pool: Pool, owner: Uuid, retention_days: i32) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        if let Err(e) = heartbeat(&pool, owner).await {
            tracing::warn!(error = %e, "cannot beat for running jobs");
        }
        if n.is_multiple_of(6) {
            match fail_interrupted(&pool).await {
                Ok(0) => {}
                Ok(k) => tracing::warn!(
                    jobs = k,
                    "jobs whose process stopped ended FAILED (interrupted)"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot end interrupted jobs"),
            }
        }
        if n.is_multiple_of(720) {
            if let Err(e) = prune(&pool, retention_days).await {
                tracing::warn!(error = %e, "cannot prune old jobs");
            }
        }
        n = n.wrapping_add(1);
    }
}

/// One job.
pub async fn get(pool: &Pool, id: Uuid) -> Result<Option<Job>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(&format!("SELECT {COLUMNS} FROM job WHERE id = $1"), &[&id])
        .await?;
    Ok(row.as_ref().map(job))
}

/// The most recent jobs, newest first.
pub async fn recent(pool: &Pool, limit: i64) -> Result<Vec<Job>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM job ORDER BY created_at DESC LIMIT $1"),
            &[&limit],
        )
        .await?;
    Ok(rows.iter().map(job).collect())
}
