//! Transaction matching (TK10/TK11) against a real database: a registry filled here, TRNLOG files
//! written here, matched by the server's pipeline or the `tkm ingest-transactions` command.

use std::sync::Arc;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Rome;
use deadpool_postgres::Pool;
use tkm::actors::transaction_matcher::run::{match_file, Ended, MatchDeps, RowSource};
use tkm::config::Settings;
use tkm::db::uploads::{self, NewUpload, Registered, UploadRecord};
use tkm::domain::{Abi, UploadKind};

use crate::helpers::{sha, tax_code, test_settings};

mod api;
mod cli;
mod crash;
mod kept;
mod matching;
mod queue;
mod volume;

/// The dev acquirer's ABI (config/dev.toml), so files can also go through the API.
pub const ABI: &str = "99999";

/// A database with the schema, and what matching needs.
pub struct Env {
    pub settings: Settings,
    pub pool: Pool,
    pub deps: MatchDeps,
}

pub async fn env() -> Env {
    let settings = test_settings().await;
    tkm::db::run_migrations(&settings.database).await.unwrap();
    let pool = tkm::db::build_pool(&settings.database).unwrap();
    Env::with(settings, pool)
}

impl Env {
    /// The matching pipeline over a running application's database.
    pub fn of(app: &crate::helpers::TestApp) -> Env {
        Env::with(app.settings.clone(), app.pool.clone())
    }

    fn with(settings: Settings, pool: Pool) -> Env {
        let deps = MatchDeps {
            pool: pool.clone(),
            pgp: tkm::crypto::pgp::PgpKey::load(&settings.pgp).unwrap(),
            hasher: tkm::crypto::Hasher::from_settings(&settings).unwrap(),
            matching: settings.matching.clone(),
            uploads: settings.uploads.clone(),
            metrics: tkm::metrics::Metrics::new().unwrap(),
            registry: tkm::startup_uploads::command_line_card_registry(&settings, &pool).unwrap(),
            kept: Default::default(),
        };
        Env {
            settings,
            pool,
            deps,
        }
    }
}

/// Today in Rome plus `n` days (negative: before).
pub fn day(n: i64) -> NaiveDate {
    let today = Utc::now().with_timezone(&Rome).date_naive();
    if n >= 0 {
        today.checked_add_days(Days::new(n as u64)).unwrap()
    } else {
        today.checked_sub_days(Days::new(n.unsigned_abs())).unwrap()
    }
}

/// Noon in Rome on day `n`.
pub fn noon(n: i64) -> DateTime<Utc> {
    Rome.from_local_datetime(&day(n).and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// The file's `date_time` for noon of day `n`.
pub fn when(n: i64) -> String {
    noon(n).format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

impl Env {
    /// Award period `id` over days `[from, to]` relative to today.
    pub async fn period(&self, id: i32, from: i64, to: i64, grace: u32) {
        let p = tkm::domain::matching::AwardPeriod {
            id: id.to_string(),
            start: day(from),
            end: day(to),
            grace_days: grace,
        };
        tkm::db::transactions::periods::add(&self.pool, &p, "test")
            .await
            .unwrap();
    }

    /// A citizen with a consent history: (instant, BPD and FA allowed).
    pub async fn citizen(&self, history: &[(DateTime<Utc>, bool)]) -> String {
        let tc = tax_code();
        let conn = self.pool.get().await.unwrap();
        let state = |allowed: bool| {
            let v = if allowed { "Allow" } else { "Deny" };
            serde_json::json!({"services": {"BPD": v, "FA": v}})
        };
        let last = history.last().is_some_and(|h| h.1);
        conn.execute(
            "INSERT INTO consent_citizen (tax_code, version, state, created_by, updated_by) \
             VALUES ($1, $2, $3, 't', 't')",
            &[&tc, &(history.len() as i64), &state(last)],
        )
        .await
        .unwrap();
        for (i, (at, allowed)) in history.iter().enumerate() {
            conn.execute(
                "INSERT INTO consent_history (tax_code, version, at, request, after, created_by, updated_by) \
                 VALUES ($1, $2, $3, '{}', $4, 't', 't')",
                &[&tc, &(i as i64 + 1), at, &state(*allowed)],
            )
            .await
            .unwrap();
        }
        tc
    }

    /// A card (HPAN of `name`) of `tc`, with an optional PAR, linked over `[opened, closed)`.
    pub async fn card(
        &self,
        name: &str,
        tc: &str,
        par: Option<&str>,
        opened: DateTime<Utc>,
        closed: Option<DateTime<Utc>>,
    ) -> String {
        let hpan = sha(name);
        let conn = self.pool.get().await.unwrap();
        let live = closed.is_none();
        let id: i64 = conn
            .query_one(
                "INSERT INTO card (hpan, circuit, active, par, par_key, par_source, created_by, updated_by) \
                 VALUES ($1, 'VISA', $2, $3, upper($3), CASE WHEN $3 IS NOT NULL THEN 'issuer' END, 't', 't') \
                 RETURNING id",
                &[&hpan, &live, &par],
            )
            .await
            .unwrap()
            .get(0);
        conn.execute(
            "INSERT INTO card_link (card_id, tax_code, live, opened_at, closed_at, changed_at, created_by, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $4, 't', 't')",
            &[&id, &tc, &live, &opened, &closed],
        )
        .await
        .unwrap();
        conn.execute(
            "INSERT INTO card_link_interval (card_id, tax_code, opened_at, closed_at, created_by, updated_by) \
             VALUES ($1, $2, $3, $4, 't', 't')",
            &[&id, &tc, &opened, &closed],
        )
        .await
        .unwrap();
        hpan
    }

    /// A live token (HTOKEN of `name`) of a PAR.
    pub async fn token(&self, name: &str, par: &str) -> String {
        let htoken = sha(name);
        let conn = self.pool.get().await.unwrap();
        conn.execute(
            "INSERT INTO token (htoken, circuit, par, par_key, source, created_by, updated_by) \
             VALUES ($1, 'VISA', $2, upper($2), 'issuer', 't', 't')",
            &[&htoken, &par],
        )
        .await
        .unwrap();
        htoken
    }

    /// Writes `rows` as a TRNLOG file named for sequence `seq`; returns its path.
    pub fn file(&self, seq: u32, rows: &[String]) -> std::path::PathBuf {
        let dir = self.settings.storage.dir.with_extension("trn");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("CSTAR.{ABI}.TRNLOG.20260101.120000.{seq:03}.csv"));
        std::fs::write(&path, rows.join("\n") + "\n").unwrap();
        path
    }

    /// Registers and matches `path` as the server does; returns its record.
    pub async fn run(&self, path: &std::path::Path) -> UploadRecord {
        let bytes = std::fs::read(path).unwrap();
        let new = NewUpload {
            id: uuid::Uuid::new_v4(),
            kind: UploadKind::Transactions,
            abi: Abi::parse(ABI).unwrap(),
            filename: path.file_name().unwrap().to_str().unwrap().to_owned(),
            sha256: {
                use sha2::{Digest, Sha256};
                hex::encode(Sha256::digest(&bytes))
            },
            bytes: bytes.len() as u64,
        };
        let id = match uploads::register(&self.pool, &new, "test").await.unwrap() {
            Registered::New(id) | Registered::Existing(id) => id,
        };
        match match_file(
            &self.deps,
            id,
            RowSource::File(path.to_owned()),
            Arc::new(|_| {}),
        )
        .await
        .unwrap()
        {
            Ended::Finished(r) => *r,
            other => panic!("{other:?}"),
        }
    }

    /// `line;id;outcome;reason;match;detail` of every record of an upload.
    pub async fn outcomes(&self, id: uuid::Uuid) -> Vec<String> {
        let rows = tkm::db::transactions::reads::outcomes_page(&self.pool, id, 0, 1_000_000)
            .await
            .unwrap();
        rows.iter()
            .map(|o| {
                format!(
                    "{};{};{};{};{};{}",
                    o.line,
                    o.id_trx_acquirer.as_deref().unwrap_or(""),
                    o.outcome,
                    o.reason.as_deref().unwrap_or(""),
                    o.kind,
                    o.detail.as_deref().unwrap_or("")
                )
            })
            .collect()
    }
}

/// A TRNLOG row: operation, hash (or clear PAN), day, id, amount, correlation id, PAR (16 fields).
pub fn row(op: &str, hash: &str, on: i64, id: &str, amount: u64, cid: &str, par: &str) -> String {
    format!(
        "{ABI};{op};01;{hash};{};{id};;{cid};{amount};978;acq1;merchant1;term1;40236010;4900;{par}",
        when(on)
    )
}
