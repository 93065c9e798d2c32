//! Building one list as a new generation: the membership query streamed out of PostgreSQL with
//! `COPY`, split into ZIP parts and hashed on a blocking thread while the query still runs,
//! deltas from the earlier generations, then an atomic publication (directory rename, then the
//! database row); a failure leaves the last good generation served.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Rome;
use deadpool_postgres::Pool;
use futures_util::StreamExt;

use super::ListError;
use crate::config::ListsSettings;
use crate::db::lists::{self as store, ListFile};
use crate::domain::lists::ListKind;
use crate::files::delta;
use crate::files::zip_parts::{self, LineSplitter, PartPlan, PartWriter, WrittenList, WrittenPart};

/// What a build produced.
#[derive(Clone, Debug)]
pub struct Built {
    /// The list.
    pub kind: ListKind,
    /// The new generation.
    pub generation: i64,
    /// Lines in all parts.
    pub entries: u64,
    /// The parts.
    pub parts: Vec<WrittenPart>,
    /// SHA-256 of the list's content (every part's lines, in order).
    pub content_sha256: String,
    /// Deltas written (from these generations).
    pub deltas_from: Vec<i64>,
    /// Wall time.
    pub seconds: f64,
}

/// Builds lists into `<storage.dir>/lists/<kind>/<generation>/`.
#[derive(Clone)]
pub struct Builder {
    pool: Pool,
    root: PathBuf,
    settings: ListsSettings,
}

/// The directory of a generation.
pub fn generation_dir(root: &Path, kind: ListKind, generation: i64) -> PathBuf {
    root.join(kind.as_str()).join(generation.to_string())
}

/// The delta file's name (and its entry's) in the newer generation's directory.
pub fn delta_names(kind: ListKind, since: i64) -> (String, String) {
    let stem = match kind {
        ListKind::Hpans => "hashedPans",
        ListKind::Pars => "parList",
        ListKind::BinRanges => "binRanges",
        ListKind::KnownHashes => "knownHashes",
    };
    (
        format!("{stem}_delta_{since}.zip"),
        format!("{stem}_delta.csv"),
    )
}

fn row(part: &WrittenPart) -> ListFile {
    ListFile {
        part: i32::try_from(part.part).unwrap_or(i32::MAX),
        file_name: part.file_name.clone(),
        entries: i64::try_from(part.rows).unwrap_or(i64::MAX),
        bytes: i64::try_from(part.bytes).unwrap_or(i64::MAX),
        sha256: part.sha256.clone(),
    }
}

impl Builder {
    /// A builder under `storage_dir`.
    pub fn new(pool: Pool, storage_dir: &Path, settings: ListsSettings) -> Self {
        Builder {
            pool,
            root: storage_dir.join("lists"),
            settings,
        }
    }

    /// Where generations live.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The settings.
    pub fn settings(&self) -> &ListsSettings {
        &self.settings
    }

    /// Builds `kind` as a new generation; `progress` sees the lines written so far. Builds of
    /// one list are serialised across processes by a PostgreSQL advisory lock.
    pub async fn build(
        &self,
        kind: ListKind,
        progress: Arc<AtomicU64>,
    ) -> Result<Built, ListError> {
        let started = Instant::now();
        let conn = self.pool.get().await.map_err(crate::db::DbError::from)?;
        let lock = format!("tkm-list-build:{}", kind.as_str());
        conn.execute("SELECT pg_advisory_lock(hashtext($1))", &[&lock])
            .await
            .map_err(crate::db::DbError::from)?;
        let outcome = self.build_locked(&conn, kind, progress).await;
        // The connection goes back to the pool: the lock must not go with it.
        if let Err(e) = conn
            .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock])
            .await
        {
            tracing::warn!(error = %e, list = kind.as_str(), "cannot release the build lock");
        }
        let mut built = outcome?;
        built.seconds = started.elapsed().as_secs_f64();
        Ok(built)
    }

    async fn build_locked(
        &self,
        conn: &deadpool_postgres::Object,
        kind: ListKind,
        progress: Arc<AtomicU64>,
    ) -> Result<Built, ListError> {
        let (generation, created_at) = store::begin(&self.pool, kind).await?;
        let building = self
            .root
            .join(kind.as_str())
            .join(format!("{generation}.building"));
        let result = self
            .write_generation(conn, kind, generation, created_at, &building, progress)
            .await;
        match result {
            Ok(built) => {
                self.expire(kind).await;
                Ok(built)
            }
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&building).await;
                if let Err(db) = store::fail(&self.pool, generation, &e.to_string()).await {
                    tracing::warn!(error = %db, generation, "cannot record a failed list build");
                }
                Err(e)
            }
        }
    }

    async fn write_generation(
        &self,
        conn: &deadpool_postgres::Object,
        kind: ListKind,
        generation: i64,
        created_at: DateTime<Utc>,
        building: &Path,
        progress: Arc<AtomicU64>,
    ) -> Result<Built, ListError> {
        tokio::fs::create_dir_all(building).await?;
        let mut max_rows = self.settings.max_rows_per_file;
        if let Some(parts) = kind.max_parts() {
            // Spread over at most `parts` files, whatever the configured size.
            let lines = store::bin_range_lines(conn).await?;
            let parts = u64::try_from(parts).unwrap_or(1).max(1);
            max_rows = max_rows.max(lines.div_ceil(parts));
        }
        let rome = created_at.with_timezone(&Rome);
        let env = self.settings.env_name.clone();
        let day = rome.date_naive();
        let plan = PartPlan {
            names: Box::new(move |n| kind.part_names(&env, day, n)),
            max_rows,
            level: self.settings.zip_level,
            stamp: rome.naive_local(),
        };

        // COPY streams chunks; a blocking thread cuts them into lines, compresses and hashes,
        // so the query, the compression and the hashing overlap.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
        let dir = building.to_path_buf();
        let counter = progress.clone();
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut out = PartWriter::new(&dir, plan);
            let mut lines = LineSplitter::new();
            while let Some(chunk) = rx.blocking_recv() {
                lines.feed(&chunk, &mut out)?;
                counter.store(lines.lines, Ordering::Relaxed);
            }
            lines.end(&mut out)?;
            counter.store(lines.lines, Ordering::Relaxed);
            Ok((lines.lines, out.finish()?))
        });
        let copied = async {
            let stream = conn
                .copy_out(store::copy_statement(kind).as_str())
                .await
                .map_err(crate::db::DbError::from)?;
            futures_util::pin_mut!(stream);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(crate::db::DbError::from)?;
                if tx.send(chunk).await.is_err() {
                    // The writer stopped: its error is the one to report.
                    break;
                }
            }
            drop(tx);
            Ok::<_, ListError>(())
        }
        .await;
        let written = writer
            .await
            .map_err(|e| ListError::Io(std::io::Error::other(e.to_string())))?;
        copied?;
        let (
            entries,
            WrittenList {
                parts,
                content_sha256,
            },
        ) = written?;

        let mut files: Vec<(Option<i64>, ListFile)> =
            parts.iter().map(|p| (None, row(p))).collect();
        let mut deltas_from = Vec::new();
        if matches!(kind, ListKind::Hpans | ListKind::Pars) {
            let mut sources = vec![generation];
            sources.extend(store::ready_ids(&self.pool, kind, generation).await?);
            for since in sources {
                if let Some(f) = self
                    .write_delta(kind, generation, since, building, &parts)
                    .await?
                {
                    files.push((Some(since), f));
                    deltas_from.push(since);
                }
            }
        }

        // Publication: the directory under its final name, then the row that serves it.
        let done = generation_dir(&self.root, kind, generation);
        tokio::fs::rename(building, &done).await?;
        if let Some(parent) = done.parent() {
            let parent = parent.to_path_buf();
            tokio::task::spawn_blocking(move || std::fs::File::open(parent)?.sync_all())
                .await
                .map_err(|e| ListError::Io(std::io::Error::other(e.to_string())))??;
        }
        let total = i64::try_from(entries).unwrap_or(i64::MAX);
        if let Err(e) = store::publish(&self.pool, generation, total, &content_sha256, &files).await
        {
            let _ = tokio::fs::remove_dir_all(&done).await;
            return Err(e.into());
        }
        Ok(Built {
            kind,
            generation,
            entries,
            parts,
            content_sha256,
            deltas_from,
            seconds: 0.0,
        })
    }

    /// Writes the delta that turns generation `since` into the new one (an empty one from
    /// itself); `None` when `since`'s files are gone.
    async fn write_delta(
        &self,
        kind: ListKind,
        generation: i64,
        since: i64,
        building: &Path,
        parts: &[WrittenPart],
    ) -> Result<Option<ListFile>, ListError> {
        let new_paths: Vec<PathBuf> = parts.iter().map(|p| building.join(&p.file_name)).collect();
        let old_paths: Vec<PathBuf> = if since == generation {
            new_paths.clone()
        } else {
            let old_dir = generation_dir(&self.root, kind, since);
            let old = store::part_files(&self.pool, since).await?;
            let paths: Vec<PathBuf> = old.iter().map(|f| old_dir.join(&f.file_name)).collect();
            if old.is_empty() || !paths.iter().all(|p| p.exists()) {
                return Ok(None);
            }
            paths
        };
        let (file_name, entry) = delta_names(kind, since);
        let plan = PartPlan {
            names: Box::new(move |_| (file_name.clone(), entry.clone())),
            max_rows: u64::MAX,
            level: self.settings.zip_level,
            stamp: Utc::now().with_timezone(&Rome).naive_local(),
        };
        let dir = building.to_path_buf();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<WrittenPart> {
            let mut out = PartWriter::new(&dir, plan);
            let mut line = Vec::with_capacity(80);
            delta::diff(
                zip_parts::lines(old_paths),
                zip_parts::lines(new_paths),
                |added, value| {
                    line.clear();
                    line.push(if added { b'+' } else { b'-' });
                    line.extend_from_slice(value);
                    out.line(&line)
                },
            )?;
            let mut files = out.finish()?.parts;
            files
                .pop()
                .ok_or_else(|| std::io::Error::other("no delta file written"))
        })
        .await
        .map_err(|e| ListError::Io(std::io::Error::other(e.to_string())))??;
        Ok(Some(row(&written)))
    }

    /// Drops generations past retention (and failed ones) with their directories, and any
    /// directory no stored generation owns (a build cut off by a crash).
    async fn expire(&self, kind: ListKind) {
        match store::expire(&self.pool, kind, self.settings.retention_days).await {
            Ok(ids) => {
                for id in ids {
                    let _ = tokio::fs::remove_dir_all(generation_dir(&self.root, kind, id)).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, list = kind.as_str(), "cannot expire old lists"),
        }
        let Ok(known) = store::known_ids(&self.pool, kind).await else {
            return;
        };
        let Ok(mut entries) = tokio::fs::read_dir(self.root.join(kind.as_str())).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let owned = name.parse::<i64>().is_ok_and(|id| known.contains(&id));
            if !owned {
                let _ = tokio::fs::remove_dir_all(entry.path()).await;
            }
        }
    }
}
