//! Start-up of the acquirers' upload side: the store under `storage.dir`, the TokenListIngestor
//! and the TransactionMatcher (on the lists' arbiter, supervised), the configured award periods
//! seeded, and the handles the API reaches them by.

use std::sync::Arc;

use actix::{Actor, Addr, ArbiterHandle, Supervisor};
use anyhow::Context;
use deadpool_postgres::Pool;

use crate::actors::card_registry::CardRegistry;
use crate::actors::token_list_ingestor::ingest::IngestDeps;
use crate::actors::token_list_ingestor::TokenListIngestor;
use crate::actors::transaction_matcher::run::MatchDeps;
use crate::actors::transaction_matcher::TransactionMatcher;
use crate::api::state::{TokenListsHandle, TransactionsHandle};
use crate::config::Settings;
use crate::crypto::pgp::{PgpKey, PgpPublicKey};
use crate::crypto::Hasher;
use crate::files::uploads::UploadStore;
use crate::metrics::Metrics;

/// The upload actors and the API's handles to them.
pub struct UploadsSide {
    /// The token-list ingestor.
    pub token_lists: Addr<TokenListIngestor>,
    /// The transaction matcher.
    pub matcher: Addr<TransactionMatcher>,
    /// For the token-list endpoints.
    pub token_lists_handle: TokenListsHandle,
    /// For the transaction endpoints.
    pub transactions_handle: TransactionsHandle,
}

/// Starts both upload actors on `arbiter`.
pub async fn start(
    settings: &Settings,
    pool: &Pool,
    cards: &Addr<CardRegistry>,
    pgp: &PgpKey,
    hasher: &Hasher,
    metrics: &Metrics,
    arbiter: &ArbiterHandle,
) -> anyhow::Result<UploadsSide> {
    let armored = std::fs::read_to_string(&settings.pgp.public_key_file)
        .context("cannot read pgp.public_key_file")?;
    let seal_to = PgpPublicKey::from_armored(armored.as_bytes())
        .context("pgp.public_key_file is not a usable OpenPGP public key")?;
    let public_key: Arc<str> = armored.into();
    let store = UploadStore::new(&settings.storage.dir);
    store
        .prepare()
        .context("cannot prepare the uploads directory under storage.dir")?;
    let ingest_deps = IngestDeps {
        pool: pool.clone(),
        registry: cards.clone(),
        pgp: pgp.clone(),
        hasher: hasher.clone(),
        store: store.clone(),
        settings: settings.uploads.clone(),
    };
    let token_lists = Supervisor::start_in_arbiter(arbiter, move |_| {
        TokenListIngestor::new(public_key.clone(), ingest_deps.clone())
    });
    let seeded =
        crate::db::transactions::periods::seed(pool, &settings.matching.periods()?).await?;
    if seeded > 0 {
        tracing::info!(periods = seeded, "award periods seeded from [matching]");
    }
    let match_deps = MatchDeps {
        pool: pool.clone(),
        pgp: pgp.clone(),
        hasher: hasher.clone(),
        matching: settings.matching.clone(),
        uploads: settings.uploads.clone(),
        metrics: metrics.clone(),
        registry: cards.clone(),
        kept: Default::default(),
    };
    let matcher_store = store.clone();
    let matcher = Supervisor::start_in_arbiter(arbiter, move |_| {
        TransactionMatcher::new(match_deps.clone(), matcher_store.clone())
    });
    Ok(UploadsSide {
        token_lists_handle: TokenListsHandle {
            ingestor: token_lists.clone(),
            store: store.clone(),
            max_bytes: settings.uploads.max_bytes,
        },
        transactions_handle: TransactionsHandle {
            matcher: matcher.clone(),
            store,
            max_bytes: settings.uploads.max_bytes,
            seal_to,
        },
        token_lists,
        matcher,
    })
}

/// A card registry for a command-line run (no relay or resolver to wake: the server's pick up
/// what it commits).
pub fn command_line_card_registry(
    settings: &Settings,
    pool: &deadpool_postgres::Pool,
) -> anyhow::Result<actix::Addr<CardRegistry>> {
    let ring = Arc::new(crate::crypto::KeyRing::from_settings(settings)?);
    let metrics = crate::metrics::Metrics::new().context("cannot register metrics")?;
    Ok(crate::actors::card_registry::CardRegistry::new(
        pool.clone(),
        ring,
        crate::domain::cards::Limits {
            max_learnt_tokens_per_par: settings.cards.max_learnt_tokens_per_par,
        },
        metrics,
        settings.cards.mailbox_capacity,
        crate::actors::card_registry::Wakeups {
            relay: Arc::default(),
            resolver: Arc::default(),
        },
        std::time::Duration::from_secs(u64::from(settings.rabbitmq.dedup_retention_hours) * 3600),
    )
    .start())
}
