//! `tkm ingest-transactions FILE…`: an operator matches acquirers' transaction files from the
//! command line with the checks of the upload (name, size) and the server's matching, showing
//! rows/s and a report per file; the exit code is non-zero when a file is refused or rejected.
//! The file is read where it lies (tkm keeps no copy); running the same command again after an
//! interruption resumes it (the same name and SHA-256 is the same upload).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::actors::transaction_matcher::run::{match_file, Ended, MatchDeps, RowSource};
use crate::config::Settings;
use crate::db::transactions::{periods, reads};
use crate::db::uploads::{self, NewUpload, Registered, UploadState};
use crate::domain::{UploadKind, UploadName};

/// Matches `files` in order; returns how many were refused or rejected.
pub fn run(settings: &Settings, files: &[PathBuf]) -> anyhow::Result<usize> {
    let system = actix::System::new();
    system.block_on(async {
        crate::db::run_migrations(&settings.database).await?;
        let pool = crate::db::build_pool(&settings.database)?;
        let configured = settings.matching.periods()?;
        periods::seed(&pool, &configured).await?;
        let deps = MatchDeps {
            pool: pool.clone(),
            pgp: crate::crypto::pgp::PgpKey::load(&settings.pgp)
                .context("cannot load pgp.private_key_file")?,
            hasher: crate::crypto::Hasher::from_settings(settings)?,
            matching: settings.matching.clone(),
            uploads: settings.uploads.clone(),
            metrics: crate::metrics::Metrics::new().context("cannot register metrics")?,
            registry: crate::startup_uploads::command_line_card_registry(settings, &pool)?,
            kept: Default::default(),
        };
        let mut refused = 0;
        for file in files {
            if !match_one(&deps, file).await? {
                refused += 1;
            }
        }
        Ok(refused)
    })
}

/// SHA-256 and size of a file, read in a blocking thread.
async fn digest(path: &Path) -> std::io::Result<(String, u64)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or(&[]));
            total = total.saturating_add(n as u64);
        }
        Ok((hex::encode(hasher.finalize()), total))
    })
    .await
    .map_err(std::io::Error::other)?
}

async fn match_one(deps: &MatchDeps, file: &Path) -> anyhow::Result<bool> {
    let shown = file.display();
    let Some(filename) = file.file_name().and_then(|n| n.to_str()) else {
        eprintln!("{shown}: refused: the file name is not valid UTF-8");
        return Ok(false);
    };
    let name = match UploadName::parse(UploadKind::Transactions, filename) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{shown}: refused: {}", e.0);
            return Ok(false);
        }
    };
    let (sha256, bytes) = match digest(file).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{shown}: refused: cannot read the file ({})", e.kind());
            return Ok(false);
        }
    };
    if bytes > deps.uploads.max_bytes {
        eprintln!(
            "{shown}: refused: larger than uploads.max_bytes ({})",
            deps.uploads.max_bytes
        );
        return Ok(false);
    }
    let new = NewUpload {
        id: Uuid::new_v4(),
        kind: UploadKind::Transactions,
        abi: name.abi.clone(),
        filename: name.name.clone(),
        sha256,
        bytes,
    };
    let id = match uploads::register(&deps.pool, &new, "cli").await? {
        Registered::New(id) => id,
        Registered::Existing(id) => {
            println!(
                "{shown}: the same file was received before as {id}; resuming or reporting it"
            );
            id
        }
    };
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template(
            "{spinner} {human_pos:>10} rows  {per_sec:>12}  {elapsed}  {prefix}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(filename.to_owned());
    let on_progress = {
        let bar = bar.clone();
        Arc::new(move |rows: u64| bar.set_position(rows))
    };
    let ended = match_file(deps, id, RowSource::File(file.to_owned()), on_progress).await?;
    bar.finish();
    let record = match ended {
        Ended::Finished(r) => r,
        Ended::Busy => {
            println!("{shown}: upload {id} is being matched by another process");
            return Ok(true);
        }
        Ended::Unknown => anyhow::bail!("{shown}: upload {id} vanished"),
    };
    println!(
        "{shown}: upload {id} {}: {} rows",
        record.state.as_str(),
        record.progress.rows
    );
    for (outcome, reason, n) in reads::counts(&deps.pool, id).await? {
        match reason {
            Some(r) => println!("  {outcome} {r}: {n}"),
            None => println!("  {outcome}: {n}"),
        }
    }
    if let Some(error) = &record.error {
        println!("  rejected: {error}");
    }
    Ok(record.state != UploadState::Rejected)
}
