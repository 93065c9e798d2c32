//! P4's in-process measurements (`scripts/bench-transactions.sh`): the enrolment snapshot's load
//! time and memory, the `csv` crate parsing the file with no hashing (a limit), tkm's own reader,
//! and the matching core alone over the parsed rows (rows/s on one core).

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::domain::matching::{AwardPeriod, AwardPeriods, DateRule, Rules};
use crate::domain::transactions::Record;
use crate::domain::{Abi, Service};
use crate::files::trnlog::TrnlogReader;

/// What to measure.
#[derive(Debug)]
pub struct Plan {
    /// The loaded database.
    pub database: String,
    /// The TRNLOG file (plain).
    pub file: PathBuf,
    /// Its ABI.
    pub abi: String,
    /// The salt (clear PANs).
    pub salt: String,
}

/// The measurements.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Snapshot load, seconds.
    pub snapshot_load_s: f64,
    /// Cards, tokens, PARs in it.
    pub snapshot_sizes: (usize, usize, usize),
    /// Resident memory after the load, MiB.
    pub rss_after_snapshot_mib: u64,
    /// Rows in the file.
    pub rows: u64,
    /// The csv crate over the file, no hashing: rows/s (the parse limit).
    pub csv_rows_per_s: f64,
    /// tkm's reader (parse into records): rows/s.
    pub reader_rows_per_s: f64,
    /// The checks alone over parsed records, one core: rows/s.
    pub core_rows_per_s: f64,
    /// Accepted by the core.
    pub core_accepted: u64,
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb / 1024)
}

/// Runs the measurements.
pub async fn run(plan: &Plan) -> anyhow::Result<Report> {
    let mut cfg = deadpool_postgres::Config::new();
    cfg.url = Some(plan.database.clone());
    let pool = cfg.create_pool(
        Some(deadpool_postgres::Runtime::Tokio1),
        tokio_postgres::NoTls,
    )?;
    let zone = chrono_tz::Europe::Rome;
    let t = Instant::now();
    let (snapshot, _) = crate::db::transactions::snapshot::load(&pool, zone).await?;
    let snapshot_load_s = t.elapsed().as_secs_f64();
    let periods: Vec<AwardPeriod> = crate::db::transactions::periods::list(&pool).await?;
    let periods = AwardPeriods::new(periods)?;

    let t = Instant::now();
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .flexible(true)
        .from_path(&plan.file)?;
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    while csv.read_byte_record(&mut record)? {
        rows += 1;
    }
    let csv_rows_per_s = rows as f64 / t.elapsed().as_secs_f64();

    let abi = Abi::parse(&plan.abi).map_err(|e| anyhow::anyhow!(e.0))?;
    let hasher = crate::crypto::Hasher::new(secrecy::SecretString::from(plan.salt.clone()));
    let t = Instant::now();
    let file: Box<dyn std::io::Read + Send> = Box::new(std::fs::File::open(&plan.file)?);
    let mut reader = TrnlogReader::from_reader(file, abi, hasher);
    let mut records: Vec<Record> = Vec::with_capacity(usize::try_from(rows).unwrap_or(0));
    loop {
        let batch = reader.next_batch(100_000, 0)?;
        if batch.is_empty() {
            break;
        }
        records.extend(batch.into_iter().filter_map(|r| r.parsed.ok()));
    }
    let reader_rows_per_s = rows as f64 / t.elapsed().as_secs_f64();

    let rules = Rules {
        snapshot: &snapshot,
        periods: &periods,
        rule: DateRule::Design,
        service: Service::Bpd,
        zone,
    };
    let today = chrono::Utc::now().with_timezone(&zone).date_naive();
    let t = Instant::now();
    let mut accepted = 0u64;
    for r in &records {
        if rules.payment(r, today).outcome == crate::domain::matching::Outcome::Accepted {
            accepted += 1;
        }
    }
    let core_rows_per_s = records.len() as f64 / t.elapsed().as_secs_f64();
    Ok(Report {
        snapshot_load_s,
        snapshot_sizes: snapshot.sizes(),
        rss_after_snapshot_mib: rss_mib(),
        rows,
        csv_rows_per_s,
        reader_rows_per_s,
        core_rows_per_s,
        core_accepted: accepted,
    })
}
