//! The published lists' tables (`list_generation`, `list_file`, `list_link`): generations and
//! their files here, links in `links.rs`, the membership queries in `membership.rs`.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};

use super::DbError;
use crate::domain::lists::ListKind;

mod links;
mod membership;

pub use links::{mint, redeem, NewLink, Redeemed, Redemption};
pub use membership::{bin_range_lines, copy_statement, copy_streams, stream_sorted, CopyStream};

/// Who runs these statements (audit columns).
const BY: &str = "list-builder";

/// A file of a generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListFile {
    /// Part number, from 0.
    pub part: i32,
    /// Name in the generation's directory.
    pub file_name: String,
    /// Lines.
    pub entries: i64,
    /// Size.
    pub bytes: i64,
    /// SHA-256 of the bytes.
    pub sha256: String,
}

/// A ready generation and its parts.
#[derive(Clone, Debug)]
pub struct Generation {
    /// Its id (`x-ms-meta-generation`).
    pub id: i64,
    /// The list.
    pub kind: ListKind,
    /// When it was built (the data's time: `generationDate`, `Last-Modified`).
    pub created_at: DateTime<Utc>,
    /// Lines in all parts.
    pub entries: i64,
    /// SHA-256 of the content (every part's lines in order, LF-terminated).
    pub content_sha256: String,
    /// Its parts, in order.
    pub parts: Vec<ListFile>,
}

/// Starts a generation (`building`); ends as `failed` any other building one of the kind — the
/// caller holds the kind's build lock, so those were cut off.
pub async fn begin(pool: &Pool, kind: ListKind) -> Result<(i64, DateTime<Utc>), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE list_generation SET state = 'failed', error = 'interrupted', updated_at = now(), \
         updated_by = $2 WHERE kind = $1 AND state = 'building'",
        &[&kind.as_str(), &BY],
    )
    .await?;
    let row = conn
        .query_one(
            "INSERT INTO list_generation (kind, state, created_by, updated_by) \
             VALUES ($1, 'building', $2, $2) RETURNING id, created_at",
            &[&kind.as_str(), &BY],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Publishes a built generation with its files (parts with `delta_since` `None`, deltas with
/// the generation they start from).
pub async fn publish(
    pool: &Pool,
    id: i64,
    entries: i64,
    content_sha256: &str,
    files: &[(Option<i64>, ListFile)],
) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let insert = tx
        .prepare(
            "INSERT INTO list_file (generation_id, delta_since, part, file_name, entries, bytes, \
             sha256, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .await?;
    for (since, f) in files {
        tx.execute(
            &insert,
            &[
                &id,
                since,
                &f.part,
                &f.file_name,
                &f.entries,
                &f.bytes,
                &f.sha256,
                &BY,
            ],
        )
        .await?;
    }
    tx.execute(
        "UPDATE list_generation SET state = 'ready', entries = $2, content_sha256 = $4, \
         ready_at = now(), updated_at = now(), updated_by = $3 WHERE id = $1",
        &[&id, &entries, &BY, &content_sha256],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Marks a generation failed with the reason (its files are gone or never were).
pub async fn fail(pool: &Pool, id: i64, error: &str) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE list_generation SET state = 'failed', error = $2, updated_at = now(), \
         updated_by = $3 WHERE id = $1 AND state = 'building'",
        &[&id, &error, &BY],
    )
    .await?;
    Ok(())
}

pub(super) fn file(row: &tokio_postgres::Row) -> ListFile {
    ListFile {
        part: row.get(0),
        file_name: row.get(1),
        entries: row.get(2),
        bytes: row.get(3),
        sha256: row.get(4),
    }
}

/// The newest ready generation of a list, with its parts.
pub async fn latest(pool: &Pool, kind: ListKind) -> Result<Option<Generation>, DbError> {
    let conn = pool.get().await?;
    let Some(g) = conn
        .query_opt(
            "SELECT id, created_at, entries, content_sha256 FROM list_generation \
             WHERE kind = $1 AND state = 'ready' ORDER BY id DESC LIMIT 1",
            &[&kind.as_str()],
        )
        .await?
    else {
        return Ok(None);
    };
    let id: i64 = g.get(0);
    let parts = conn
        .query(
            "SELECT part, file_name, entries, bytes, sha256 FROM list_file \
             WHERE generation_id = $1 AND delta_since IS NULL ORDER BY part",
            &[&id],
        )
        .await?
        .iter()
        .map(file)
        .collect();
    Ok(Some(Generation {
        id,
        kind,
        created_at: g.get(1),
        entries: g.get(2),
        content_sha256: g.get(3),
        parts,
    }))
}

/// The ready generations of a list other than `except`, newest first: the ones a new
/// generation writes deltas from.
pub async fn ready_ids(pool: &Pool, kind: ListKind, except: i64) -> Result<Vec<i64>, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query(
            "SELECT id FROM list_generation WHERE kind = $1 AND state = 'ready' AND id <> $2 \
             ORDER BY id DESC",
            &[&kind.as_str(), &except],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The part files of a ready generation, in order (empty when it is not ready or unknown).
pub async fn part_files(pool: &Pool, generation: i64) -> Result<Vec<ListFile>, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query(
            "SELECT f.part, f.file_name, f.entries, f.bytes, f.sha256 FROM list_file f \
             JOIN list_generation g ON g.id = f.generation_id AND g.state = 'ready' \
             WHERE f.generation_id = $1 AND f.delta_since IS NULL ORDER BY f.part",
            &[&generation],
        )
        .await?
        .iter()
        .map(file)
        .collect())
}

/// The delta of generation `generation` from `since`, if it was written.
pub async fn delta_file(
    pool: &Pool,
    generation: i64,
    since: i64,
) -> Result<Option<ListFile>, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query_opt(
            "SELECT part, file_name, entries, bytes, sha256 FROM list_file \
             WHERE generation_id = $1 AND delta_since = $2",
            &[&generation, &since],
        )
        .await?
        .as_ref()
        .map(file))
}

/// Deletes the generations of a list past retention (never the newest ready one) and the failed
/// ones; returns their ids, whose directories the caller removes.
pub async fn expire(pool: &Pool, kind: ListKind, retention_days: u32) -> Result<Vec<i64>, DbError> {
    let conn = pool.get().await?;
    let days = i32::try_from(retention_days).unwrap_or(i32::MAX);
    Ok(conn
        .query(
            "DELETE FROM list_generation g WHERE g.kind = $1 AND g.state <> 'building' \
             AND (g.state = 'failed' OR g.created_at < now() - make_interval(days => $2)) \
             AND g.id <> COALESCE((SELECT max(id) FROM list_generation \
                                   WHERE kind = $1 AND state = 'ready'), 0) \
             RETURNING g.id",
            &[&kind.as_str(), &days],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Every generation id still stored (any state), so that orphan directories can be removed.
pub async fn known_ids(pool: &Pool, kind: ListKind) -> Result<Vec<i64>, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query(
            "SELECT id FROM list_generation WHERE kind = $1",
            &[&kind.as_str()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
