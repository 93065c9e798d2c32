//! Which snapshot a run matches against. A queue message, and a file of at most
//! `matching.targeted_max_records` records, get a snapshot of only what their records can match
//! — their hashes' cards and tokens, their PARs', the intervals and consent history — read from
//! the database when the run starts, so it is caught up and costs milliseconds; a larger file
//! gets the whole enrolment snapshot, loaded once (tens of seconds at ten million cards), kept in
//! memory and caught up before each file with what changed since (`domain/matching/delta.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono_tz::Tz;
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

use super::run::{read_batches, MatchDeps, MatchError, RowSource};
use crate::db::transactions::facts;
use crate::db::transactions::snapshot::{self, Horizon};
use crate::domain::matching::Snapshot;
use crate::domain::transactions::HashKey;
use crate::domain::Abi;
use crate::files::trnlog::{Row, TrnlogError};

/// A plain file up to this size is read once before matching to learn what it names (a PGP
/// file is read once anyway, for its integrity check).
const TARGETED_MAX_BYTES: u64 = 8 << 20;

/// The hashes and PARs a file's or message's records name.
#[derive(Debug, Default)]
pub struct Named {
    hashes: Vec<HashKey>,
    pars: Vec<String>,
}

impl Named {
    fn add(&mut self, rows: &[Row]) {
        for record in rows.iter().filter_map(|r| r.parsed.as_ref().ok()) {
            self.hashes.push(record.hash);
            if let Some(par) = &record.par {
                self.pars.push(par.as_str().to_owned());
            }
        }
    }
}

/// Reads what the run's rows name, when that is worth it: a message's from memory; a fresh
/// file's in one pass when it is small or `whole` (a PGP file, read to its end for its integrity
/// check whatever its size). `Ok(None)`: the whole snapshot; `Ok(Err(_))`: the file cannot be
/// read (it is rejected before any row is decided).
pub async fn read_first(
    deps: &MatchDeps,
    rows: &RowSource,
    max_plain: u64,
    abi: &Abi,
    whole: bool,
    fresh: bool,
) -> Result<Result<Option<Named>, TrnlogError>, MatchError> {
    let path = match rows {
        RowSource::Message(rows) => {
            let mut named = Named::default();
            named.add(rows);
            return Ok(Ok(Some(named)));
        }
        RowSource::File(path) => path,
    };
    let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= TARGETED_MAX_BYTES);
    if !fresh || !(whole || small) {
        return Ok(Ok(None));
    }
    let mut named = Some(Named::default());
    let mut batches = read_batches(deps, rows, max_plain, abi.clone(), 0);
    loop {
        match batches.recv().await.ok_or(MatchError::Reader)? {
            Ok(batch) if batch.is_empty() => break,
            Ok(batch) => {
                if let Some(n) = &mut named {
                    n.add(&batch);
                    if n.hashes.len() > deps.matching.targeted_max_records {
                        named = None;
                        if !whole {
                            break;
                        }
                    }
                }
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(named))
}

/// The whole enrolment snapshot, kept between files, and where it was read.
#[derive(Debug)]
pub struct Kept {
    snapshot: Snapshot,
    horizon: Horizon,
    loaded: Instant,
}

/// The matcher's kept snapshot: one run at a time holds it.
pub type KeptSnapshot = Arc<Mutex<Option<Kept>>>;

/// Whether `changed` hashes are better read by loading the whole snapshot of `cards` again:
/// reading a changed hash again costs ≈ 27 µs, loading costs ≈ 2.5 µs a card (2 M cards,
/// docs/PERFORMANCE.md), so past a tenth of the cards the load wins. Up to 10 000 changes are
/// always caught up (a third of a second).
fn reload_rather_than(changed: usize, cards: usize) -> bool {
    changed > (cards / 10).max(10_000)
}

/// A kept snapshot is reloaded at least this often: the layer of changes stays small, and
/// PostgreSQL's transaction ids are compared well within their range.
const RELOAD_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The snapshot a run matches against.
pub enum RunSnapshot {
    /// Read for this run.
    Own(Box<Snapshot>),
    /// The kept whole snapshot, held by this run.
    Kept(OwnedMappedMutexGuard<Option<Kept>, Snapshot>),
}

impl std::ops::Deref for RunSnapshot {
    type Target = Snapshot;

    fn deref(&self) -> &Snapshot {
        match self {
            RunSnapshot::Own(s) => s,
            RunSnapshot::Kept(g) => g,
        }
    }
}

/// The snapshot the run matches against.
pub async fn snapshot(
    deps: &MatchDeps,
    zone: Tz,
    named: Option<Named>,
) -> Result<RunSnapshot, MatchError> {
    Ok(match named {
        None => RunSnapshot::Kept(caught_up(deps, zone).await?),
        Some(n) => {
            let pars: Vec<&str> = n.pars.iter().map(String::as_str).collect();
            RunSnapshot::Own(Box::new(
                facts::instruments_snapshot(&deps.pool, zone, &n.hashes, &pars, None)
                    .await?
                    .0,
            ))
        }
    })
}

/// The kept snapshot, caught up with every change committed before now: loaded whole the first
/// time (and when too much has changed, or a day has passed), else with the layer of what
/// changed since it was loaded read again.
async fn caught_up(
    deps: &MatchDeps,
    zone: Tz,
) -> Result<OwnedMappedMutexGuard<Option<Kept>, Snapshot>, MatchError> {
    let mut kept = deps.kept.clone().lock_owned().await;
    let started = Instant::now();
    let mut reload = true;
    if let Some(k) = kept.as_mut().filter(|k| k.loaded.elapsed() < RELOAD_AFTER) {
        let changed = snapshot::changed_since(&deps.pool, &k.horizon).await?;
        if !reload_rather_than(changed.len(), k.snapshot.sizes().0) {
            let pars = k.snapshot.pars_of(&changed);
            let par_keys: Vec<&str> = pars.iter().map(|p| p.as_str()).collect();
            let (changes, _) =
                facts::instruments_snapshot(&deps.pool, zone, &changed, &par_keys, None).await?;
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(changed = changed.len(), ms, "enrolment snapshot caught up");
            if crate::metrics::profiling() {
                eprintln!(
                    "snapshot caught up: {} changed hashes in {ms} ms",
                    changed.len()
                );
            }
            k.snapshot.catch_up(changes, changed, &pars);
            reload = false;
        }
    }
    if reload {
        // The old one goes first: two at once would double the peak memory.
        *kept = None;
        let (snapshot, horizon) = snapshot::load(&deps.pool, zone).await?;
        *kept = Some(Kept {
            snapshot,
            horizon,
            loaded: Instant::now(),
        });
        if crate::metrics::profiling() {
            eprintln!("snapshot loaded whole in {:?}", started.elapsed());
        }
    }
    OwnedMutexGuard::try_map(kept, |k| k.as_mut().map(|k| &mut k.snapshot))
        .map_err(|_| MatchError::Snapshot)
}

#[cfg(test)]
mod tests {
    use super::reload_rather_than;

    #[test]
    fn a_tenth_of_the_cards_changed_is_worth_a_reload() {
        assert!(!reload_rather_than(10_000, 0));
        assert!(reload_rather_than(10_001, 0));
        assert!(!reload_rather_than(1_000_000, 10_000_000));
        assert!(reload_rather_than(1_000_001, 10_000_000));
    }
}
