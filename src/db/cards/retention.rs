//! Erasure of the ciphertexts of cards and tokens inactive for `vault.inactive_retention_days`
//! (`data.md`, retention): the PAN or token PAN goes, its hash, last four, PAR and history stay.
//! Each row is erased under its advisory lock, like any change the card registry makes, and only
//! if it is still inactive then (a card enrolled again meanwhile keeps its PAN).

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use super::lock_key;
use crate::db::DbError;

/// Rows erased per transaction.
const PAGE: i64 = 1000;

/// Who erases (audit columns).
const BY: &str = "retention";

/// Erases the ciphertexts of cards inactive and tokens deleted since before `cutoff`; answers how
/// many of each were erased.
pub async fn erase_inactive(pool: &Pool, cutoff: DateTime<Utc>) -> Result<(u64, u64), DbError> {
    let mut cards = 0u64;
    loop {
        let n = erase_page(pool, Subject::Card, cutoff).await?;
        cards = cards.saturating_add(n);
        if n == 0 {
            break;
        }
    }
    let mut tokens = 0u64;
    loop {
        let n = erase_page(pool, Subject::Token, cutoff).await?;
        tokens = tokens.saturating_add(n);
        if n == 0 {
            break;
        }
    }
    Ok((cards, tokens))
}

#[derive(Clone, Copy)]
enum Subject {
    Card,
    Token,
}

impl Subject {
    /// (candidates, erase): the table's inactive rows with a ciphertext, and the erasure that
    /// checks again under the lock.
    fn statements(self) -> (&'static str, &'static str) {
        match self {
            Subject::Card => (
                "SELECT hpan FROM card WHERE NOT active AND pan_ct IS NOT NULL AND updated_at < $1 \
                 ORDER BY id LIMIT $2",
                "UPDATE card SET pan_ct = NULL, pan_key_id = NULL, updated_at = now(), updated_by = $3 \
                 WHERE hpan = ANY($1) AND NOT active AND pan_ct IS NOT NULL AND updated_at < $2",
            ),
            Subject::Token => (
                "SELECT htoken FROM token WHERE deleted AND token_ct IS NOT NULL AND updated_at < $1 \
                 ORDER BY id LIMIT $2",
                "UPDATE token SET token_ct = NULL, token_key_id = NULL, updated_at = now(), updated_by = $3 \
                 WHERE htoken = ANY($1) AND deleted AND token_ct IS NOT NULL AND updated_at < $2",
            ),
        }
    }

    fn lock_kind(self) -> &'static str {
        match self {
            Subject::Card => "card",
            Subject::Token => "token",
        }
    }
}

async fn erase_page(pool: &Pool, subject: Subject, cutoff: DateTime<Utc>) -> Result<u64, DbError> {
    let (candidates, erase) = subject.statements();
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let keys: Vec<String> = tx
        .query(candidates, &[&cutoff, &PAGE])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Ok(0);
    }
    let locks: Vec<i64> = keys
        .iter()
        .map(|k| lock_key(subject.lock_kind(), k))
        .collect();
    tx.execute(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) s",
        &[&locks],
    )
    .await?;
    let erased = tx.execute(erase, &[&keys, &cutoff, &BY]).await?;
    tx.commit().await?;
    Ok(erased)
}
