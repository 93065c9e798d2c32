//! `tkm ingest-token-list FILE…`: an operator ingests acquirers' token lists from the command
//! line with the checks of the upload (name, size, PGP content) and the same processing as the
//! server, showing rows/s; the exit code is non-zero when a file is rejected.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::actors::token_list_ingestor::ingest::{counts_by_reason, ingest, Ended, IngestDeps};
use crate::config::Settings;
use crate::db::uploads::{self, NewUpload, Registered, UploadState};
use crate::domain::{UploadKind, UploadName};
use crate::files::uploads::UploadStore;

/// Ingests `files` in order; returns how many were rejected.
pub fn run(settings: &Settings, files: &[PathBuf]) -> anyhow::Result<usize> {
    let system = actix::System::new();
    system.block_on(async {
        crate::db::run_migrations(&settings.database).await?;
        let pool = crate::db::build_pool(&settings.database)?;
        let hasher = crate::crypto::Hasher::from_settings(settings)?;
        let pgp = crate::crypto::pgp::PgpKey::load(&settings.pgp)
            .context("cannot load pgp.private_key_file")?;
        let registry = crate::startup_uploads::command_line_card_registry(settings, &pool)?;
        let store = UploadStore::new(&settings.storage.dir);
        store
            .prepare()
            .context("cannot prepare the uploads directory under storage.dir")?;
        let deps = IngestDeps {
            pool: pool.clone(),
            registry,
            pgp,
            hasher,
            store: store.clone(),
            settings: settings.uploads.clone(),
        };
        let mut rejected = 0;
        for file in files {
            if !ingest_one(&deps, &store, file).await? {
                rejected += 1;
            }
        }
        Ok(rejected)
    })
}

/// Ingests one file; false when it is refused or rejected.
async fn ingest_one(deps: &IngestDeps, store: &UploadStore, file: &Path) -> anyhow::Result<bool> {
    let shown = file.display();
    let Some(filename) = file.file_name().and_then(|n| n.to_str()) else {
        eprintln!("{shown}: refused: the file name is not valid UTF-8");
        return Ok(false);
    };
    let name = match UploadName::parse(UploadKind::TokenList, filename) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{shown}: refused: {}", e.0);
            return Ok(false);
        }
    };
    let stored = match store.copy_in(file, deps.settings.max_bytes, None).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{shown}: refused: {e}");
            return Ok(false);
        }
    };
    let new = NewUpload {
        id: stored.id,
        kind: UploadKind::TokenList,
        abi: name.abi.clone(),
        filename: name.name.clone(),
        sha256: stored.sha256.clone(),
        bytes: stored.bytes,
    };
    let id = match uploads::register(&deps.pool, &new, "cli").await? {
        Registered::New(id) => id,
        Registered::Existing(id) => {
            store.remove(stored.id);
            println!("{shown}: the same file was uploaded before as {id}; its report follows");
            id
        }
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{bar:30} {human_pos:>10}/{human_len} rows  {per_sec:>12}  {elapsed}  {prefix}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(filename.to_owned());
    let on_progress = {
        let bar = bar.clone();
        Arc::new(move |p: &uploads::Progress, total: u64| {
            bar.set_length(total);
            bar.set_position(p.rows);
        })
    };
    let ended = ingest(deps, id, on_progress).await?;
    bar.finish();
    let record = match ended {
        Ended::Finished(r) => r,
        Ended::Busy => {
            println!("{shown}: upload {id} is being processed by a running server");
            return Ok(true);
        }
        Ended::Unknown => anyhow::bail!("{shown}: upload {id} vanished"),
    };
    println!(
        "{shown}: upload {id} {}: {} rows, {} accepted",
        record.state.as_str(),
        record.progress.rows,
        record.progress.accepted
    );
    for (reason, n) in counts_by_reason(&record.progress) {
        if n > 0 {
            println!("  {reason}: {n}");
        }
    }
    if let Some(error) = &record.error {
        println!("  rejected: {error}");
    }
    Ok(record.state != UploadState::Rejected)
}
