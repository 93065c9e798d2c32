//! Why a record got its outcome (`GET /transactions/{id}/outcomes/{line}/explain`): the decision
//! is computed again by the same checks over the stored facts — the record's hash, date and PAR,
//! the instrument's enrolment intervals, its citizens' consent history, the award periods, the
//! correlated payment — so the trace agrees with the stored outcome (`agrees` says so).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::transactions::facts::StoredRecord;
use crate::domain::matching::{Check, ConsentAt, Decision, Interval, Rules};
use crate::domain::transactions::{Operation, Record};
use crate::domain::Par;

/// An enrolment interval considered.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntervalView {
    /// Activation day.
    pub from: NaiveDate,
    /// Deactivation day, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<NaiveDate>,
    /// Whether the transaction day is inside it under the date rule.
    pub inside: bool,
}

/// The consent in force at the transaction time.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// Whether the service was allowed.
    pub allowed: bool,
    /// The citizen's history entry in force (its version), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// When that entry took effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

/// The instrument matched (hashes only).
#[derive(Debug, Serialize, ToSchema)]
pub struct InstrumentView {
    /// The record's `hash_pan`.
    pub hash: String,
    /// How it matched.
    #[serde(rename = "match")]
    pub kind: String,
    /// The PAR considered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub par: Option<String>,
    /// The HPAN of the card considered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
}

/// A record's decision trace.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The record's line.
    pub line: i64,
    /// Its `id_trx_acquirer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_trx_acquirer: Option<String>,
    /// The stored outcome.
    pub outcome: String,
    /// The stored reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The check that decided: `VALIDITY`, `DUPLICATE`, `INSTRUMENT`, `PERIOD`, `ACTIVE`,
    /// `CONSENT`, `CORRELATION` or `PASSED`.
    pub decided_by: &'static str,
    /// The failing field of an invalid record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The instrument.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instrument: Option<InstrumentView>,
    /// The transaction day (`dTR`) in the matcher's zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_day: Option<NaiveDate>,
    /// The day the file was received.
    pub processing_day: NaiveDate,
    /// `design` or `bpd`.
    pub date_rule: &'static str,
    /// The enrolment intervals of the card considered.
    pub intervals: Vec<IntervalView>,
    /// The award period holding the record (id), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub award_period: Option<String>,
    /// The consent at the transaction time (token and PAR matches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentView>,
    /// A duplicate's first record: `{upload, line}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<RecordView>,
    /// A correlated reversal's payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlated_payment: Option<PaymentView>,
    /// Whether the decision computed now gives the stored outcome.
    pub agrees: bool,
}

/// A stored record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    /// Its upload.
    pub upload: String,
    /// Its line.
    pub line: i64,
}

/// A reversal's payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    /// Its upload.
    pub upload: String,
    /// Its line.
    pub line: i64,
    /// Its amount.
    pub amount: i64,
    /// The sum reversed so far.
    pub reversed: i64,
}

fn check_name(check: Check) -> &'static str {
    match check {
        Check::Validity => "VALIDITY",
        Check::Duplicate => "DUPLICATE",
        Check::Instrument => "INSTRUMENT",
        Check::Period => "PERIOD",
        Check::Active => "ACTIVE",
        Check::Consent => "CONSENT",
        Check::Correlation => "CORRELATION",
        Check::Passed => "PASSED",
    }
}

/// The record as stored, enough for the checks (hash, time, PAR, operation).
pub fn stored_record(s: &StoredRecord) -> Option<Record> {
    let operation = match s.operation.as_deref()? {
        "00" => Operation::Payment,
        "01" => Operation::Reversal,
        "02" => Operation::ApplePay,
        "03" => Operation::GooglePay,
        _ => return None,
    };
    Some(Record {
        operation,
        circuit: 0,
        hash: s.hash?,
        at: s.at?.fixed_offset(),
        id_trx_acquirer: s.id_trx_acquirer.clone().unwrap_or_default(),
        id_trx_issuer: String::new(),
        correlation_id: None,
        amount: 0,
        acquirer_id: String::new(),
        merchant_id: String::new(),
        terminal_id: String::new(),
        bin: String::new(),
        mcc: String::new(),
        par: s.par.as_deref().and_then(|p| Par::parse(p).ok()),
    })
}

/// The trace every record starts from.
pub fn base(s: &StoredRecord, rules: &Rules<'_>) -> Explanation {
    Explanation {
        line: s.line,
        id_trx_acquirer: s.id_trx_acquirer.clone(),
        outcome: s.outcome.clone(),
        reason: s.reason.clone(),
        decided_by: "VALIDITY",
        field: s.detail.clone(),
        instrument: None,
        transaction_day: s.at.map(|at| at.with_timezone(&rules.zone).date_naive()),
        processing_day: s.processing_day,
        date_rule: match rules.rule {
            crate::domain::matching::DateRule::Design => "design",
            crate::domain::matching::DateRule::Bpd => "bpd",
        },
        intervals: Vec::new(),
        award_period: None,
        consent: None,
        duplicate_of: None,
        correlated_payment: None,
        agrees: false,
    }
}

fn consent_view(c: ConsentAt) -> ConsentView {
    ConsentView {
        allowed: c.allowed,
        version: c.entry.map(|e| e.0),
        since: c.entry.map(|e| e.1),
    }
}

/// The trace of a payment: the checks run again over `rules` (a snapshot of its instrument).
pub fn payment(
    s: &StoredRecord,
    rules: &Rules<'_>,
    record: &Record,
    card_hpan: impl Fn(i64) -> Option<String>,
) -> Explanation {
    let d: Decision = rules.payment(record, s.processing_day);
    let mut e = base(s, rules);
    e.decided_by = check_name(d.check);
    e.instrument = Some(InstrumentView {
        hash: record.hash.to_hex(),
        kind: d.kind.name().to_owned(),
        par: d
            .par
            .and_then(|p| rules.snapshot.par(p))
            .map(|p| p.as_str().to_owned()),
        card: d
            .card
            .and_then(|c| rules.snapshot.card_db_id(c))
            .and_then(card_hpan),
    });
    let day = rules.day(record);
    if let Some(card) = d.card {
        e.intervals = rules
            .snapshot
            .links(card)
            .map(|l| interval_view(&l.interval, rules, day))
            .collect();
    }
    e.award_period = d
        .period
        .and_then(|i| rules.periods.get(i))
        .map(|p| p.id.clone());
    e.consent = d.consent.map(consent_view);
    e.agrees = d.outcome.name() == s.outcome
        && d.outcome.reason().map(|r| r.code()) == s.reason.as_deref();
    e
}

fn interval_view(i: &Interval, rules: &Rules<'_>, day: NaiveDate) -> IntervalView {
    IntervalView {
        from: i.from,
        until: i.until,
        inside: rules.rule.inside(i, day),
    }
}

/// Explains line `line` of upload `id` (`None`: no such record).
pub async fn explain_line(
    deps: &super::run::MatchDeps,
    abi: &crate::domain::Abi,
    id: uuid::Uuid,
    line: i64,
    as_of: DateTime<Utc>,
) -> Result<Option<Explanation>, crate::db::DbError> {
    use crate::db::transactions::{facts, periods};
    let config = |e: crate::config::ConfigError| {
        crate::db::DbError::Unexpected(anyhow::anyhow!(e.to_string()))
    };
    let Some(stored) = facts::record(&deps.pool, id, line).await? else {
        return Ok(None);
    };
    let zone = deps.matching.zone().map_err(config)?;
    let award = periods::load(&deps.pool).await?;
    let empty = crate::domain::matching::Snapshot::default();
    let rules = Rules {
        snapshot: &empty,
        periods: &award,
        rule: deps.matching.date_rule,
        service: deps.matching.service,
        zone,
    };
    let Some(record) = stored_record(&stored) else {
        // Invalid: the field is the whole story.
        let mut e = base(&stored, &rules);
        e.agrees = stored.reason.as_deref() == Some("11");
        return Ok(Some(e));
    };
    let instrument = |kind: &str| InstrumentView {
        hash: record.hash.to_hex(),
        kind: kind.to_owned(),
        par: stored.par.clone(),
        card: None,
    };
    if stored.reason.as_deref() == Some("12") {
        let mut e = base(&stored, &rules);
        e.decided_by = "DUPLICATE";
        e.instrument = Some(instrument(&stored.kind));
        let key = crate::domain::transactions::DupKey::of(abi, &record);
        let first = facts::first_of_key(&deps.pool, &key.0).await?;
        e.agrees = first.is_some_and(|f| f != (id, line));
        e.duplicate_of = first.map(|(upload, line)| RecordView {
            upload: upload.to_string(),
            line,
        });
        return Ok(Some(e));
    }
    if record.operation == Operation::Reversal {
        let mut e = base(&stored, &rules);
        e.instrument = Some(instrument(&stored.kind));
        let period = e
            .transaction_day
            .and_then(|day| award.find(day, stored.processing_day));
        e.award_period = period.map(|p| p.id.clone());
        let Some(_) = period else {
            e.decided_by = "PERIOD";
            e.agrees = stored.reason.as_deref() == Some("02");
            return Ok(Some(e));
        };
        e.decided_by = "CORRELATION";
        let payment = facts::reversal_payment(&deps.pool, (id, line)).await?;
        let correlated = stored.outcome == "REVERSAL_TOTAL" || stored.outcome == "REVERSAL_PARTIAL";
        e.agrees = payment.is_some() == correlated;
        e.correlated_payment = payment.map(|((upload, line), amount, reversed)| PaymentView {
            upload: upload.to_string(),
            line,
            amount,
            reversed,
        });
        return Ok(Some(e));
    }
    let (snapshot, hpans) =
        facts::instrument_snapshot(&deps.pool, zone, &record.hash, stored.par.as_deref(), as_of)
            .await?;
    let rules = Rules {
        snapshot: &snapshot,
        ..rules
    };
    Ok(Some(payment(&stored, &rules, &record, |card| {
        hpans.get(&card).cloned()
    })))
}
