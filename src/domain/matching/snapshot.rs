//! The matcher's in-memory enrolment snapshot: fixed 32-byte keys and small integer ids, with the
//! per-instrument facts (enrolment intervals, consent history) in flat vectors indexed by them.

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::dates::{DateRule, Interval};
use crate::domain::transactions::HashKey;
use crate::domain::{Consent, ConsentState, Par, Service};

/// A card's, a PAR's or a citizen's index in the snapshot. The top bit marks an index of the
/// layer of changes caught up since the snapshot was loaded ([`DELTA_BIT`]).
pub type Idx = u32;

/// The bit of an [`Idx`] that names the layer of changes.
pub const DELTA_BIT: Idx = 1 << 31;

#[path = "delta.rs"]
mod delta;
pub use delta::Delta;

/// What a 64-hex hash is known as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Card(Idx),
    /// A token, with its PAR when it has one.
    Token(Option<Idx>),
}

/// What a record's `hash_pan` and `PAR` lead to (`matching.md`, "Matching a record").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// An HPAN.
    Card(Idx),
    /// An HTOKEN attached to a PAR.
    Token(Idx),
    /// An unknown hash with a known PAR.
    Par(Idx),
    /// A known HTOKEN with no PAR yet.
    TokenWithoutPar,
    /// Nothing.
    Nothing,
}

/// A PAR as a fixed-size key: its upper-case form, zero-padded (PARs are at most 32 characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParKey([u8; 32]);

impl ParKey {
    /// The key of a PAR.
    pub fn of(par: &Par) -> Self {
        Self::of_key(&par.key())
    }

    /// The key of an already upper-cased PAR (`par_key` in the database).
    pub fn of_key(key: &str) -> Self {
        let mut out = [0u8; 32];
        for (o, b) in out.iter_mut().zip(key.bytes()) {
            *o = b;
        }
        Self(out)
    }
}

/// One live period of one citizen's link to a card.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// The citizen (index into the consent histories).
    pub citizen: Idx,
    /// When the link was live, in days.
    pub interval: Interval,
}

/// One accepted consent change: the state after it, from `at`.
#[derive(Debug, Clone, Copy)]
pub struct ConsentEntry {
    /// When it took effect.
    pub at: DateTime<Utc>,
    /// The citizen's version it created.
    pub version: i64,
    /// Citizen-level services allowed, one bit per [`Service::ALL`] index.
    allow: u8,
    /// Its card overrides, in `overrides`.
    overrides: (u32, u32),
}

/// A card override of one consent entry.
#[derive(Debug, Clone, Copy)]
struct Override {
    card: Idx,
    set: u8,
    allow: u8,
}

fn bit(service: Service) -> u8 {
    let i = Service::ALL.iter().position(|s| *s == service).unwrap_or(0);
    1 << i
}

/// The consent that applied to one card of one citizen at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentAt {
    /// Whether the service was allowed.
    pub allowed: bool,
    /// The history entry in force (its version and time), if any.
    pub entry: Option<(i64, DateTime<Utc>)>,
}

/// Offsets of a flat vector grouped by owner (compressed sparse rows).
#[derive(Debug, Default)]
struct Groups(Vec<u32>);

impl Groups {
    /// Builds offsets for `owners` (sorted ascending) over `count` owners.
    fn of_sorted(owners: impl Iterator<Item = Idx>, count: usize) -> Self {
        let mut offsets = vec![0u32; count + 1];
        for o in owners {
            if let Some(slot) = offsets.get_mut(o as usize + 1) {
                *slot += 1;
            }
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        Self(offsets)
    }

    fn range(&self, owner: Idx) -> Range<usize> {
        let i = owner as usize;
        match (self.0.get(i), self.0.get(i + 1)) {
            (Some(a), Some(b)) => *a as usize..*b as usize,
            _ => 0..0,
        }
    }
}

/// The snapshot, frozen: read-only while a file is matched.
#[derive(Debug, Default)]
pub struct Snapshot {
    hashes: HashMap<HashKey, Known>,
    pars: HashMap<ParKey, Idx>,
    par_values: Vec<Par>,
    card_db_ids: Vec<i64>,
    card_par: Vec<Option<Idx>>,
    card_links: Groups,
    links: Vec<Link>,
    par_cards: Groups,
    par_card_list: Vec<Idx>,
    citizen_entries: Groups,
    entries: Vec<ConsentEntry>,
    overrides: Vec<Override>,
    /// What changed since the snapshot was loaded (`delta.rs`): consulted first.
    delta: Option<Box<Delta>>,
}

impl Snapshot {
    /// What `hash` and `par` lead to, in the order of `matching.md`.
    pub fn find(&self, hash: &HashKey, par: Option<&Par>) -> Found {
        match &self.delta {
            Some(d) => self.find_layered(d, hash, par),
            None => self.find_own(hash, par),
        }
    }

    fn find_own(&self, hash: &HashKey, par: Option<&Par>) -> Found {
        match self.hashes.get(hash) {
            Some(known) => found(*known),
            None => match par.and_then(|p| self.pars.get(&ParKey::of(p))) {
                Some(p) => Found::Par(*p),
                None => Found::Nothing,
            },
        }
    }

    /// The snapshot an index belongs to, the index within it, and its layer bit.
    fn layer(&self, i: Idx) -> (&Snapshot, Idx, Idx) {
        if i & DELTA_BIT == 0 {
            return (self, i, 0);
        }
        match &self.delta {
            Some(d) => (&d.snap, i & !DELTA_BIT, DELTA_BIT),
            // An index of a layer that is gone: nothing.
            None => (self, Idx::MAX, 0),
        }
    }

    /// A card's PAR, if known.
    pub fn card_par(&self, card: Idx) -> Option<Idx> {
        let (s, i, bit) = self.layer(card);
        let p = s.card_par.get(i as usize).copied().flatten()?;
        Some(if bit == 0 { self.lift_par(p) } else { p | bit })
    }

    /// A card's database id.
    pub fn card_db_id(&self, card: Idx) -> Option<i64> {
        let (s, i, _) = self.layer(card);
        s.card_db_ids.get(i as usize).copied()
    }

    /// A PAR as stored.
    pub fn par(&self, par: Idx) -> Option<&Par> {
        let (s, i, _) = self.layer(par);
        s.par_values.get(i as usize)
    }

    /// The enrolment intervals of a card.
    pub fn links(&self, card: Idx) -> impl Iterator<Item = Link> + '_ {
        let (s, i, bit) = self.layer(card);
        s.links
            .get(s.card_links.range(i))
            .unwrap_or(&[])
            .iter()
            .map(move |l| Link {
                citizen: l.citizen | bit,
                interval: l.interval,
            })
    }

    /// The cards holding a PAR.
    pub fn par_cards(&self, par: Idx) -> impl Iterator<Item = Idx> + '_ {
        let (s, i, bit) = self.layer(par);
        s.par_card_list
            .get(s.par_cards.range(i))
            .unwrap_or(&[])
            .iter()
            .map(move |c| c | bit)
    }

    /// The first link of `card` live on `day` under `rule`.
    pub fn live_link(&self, card: Idx, day: NaiveDate, rule: DateRule) -> Option<Link> {
        self.links(card).find(|l| rule.inside(&l.interval, day))
    }

    /// The consent of `citizen` for `card` and `service` at `at` (the last entry at or before it;
    /// a card override wins over the citizen-level value). `citizen` is one of `card`'s links'.
    pub fn consent_at(
        &self,
        citizen: Idx,
        card: Idx,
        service: Service,
        at: DateTime<Utc>,
    ) -> ConsentAt {
        let (s, card, _) = self.layer(card);
        let citizen = citizen & !DELTA_BIT;
        let history = s
            .entries
            .get(s.citizen_entries.range(citizen))
            .unwrap_or(&[]);
        let Some(entry) = history.iter().rev().find(|e| e.at <= at) else {
            return ConsentAt {
                allowed: false,
                entry: None,
            };
        };
        let b = bit(service);
        let (from, to) = entry.overrides;
        let over = s
            .overrides
            .get(from as usize..to as usize)
            .unwrap_or(&[])
            .iter()
            .find(|o| o.card == card && o.set & b != 0);
        let allowed = match over {
            Some(o) => o.allow & b != 0,
            None => entry.allow & b != 0,
        };
        ConsentAt {
            allowed,
            entry: Some((entry.version, entry.at)),
        }
    }

    /// Counts for logs and metrics: cards, tokens and PARs known (the layer of changes caught up
    /// since the snapshot was loaded is not counted).
    pub fn sizes(&self) -> (usize, usize, usize) {
        let cards = self.card_db_ids.len();
        (
            cards,
            self.hashes.len().saturating_sub(cards),
            self.par_values.len(),
        )
    }
}

fn found(known: Known) -> Found {
    match known {
        Known::Card(c) => Found::Card(c),
        Known::Token(Some(p)) => Found::Token(p),
        Known::Token(None) => Found::TokenWithoutPar,
    }
}

/// Builds a [`Snapshot`] from database rows, in any order.
#[derive(Debug)]
pub struct SnapshotBuilder {
    zone: Tz,
    snap: Snapshot,
    card_by_db: HashMap<i64, Idx>,
    citizens: HashMap<String, Idx>,
    links: Vec<(Idx, Link)>,
    entries: Vec<(Idx, ConsentEntry, Vec<Override>)>,
}

/// Why the snapshot could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// More than 2^31 − 1 cards, PARs or citizens.
    #[error("the enrolment snapshot outgrew 31-bit ids")]
    TooLarge,
}

fn next_idx(len: usize) -> Result<Idx, SnapshotError> {
    Idx::try_from(len)
        .ok()
        .filter(|i| *i < DELTA_BIT)
        .ok_or(SnapshotError::TooLarge)
}

impl SnapshotBuilder {
    /// An empty builder; days are taken in `zone`.
    pub fn new(zone: Tz) -> Self {
        Self {
            zone,
            snap: Snapshot::default(),
            card_by_db: HashMap::new(),
            citizens: HashMap::new(),
            links: Vec::new(),
            entries: Vec::new(),
        }
    }

    fn par_idx(&mut self, par: &Par) -> Result<Idx, SnapshotError> {
        let key = ParKey::of(par);
        if let Some(i) = self.snap.pars.get(&key) {
            return Ok(*i);
        }
        let i = next_idx(self.snap.par_values.len())?;
        self.snap.pars.insert(key, i);
        self.snap.par_values.push(par.clone());
        Ok(i)
    }

    fn citizen_idx(&mut self, tax_code: &str) -> Result<Idx, SnapshotError> {
        if let Some(i) = self.citizens.get(tax_code) {
            return Ok(*i);
        }
        let i = next_idx(self.citizens.len())?;
        self.citizens.insert(tax_code.to_owned(), i);
        Ok(i)
    }

    /// A card (database id, HPAN, PAR).
    pub fn card(
        &mut self,
        db_id: i64,
        hpan: HashKey,
        par: Option<&Par>,
    ) -> Result<(), SnapshotError> {
        let par = par.map(|p| self.par_idx(p)).transpose()?;
        let i = next_idx(self.snap.card_db_ids.len())?;
        self.snap.card_db_ids.push(db_id);
        self.snap.card_par.push(par);
        self.snap.hashes.insert(hpan, Known::Card(i));
        self.card_by_db.insert(db_id, i);
        Ok(())
    }

    /// A live token and its PAR (if known). A hash already known as a card stays a card.
    pub fn token(&mut self, htoken: HashKey, par: Option<&Par>) -> Result<(), SnapshotError> {
        let par = par.map(|p| self.par_idx(p)).transpose()?;
        self.snap.hashes.entry(htoken).or_insert(Known::Token(par));
        Ok(())
    }

    /// One enrolment interval of a card (given by database id) for a citizen.
    pub fn interval(
        &mut self,
        card_db_id: i64,
        tax_code: &str,
        opened: DateTime<Utc>,
        closed: Option<DateTime<Utc>>,
    ) -> Result<(), SnapshotError> {
        let Some(card) = self.card_by_db.get(&card_db_id).copied() else {
            return Ok(());
        };
        let citizen = self.citizen_idx(tax_code)?;
        let interval = Interval::of_instants(opened, closed, self.zone);
        self.links.push((card, Link { citizen, interval }));
        Ok(())
    }

    /// One consent history entry (the citizen's whole state after it).
    pub fn consent(
        &mut self,
        tax_code: &str,
        version: i64,
        at: DateTime<Utc>,
        state: &ConsentState,
    ) -> Result<(), SnapshotError> {
        let citizen = self.citizen_idx(tax_code)?;
        let mut allow = 0u8;
        for s in Service::ALL {
            if state.service(s) == Consent::Allow {
                allow |= bit(s);
            }
        }
        let mut overrides = Vec::new();
        for (hpan, services) in &state.cards {
            let Some(Known::Card(card)) =
                HashKey::from_hex(hpan.as_str()).and_then(|k| self.snap.hashes.get(&k).copied())
            else {
                continue;
            };
            let (mut set, mut allow) = (0u8, 0u8);
            for (s, c) in services {
                set |= bit(*s);
                if *c == Consent::Allow {
                    allow |= bit(*s);
                }
            }
            overrides.push(Override { card, set, allow });
        }
        let entry = ConsentEntry {
            at,
            version,
            allow,
            overrides: (0, 0),
        };
        self.entries.push((citizen, entry, overrides));
        Ok(())
    }

    /// Freezes the snapshot. Cards must be added before their intervals, tokens and consent.
    pub fn build(mut self) -> Snapshot {
        let mut snap = self.snap;
        self.links.sort_by_key(|(card, l)| (*card, l.interval.from));
        snap.card_links =
            Groups::of_sorted(self.links.iter().map(|(c, _)| *c), snap.card_db_ids.len());
        snap.links = self.links.into_iter().map(|(_, l)| l).collect();

        let mut by_par: Vec<(Idx, Idx)> = snap
            .card_par
            .iter()
            .enumerate()
            .filter_map(|(card, par)| Some(((*par)?, Idx::try_from(card).ok()?)))
            .collect();
        by_par.sort_unstable();
        snap.par_cards = Groups::of_sorted(by_par.iter().map(|(p, _)| *p), snap.par_values.len());
        snap.par_card_list = by_par.into_iter().map(|(_, c)| c).collect();

        self.entries
            .sort_by_key(|(citizen, e, _)| (*citizen, e.at, e.version));
        snap.citizen_entries =
            Groups::of_sorted(self.entries.iter().map(|(c, _, _)| *c), self.citizens.len());
        for (_, mut entry, overrides) in self.entries {
            let from = u32::try_from(snap.overrides.len()).unwrap_or(u32::MAX);
            snap.overrides.extend(overrides);
            let to = u32::try_from(snap.overrides.len()).unwrap_or(u32::MAX);
            entry.overrides = (from, to);
            snap.entries.push(entry);
        }
        snap
    }
}
