//! `tkm keys rotate` for the card tables: every PAN and token PAN sealed under another key than
//! the ring's active one is re-encrypted under it, a page at a time. Online: each row is written
//! only if it still holds the ciphertext that was read (a card event that sealed a new one
//! meanwhile wins), so it runs beside the server; resumable: a new run picks up what is left.

use deadpool_postgres::Pool;

use crate::crypto::{KeyRing, Sealed};
use crate::db::DbError;

/// Rows per page.
const PAGE: i64 = 500;

/// Who rotates (audit columns).
const BY: &str = "keys-rotate";

/// The PANs and token PANs not under the active key yet: (cards, tokens).
pub async fn left(pool: &Pool, ring: &KeyRing) -> Result<(i64, i64), DbError> {
    let conn = pool.get().await?;
    let active = ring.active_id();
    let cards = conn
        .query_one(
            "SELECT count(*) FROM card WHERE pan_key_id IS NOT NULL AND pan_key_id <> $1",
            &[&active],
        )
        .await?
        .try_get(0)?;
    let tokens = conn
        .query_one(
            "SELECT count(*) FROM token WHERE token_key_id IS NOT NULL AND token_key_id <> $1",
            &[&active],
        )
        .await?
        .try_get(0)?;
    Ok((cards, tokens))
}

/// Re-encrypts one page of cards (`tokens`: of tokens) under the active key; answers how many
/// rows it took (0: nothing left).
pub async fn rotate_page(pool: &Pool, ring: &KeyRing, tokens: bool) -> Result<u64, DbError> {
    let (select, update) = if tokens {
        (
            "SELECT id, htoken, token_key_id, token_ct FROM token \
             WHERE token_key_id IS NOT NULL AND token_key_id <> $1 ORDER BY id LIMIT $2",
            "UPDATE token SET token_key_id = x.k, token_ct = x.c, updated_at = now(), updated_by = $5 \
             FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[]) AS x(id, k, c, old) \
             WHERE token.id = x.id AND token.token_ct = x.old",
        )
    } else {
        (
            "SELECT id, hpan, pan_key_id, pan_ct FROM card \
             WHERE pan_key_id IS NOT NULL AND pan_key_id <> $1 ORDER BY id LIMIT $2",
            "UPDATE card SET pan_key_id = x.k, pan_ct = x.c, updated_at = now(), updated_by = $5 \
             FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[]) AS x(id, k, c, old) \
             WHERE card.id = x.id AND card.pan_ct = x.old",
        )
    };
    let conn = pool.get().await?;
    let rows = conn.query(select, &[&ring.active_id(), &PAGE]).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let (mut ids, mut key_ids, mut blobs, mut olds) = (vec![], vec![], vec![], vec![]);
    for r in &rows {
        let sealed = Sealed {
            key_id: r.try_get(2)?,
            blob: r.try_get(3)?,
        };
        let hash: String = r.try_get(1)?;
        let fresh = ring.reseal(&sealed, &hash).map_err(|e| {
            DbError::Unexpected(anyhow::anyhow!(
                "a stored ciphertext does not open with key {}: {e}",
                sealed.key_id
            ))
        })?;
        ids.push(r.try_get::<_, i64>(0)?);
        key_ids.push(fresh.key_id);
        blobs.push(fresh.blob);
        olds.push(sealed.blob);
    }
    // A row a card event rewrote meanwhile is not overwritten: it is under the active key already.
    conn.execute(update, &[&ids, &key_ids, &blobs, &olds, &BY])
        .await?;
    Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
}
