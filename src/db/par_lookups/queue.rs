//! Queueing the lookups owed: by card batches and consent changes in their own transaction, and
//! by the incremental eligibility sweep; dropping the ones no longer owed.

use deadpool_postgres::{GenericClient, Pool};

use super::{BY, CARD_ELIGIBLE, TOKEN_ELIGIBLE};
use crate::db::DbError;

/// Queues the eligible cards and tokens after the given ids (one page each); returns how many
/// rows were queued and the last ids seen (`None` once a table is exhausted).
pub async fn enqueue_page(
    pool: &Pool,
    after_card: Option<i64>,
    after_token: Option<i64>,
    page: i64,
) -> Result<(u64, Option<i64>, Option<i64>), DbError> {
    let conn = pool.get().await?;
    let mut queued = 0;
    let mut next_card = None;
    if let Some(after) = after_card {
        let ids: Vec<i64> = conn
            .query(
                &format!(
                    "SELECT c.id FROM card c WHERE c.id > $1 AND {CARD_ELIGIBLE} \
                     ORDER BY c.id LIMIT $2"
                ),
                &[&after, &page],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        queued += conn
            .execute(
                "INSERT INTO par_lookup (subject, subject_id, circuit, created_by, updated_by) \
                 SELECT 'card', c.id, c.circuit, $2, $2 FROM card c WHERE c.id = ANY($1) \
                 ON CONFLICT DO NOTHING",
                &[&ids, &BY],
            )
            .await?;
        next_card = (ids.len() as i64 == page)
            .then(|| ids.last().copied())
            .flatten();
    }
    let mut next_token = None;
    if let Some(after) = after_token {
        let ids: Vec<i64> = conn
            .query(
                &format!(
                    "SELECT t.id FROM token t WHERE t.id > $1 AND {TOKEN_ELIGIBLE} \
                     ORDER BY t.id LIMIT $2"
                ),
                &[&after, &page],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        queued += conn
            .execute(
                "INSERT INTO par_lookup (subject, subject_id, circuit, created_by, updated_by) \
                 SELECT 'token', t.id, t.circuit, $2, $2 FROM token t WHERE t.id = ANY($1) \
                 ON CONFLICT DO NOTHING",
                &[&ids, &BY],
            )
            .await?;
        next_token = (ids.len() as i64 == page)
            .then(|| ids.last().copied())
            .flatten();
    }
    Ok((queued, next_card, next_token))
}

/// Queues the given cards that are owed a lookup, in the caller's transaction (a card batch).
pub async fn enqueue_cards(client: &impl GenericClient, ids: &[i64]) -> Result<u64, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(client
        .execute(
            &format!(
                "INSERT INTO par_lookup (subject, subject_id, circuit, created_by, updated_by) \
                 SELECT 'card', c.id, c.circuit, $2, $2 FROM card c \
                 WHERE c.id = ANY($1) AND {CARD_ELIGIBLE} ON CONFLICT DO NOTHING"
            ),
            &[&ids, &"card-registry"],
        )
        .await?)
}

/// Queues at once the cards of these citizens that have no PAR (a consent change), in the
/// caller's transaction: first in their lane (priority 0), due now even when a "no PAR yet"
/// answer made them wait (but not while leased: that lookup is being asked already).
pub async fn enqueue_citizens(
    client: &impl GenericClient,
    tax_codes: &[String],
) -> Result<u64, DbError> {
    Ok(client
        .execute(
            &format!(
                "INSERT INTO par_lookup (subject, subject_id, circuit, priority, created_by, updated_by) \
                 SELECT DISTINCT 'card', c.id, c.circuit, 0, $2, $2 FROM card c \
                 JOIN card_link cl ON cl.card_id = c.id AND cl.live \
                 WHERE cl.tax_code = ANY($1) AND {CARD_ELIGIBLE} \
                 ON CONFLICT (subject, subject_id) DO UPDATE SET next_at = now(), priority = 0, \
                 updated_at = now() WHERE par_lookup.state = 'pending' \
                 AND (par_lookup.leased_until IS NULL OR par_lookup.leased_until < now())"
            ),
            &[&tax_codes, &"consent-change"],
        )
        .await?)
}

/// Drops the pending card lookups of these citizens' cards that are no longer owed (consent
/// withdrawn), in the caller's transaction; returns how many.
pub async fn drop_unowed(
    client: &impl GenericClient,
    tax_codes: &[String],
) -> Result<u64, DbError> {
    Ok(client
        .execute(
            &format!(
                "DELETE FROM par_lookup p USING card c \
                 WHERE p.subject = 'card' AND p.subject_id = c.id AND p.state = 'pending' \
                 AND c.id IN (SELECT cl.card_id FROM card_link cl WHERE cl.tax_code = ANY($1)) \
                 AND NOT ({CARD_ELIGIBLE})"
            ),
            &[&tax_codes],
        )
        .await?)
}

/// One step of the eligibility sweep, the safety net behind the lookups queued by card batches
/// and consent changes: queues what is owed among the next `page` candidates of each table (a
/// partial index holds only candidates) after where the previous step stopped, and remembers
/// where it stopped; a table swept to its end starts again from the beginning. So a sweep is
/// spread over the cycles rather than a rescan of the tables. Returns how many were queued, and
/// whether both tables were swept to their end in this step.
pub async fn sweep(pool: &Pool, page: i64) -> Result<(u64, bool), DbError> {
    let conn = pool.get().await?;
    let mut after_card = 0;
    let mut after_token = 0;
    for row in conn
        .query("SELECT subject, after_id FROM par_sweep", &[])
        .await?
    {
        match row.try_get::<_, &str>(0)? {
            "card" => after_card = row.try_get(1)?,
            _ => after_token = row.try_get(1)?,
        }
    }
    let (queued, next_card, next_token) =
        enqueue_page(pool, Some(after_card), Some(after_token), page).await?;
    for (subject, next) in [("card", next_card), ("token", next_token)] {
        // `None`: swept to the end; the next step starts over.
        conn.execute(
            "INSERT INTO par_sweep (subject, after_id, passes, created_by, updated_by) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (subject) DO UPDATE SET \
             after_id = EXCLUDED.after_id, passes = par_sweep.passes + EXCLUDED.passes, \
             updated_at = now(), updated_by = $4",
            &[
                &subject,
                &next.unwrap_or(0),
                &i64::from(next.is_none()),
                &BY,
            ],
        )
        .await?;
    }
    Ok((queued, next_card.is_none() && next_token.is_none()))
}
