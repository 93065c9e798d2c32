//! `tkm build-lists`: builds the published lists from the command line, through the same
//! builder as the server (same lock, same generations), with a progress bar per list.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::actors::list_builder::{Builder, Built};
use crate::config::Settings;
use crate::domain::lists::ListKind;

/// Builds `kinds` (every list when empty) and prints what was published.
pub fn run(settings: &Settings, kinds: &[ListKind]) -> anyhow::Result<Vec<Built>> {
    let kinds = if kinds.is_empty() {
        ListKind::ALL.to_vec()
    } else {
        kinds.to_vec()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        crate::db::run_migrations(&settings.database).await?;
        let pool = crate::db::build_pool(&settings.database)?;
        let dir = &settings.storage.dir;
        std::fs::create_dir_all(dir.join("lists"))
            .with_context(|| format!("cannot create storage.dir {}", dir.display()))?;
        let builder = Builder::new(pool, dir, settings.lists.clone());
        let style = ProgressStyle::with_template(
            "{spinner} {prefix:>13} {human_pos:>12} lines  {per_sec:>14}  {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let mut built = Vec::new();
        for kind in kinds {
            let bar = ProgressBar::new_spinner()
                .with_style(style.clone())
                .with_prefix(kind.as_str());
            bar.enable_steady_tick(Duration::from_millis(120));
            let progress = Arc::new(AtomicU64::new(0));
            let watch = {
                let (bar, progress) = (bar.clone(), progress.clone());
                tokio::spawn(async move {
                    loop {
                        bar.set_position(progress.load(Ordering::Relaxed));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            };
            let outcome = builder.build(kind, progress.clone()).await;
            watch.abort();
            bar.set_position(progress.load(Ordering::Relaxed));
            match outcome {
                Ok(b) => {
                    bar.finish_with_message("done");
                    println!(
                        "{}: generation {}, {} lines in {} part(s), {:.1} s",
                        kind.as_str(),
                        b.generation,
                        b.entries,
                        b.parts.len(),
                        b.seconds
                    );
                    for p in &b.parts {
                        println!("  {}  {} ({} bytes)", p.sha256, p.file_name, p.bytes);
                    }
                    built.push(b);
                }
                Err(e) => {
                    bar.abandon();
                    anyhow::bail!(
                        "{}: build failed ({e}); the last good generation stays published",
                        kind.as_str()
                    );
                }
            }
        }
        Ok(built)
    })
}
