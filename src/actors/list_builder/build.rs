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

use super::ListError;
use crate::config::ListsSettings;
use crate::db::lists::{self as store, ListFile};
use crate::domain::lists::ListKind;
use crate::files::delta::StreamingDelta;
use crate::files::lines::{self, ChunkLines};
use crate::files::zip_parts::{self, PartPlan, PartWriter, WrittenList, WrittenPart};

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

        // The deltas from the earlier generations still on disk are written in the same pass,
        // each merging the new lines against its older list (read ahead by its own thread).
        let with_deltas = matches!(kind, ListKind::Hpans | ListKind::Pars);
        let sources = if with_deltas {
            self.delta_sources(kind, generation).await?
        } else {
            Vec::new()
        };
        let delta_plans: Vec<(i64, Vec<PathBuf>, PartPlan)> = sources
            .into_iter()
            .map(|(since, paths)| (since, paths, self.delta_plan(kind, since)))
            .collect();
        let own_delta = with_deltas.then(|| self.delta_plan(kind, generation));

        // Each table's rows stream out of PostgreSQL in index order (one COPY per table, on its
        // own connection); a blocking thread merges them into lines, compresses and hashes, so
        // the queries, the compression and the hashing overlap.
        let statements = store::copy_streams(kind);
        let mut senders = Vec::with_capacity(statements.len());
        let mut receivers = Vec::with_capacity(statements.len());
        for _ in &statements {
            let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(32);
            senders.push(tx);
            receivers.push(rx);
        }
        let dir = building.to_path_buf();
        let counter = progress.clone();
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut out = PartWriter::new(&dir, plan);
            let mut deltas: Vec<(i64, StreamingDelta<_>)> = delta_plans
                .into_iter()
                .map(|(since, paths, plan)| {
                    let old = zip_parts::lines(paths);
                    (since, StreamingDelta::new(old, PartWriter::new(&dir, plan)))
                })
                .collect();
            let mut count = 0u64;
            let sources = receivers.into_iter().map(ChunkLines::new).collect();
            lines::merge(sources, |line| {
                out.line(line)?;
                for (_, d) in deltas.iter_mut() {
                    d.next_new(line)?;
                }
                count += 1;
                if count.is_multiple_of(4096) {
                    counter.store(count, Ordering::Relaxed);
                }
                Ok(())
            })?;
            counter.store(count, Ordering::Relaxed);
            let mut written = Vec::new();
            for (since, d) in deltas {
                written.push((since, d.finish()?));
            }
            // From itself: nothing changes (one empty line).
            if let Some(plan) = own_delta {
                if let Some(part) = PartWriter::new(&dir, plan).finish()?.parts.pop() {
                    written.push((generation, part));
                }
            }
            Ok((count, out.finish()?, written))
        });
        let mut extra = Vec::new();
        for _ in 1..statements.len() {
            extra.push(self.pool.get().await.map_err(crate::db::DbError::from)?);
        }
        let copies = statements
            .iter()
            .zip(senders)
            .enumerate()
            .map(|(i, (stream, tx))| {
                let client = if i == 0 { conn } else { &extra[i - 1] };
                store::stream_sorted(client, stream, tx)
            });
        let copied = futures_util::future::try_join_all(copies).await;
        let written = writer
            .await
            .map_err(|e| ListError::Io(std::io::Error::other(e.to_string())))?;
        copied?;
        drop(extra);
        let (
            entries,
            WrittenList {
                parts,
                content_sha256,
            },
            deltas,
        ) = written?;

        let mut files: Vec<(Option<i64>, ListFile)> =
            parts.iter().map(|p| (None, row(p))).collect();
        let deltas_from: Vec<i64> = deltas.iter().map(|(since, _)| *since).collect();
        files.extend(deltas.iter().map(|(since, d)| (Some(*since), row(d))));

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

    /// The earlier ready generations of the list whose files are all still on disk, with
    /// their part files in order.
    async fn delta_sources(
        &self,
        kind: ListKind,
        generation: i64,
    ) -> Result<Vec<(i64, Vec<PathBuf>)>, ListError> {
        let mut sources = Vec::new();
        for since in store::ready_ids(&self.pool, kind, generation).await? {
            let dir = generation_dir(&self.root, kind, since);
            let files = store::part_files(&self.pool, since).await?;
            let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(&f.file_name)).collect();
            if !paths.is_empty() && paths.iter().all(|p| p.exists()) {
                sources.push((since, paths));
            }
        }
        Ok(sources)
    }

    /// How the delta from `since` is written: one file, whatever its size.
    fn delta_plan(&self, kind: ListKind, since: i64) -> PartPlan {
        let (file_name, entry) = delta_names(kind, since);
        PartPlan {
            names: Box::new(move |_| (file_name.clone(), entry.clone())),
            max_rows: u64::MAX,
            level: self.settings.zip_level,
            stamp: Utc::now().with_timezone(&Rome).naive_local(),
        }
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
