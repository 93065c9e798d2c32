//! One batch of card commands as one transaction: lock and load, apply the rules, reconcile what
//! the platform was told, write everything back with the card updates, commit.

use chrono::Utc;
use deadpool_postgres::Pool;

use super::{load_unlocked, lock_and_load, save, Keys};
use crate::crypto::KeyRing;
use crate::db::uploads::BatchProgress;
use crate::db::DbError;
use crate::domain::cards::{apply, reconcile, CardView, Limits, Outcome, Reassociation};
use crate::domain::{CardCommand, CardEvent, Hpan, MessageOrigin, Source, Sourced, TaxCode};
use crate::retry::{self, Retryable};

/// What a batch did, for acknowledgements and metrics.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// One outcome per command, in order.
    pub outcomes: Vec<Outcome>,
    /// Card update messages written to the outbox.
    pub updates: usize,
    /// Refused PAR claims, by source.
    pub conflicts: Vec<Source>,
    /// Associations a more trusted source moved to another PAR (kept in history, published).
    pub replaced: Vec<Reassociation>,
    /// PAR lookups queued for cards this batch wrote (live, consenting, without PAR).
    pub lookups_queued: u64,
}

fn keys_of(commands: &[Sourced]) -> Keys {
    let mut k = Keys::default();
    for c in commands {
        match &c.command {
            CardCommand::Delete(d) => {
                k.hpans.insert(d.hpan.to_string());
                k.tax_codes.insert(d.tax_code.to_string());
            }
            CardCommand::Event(e) => {
                if let Some(card) = e.card() {
                    k.hpans.insert(card.hpan.to_string());
                }
                if let Some(p) = e.par() {
                    k.par_keys.insert(p.key());
                }
                if let CardEvent::Enrolment { tax_code, .. } = e {
                    k.tax_codes.insert(tax_code.to_string());
                }
                let htokens = e.tokens().iter().map(|t| t.htoken.to_string());
                if matches!(c.source, Source::TokenList | Source::Transaction) {
                    // An acquirer's listed token, and a token a payment teaches (a hash the
                    // matcher did not know), are mostly new: locked only once found.
                    k.listed.extend(htokens.clone());
                }
                k.htokens.extend(htokens);
            }
        }
    }
    k
}

/// Applies `commands` in one transaction, retrying lost lock races ([`retry::LOST_LOCK_RACE`]).
pub async fn apply_batch(
    pool: &Pool,
    ring: &KeyRing,
    limits: Limits,
    commands: &[Sourced],
    by: &str,
) -> Result<BatchReport, DbError> {
    (|| try_batch(pool, ring, limits, commands, by, None))
        .retry(retry::LOST_LOCK_RACE.builder())
        .when(is_race)
        .await
}

/// A batch that lost a race and is applied again from the start: a deadlock, a serialization
/// failure, or a listed token (taken without its lock while absent, see `Keys::listed`) that
/// another transaction inserted first — the retry finds it, and locks it.
fn is_race(e: &DbError) -> bool {
    use tokio_postgres::error::SqlState;
    e.failure().is_some_and(|f| match &f.code {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => {
            f.constraint.as_deref() == Some("token_htoken_key")
        }
        Some(code) => {
            *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        }
        None => false,
    })
}

async fn try_batch(
    pool: &Pool,
    ring: &KeyRing,
    limits: Limits,
    commands: &[Sourced],
    by: &str,
    upload: Option<&UploadStep<'_>>,
) -> Result<BatchReport, DbError> {
    let t0 = std::time::Instant::now();
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let t_begin = t0.elapsed();
    if let Some(gate) = upload.and_then(|u| u.gate) {
        // The batch ahead in the file holds all its locks before this one takes any: it never
        // waits for this one, so waiting for its commit below cannot deadlock.
        gate.wait_ahead_locked().await;
    }
    let mut snap = lock_and_load(&tx, keys_of(commands)).await?;
    if let Some(gate) = upload.and_then(|u| u.gate) {
        gate.locked();
    }
    let t_load = t0.elapsed();
    let now = Utc::now();
    // Redeliveries of messages applied before (or twice in this batch) are not applied again:
    // the messages are claimed in this transaction, and only a claimed one is applied.
    let origins: Vec<&MessageOrigin> = commands.iter().filter_map(|c| c.origin.as_ref()).collect();
    let mut claimed = crate::db::inbound::claim(&tx, &origins, by).await?;
    let outcomes: Vec<Outcome> = commands
        .iter()
        .map(|c| match &c.origin {
            Some(o) if !claimed.remove(o) => Outcome::Duplicate,
            _ => apply(&mut snap, c, now, limits),
        })
        .collect();
    // A refused message is not remembered: it may be replayed once its cause is fixed.
    let refused: Vec<&MessageOrigin> = commands
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, Outcome::ParConflict))
        .filter_map(|(c, _)| c.origin.as_ref())
        .collect();
    crate::db::inbound::release(&tx, &refused).await?;
    let outgoing = reconcile(&mut snap, now);
    let t_rules = t0.elapsed();
    let written = save(&tx, &snap, &outgoing, ring, by).await?;
    // Cards that became owed a PAR lookup are queued in the same transaction.
    let lookups_queued = crate::db::par_lookups::enqueue_cards(&tx, &written).await?;
    if let Some(step) = upload {
        // The rows of an acquirer's file are recorded as done in the same transaction, so each
        // line is applied exactly once. Their tokens are not queued here: the resolver's sweep
        // finds them (they are eligible by `TOKEN_ELIGIBLE`), a page at a time — queueing a
        // million lookups in the file's transactions cost as much as storing the tokens, for
        // checks the circuits' rate spreads over days anyway.
        let batch = (step.account)(&outcomes);
        if let Some(gate) = step.gate {
            gate.wait_ahead_committed().await?;
        }
        crate::db::uploads::record_progress(&tx, step.upload, &batch, by).await?;
    }
    let t_save = t0.elapsed();
    tx.commit().await?;
    if crate::metrics::profiling() {
        eprintln!(
            "  card batch {} begin {:?} load {:?} rules {:?} save {:?} commit {:?}",
            commands.len(),
            t_begin,
            t_load - t_begin,
            t_rules - t_load,
            t_save - t_rules,
            t0.elapsed() - t_save
        );
    }
    tracing::debug!(
        commands = commands.len(),
        begin_ms = t_begin.as_millis() as u64,
        load_ms = (t_load - t_begin).as_millis() as u64,
        rules_ms = (t_rules - t_load).as_millis() as u64,
        save_ms = (t_save - t_rules).as_millis() as u64,
        commit_ms = (t0.elapsed() - t_save).as_millis() as u64,
        "card batch"
    );
    Ok(BatchReport {
        outcomes,
        updates: outgoing.len(),
        conflicts: snap.conflicts.iter().map(|c| c.source).collect(),
        replaced: snap.reassociations.clone(),
        lookups_queued,
    })
}

/// The rows of an acquirer's upload a batch carries: recorded as done in the batch's
/// transaction (`account` turns the commands' outcomes into the batch's counters and
/// discarded lines; it runs again when a lost lock race retries the batch).
pub struct UploadStep<'a> {
    /// The upload.
    pub upload: uuid::Uuid,
    /// Outcomes → the batch's counters and discarded lines.
    pub account: &'a (dyn Fn(&[Outcome]) -> BatchProgress + Sync),
    /// The order of this batch's transaction against the batch ahead of it, when both are in
    /// flight.
    pub gate: Option<&'a crate::db::uploads::BatchGate>,
}

/// Applies the commands of one batch of an upload's rows and records the rows as done, in one
/// transaction (retrying lost lock races like [`apply_batch`]).
pub async fn apply_upload_batch(
    pool: &Pool,
    ring: &KeyRing,
    limits: Limits,
    commands: &[Sourced],
    by: &str,
    step: &UploadStep<'_>,
) -> Result<BatchReport, DbError> {
    (|| try_batch(pool, ring, limits, commands, by, Some(step)))
        .retry(retry::LOST_LOCK_RACE.builder())
        .when(is_race)
        .await
}

/// Re-examines every card of the given citizens after their consent changed (`consent.changed`
/// outbox rows `outbox_ids`), writes the card updates and deletes those rows, in one transaction.
pub async fn reconcile_citizens(
    pool: &Pool,
    ring: &KeyRing,
    tax_codes: &[TaxCode],
    outbox_ids: &[i64],
    by: &str,
) -> Result<usize, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let taxes: Vec<&str> = tax_codes.iter().map(TaxCode::as_str).collect();
    let rows = tx
        .query(
            "SELECT c.hpan FROM card_link l JOIN card c ON c.id = l.card_id \
             WHERE l.tax_code = ANY($1) AND (l.live OR l.published)",
            &[&taxes],
        )
        .await?;
    let mut keys = Keys::default();
    for r in rows {
        keys.hpans.insert(r.try_get(0)?);
    }
    keys.tax_codes.extend(taxes.iter().map(|t| (*t).to_owned()));
    let mut snap = lock_and_load(&tx, keys).await?;
    let outgoing = reconcile(&mut snap, Utc::now());
    save(&tx, &snap, &outgoing, ring, by).await?;
    // Newly consenting citizens' cards without PAR are owed a lookup now (same transaction).
    let citizens: Vec<String> = taxes.iter().map(|t| (*t).to_owned()).collect();
    crate::db::par_lookups::enqueue_citizens(&tx, &citizens).await?;
    // A withdrawn consent drops its cards' pending lookups at once.
    crate::db::par_lookups::drop_unowed(&tx, &citizens).await?;
    crate::db::outbox::delete(&tx, outbox_ids).await?;
    tx.commit().await?;
    Ok(outgoing.len())
}

/// A live card as `GET /cards` shows it (`None`: unknown or inactive), read without locks.
pub async fn view(pool: &Pool, hpan: &Hpan) -> Result<Option<CardView>, DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.build_transaction().read_only(true).start().await?;
    let mut keys = Keys::default();
    keys.hpans.insert(hpan.to_string());
    let snap = load_unlocked(&tx, &keys).await?;
    Ok(snap.view(hpan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Circuit, Htoken, Par, TokenRef};

    fn par_tokens(source: Source) -> Sourced {
        Sourced {
            command: CardCommand::Event(CardEvent::ParTokens {
                par: Par::parse("V0010000000000000000000000042").expect("a PAR"),
                circuit: Circuit::Visa,
                tokens: vec![TokenRef {
                    htoken: Htoken::parse(&"ab".repeat(32)).expect("an HTOKEN"),
                    token: None,
                    deleted: false,
                }],
            }),
            source,
            by: "t".into(),
            origin: None,
        }
    }

    #[test]
    fn listed_and_learnt_tokens_are_locked_once_found_and_others_at_once() {
        for (source, unlocked) in [
            (Source::TokenList, true),
            (Source::Transaction, true),
            (Source::Issuer, false),
            (Source::Circuit, false),
        ] {
            let keys = keys_of(&[par_tokens(source)]);
            assert_eq!(keys.htokens.len(), 1, "{source:?}");
            assert_eq!(keys.listed.len() == 1, unlocked, "{source:?}");
        }
    }
}
