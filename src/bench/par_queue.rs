//! Issue 17: the PAR queue's cost at scale. Against a database loaded by
//! `scripts/bench-par-queue.sh` (millions of cards and tokens, lookups owed in both lanes), times
//! the resolver's own statements — a lease of a page per lane, the queueing of a card batch's
//! lookups, a step of the eligibility sweep — and, as the limit in the same run, the cheapest
//! read of as many rows of the same table (by primary key).

use std::time::{Duration, Instant};

use anyhow::Context;
use deadpool_postgres::Pool;
use secrecy::SecretString;
use serde::Serialize;

use crate::config::DatabaseSettings;
use crate::db::par_lookups::{self, Lane};
use crate::domain::Circuit;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// PostgreSQL URL of the loaded database.
    pub database: String,
    /// Rounds of each measurement.
    pub rounds: usize,
    /// Lookups per lease (the resolver's page).
    pub page: i64,
    /// Candidates per sweep step (`par_resolver.enqueue_page`).
    pub sweep_page: i64,
}

/// Latencies of one statement, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Rounds measured.
    pub rounds: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Rows each round returned or touched (mean).
    pub rows: f64,
}

impl Timing {
    fn of(mut samples: Vec<(Duration, u64)>) -> Self {
        samples.sort_by_key(|s| s.0);
        let n = samples.len();
        let at = |q: f64| {
            let i = ((n as f64 - 1.0) * q).round() as usize;
            samples
                .get(i.min(n.saturating_sub(1)))
                .map_or(0.0, |s| s.0.as_secs_f64() * 1e3)
        };
        let rows = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n.max(1) as f64;
        Timing {
            rounds: n,
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: at(1.0),
            rows,
        }
    }
}

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Cards, tokens and pending lookups per lane in the database.
    pub cards: i64,
    /// Tokens.
    pub tokens: i64,
    /// Pending card lookups before the run.
    pub pending_cards: i64,
    /// Pending token checks before the run.
    pub pending_tokens: i64,
    /// `lease` of a page of the card lane.
    pub lease_cards: Timing,
    /// `lease` of a page of the token lane.
    pub lease_tokens: Timing,
    /// `enqueue_cards` of a batch of 512 cards owed a lookup (rolled back each round).
    pub enqueue_batch: Timing,
    /// One step of the eligibility sweep.
    pub sweep_step: Timing,
    /// The limit: a read of `page` cards by primary key.
    pub pk_read: Timing,
}

fn settings(url: &str) -> DatabaseSettings {
    DatabaseSettings {
        url: SecretString::from(url.to_owned()),
        password_file: None,
        pool_size: 4,
        wait_timeout_ms: 30_000,
        connect_timeout_ms: 5_000,
    }
}

async fn count(pool: &Pool, sql: &str) -> anyhow::Result<i64> {
    Ok(pool.get().await?.query_one(sql, &[]).await?.try_get(0)?)
}

/// Runs the measurements.
pub async fn run(plan: &Plan) -> anyhow::Result<Report> {
    let pool = crate::db::pool::build_pool(&settings(&plan.database))?;
    let cards = count(&pool, "SELECT count(*) FROM card").await?;
    let tokens = count(&pool, "SELECT count(*) FROM token").await?;
    let pending_cards = count(
        &pool,
        "SELECT count(*) FROM par_lookup WHERE subject = 'card' AND state = 'pending'",
    )
    .await?;
    let pending_tokens = count(
        &pool,
        "SELECT count(*) FROM par_lookup WHERE subject = 'token' AND state = 'pending'",
    )
    .await?;
    anyhow::ensure!(
        pending_cards >= plan.page * plan.rounds as i64,
        "load more owed card lookups than rounds × page"
    );
    let lease_for = Duration::from_secs(3600);
    let lease = |lane: Lane| {
        let pool = pool.clone();
        async move {
            let mut samples = Vec::with_capacity(plan.rounds);
            for _ in 0..plan.rounds {
                let t = Instant::now();
                let got =
                    par_lookups::lease(&pool, Circuit::Visa, lane, plan.page, lease_for).await?;
                samples.push((t.elapsed(), got.len() as u64));
            }
            anyhow::Ok(Timing::of(samples))
        }
    };
    let lease_cards = lease(Lane::Cards).await.context("card leases")?;
    let lease_tokens = lease(Lane::Tokens).await.context("token leases")?;

    // A card batch's queueing: 512 cards owed a lookup that are not queued yet.
    let ids: Vec<i64> = pool
        .get()
        .await?
        .query(
            "SELECT c.id FROM card c WHERE c.active AND c.par_key IS NULL \
             AND NOT EXISTS (SELECT 1 FROM par_lookup p WHERE p.subject = 'card' \
                             AND p.subject_id = c.id) ORDER BY c.id LIMIT 512",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut samples = Vec::with_capacity(plan.rounds);
    for _ in 0..plan.rounds {
        let mut conn = pool.get().await?;
        let tx = conn.transaction().await?;
        let t = Instant::now();
        let n = par_lookups::enqueue_cards(&tx, &ids).await?;
        samples.push((t.elapsed(), n));
        tx.rollback().await?;
    }
    let enqueue_batch = Timing::of(samples);

    let mut samples = Vec::with_capacity(plan.rounds);
    for _ in 0..plan.rounds {
        let t = Instant::now();
        let (queued, _) = par_lookups::sweep(&pool, plan.sweep_page).await?;
        samples.push((t.elapsed(), queued));
    }
    let sweep_step = Timing::of(samples);

    let mut samples = Vec::with_capacity(plan.rounds);
    for round in 0..plan.rounds {
        // Ids spread over the whole table, a different set each round.
        let step = (cards / plan.page.max(1)).max(1);
        let ids: Vec<i64> = (0..plan.page)
            .map(|i| 1 + (i * step + round as i64 * 7919) % cards.max(1))
            .collect();
        let conn = pool.get().await?;
        let t = Instant::now();
        let rows = conn
            .query(
                "SELECT id, hpan, pan_key_id, pan_ct FROM card WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
        samples.push((t.elapsed(), rows.len() as u64));
    }
    let pk_read = Timing::of(samples);

    Ok(Report {
        cards,
        tokens,
        pending_cards,
        pending_tokens,
        lease_cards,
        lease_tokens,
        enqueue_batch,
        sweep_step,
        pk_read,
    })
}
