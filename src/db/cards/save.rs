//! Writing back a batch: cards, links, enrolment intervals, tokens, association history and the
//! card updates, with multi-row statements.

use std::collections::HashMap;

use deadpool_postgres::Transaction;

use crate::crypto::KeyRing;
use crate::db::{outbox, DbError};
use crate::domain::cards::{Outgoing, Snapshot};
use crate::domain::Hpan;

fn sealing(e: crate::crypto::CryptoError) -> DbError {
    DbError::Unexpected(anyhow::anyhow!("cannot encrypt for the vault: {e}"))
}

/// Writes every changed row of `snap` and the `card.update` outbox rows, as `by`; returns the ids
/// of the cards written.
pub async fn save(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    outgoing: &[Outgoing],
    ring: &KeyRing,
    by: &str,
) -> Result<Vec<i64>, DbError> {
    let ids = save_cards(tx, snap, ring, by).await?;
    let written: Vec<i64> = snap
        .cards
        .values()
        .filter(|c| c.dirty)
        .filter_map(|c| ids.get(&c.hpan).copied())
        .collect();
    save_links(tx, snap, &ids, by).await?;
    save_tokens(tx, snap, &ids, ring, by).await?;
    save_history(tx, snap, by).await?;
    let messages: Vec<_> = outgoing
        .iter()
        .map(|o| outbox::NewMessage {
            kind: outbox::CARD_UPDATE,
            partition_key: o.partition_key.as_str(),
            payload: &o.message,
        })
        .collect();
    outbox::insert(tx, &messages, by).await?;
    Ok(written)
}

/// Inserts new cards and updates changed ones; returns every card's id by HPAN.
async fn save_cards(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    ring: &KeyRing,
    by: &str,
) -> Result<HashMap<Hpan, i64>, DbError> {
    let mut ids: HashMap<Hpan, i64> = snap
        .cards
        .values()
        .filter_map(|c| c.id.map(|id| (c.hpan.clone(), id)))
        .collect();
    let mut cols = CardCols::default();
    let mut upd = CardCols::default();
    for c in snap.cards.values().filter(|c| c.dirty) {
        let target = if c.id.is_none() { &mut cols } else { &mut upd };
        let sealed = c
            .new_pan
            .as_ref()
            .map(|p| ring.seal_pan(p, &c.hpan))
            .transpose()
            .map_err(sealing)?;
        target.id.push(c.id.unwrap_or(0));
        target.hpan.push(c.hpan.to_string());
        target
            .key_id
            .push(sealed.as_ref().map(|s| s.key_id.clone()));
        target.ct.push(sealed.map(|s| s.blob));
        target.last4.push(c.last4.clone());
        target.circuit.push(c.circuit.as_str().to_owned());
        target.par.push(c.par.as_ref().map(|(p, _)| p.to_string()));
        target.par_key.push(c.par_key());
        target
            .par_source
            .push(c.par.as_ref().map(|(_, s)| s.as_str().to_owned()));
        target.active.push(c.active);
        target.last_update_ts.push(c.last_update_ts);
    }
    if !cols.hpan.is_empty() {
        let rows = tx
            .query(
                "INSERT INTO card (hpan, pan_key_id, pan_ct, pan_last4, circuit, par, par_key, par_source, \
                 active, last_update_ts, created_by, updated_by) \
                 SELECT h, k, c, l, ci, p, pk, ps, a, ts, $11, $11 FROM unnest($1::text[], $2::text[], \
                 $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[], \
                 $10::timestamptz[]) AS x(h, k, c, l, ci, p, pk, ps, a, ts) RETURNING id, hpan",
                &[
                    &cols.hpan, &cols.key_id, &cols.ct, &cols.last4, &cols.circuit, &cols.par,
                    &cols.par_key, &cols.par_source, &cols.active, &cols.last_update_ts, &by,
                ],
            )
            .await?;
        for row in rows {
            let hpan = Hpan::parse(row.try_get(1)?).map_err(|_| {
                DbError::Unexpected(anyhow::anyhow!("inserted hpan does not parse"))
            })?;
            ids.insert(hpan, row.try_get(0)?);
        }
    }
    if !upd.id.is_empty() {
        tx.execute(
            "UPDATE card SET pan_key_id = COALESCE(x.k, card.pan_key_id), \
             pan_ct = COALESCE(x.c, card.pan_ct), pan_last4 = COALESCE(x.l, card.pan_last4), \
             par = x.p, par_key = x.pk, par_source = x.ps, active = x.a, last_update_ts = x.ts, \
             updated_at = now(), updated_by = $10 \
             FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::bool[], $9::timestamptz[]) AS x(id, k, c, l, p, pk, ps, a, ts) \
             WHERE card.id = x.id",
            &[
                &upd.id, &upd.key_id, &upd.ct, &upd.last4, &upd.par, &upd.par_key, &upd.par_source,
                &upd.active, &upd.last_update_ts, &by,
            ],
        )
        .await?;
    }
    Ok(ids)
}

#[derive(Default)]
struct CardCols {
    id: Vec<i64>,
    hpan: Vec<String>,
    key_id: Vec<Option<String>>,
    ct: Vec<Option<Vec<u8>>>,
    last4: Vec<Option<String>>,
    circuit: Vec<String>,
    par: Vec<Option<String>>,
    par_key: Vec<Option<String>>,
    par_source: Vec<Option<String>>,
    active: Vec<bool>,
    last_update_ts: Vec<Option<chrono::DateTime<chrono::Utc>>>,
}

async fn save_links(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    ids: &HashMap<Hpan, i64>,
    by: &str,
) -> Result<(), DbError> {
    let (mut card, mut tax, mut live, mut opened, mut closed, mut changed, mut published) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut o_card, mut o_tax, mut o_at) = (vec![], vec![], vec![]);
    let (mut c_card, mut c_tax, mut c_at) = (vec![], vec![], vec![]);
    for l in snap.links.values().flatten().filter(|l| l.dirty) {
        let Some(id) = ids.get(&l.hpan).copied() else {
            return Err(DbError::Unexpected(anyhow::anyhow!(
                "link of an unsaved card"
            )));
        };
        card.push(id);
        tax.push(l.tax_code.to_string());
        live.push(l.live);
        opened.push(l.opened_at);
        closed.push(l.closed_at);
        changed.push(l.changed_at);
        published.push(l.published);
        for at in &l.opened_intervals {
            o_card.push(id);
            o_tax.push(l.tax_code.to_string());
            o_at.push(*at);
        }
        for at in &l.closed_intervals {
            c_card.push(id);
            c_tax.push(l.tax_code.to_string());
            c_at.push(*at);
        }
    }
    if !card.is_empty() {
        tx.execute(
            "INSERT INTO card_link (card_id, tax_code, live, opened_at, closed_at, changed_at, published, \
             created_by, updated_by) SELECT c, t, l, o, cl, ch, p, $8, $8 FROM unnest($1::bigint[], \
             $2::text[], $3::bool[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[], $7::bool[]) \
             AS x(c, t, l, o, cl, ch, p) ON CONFLICT (card_id, tax_code) DO UPDATE SET live = EXCLUDED.live, \
             opened_at = EXCLUDED.opened_at, closed_at = EXCLUDED.closed_at, changed_at = EXCLUDED.changed_at, \
             published = EXCLUDED.published, updated_at = now(), updated_by = EXCLUDED.updated_by",
            &[&card, &tax, &live, &opened, &closed, &changed, &published, &by],
        )
        .await?;
    }
    // Opens first, then closes: each close ends the latest interval opened at or before it.
    if !o_card.is_empty() {
        tx.execute(
            "INSERT INTO card_link_interval (card_id, tax_code, opened_at, created_by, updated_by) \
             SELECT c, t, o, $4, $4 FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS x(c, t, o) \
             ON CONFLICT DO NOTHING",
            &[&o_card, &o_tax, &o_at, &by],
        )
        .await?;
    }
    if !c_card.is_empty() {
        tx.execute(
            "UPDATE card_link_interval i SET closed_at = x.t, updated_at = now(), updated_by = $4 \
             FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS x(c, tc, t) \
             WHERE i.card_id = x.c AND i.tax_code = x.tc AND i.closed_at IS NULL \
             AND i.opened_at = (SELECT max(j.opened_at) FROM card_link_interval j \
                 WHERE j.card_id = x.c AND j.tax_code = x.tc AND j.opened_at <= x.t AND j.closed_at IS NULL)",
            &[&c_card, &c_tax, &c_at, &by],
        )
        .await?;
    }
    Ok(())
}

async fn save_tokens(
    tx: &Transaction<'_>,
    snap: &Snapshot,
    ids: &HashMap<Hpan, i64>,
    ring: &KeyRing,
    by: &str,
) -> Result<(), DbError> {
    let mut new = TokenCols::default();
    let mut upd = TokenCols::default();
    for t in snap.tokens.values().filter(|t| t.dirty) {
        let target = if t.id.is_none() { &mut new } else { &mut upd };
        let sealed = t
            .new_token
            .as_ref()
            .map(|p| ring.seal_token(p, &t.htoken))
            .transpose()
            .map_err(sealing)?;
        target.id.push(t.id.unwrap_or(0));
        target.htoken.push(t.htoken.to_string());
        target
            .key_id
            .push(sealed.as_ref().map(|s| s.key_id.clone()));
        target.ct.push(sealed.map(|s| s.blob));
        target.last4.push(t.last4.clone());
        target
            .circuit
            .push(t.circuit.map(|c| c.as_str().to_owned()));
        target.par.push(t.par.as_ref().map(|p| p.to_string()));
        target.par_key.push(t.par_key());
        target
            .card_id
            .push(t.card.as_ref().and_then(|h| ids.get(h).copied()));
        target.source.push(t.source.as_str().to_owned());
        target.deleted.push(t.deleted);
        target.since.push(t.since);
    }
    if !new.htoken.is_empty() {
        tx.execute(
            "INSERT INTO token (htoken, token_key_id, token_ct, token_last4, circuit, par, par_key, card_id, \
             source, deleted, since, created_by, updated_by) SELECT h, k, c, l, ci, p, pk, cd, s, d, si, $12, $12 \
             FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::bigint[], $9::text[], $10::bool[], $11::timestamptz[]) AS x(h, k, c, l, ci, p, pk, cd, s, d, si)",
            &[
                &new.htoken, &new.key_id, &new.ct, &new.last4, &new.circuit, &new.par, &new.par_key,
                &new.card_id, &new.source, &new.deleted, &new.since, &by,
            ],
        )
        .await?;
    }
    if !upd.id.is_empty() {
        tx.execute(
            "UPDATE token SET token_key_id = COALESCE(x.k, token.token_key_id), \
             token_ct = COALESCE(x.c, token.token_ct), token_last4 = COALESCE(x.l, token.token_last4), \
             circuit = x.ci, par = x.p, par_key = x.pk, card_id = x.cd, source = x.s, deleted = x.d, \
             since = x.si, updated_at = now(), updated_by = $12 \
             FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::bigint[], $9::text[], $10::bool[], $11::timestamptz[]) \
             AS x(id, k, c, l, ci, p, pk, cd, s, d, si) WHERE token.id = x.id",
            &[
                &upd.id, &upd.key_id, &upd.ct, &upd.last4, &upd.circuit, &upd.par, &upd.par_key,
                &upd.card_id, &upd.source, &upd.deleted, &upd.since, &by,
            ],
        )
        .await?;
    }
    Ok(())
}

#[derive(Default)]
struct TokenCols {
    id: Vec<i64>,
    htoken: Vec<String>,
    key_id: Vec<Option<String>>,
    ct: Vec<Option<Vec<u8>>>,
    last4: Vec<Option<String>>,
    circuit: Vec<Option<String>>,
    par: Vec<Option<String>>,
    par_key: Vec<Option<String>>,
    card_id: Vec<Option<i64>>,
    source: Vec<String>,
    deleted: Vec<bool>,
    since: Vec<Option<chrono::DateTime<chrono::Utc>>>,
}

async fn save_history(tx: &Transaction<'_>, snap: &Snapshot, by: &str) -> Result<(), DbError> {
    let (mut subject, mut key, mut kind, mut from, mut to, mut source) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for m in &snap.reassociations {
        subject.push(m.subject);
        key.push(m.key.clone());
        kind.push("moved");
        from.push(m.from.clone());
        to.push(m.to.clone());
        source.push(m.source.as_str());
    }
    for c in &snap.conflicts {
        subject.push(c.subject);
        key.push(c.key.clone());
        kind.push("conflict");
        from.push(Some(c.current.clone()));
        to.push(c.claimed.clone());
        source.push(c.source.as_str());
    }
    if !subject.is_empty() {
        tx.execute(
            "INSERT INTO association_event (subject, key, kind, from_par, to_par, source, created_by, updated_by) \
             SELECT s, k, ki, f, t, so, $7, $7 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
             $5::text[], $6::text[]) AS x(s, k, ki, f, t, so)",
            &[&subject, &key, &kind, &from, &to, &source, &by],
        )
        .await?;
    }
    Ok(())
}
