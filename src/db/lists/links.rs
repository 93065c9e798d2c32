//! One-shot links to list files (`list_link`): minted, and redeemed once by their client.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use super::{file, ListFile};
use crate::db::DbError;
use crate::domain::lists::ListKind;

/// A link to mint.
#[derive(Clone, Debug)]
pub struct NewLink {
    /// SHA-256 of the token.
    pub token_sha256: [u8; 32],
    /// The generation.
    pub generation: i64,
    /// The delta's starting generation, for a delta.
    pub delta_since: Option<i64>,
    /// The part.
    pub part: i32,
    /// The minting client.
    pub client: String,
    /// Until when it works.
    pub expires_at: DateTime<Utc>,
}

/// Stores links (and drops those expired more than a day ago).
pub async fn mint(pool: &Pool, links: &[NewLink]) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let insert = tx
        .prepare(
            "INSERT INTO list_link (token_sha256, generation_id, delta_since, part, client, \
             expires_at, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $5, $5)",
        )
        .await?;
    for l in links {
        tx.execute(
            &insert,
            &[
                &l.token_sha256.as_slice(),
                &l.generation,
                &l.delta_since,
                &l.part,
                &l.client,
                &l.expires_at,
            ],
        )
        .await?;
    }
    tx.execute(
        "DELETE FROM list_link WHERE expires_at < now() - interval '1 day'",
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What a link leads to once redeemed.
#[derive(Clone, Debug)]
pub struct Redeemed {
    /// The list.
    pub kind: ListKind,
    /// The generation.
    pub generation: i64,
    /// When the generation was built.
    pub created_at: DateTime<Utc>,
    /// The file.
    pub file: ListFile,
}

/// The outcome of a download request.
#[derive(Clone, Debug)]
pub enum Redemption {
    /// Consumed now by this request.
    Granted(Redeemed),
    /// Used already, or expired (410 4002).
    Gone,
    /// Unknown, or minted by another client (404).
    Unknown,
}

/// Consumes a link atomically: of concurrent requests exactly one gets it.
pub async fn redeem(
    pool: &Pool,
    token_sha256: &[u8; 32],
    client: &str,
) -> Result<Redemption, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "UPDATE list_link SET used_at = now(), updated_at = now(), updated_by = $2 \
             WHERE token_sha256 = $1 AND client = $2 AND used_at IS NULL AND expires_at > now() \
             RETURNING generation_id, delta_since, part",
            &[&token_sha256.as_slice(), &client],
        )
        .await?;
    let Some(row) = row else {
        let known = conn
            .query_opt(
                "SELECT 1 FROM list_link WHERE token_sha256 = $1 AND client = $2",
                &[&token_sha256.as_slice(), &client],
            )
            .await?;
        return Ok(if known.is_some() {
            Redemption::Gone
        } else {
            Redemption::Unknown
        });
    };
    let (generation, since, part): (i64, Option<i64>, i32) = (row.get(0), row.get(1), row.get(2));
    let found = conn
        .query_opt(
            "SELECT f.part, f.file_name, f.entries, f.bytes, f.sha256, g.kind, g.created_at \
             FROM list_file f JOIN list_generation g ON g.id = f.generation_id \
             WHERE f.generation_id = $1 AND f.delta_since IS NOT DISTINCT FROM $2 AND f.part = $3",
            &[&generation, &since, &part],
        )
        .await?;
    let Some(f) = found else {
        return Ok(Redemption::Gone);
    };
    let kind = ListKind::parse(f.get(5))
        .ok_or_else(|| DbError::Unexpected(anyhow::anyhow!("stored list kind does not parse")))?;
    Ok(Redemption::Granted(Redeemed {
        kind,
        generation,
        created_at: f.get(6),
        file: file(&f),
    }))
}
