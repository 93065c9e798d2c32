//! The slice of the card registry a batch of commands touches, loaded under the batch's locks,
//! changed in memory by the rules, then written back. Rows remember whether they changed.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::domain::{Circuit, ConsentState, Hpan, Htoken, Pan, Par, Source, TaxCode, TokenPan};

/// A card.
#[derive(Clone, Debug)]
pub struct CardRow {
    /// Database id (`None`: created by this batch).
    pub id: Option<i64>,
    /// The card's hash.
    pub hpan: Hpan,
    /// A clear PAN received by this batch, to be stored encrypted.
    pub new_pan: Option<Pan>,
    /// Last four digits, kept beside the hash.
    pub last4: Option<String>,
    /// Circuit.
    pub circuit: Circuit,
    /// PAR and the source that gave it.
    pub par: Option<(Par, Source)>,
    /// Has a live citizen link.
    pub active: bool,
    /// Timestamp of the last card update published for it.
    pub last_update_ts: Option<DateTime<Utc>>,
    /// Changed by this batch.
    pub dirty: bool,
}

impl CardRow {
    /// The PAR key (upper case), when the card has a PAR.
    pub fn par_key(&self) -> Option<String> {
        self.par.as_ref().map(|(p, _)| p.key())
    }
}

/// A citizen↔card link.
#[derive(Clone, Debug)]
pub struct LinkRow {
    /// The card.
    pub hpan: Hpan,
    /// The citizen.
    pub tax_code: TaxCode,
    /// Open.
    pub live: bool,
    /// Start of the current (or last) enrolment interval.
    pub opened_at: DateTime<Utc>,
    /// End of the last interval (when closed).
    pub closed_at: Option<DateTime<Utc>>,
    /// Event timestamp of the last change (orders changes).
    pub changed_at: DateTime<Utc>,
    /// An `INSERT_UPDATE` is the last thing the platform was told for this citizen and card.
    pub published: bool,
    /// Created by this batch.
    pub new: bool,
    /// Changed by this batch.
    pub dirty: bool,
    /// Enrolment intervals opened by this batch (starts), to insert.
    pub opened_intervals: Vec<DateTime<Utc>>,
    /// Enrolment intervals closed by this batch (ends): each closes the latest interval opened
    /// before it.
    pub closed_intervals: Vec<DateTime<Utc>>,
}

/// A token.
#[derive(Clone, Debug)]
pub struct TokenRow {
    /// Database id (`None`: created by this batch).
    pub id: Option<i64>,
    /// The token's hash.
    pub htoken: Htoken,
    /// A clear token PAN received by this batch, to be stored encrypted.
    pub new_token: Option<TokenPan>,
    /// A clear token PAN is stored (or received now): the resolver can verify it.
    pub has_clear: bool,
    /// Last four digits.
    pub last4: Option<String>,
    /// Circuit, when known.
    pub circuit: Option<Circuit>,
    /// The PAR it belongs to.
    pub par: Option<Par>,
    /// The card it is attached to while that card's PAR is unknown.
    pub card: Option<Hpan>,
    /// Source of its association.
    pub source: Source,
    /// Explicitly deleted.
    pub deleted: bool,
    /// Enrolment date given to the platform when it differs from the update's timestamp.
    pub since: Option<DateTime<Utc>>,
    /// Changed by this batch.
    pub dirty: bool,
}

impl TokenRow {
    /// The PAR key, when attached to a PAR.
    pub fn par_key(&self) -> Option<String> {
        self.par.as_ref().map(Par::key)
    }
}

/// A refused association, kept as history and counted by source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// `card` or `token`.
    pub subject: &'static str,
    /// The HPAN or HTOKEN.
    pub key: String,
    /// The PAR in place.
    pub current: String,
    /// The PAR claimed.
    pub claimed: String,
    /// Who claimed it.
    pub source: Source,
}

/// An association that changed to another PAR (a more trusted source disagreed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassociation {
    /// `card` or `token`.
    pub subject: &'static str,
    /// The HPAN or HTOKEN.
    pub key: String,
    /// The PAR before.
    pub from: Option<String>,
    /// The PAR after.
    pub to: String,
    /// The source that moved it.
    pub source: Source,
}

/// Everything a batch touches.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Cards by HPAN.
    pub cards: HashMap<Hpan, CardRow>,
    /// Links by card then citizen.
    pub links: HashMap<Hpan, Vec<LinkRow>>,
    /// Tokens by HTOKEN.
    pub tokens: HashMap<Htoken, TokenRow>,
    /// Current consent of every citizen linked to a loaded card.
    pub consents: HashMap<TaxCode, ConsentState>,
    /// What each loaded card showed before the batch: PAR key and visible tokens.
    pub before: HashMap<Hpan, (Option<String>, BTreeSet<Htoken>)>,
    /// Refused associations.
    pub conflicts: Vec<Conflict>,
    /// Associations moved to another PAR.
    pub reassociations: Vec<Reassociation>,
    /// Provisional tokens per PAR key, counted once per batch at the first question and kept
    /// current by the rules as they attach new tokens (`None`: to be counted again). Without
    /// it a batch of n listed tokens costs n² (a 1 M-row token list spent 70 % of its time
    /// counting).
    pub provisional_by_par: Option<HashMap<String, usize>>,
}

impl Snapshot {
    /// The live tokens a card lists: those of its PAR and those attached to it directly.
    pub fn visible_tokens(&self, hpan: &Hpan) -> BTreeSet<Htoken> {
        let Some(card) = self.cards.get(hpan) else {
            return BTreeSet::new();
        };
        let key = card.par_key();
        self.tokens
            .values()
            .filter(|t| !t.deleted)
            .filter(|t| match (&key, t.par_key()) {
                (Some(k), Some(tk)) => *k == tk,
                (_, None) => t.card.as_ref() == Some(hpan),
                (None, Some(_)) => false,
            })
            .map(|t| t.htoken.clone())
            .collect()
    }

    /// Records what every loaded card shows, before the batch changes anything.
    pub fn remember_before(&mut self) {
        let hpans: Vec<Hpan> = self.cards.keys().cloned().collect();
        for h in hpans {
            let par = self.cards.get(&h).and_then(CardRow::par_key);
            let tokens = self.visible_tokens(&h);
            self.before.insert(h, (par, tokens));
        }
    }

    /// The cards with a given PAR.
    pub fn cards_with_par(&self, key: &str) -> Vec<Hpan> {
        self.cards
            .values()
            .filter(|c| c.par_key().as_deref() == Some(key))
            .map(|c| c.hpan.clone())
            .collect()
    }

    /// The link between a card and a citizen.
    pub fn link_mut(&mut self, hpan: &Hpan, tax: &TaxCode) -> Option<&mut LinkRow> {
        self.links
            .get_mut(hpan)
            .and_then(|ls| ls.iter_mut().find(|l| l.tax_code == *tax))
    }

    /// Whether a card still has a live link.
    pub fn has_live_link(&self, hpan: &Hpan) -> bool {
        self.links
            .get(hpan)
            .is_some_and(|ls| ls.iter().any(|l| l.live))
    }

    /// Provisional tokens already attached to a PAR.
    pub fn provisional_tokens_of(&mut self, key: &str) -> usize {
        let tokens = &self.tokens;
        let counts = self.provisional_by_par.get_or_insert_with(|| {
            let mut counts = HashMap::new();
            for t in tokens.values() {
                if let (false, true, Some(k)) = (t.deleted, t.source.is_provisional(), t.par_key())
                {
                    *counts.entry(k).or_insert(0) += 1;
                }
            }
            counts
        });
        counts.get(key).copied().unwrap_or(0)
    }

    /// Records a new provisional token attached to PAR `key` in the counts, if they are kept.
    pub fn count_provisional(&mut self, key: String) {
        if let Some(counts) = &mut self.provisional_by_par {
            *counts.entry(key).or_insert(0) += 1;
        }
    }
}

/// A live card as `GET /cards` shows it: its PAR and tokens only while it has consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardView {
    /// The card.
    pub hpan: Hpan,
    /// Its PAR, when it has one and consent.
    pub par: Option<String>,
    /// Its live tokens, when it has consent.
    pub htokens: Vec<String>,
}

impl Snapshot {
    /// `hpan` as `GET /cards` shows it (`None`: unknown or inactive): PAR and tokens only while
    /// some live-linked citizen's consent covers it.
    pub fn view(&self, hpan: &Hpan) -> Option<CardView> {
        let card = self.cards.get(hpan).filter(|c| c.active)?;
        let consenting = self.links.get(hpan).is_some_and(|links| {
            links.iter().any(|l| {
                l.live && super::updates::has_consent(self.consents.get(&l.tax_code), hpan)
            })
        });
        Some(if consenting {
            CardView {
                hpan: hpan.clone(),
                par: card.par.as_ref().map(|(p, _)| p.to_string()),
                htokens: self
                    .visible_tokens(hpan)
                    .into_iter()
                    .map(|h| h.to_string())
                    .collect(),
            }
        } else {
            CardView {
                hpan: hpan.clone(),
                par: None,
                htokens: Vec::new(),
            }
        })
    }
}

/// The last four digits of a card number.
pub fn last4(digits: &str) -> String {
    digits
        .get(digits.len().saturating_sub(4)..)
        .unwrap_or("")
        .to_owned()
}
