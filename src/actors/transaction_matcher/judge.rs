//! Turns rows into what a batch writes: payments and invalid rows first (pass 1), reversals
//! after every payment of the file (pass 2), and waiting reversals of earlier files that this
//! file's payments now correlate — outcomes for the table and records for the
//! `transaction.outcome` messages. The decisions are `domain::matching`'s; this only assembles.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, SecondsFormat, Utc};

use crate::db::transactions::outcomes::{
    Batch, Correlated, Movement, OutcomeRow, PaymentRow, RecordFacts, RecordRef, ReversalRow,
};
use crate::db::transactions::published::{PublishedDetails, PublishedRecord, PublishedSource};
use crate::db::transactions::reads::Waiting;
use crate::domain::matching::{apply, correlate, MatchKind, Outcome, Payment, Reason, Rules};
use crate::domain::token_list::TokenRanges;
use crate::domain::transactions::{DupKey, HashKey, Operation, Record};
use crate::domain::{Abi, Sourced};

use super::learn::lesson;

/// The upload counter of associations learnt (beside the outcome counters).
pub const LEARNT: &str = "learnt";
use crate::files::trnlog::Row;

/// What every batch of one file shares.
#[derive(Debug, Clone, Copy)]
pub struct FileContext<'a> {
    /// The rules and the snapshot.
    pub rules: Rules<'a>,
    /// The file's ABI.
    pub abi: &'a Abi,
    /// The processing day (the day the file was received).
    pub day: NaiveDate,
    /// The file, as outcome messages name it.
    pub source: &'a PublishedSource,
    /// The token BIN ranges (TK10 part 2).
    pub ranges: &'a TokenRanges,
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn movement(line: i64, r: &Record, period: String) -> Movement {
    Movement {
        line,
        hash: r.hash,
        acquirer_id: r.acquirer_id.clone(),
        period,
        correlation_id: r.correlation_id.clone(),
        amount: signed(r.amount),
        merchant_id: r.merchant_id.clone(),
        terminal_id: r.terminal_id.clone(),
        at: r.at.with_timezone(&Utc),
    }
}

/// What accepted payments and correlated reversals are published with.
fn details(
    abi: &Abi,
    r: &Record,
    par: Option<String>,
    correlated_line: Option<i64>,
) -> PublishedDetails {
    PublishedDetails {
        acquirer_code: abi.as_str().to_owned(),
        acquirer_id: r.acquirer_id.clone(),
        trx_date: r.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        operation_type: r.operation.code(),
        amount: r.amount,
        hpan: r.hash.to_hex(),
        par,
        correlated_line,
    }
}

fn count(batch: &mut Batch, outcome: Outcome) {
    let key = match outcome.reason() {
        Some(r) => r.code().to_owned(),
        None if outcome == Outcome::Accepted => {
            batch.progress.accepted = batch.progress.accepted.saturating_add(1);
            return;
        }
        None => outcome.name().to_owned(),
    };
    let slot = batch.progress.discarded.entry(key).or_insert(0);
    *slot = slot.saturating_add(1);
}

/// One record's outcome, for the table and for the message.
struct Decided {
    line: u64,
    id: Option<String>,
    outcome: Outcome,
    kind: MatchKind,
    detail: Option<&'static str>,
    published: Option<PublishedDetails>,
    facts: Option<RecordFacts>,
}

fn facts_of(r: &Record) -> RecordFacts {
    RecordFacts {
        operation: r.operation.code(),
        hash: r.hash,
        at: r.at.with_timezone(&Utc),
        par: r.par.as_ref().map(|p| p.as_str().to_owned()),
    }
}

fn decided(line: u64, id: Option<String>, outcome: Outcome, kind: MatchKind) -> Decided {
    Decided {
        line,
        id,
        outcome,
        kind,
        detail: None,
        published: None,
        facts: None,
    }
}

fn new_batch(ctx: &FileContext<'_>) -> Batch {
    Batch {
        published: vec![(ctx.source.clone(), Vec::new())],
        ..Batch::default()
    }
}

fn push(batch: &mut Batch, d: Decided) {
    count(batch, d.outcome);
    if let Some((_, records)) = batch.published.first_mut() {
        records.push(PublishedRecord {
            line: signed(d.line),
            id_trx_acquirer: d.id.clone(),
            outcome: d.outcome.name(),
            reason: d.outcome.reason().map(|r| r.code()),
            kind: d.kind.name(),
            details: d.published,
        });
    }
    batch.outcomes.push(OutcomeRow {
        line: signed(d.line),
        id_trx_acquirer: d.id,
        outcome: d.outcome,
        kind: d.kind,
        detail: d.detail,
        facts: d.facts,
    });
}

/// The duplicate keys of the valid rows of `rows` that pass `keep`.
pub fn keys_of(abi: &Abi, rows: &[Row], keep: impl Fn(&Record) -> bool) -> Vec<DupKey> {
    rows.iter()
        .filter_map(|r| r.parsed.as_ref().ok())
        .filter(|r| keep(r))
        .map(|r| DupKey::of(abi, r))
        .collect()
}

/// Pass 1 over `rows` (after line `after`): every row's outcome but valid reversals', and the
/// associations the rows teach the card registry — each hash once per file (`taught`): the
/// snapshot does not learn during the file, so a token paying again would teach it again.
pub fn payments(
    ctx: &FileContext<'_>,
    rows: &[Row],
    after: u64,
    known: &HashMap<DupKey, RecordRef>,
    seen: &mut HashSet<DupKey>,
    taught: &mut HashSet<HashKey>,
) -> (Batch, Vec<Sourced>) {
    let mut lessons = Vec::new();
    let mut batch = new_batch(ctx);
    batch.progress.after_line = after;
    batch.progress.last_line = rows.last().map_or(after, |r| r.line);
    batch.progress.rows = rows.len() as u64;
    for row in rows {
        let record = match &row.parsed {
            Err(invalid) => {
                let outcome = Outcome::Discarded(Reason::Invalid);
                let mut d = decided(
                    row.line,
                    invalid.id_trx_acquirer.clone(),
                    outcome,
                    MatchKind::None,
                );
                d.detail = Some(invalid.field);
                push(&mut batch, d);
                continue;
            }
            Ok(r) if r.operation == Operation::Reversal => continue,
            Ok(r) => r,
        };
        let id = Some(record.id_trx_acquirer.clone());
        let key = DupKey::of(ctx.abi, record);
        if known.contains_key(&key) || !seen.insert(key) {
            let duplicate = Outcome::Discarded(Reason::Duplicate);
            let mut d = decided(row.line, id, duplicate, MatchKind::None);
            d.facts = Some(facts_of(record));
            push(&mut batch, d);
            continue;
        }
        batch.keys.push((key, signed(row.line)));
        let d = ctx.rules.payment(record, ctx.day);
        if let Some(l) = lesson(
            ctx.rules.snapshot,
            ctx.ranges,
            record,
            row.clear.as_ref(),
            &d,
        ) {
            if taught.insert(record.hash) {
                lessons.push(l);
            }
        }
        let par = d
            .par
            .and_then(|p| ctx.rules.snapshot.par(p))
            .map(|p| p.as_str().to_owned());
        let mut out = decided(row.line, id, d.outcome, d.kind);
        out.facts = Some(facts_of(record));
        let period = d.period.and_then(|i| ctx.rules.periods.get(i));
        if let (Outcome::Accepted, Some(period)) = (d.outcome, period) {
            out.published = Some(details(ctx.abi, record, par.clone(), None));
            batch.payments.push(PaymentRow {
                facts: movement(signed(row.line), record, period.id.clone()),
                operation: record.operation.code(),
                kind: d.kind,
                par,
            });
        }
        push(&mut batch, out);
    }
    if !lessons.is_empty() {
        let learnt = batch
            .progress
            .discarded
            .entry(LEARNT.to_owned())
            .or_insert(0);
        *learnt = learnt.saturating_add(lessons.len() as u64);
    }
    (batch, lessons)
}

/// Pass 2: the file's reversals (`rows` holds reversals only, none decided yet), correlated with
/// `payments` (every stored payment on their hashes, this file's included), which it updates.
pub fn reversals(
    ctx: &FileContext<'_>,
    rows: &[(u64, Record)],
    known: &HashMap<DupKey, RecordRef>,
    seen: &mut HashSet<DupKey>,
    payments: &mut [Payment<RecordRef>],
) -> Batch {
    let mut batch = new_batch(ctx);
    let mut reversed: HashMap<RecordRef, i64> = HashMap::new();
    for (line, record) in rows {
        let id = Some(record.id_trx_acquirer.clone());
        let key = DupKey::of(ctx.abi, record);
        if known.contains_key(&key) || !seen.insert(key) {
            let duplicate = Outcome::Discarded(Reason::Duplicate);
            let mut d = decided(*line, id, duplicate, MatchKind::None);
            d.facts = Some(facts_of(record));
            push(&mut batch, d);
            continue;
        }
        batch.keys.push((key, signed(*line)));
        let day = ctx.rules.day(record);
        let Some(period) = ctx.rules.periods.find(day, ctx.day) else {
            let kind = ctx.rules.reversal_kind(record);
            let outside = Outcome::Discarded(Reason::OutsidePeriod);
            let mut d = decided(*line, id, outside, kind);
            d.facts = Some(facts_of(record));
            push(&mut batch, d);
            continue;
        };
        let correlation = correlate(record, ctx.abi.as_str(), &period.id, payments);
        let (kind, payment) = match correlation.payment().and_then(|i| payments.get_mut(i)) {
            Some(p) => {
                apply(p, record.amount);
                reversed.insert(p.id, signed(p.reversed));
                (p.kind, Some(p.id))
            }
            None => (ctx.rules.reversal_kind(record), None),
        };
        let mut out = decided(*line, id, correlation.outcome(), kind);
        out.facts = Some(facts_of(record));
        if let Some((_, payment_line)) = payment {
            out.published = Some(details(ctx.abi, record, None, Some(payment_line)));
        }
        push(&mut batch, out);
        batch.reversals.push(ReversalRow {
            facts: movement(signed(*line), record, period.id.clone()),
            retry_until: period.last_processing_day(),
            payment,
        });
    }
    batch.reversed = reversed.into_iter().collect();
    batch
}

/// Waiting reversals of earlier files, tried again against `payments` (this file's accepted
/// payments on their hashes among them); each newly correlated one is published as a correction
/// of its own file.
pub fn retry_waiting(abi: &Abi, waiting: &[Waiting], payments: &mut [Payment<RecordRef>]) -> Batch {
    let mut batch = Batch::default();
    let mut reversed: HashMap<RecordRef, i64> = HashMap::new();
    for w in waiting {
        let record = Record {
            operation: Operation::Reversal,
            circuit: 0,
            hash: w.hash,
            at: w.at.fixed_offset(),
            id_trx_acquirer: String::new(),
            id_trx_issuer: String::new(),
            correlation_id: w.correlation_id.clone(),
            amount: w.amount,
            acquirer_id: w.acquirer_id.clone(),
            merchant_id: w.merchant_id.clone(),
            terminal_id: w.terminal_id.clone(),
            bin: String::new(),
            mcc: String::new(),
            par: None,
        };
        let correlation = correlate(&record, abi.as_str(), &w.period, payments);
        let Some(p) = correlation.payment().and_then(|i| payments.get_mut(i)) else {
            continue;
        };
        apply(p, record.amount);
        reversed.insert(p.id, signed(p.reversed));
        let outcome = correlation.outcome();
        batch.correlated.push(Correlated {
            reversal: w.id,
            outcome,
            payment: p.id,
        });
        let source = PublishedSource {
            file: w.file.clone(),
            id: w.message_id.clone().unwrap_or_else(|| w.id.0.to_string()),
        };
        let published = PublishedRecord {
            line: w.id.1,
            id_trx_acquirer: w.id_trx_acquirer.clone(),
            outcome: outcome.name(),
            reason: None,
            kind: p.kind.name(),
            details: Some(details(abi, &record, None, Some(p.id.1))),
        };
        match batch.published.iter_mut().find(|(s, _)| s.id == source.id) {
            Some((_, records)) => records.push(published),
            None => batch.published.push((source, vec![published])),
        }
    }
    batch.reversed = reversed.into_iter().collect();
    batch
}
