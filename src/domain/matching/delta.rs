//! The layer of changes a kept snapshot has caught up with: every instrument that changed since
//! the snapshot was loaded, read again whole (its card, its PAR's cards and tokens, their
//! intervals and citizens' consent history) into a small snapshot that is consulted first.
//! Reloading ten million cards for each large file took tens of seconds; a catch-up reads only
//! what changed.

use std::collections::HashSet;

use super::{found, Found, Idx, Known, ParKey, Snapshot, DELTA_BIT};
use crate::domain::transactions::HashKey;
use crate::domain::Par;

/// What changed since a snapshot was loaded.
#[derive(Debug, Default)]
pub struct Delta {
    /// The changed instruments as they are now.
    pub(super) snap: Snapshot,
    /// Every hash that changed: the base's entry for one of them is stale (absent from `snap`:
    /// it is no longer known, e.g. a deleted token).
    hashes: HashSet<HashKey>,
    /// Every PAR the changes touched, before and after: the base's entry for one of them is
    /// stale (absent from `snap`: the PAR has no card or token left).
    pars: HashSet<ParKey>,
}

impl Snapshot {
    /// The PARs the snapshot holds for `hashes` (their cards' and tokens'): a card that moved
    /// to another PAR must be read again with the PAR it left.
    pub fn pars_of<'a>(&self, hashes: impl IntoIterator<Item = &'a HashKey>) -> Vec<Par> {
        let mut out = Vec::new();
        for h in hashes {
            let p = match self.hashes.get(h) {
                Some(Known::Card(c)) => self.card_par.get(*c as usize).copied().flatten(),
                Some(Known::Token(p)) => *p,
                None => None,
            };
            if let Some(par) = p.and_then(|p| self.par_values.get(p as usize)) {
                out.push(par.clone());
            }
        }
        out
    }

    /// Catches up with the changes since the snapshot was loaded: `changes` holds, as they are
    /// now, the instruments of the `changed` hashes and of the `pars` they had or have (read
    /// with [`Snapshot::pars_of`]). Replaces the previous layer: each catch-up reads every
    /// change since the load.
    pub fn catch_up(
        &mut self,
        changes: Snapshot,
        changed: impl IntoIterator<Item = HashKey>,
        pars: &[Par],
    ) {
        let mut covered: HashSet<ParKey> = pars.iter().map(ParKey::of).collect();
        covered.extend(changes.pars.keys().copied());
        self.delta = Some(Box::new(Delta {
            snap: changes,
            hashes: changed.into_iter().collect(),
            pars: covered,
        }));
    }

    /// How many hashes have changed since the snapshot was loaded.
    pub fn changed(&self) -> usize {
        self.delta.as_ref().map_or(0, |d| d.hashes.len())
    }

    /// A PAR of the base as the changes have it, when they hold it (read whole, so current).
    pub(super) fn lift_par(&self, p: Idx) -> Idx {
        let Some(d) = &self.delta else { return p };
        self.par_values
            .get(p as usize)
            .and_then(|v| d.snap.pars.get(&ParKey::of(v)))
            .map_or(p, |i| i | DELTA_BIT)
    }

    /// [`Snapshot::find`] over the changes, then the base.
    pub(super) fn find_layered(&self, d: &Delta, hash: &HashKey, par: Option<&Par>) -> Found {
        if let Some(known) = d.snap.hashes.get(hash) {
            return match found(*known) {
                Found::Card(c) => Found::Card(c | DELTA_BIT),
                Found::Token(p) => Found::Token(p | DELTA_BIT),
                other => other,
            };
        }
        let base = if d.hashes.contains(hash) {
            None
        } else {
            self.hashes.get(hash).copied()
        };
        match base.map(found) {
            Some(Found::Token(p)) => Found::Token(self.lift_par(p)),
            Some(other) => other,
            None => {
                let Some(key) = par.map(ParKey::of) else {
                    return Found::Nothing;
                };
                if let Some(p) = d.snap.pars.get(&key) {
                    Found::Par(p | DELTA_BIT)
                } else if d.pars.contains(&key) {
                    Found::Nothing
                } else {
                    self.pars
                        .get(&key)
                        .map_or(Found::Nothing, |p| Found::Par(*p))
                }
            }
        }
    }
}
