//! The PAR lookups the resolver owes (`par_lookup`): queued from the card and token tables with
//! key-set paging, leased with `SKIP LOCKED` (eligibility re-checked under the lease, so two
//! cycles never ask twice), and settled with the circuit's answer.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};

use super::DbError;
use crate::crypto::Sealed;
use crate::domain::{Circuit, Hpan, Htoken};

/// Who runs these statements (audit columns).
const BY: &str = "par-resolver";

mod queue;
mod stats;

pub use queue::{drop_unowed, enqueue_cards, enqueue_citizens, enqueue_page, sweep};
pub use stats::{backlog, calls_today, count_calls, pending, Pending};

/// A live card (alias `c`) without PAR, with consent, that can be asked about: by its PAN or,
/// for a card known only by its HPAN, by one of its clear tokens.
pub(crate) const CARD_ELIGIBLE: &str = concat!(
    "c.active AND c.par_key IS NULL \
    AND (c.pan_ct IS NOT NULL OR EXISTS (SELECT 1 FROM token t WHERE t.card_id = c.id \
         AND t.token_ct IS NOT NULL AND NOT t.deleted)) AND ",
    super::consenting_link_sql!("c")
);

/// A clear token of known circuit that is owed a check (`data.md`, TK6):
/// - no PAR and no card (from acquirers' lists): no citizen to ask, eligible as it is;
/// - a provisional PAR (a source below `circuit`) that no card has (acquirers' lists, learnt
///   from transactions): eligible as it is;
/// - a provisional PAR of a card: only under its card's rule — some card of that PAR is live
///   and has consent through a live-linked citizen (a card override of a service wins over the
///   citizen's choice), so a citizen who denied every service is never asked about.
///
/// Tokens waiting on a card whose PAR is unknown are asked through their card.
pub(crate) const TOKEN_ELIGIBLE: &str = concat!(
    "NOT t.deleted AND t.token_ct IS NOT NULL AND t.circuit IS NOT NULL \
    AND ((t.par_key IS NULL AND t.card_id IS NULL) \
      OR (t.par_key IS NOT NULL AND t.source <> 'circuit' AND ( \
           NOT EXISTS (SELECT 1 FROM card pc WHERE pc.par_key = t.par_key) \
        OR EXISTS (SELECT 1 FROM card pc WHERE pc.par_key = t.par_key AND pc.active AND ",
    super::consenting_link_sql!("pc"),
    "))))"
);

/// The account number to ask about, still sealed.
#[derive(Clone, Debug)]
pub enum SealedAccount {
    /// The card's PAN, bound to its HPAN.
    Pan(Sealed, Hpan),
    /// A token PAN, bound to its HTOKEN.
    Token(Sealed, Htoken),
}

/// What a leased lookup is about.
#[derive(Clone, Debug)]
pub enum Subject {
    /// A card (its HPAN); asked by its PAN or through one of its tokens.
    Card(Hpan),
    /// A token (its HTOKEN).
    Token(Htoken),
}

/// A lookup leased to one worker.
#[derive(Clone, Debug)]
pub struct Lease {
    /// `card` or `token` and its row id.
    pub key: (String, i64),
    /// The circuit to ask.
    pub circuit: Circuit,
    /// The subject.
    pub subject: Subject,
    /// The number to ask about.
    pub account: SealedAccount,
    /// "No PAR yet" answers so far.
    pub reasks: i32,
    /// Failed attempts so far.
    pub attempts: i32,
}

/// The two lanes of a circuit's lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// Cards without PAR whose citizen consents (the ones that make wallet payments count):
    /// a newly consenting citizen's first, then by due time.
    Cards,
    /// Verifications of provisional token↔PAR associations (issuers, token lists,
    /// transactions): at most their share of the circuit's rate while cards wait.
    Tokens,
}

impl Lane {
    /// The `subject` of its rows, and its label in metrics and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Cards => "card",
            Lane::Tokens => "token",
        }
    }
}

/// Leases up to `limit` due lookups of one lane of `circuit` for `lease`, from that lane's
/// partial index (the cost does not grow with the queue), re-checking each one's eligibility in
/// the same transaction: lookups no longer owed (deleted card, PAR found meanwhile, consent
/// withdrawn) are dropped from the queue.
pub async fn lease(
    pool: &Pool,
    circuit: Circuit,
    lane: Lane,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Lease>, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    // A lease is advisory: were it lost in a crash, the lookup would only be leased again. So
    // its commit does not wait for the WAL flush.
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    let lease_secs = lease.as_secs_f64();
    // The subject is a literal in each statement, so the planner matches the lane's partial
    // index (a parameter would not prove its predicate). A leased lookup's due time moves to
    // the end of its lease: the index range of due lookups never holds the ones in flight (no
    // scan past them), and a lease that expires (its worker gone) is simply due again.
    let pick = match lane {
        Lane::Cards => {
            "UPDATE par_lookup p SET leased_until = now() + make_interval(secs => $3), \
             next_at = now() + make_interval(secs => $3), updated_at = now() FROM ( \
               SELECT subject, subject_id FROM par_lookup WHERE circuit = $1 AND state = 'pending' \
               AND subject = 'card' AND next_at <= now() \
               AND (leased_until IS NULL OR leased_until < now()) \
               ORDER BY priority, next_at LIMIT $2 FOR UPDATE SKIP LOCKED) AS picked \
             WHERE p.subject = picked.subject AND p.subject_id = picked.subject_id \
             RETURNING p.subject_id, p.reasks, p.attempts"
        }
        Lane::Tokens => {
            "UPDATE par_lookup p SET leased_until = now() + make_interval(secs => $3), \
             next_at = now() + make_interval(secs => $3), updated_at = now() FROM ( \
               SELECT subject, subject_id FROM par_lookup WHERE circuit = $1 AND state = 'pending' \
               AND subject = 'token' AND next_at <= now() \
               AND (leased_until IS NULL OR leased_until < now()) \
               ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED) AS picked \
             WHERE p.subject = picked.subject AND p.subject_id = picked.subject_id \
             RETURNING p.subject_id, p.reasks, p.attempts"
        }
    };
    let pick = tx.prepare_cached(pick).await?;
    let picked = tx
        .query(&pick, &[&circuit.as_str(), &limit, &lease_secs])
        .await?;
    if picked.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let mut counts = std::collections::HashMap::with_capacity(picked.len());
    for r in &picked {
        counts.insert(
            r.try_get::<_, i64>(0)?,
            (r.try_get::<_, i32>(1)?, r.try_get::<_, i32>(2)?),
        );
    }
    let ids: Vec<i64> = counts.keys().copied().collect();
    let leases = match lane {
        Lane::Cards => eligible_cards(&tx, circuit, &ids, &counts).await?,
        Lane::Tokens => eligible_tokens(&tx, circuit, &ids, &counts).await?,
    };
    // Leased but no longer owed: off the queue (a later sweep queues them again if they become
    // eligible again).
    if leases.len() < ids.len() {
        let kept: std::collections::HashSet<i64> = leases.iter().map(|l| l.key.1).collect();
        let dropped: Vec<i64> = ids.into_iter().filter(|id| !kept.contains(id)).collect();
        tx.execute(
            "DELETE FROM par_lookup WHERE subject = $1 AND subject_id = ANY($2)",
            &[&lane.as_str(), &dropped],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(leases)
}

/// The leased cards still owed a lookup, with the number to ask about: the PAN, else the first
/// clear live token of the card.
async fn eligible_cards(
    tx: &deadpool_postgres::Transaction<'_>,
    circuit: Circuit,
    ids: &[i64],
    counts: &std::collections::HashMap<i64, (i32, i32)>,
) -> Result<Vec<Lease>, DbError> {
    let query = tx
        .prepare_cached(&format!(
            "SELECT c.id, c.hpan, c.pan_key_id, c.pan_ct, t.htoken, t.token_key_id, t.token_ct \
             FROM card c LEFT JOIN LATERAL (SELECT htoken, token_key_id, token_ct FROM token t \
               WHERE t.card_id = c.id AND t.token_ct IS NOT NULL AND NOT t.deleted \
               ORDER BY t.id LIMIT 1) t ON c.pan_ct IS NULL \
             WHERE c.id = ANY($1) AND {CARD_ELIGIBLE}"
        ))
        .await?;
    let mut leases = Vec::with_capacity(ids.len());
    for row in tx.query(&query, &[&ids]).await? {
        let id: i64 = row.try_get(0)?;
        let hpan = parse_hash(Hpan::parse(row.try_get(1)?))?;
        let account = match (
            row.try_get::<_, Option<String>>(2)?,
            row.try_get::<_, Option<Vec<u8>>>(3)?,
        ) {
            (Some(key_id), Some(blob)) => SealedAccount::Pan(Sealed { key_id, blob }, hpan.clone()),
            _ => match (
                row.try_get::<_, Option<&str>>(4)?,
                row.try_get::<_, Option<String>>(5)?,
                row.try_get::<_, Option<Vec<u8>>>(6)?,
            ) {
                (Some(htoken), Some(key_id), Some(blob)) => SealedAccount::Token(
                    Sealed { key_id, blob },
                    parse_hash(Htoken::parse(htoken))?,
                ),
                // Eligibility guarantees a clear token; without one there is nothing to ask.
                _ => continue,
            },
        };
        let (reasks, attempts) = counts.get(&id).copied().unwrap_or_default();
        leases.push(Lease {
            key: ("card".to_owned(), id),
            circuit,
            subject: Subject::Card(hpan),
            account,
            reasks,
            attempts,
        });
    }
    Ok(leases)
}

/// The leased tokens still owed a check, with their sealed token PANs.
async fn eligible_tokens(
    tx: &deadpool_postgres::Transaction<'_>,
    circuit: Circuit,
    ids: &[i64],
    counts: &std::collections::HashMap<i64, (i32, i32)>,
) -> Result<Vec<Lease>, DbError> {
    let query = tx
        .prepare_cached(&format!(
            "SELECT t.id, t.htoken, t.token_key_id, t.token_ct FROM token t \
             WHERE t.id = ANY($1) AND {TOKEN_ELIGIBLE}"
        ))
        .await?;
    let mut leases = Vec::with_capacity(ids.len());
    for row in tx.query(&query, &[&ids]).await? {
        let id: i64 = row.try_get(0)?;
        let htoken = parse_hash(Htoken::parse(row.try_get(1)?))?;
        let (reasks, attempts) = counts.get(&id).copied().unwrap_or_default();
        leases.push(Lease {
            key: ("token".to_owned(), id),
            circuit,
            subject: Subject::Token(htoken.clone()),
            account: SealedAccount::Token(
                Sealed {
                    key_id: row.try_get(2)?,
                    blob: row.try_get(3)?,
                },
                htoken,
            ),
            reasks,
            attempts,
        });
    }
    Ok(leases)
}

fn parse_hash<T>(parsed: Result<T, crate::domain::ParseError>) -> Result<T, DbError> {
    parsed.map_err(|e| DbError::Unexpected(anyhow::anyhow!("stored hash: {}", e.0)))
}

/// The answer was applied (PAR found): the lookup is no longer owed.
pub async fn settle_found(pool: &Pool, key: &(String, i64)) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "DELETE FROM par_lookup WHERE subject = $1 AND subject_id = $2",
        &[&key.0, &key.1],
    )
    .await?;
    Ok(())
}

/// "No PAR yet": asked again after `reask_after`, at most `max_reasks` times.
pub async fn settle_not_yet(
    pool: &Pool,
    key: &(String, i64),
    reask_after: Duration,
    max_reasks: i32,
) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE par_lookup SET reasks = reasks + 1, attempts = 0, leased_until = NULL, \
         last_outcome = 'not-yet', next_at = now() + make_interval(secs => $3), \
         state = CASE WHEN reasks + 1 >= $4 THEN 'exhausted' ELSE 'pending' END, \
         updated_at = now(), updated_by = $5 WHERE subject = $1 AND subject_id = $2",
        &[&key.0, &key.1, &reask_after.as_secs_f64(), &max_reasks, &BY],
    )
    .await?;
    Ok(())
}

/// The call failed: due again after `retry_in` (the next cycle), with the outcome recorded.
pub async fn settle_failed(
    pool: &Pool,
    key: &(String, i64),
    outcome: &str,
    retry_in: Duration,
) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE par_lookup SET attempts = attempts + 1, leased_until = NULL, last_outcome = $3, \
         next_at = now() + make_interval(secs => $4), updated_at = now(), updated_by = $5 \
         WHERE subject = $1 AND subject_id = $2",
        &[&key.0, &key.1, &outcome, &retry_in.as_secs_f64(), &BY],
    )
    .await?;
    Ok(())
}

/// The answers of a round of calls, settled together in one transaction.
#[derive(Debug, Default)]
pub struct Settlements {
    /// PARs found and applied: no longer owed.
    pub found: Vec<(String, i64)>,
    /// "No PAR yet": asked again after `reask_after`, at most `max_reasks` times.
    pub not_yet: Vec<(String, i64)>,
    /// Failed calls, with the outcome recorded: due again after `retry_in`.
    pub failed: Vec<((String, i64), String)>,
}

impl Settlements {
    /// Nothing to settle.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty() && self.not_yet.is_empty() && self.failed.is_empty()
    }
}

fn split(keys: &[(String, i64)]) -> (Vec<&str>, Vec<i64>) {
    keys.iter().map(|(s, id)| (s.as_str(), *id)).unzip()
}

/// Settles a round's answers (see [`Settlements`]).
pub async fn settle_batch(
    pool: &Pool,
    settled: &Settlements,
    reask_after: Duration,
    max_reasks: i32,
    retry_in: Duration,
) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    if !settled.found.is_empty() {
        let (subjects, ids) = split(&settled.found);
        tx.execute(
            "DELETE FROM par_lookup p USING unnest($1::text[], $2::bigint[]) AS k(subject, id) \
             WHERE p.subject = k.subject AND p.subject_id = k.id",
            &[&subjects, &ids],
        )
        .await?;
    }
    if !settled.not_yet.is_empty() {
        let (subjects, ids) = split(&settled.not_yet);
        tx.execute(
            "UPDATE par_lookup p SET reasks = p.reasks + 1, attempts = 0, leased_until = NULL, \
             last_outcome = 'not-yet', next_at = now() + make_interval(secs => $3), \
             state = CASE WHEN p.reasks + 1 >= $4 THEN 'exhausted' ELSE 'pending' END, \
             updated_at = now(), updated_by = $5 \
             FROM unnest($1::text[], $2::bigint[]) AS k(subject, id) \
             WHERE p.subject = k.subject AND p.subject_id = k.id",
            &[
                &subjects,
                &ids,
                &reask_after.as_secs_f64(),
                &max_reasks,
                &BY,
            ],
        )
        .await?;
    }
    if !settled.failed.is_empty() {
        let keys: Vec<(String, i64)> = settled.failed.iter().map(|(k, _)| k.clone()).collect();
        let (subjects, ids) = split(&keys);
        let outcomes: Vec<&str> = settled.failed.iter().map(|(_, o)| o.as_str()).collect();
        tx.execute(
            "UPDATE par_lookup p SET attempts = p.attempts + 1, leased_until = NULL, \
             last_outcome = k.outcome, next_at = now() + make_interval(secs => $4), \
             updated_at = now(), updated_by = $5 \
             FROM unnest($1::text[], $2::bigint[], $3::text[]) AS k(subject, id, outcome) \
             WHERE p.subject = k.subject AND p.subject_id = k.id",
            &[&subjects, &ids, &outcomes, &retry_in.as_secs_f64(), &BY],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
