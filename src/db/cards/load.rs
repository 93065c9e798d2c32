//! Locking and loading a batch's slice of the registry.

use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;

use super::lock_key;
use crate::db::DbError;
use crate::domain::cards::{CardRow, LinkRow, Snapshot, TokenRow};
use crate::domain::{Circuit, ConsentState, Hpan, Htoken, Par, Source, TaxCode};

/// What a batch names: cards, tokens, PARs (keys) and citizens.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    /// HPANs.
    pub hpans: BTreeSet<String>,
    /// HTOKENs.
    pub htokens: BTreeSet<String>,
    /// PAR keys (upper case).
    pub par_keys: BTreeSet<String>,
    /// Tax codes whose consent matters.
    pub tax_codes: BTreeSet<String>,
    /// HTOKENs of acquirers' listed tokens and of tokens payments teach (also in `htokens`),
    /// locked only once found in the registry. Nearly all are new, and their two locks per row were a third of a token
    /// list's time; a new one is guarded by the token table's unique key instead: a writer
    /// that inserts it first makes this batch fail on that key and be applied again, and the
    /// retry finds it and locks it.
    pub listed: BTreeSet<String>,
}

impl Keys {
    fn locks(&self) -> BTreeSet<i64> {
        let cards = self.hpans.iter().map(|h| lock_key("card", h));
        let tokens = self
            .htokens
            .iter()
            .filter(|h| !self.listed.contains(*h))
            .map(|h| lock_key("token", h));
        let pars = self.par_keys.iter().map(|p| lock_key("par", p));
        cards.chain(tokens).chain(pars).collect()
    }

    /// The keys of `self` that `other` does not hold (citizens: all of them, their consent is
    /// read with the links of the cards loaded).
    fn minus(&self, other: &Keys) -> Keys {
        Keys {
            hpans: self.hpans.difference(&other.hpans).cloned().collect(),
            htokens: self.htokens.difference(&other.htokens).cloned().collect(),
            par_keys: self.par_keys.difference(&other.par_keys).cloned().collect(),
            tax_codes: self.tax_codes.clone(),
            listed: BTreeSet::new(),
        }
    }

    /// Adds what the loaded rows lead to; true when that needs locks (and a reload). Citizens
    /// need neither: their consent is read with their links.
    fn absorb(&mut self, other: Keys) -> bool {
        let before = (self.hpans.len(), self.htokens.len(), self.par_keys.len());
        self.hpans.extend(other.hpans);
        self.htokens.extend(other.htokens);
        self.par_keys.extend(other.par_keys);
        before != (self.hpans.len(), self.htokens.len(), self.par_keys.len())
    }
}

fn corrupt(what: &'static str) -> DbError {
    DbError::Unexpected(anyhow::anyhow!("stored {what} does not parse"))
}

/// Takes the advisory locks of everything the batch names, loads it, and repeats with whatever
/// the loaded rows lead to (other cards of a PAR, a token's PAR) until nothing new appears.
/// Locks are taken in key order within each round; a deadlock across rounds is detected by
/// PostgreSQL and the batch retried by the caller.
pub async fn lock_and_load(tx: &Transaction<'_>, keys: Keys) -> Result<Snapshot, DbError> {
    load_closure(tx, keys, true).await
}

/// Loads what `keys` name and what it leads to, without locks (read-only views).
pub async fn load_unlocked(tx: &Transaction<'_>, keys: &Keys) -> Result<Snapshot, DbError> {
    load_closure(tx, keys.clone(), false).await
}

async fn load_closure(
    tx: &Transaction<'_>,
    mut keys: Keys,
    locking: bool,
) -> Result<Snapshot, DbError> {
    // Every read below is a lookup of at most a batch's keys by a unique or selective index.
    // Below ~40 000 rows the planner's model (pages fetched from disk) prices 512 probes above
    // hashing the whole table, so a growing registry was read whole by every batch; the pages
    // are cached, and the probes cost a fraction of that.
    // JIT compiles for the planner's row estimates, which are far off for key lists (a PAR's
    // tokens are estimated in thousands): pure overhead on lookups of a few rows.
    tx.batch_execute("SET LOCAL enable_seqscan = off; SET LOCAL jit = off")
        .await?;
    let mut locked: BTreeSet<i64> = BTreeSet::new();
    let mut snap = Snapshot::default();
    // What the rounds so far have loaded: each round loads only what the keys it adds name.
    let mut loaded = Keys::default();
    for _ in 0..6 {
        let new: Vec<i64> = keys.locks().difference(&locked).copied().collect();
        if locking && !new.is_empty() {
            tx.execute(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) s",
                &[&new],
            )
            .await?;
            locked.extend(new);
        }
        // A later round loads only what its new keys name, not everything again (a token
        // list's batch whose first PAR had tokens from the batch before loaded twice). That
        // is the same snapshot: a row reached through a key locked earlier is read again here
        // by its own key (every loaded row's key is new to this round) and replaced; a row
        // read by its own locked key cannot have changed; and no row can have joined a locked
        // PAR, card or token since, as every writer locks those of the rows it changes.
        let fresh = keys.minus(&loaded);
        merge(&mut snap, load(tx, &fresh).await?);
        loaded = keys.clone();
        // A listed token that exists is locked like any other row and read again under its
        // lock in the next round.
        let found: Vec<String> = keys
            .listed
            .iter()
            .filter(|h| Htoken::parse(h).is_ok_and(|t| snap.tokens.contains_key(&t)))
            .cloned()
            .collect();
        for h in &found {
            keys.listed.remove(h);
            loaded.htokens.remove(h);
        }
        if !keys.absorb(keys_of(&snap)) && (found.is_empty() || !locking) {
            snap.remember_before();
            return Ok(snap);
        }
    }
    Err(DbError::Unexpected(anyhow::anyhow!(
        "card association graph did not close after 6 rounds"
    )))
}

/// Adds the rows of a later round, replacing those read before under another row's lock.
fn merge(snap: &mut Snapshot, more: Snapshot) {
    snap.cards.extend(more.cards);
    snap.links.extend(more.links);
    snap.tokens.extend(more.tokens);
    snap.consents.extend(more.consents);
}

fn keys_of(snap: &Snapshot) -> Keys {
    let mut k = Keys::default();
    for c in snap.cards.values() {
        k.hpans.insert(c.hpan.to_string());
        k.par_keys.extend(c.par_key());
    }
    for t in snap.tokens.values() {
        k.htokens.insert(t.htoken.to_string());
        k.par_keys.extend(t.par_key());
        if let Some(h) = &t.card {
            k.hpans.insert(h.to_string());
        }
    }
    k
}

/// `select` (`SELECT … FROM <table> <alias>`) for every key of `$1`, one index lookup per key
/// on a non-unique column. A plain join with the unnested keys is hashed against the whole
/// table as soon as the column's distinct values are underestimated (ten tokens per PAR read
/// as thousands: a 1 M-row token list read the token table whole for every batch); the
/// `OFFSET 0` fence keeps the per-key lookup.
fn by_each_key(select: &str, alias: &str, column: &str, key_type: &str) -> String {
    let (columns, from) = select.split_once(" FROM ").unwrap_or((select, ""));
    let columns = columns.trim_start_matches("SELECT ");
    format!(
        "SELECT {columns} FROM unnest($1::{key_type}[]) AS k(v) \
         CROSS JOIN LATERAL (SELECT * FROM {from} WHERE {column} = k.v OFFSET 0) {alias}"
    )
}

async fn load(tx: &Transaction<'_>, keys: &Keys) -> Result<Snapshot, DbError> {
    let hpans: Vec<&str> = keys.hpans.iter().map(String::as_str).collect();
    let htokens: Vec<&str> = keys.htokens.iter().map(String::as_str).collect();
    let pars: Vec<&str> = keys.par_keys.iter().map(String::as_str).collect();
    // One lookup per key kind, written as a join with the unnested keys: `col = ANY($1)` (and
    // an OR of them) lets a stale statistic turn the plan into a sequential scan of a growing
    // table; a join with a small key list is planned as index lookups whatever the statistics.
    const CARD_COLUMNS: &str = "SELECT c.id, c.hpan, c.pan_last4, c.circuit, c.par, c.par_source, c.active, c.last_update_ts FROM card c";
    let by_hpan = tx
        .prepare_cached(&format!(
            "{CARD_COLUMNS} JOIN unnest($1::text[]) AS k(v) ON c.hpan = k.v"
        ))
        .await?;
    let by_par = tx
        .prepare_cached(&by_each_key(CARD_COLUMNS, "c", "c.par_key", "text"))
        .await?;
    let mut card_rows = tx.query(&by_hpan, &[&hpans]).await?;
    if !pars.is_empty() {
        card_rows.extend(tx.query(&by_par, &[&pars]).await?);
    }
    let mut snap = Snapshot::default();
    let mut by_id: HashMap<i64, Hpan> = HashMap::new();
    for row in card_rows {
        let id: i64 = row.try_get(0)?;
        let hpan = Hpan::parse(row.try_get(1)?).map_err(|_| corrupt("hpan"))?;
        let par = match (
            row.try_get::<_, Option<&str>>(4)?,
            row.try_get::<_, Option<&str>>(5)?,
        ) {
            (Some(p), Some(s)) => Some((
                Par::parse(p).map_err(|_| corrupt("par"))?,
                s.parse::<Source>().map_err(|_| corrupt("par_source"))?,
            )),
            _ => None,
        };
        by_id.insert(id, hpan.clone());
        snap.cards.insert(
            hpan.clone(),
            CardRow {
                id: Some(id),
                hpan,
                new_pan: None,
                last4: row.try_get(2)?,
                circuit: Circuit::from_json_name(row.try_get(3)?)
                    .map_err(|_| corrupt("circuit"))?,
                par,
                active: row.try_get(6)?,
                last_update_ts: row.try_get(7)?,
                dirty: false,
            },
        );
    }
    let ids: Vec<i64> = by_id.keys().copied().collect();
    const TOKEN_COLUMNS: &str = "SELECT t.id, t.htoken, t.token_ct IS NOT NULL, t.token_last4, t.circuit, t.par, t.card_id, t.source, t.deleted, t.since FROM token t";
    let mut token_rows = Vec::new();
    if !htokens.is_empty() {
        let s = tx
            .prepare_cached(&format!(
                "{TOKEN_COLUMNS} JOIN unnest($1::text[]) AS k(v) ON t.htoken = k.v"
            ))
            .await?;
        token_rows.extend(tx.query(&s, &[&htokens]).await?);
    }
    if !pars.is_empty() {
        let s = tx
            .prepare_cached(&by_each_key(TOKEN_COLUMNS, "t", "t.par_key", "text"))
            .await?;
        token_rows.extend(tx.query(&s, &[&pars]).await?);
    }
    if !ids.is_empty() {
        let s = tx
            .prepare_cached(&by_each_key(TOKEN_COLUMNS, "t", "t.card_id", "bigint"))
            .await?;
        token_rows.extend(tx.query(&s, &[&ids]).await?);
    }
    for row in token_rows {
        let htoken = Htoken::parse(row.try_get(1)?).map_err(|_| corrupt("htoken"))?;
        let card_id: Option<i64> = row.try_get(6)?;
        let card = match card_id {
            Some(id) => match by_id.get(&id) {
                Some(h) => Some(h.clone()),
                // The token waits on a card this round did not load; the next round will.
                None => Some(card_hpan(tx, id).await?),
            },
            None => None,
        };
        snap.tokens.insert(
            htoken.clone(),
            TokenRow {
                id: Some(row.try_get(0)?),
                htoken,
                new_token: None,
                has_clear: row.try_get(2)?,
                last4: row.try_get(3)?,
                circuit: row
                    .try_get::<_, Option<&str>>(4)?
                    .map(|c| Circuit::from_json_name(c).map_err(|_| corrupt("circuit")))
                    .transpose()?,
                par: row
                    .try_get::<_, Option<&str>>(5)?
                    .map(|p| Par::parse(p).map_err(|_| corrupt("par")))
                    .transpose()?,
                card,
                source: row
                    .try_get::<_, &str>(7)?
                    .parse()
                    .map_err(|_| corrupt("source"))?,
                deleted: row.try_get(8)?,
                since: row.try_get(9)?,
                dirty: false,
            },
        );
    }
    let link_stmt = tx
        .prepare_cached(
            "SELECT l.card_id, l.tax_code, l.live, l.opened_at, l.closed_at, l.changed_at, l.published \
             FROM card_link l JOIN unnest($1::bigint[]) AS k(v) ON l.card_id = k.v",
        )
        .await?;
    let mut tax_codes: BTreeSet<String> = keys.tax_codes.clone();
    for row in tx.query(&link_stmt, &[&ids]).await? {
        let id: i64 = row.try_get(0)?;
        let Some(hpan) = by_id.get(&id) else { continue };
        let tax: String = row.try_get(1)?;
        let tax_code = TaxCode::parse(&tax).map_err(|_| corrupt("tax_code"))?;
        tax_codes.insert(tax);
        snap.links.entry(hpan.clone()).or_default().push(LinkRow {
            hpan: hpan.clone(),
            tax_code,
            live: row.try_get(2)?,
            opened_at: row.try_get(3)?,
            closed_at: row.try_get(4)?,
            changed_at: row.try_get(5)?,
            published: row.try_get(6)?,
            new: false,
            dirty: false,
            opened_intervals: Vec::new(),
            closed_intervals: Vec::new(),
        });
    }
    let taxes: Vec<&str> = tax_codes.iter().map(String::as_str).collect();
    let consent_stmt = tx
        .prepare_cached(
            "SELECT c.tax_code, c.state FROM consent_citizen c JOIN unnest($1::text[]) AS k(v) \
             ON c.tax_code = k.v WHERE c.version > 0",
        )
        .await?;
    for row in tx.query(&consent_stmt, &[&taxes]).await? {
        let tax = TaxCode::parse(row.try_get(0)?).map_err(|_| corrupt("tax_code"))?;
        let Json(state): Json<ConsentState> = row.try_get(1)?;
        snap.consents.insert(tax, state);
    }
    Ok(snap)
}

async fn card_hpan(tx: &Transaction<'_>, id: i64) -> Result<Hpan, DbError> {
    let row = tx
        .query_one("SELECT hpan FROM card WHERE id = $1", &[&id])
        .await?;
    Hpan::parse(row.try_get(0)?).map_err(|_| corrupt("hpan"))
}
