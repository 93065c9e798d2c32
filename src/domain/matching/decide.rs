//! The checks of `matching.md` for one valid, non-duplicate record: instrument, award period,
//! activity at the transaction date, consent. Pure: no database, no actor.

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;

use super::dates::{day_of, DateRule, Interval};
use super::outcome::{MatchKind, Outcome, Reason};
use super::periods::AwardPeriods;
use super::snapshot::{ConsentAt, Found, Idx, Snapshot};
use crate::domain::transactions::Record;
use crate::domain::Service;

/// Which check decided a record's outcome (the explanation's first line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// 1: the record is invalid.
    Validity,
    /// 2: a duplicate.
    Duplicate,
    /// 3: no instrument.
    Instrument,
    /// 4: no award period.
    Period,
    /// 5: not active at the transaction date.
    Active,
    /// 6: no consent at the transaction date.
    Consent,
    /// A reversal: its payment decided.
    Correlation,
    /// Every check passed.
    Passed,
}

/// The matcher's configuration and data for one file.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The enrolment snapshot, caught up before the file.
    pub snapshot: &'a Snapshot,
    /// The award periods.
    pub periods: &'a AwardPeriods,
    /// The date rule.
    pub rule: DateRule,
    /// The service rewarded (`matching.service`).
    pub service: Service,
    /// The zone of days.
    pub zone: Tz,
}

/// A record's outcome and what led to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The outcome.
    pub outcome: Outcome,
    /// How the record was tied to an instrument.
    pub kind: MatchKind,
    /// The check that decided.
    pub check: Check,
    /// The award period holding the record, once found (its index in the [`AwardPeriods`]).
    pub period: Option<usize>,
    /// The card considered (an HPAN match, or the PAR's card whose link was live).
    pub card: Option<Idx>,
    /// The PAR considered (token and PAR matches).
    pub par: Option<Idx>,
    /// The enrolment interval that made the instrument active.
    pub interval: Option<Interval>,
    /// The consent at the transaction date (token and PAR matches).
    pub consent: Option<ConsentAt>,
    /// Case 2: the hash is to be learnt as an HTOKEN of this PAR.
    pub learn: Option<Idx>,
}

impl Decision {
    /// A decision taken before the instrument is looked at (invalid, duplicate).
    pub fn early(outcome: Outcome, check: Check) -> Self {
        Self {
            outcome,
            kind: MatchKind::None,
            check,
            period: None,
            card: None,
            par: None,
            interval: None,
            consent: None,
            learn: None,
        }
    }

    fn discard(mut self, reason: Reason, check: Check) -> Self {
        self.outcome = Outcome::Discarded(reason);
        self.check = check;
        self
    }
}

impl Rules<'_> {
    /// The transaction day (`dTR`) of a record.
    pub fn day(&self, record: &Record) -> NaiveDate {
        day_of(record.at, self.zone)
    }

    /// Checks 3–6 for a payment processed on `processing_day`.
    pub fn payment(&self, record: &Record, processing_day: NaiveDate) -> Decision {
        let found = self.snapshot.find(&record.hash, record.par.as_ref());
        let mut d = Decision::early(Outcome::Accepted, Check::Passed);
        match found {
            Found::Card(c) => {
                d.kind = MatchKind::Hpan;
                d.card = Some(c);
                d.par = self.snapshot.card_par(c);
            }
            Found::Token(p) => {
                d.kind = MatchKind::Htoken;
                d.par = Some(p);
            }
            Found::Par(p) => {
                d.kind = MatchKind::Par;
                d.par = Some(p);
                d.learn = Some(p);
            }
            Found::TokenWithoutPar | Found::Nothing => {
                return d.discard(Reason::NotEnrolled, Check::Instrument);
            }
        }
        let day = self.day(record);
        match self.periods.find_index(day, processing_day) {
            Some(p) => d.period = Some(p),
            None => return d.discard(Reason::OutsidePeriod, Check::Period),
        }
        if let (MatchKind::Hpan, Some(card)) = (d.kind, d.card) {
            return match self.snapshot.live_link(card, day, self.rule) {
                Some(link) => {
                    d.interval = Some(link.interval);
                    d
                }
                None => d.discard(Reason::NotActive, Check::Active),
            };
        }
        let Some(par) = d.par else {
            return d.discard(Reason::NotEnrolled, Check::Instrument);
        };
        self.by_par(d, par, record, day)
    }

    /// Checks 5 and 6 for a token or PAR match: a card of the PAR live at the transaction date,
    /// whose citizen then consented to the service.
    fn by_par(&self, mut d: Decision, par: Idx, record: &Record, day: NaiveDate) -> Decision {
        let at = record.at.with_timezone(&Utc);
        let mut first_live = None;
        for card in self.snapshot.par_cards(par) {
            for link in self.snapshot.links(card) {
                if !self.rule.inside(&link.interval, day) {
                    continue;
                }
                let consent = self
                    .snapshot
                    .consent_at(link.citizen, card, self.service, at);
                if consent.allowed {
                    d.card = Some(card);
                    d.interval = Some(link.interval);
                    d.consent = Some(consent);
                    return d;
                }
                first_live.get_or_insert((card, link.interval, consent));
            }
        }
        match first_live {
            Some((card, interval, consent)) => {
                d.card = Some(card);
                d.interval = Some(interval);
                d.consent = Some(consent);
                d.discard(Reason::NoConsent, Check::Consent)
            }
            None => d.discard(Reason::NotActive, Check::Active),
        }
    }

    /// The instrument a reversal's hash leads to (for its report; a reversal is judged by its
    /// payment).
    pub fn reversal_kind(&self, record: &Record) -> MatchKind {
        match self.snapshot.find(&record.hash, record.par.as_ref()) {
            Found::Card(_) => MatchKind::Hpan,
            Found::Token(_) => MatchKind::Htoken,
            Found::Par(_) => MatchKind::Par,
            Found::TokenWithoutPar | Found::Nothing => MatchKind::None,
        }
    }
}
