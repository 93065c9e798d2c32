//! Which snapshot a run matches against. A queue message, and a file of at most
//! [`TARGETED_MAX_RECORDS`] records, get a snapshot of only what their records can match — their
//! hashes' cards and tokens, their PARs', the intervals and consent history — read from the
//! database when the run starts, so it is caught up and costs milliseconds; a larger file gets
//! the whole enrolment snapshot (tens of seconds at ten million cards, paid once per file).

use chrono_tz::Tz;

use super::run::{read_batches, MatchDeps, MatchError, RowSource};
use crate::db::transactions::{facts, snapshot};
use crate::domain::matching::Snapshot;
use crate::domain::transactions::HashKey;
use crate::domain::Abi;
use crate::files::trnlog::{Row, TrnlogError};

/// A plain file up to this size is read once before matching to learn what it names (a PGP
/// file is read once anyway, for its integrity check).
const TARGETED_MAX_BYTES: u64 = 8 << 20;

/// Up to this many records, the targeted snapshot.
pub const TARGETED_MAX_RECORDS: usize = 50_000;

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
                    if n.hashes.len() > TARGETED_MAX_RECORDS {
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

/// The snapshot the run matches against.
pub async fn snapshot(
    deps: &MatchDeps,
    zone: Tz,
    named: Option<Named>,
) -> Result<Snapshot, MatchError> {
    Ok(match named {
        None => snapshot::load(&deps.pool, zone).await?,
        Some(n) => {
            let pars: Vec<&str> = n.pars.iter().map(String::as_str).collect();
            facts::instruments_snapshot(&deps.pool, zone, &n.hashes, &pars, None)
                .await?
                .0
        }
    })
}
