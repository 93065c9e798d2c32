//! The OpenAPI 3 document, generated from the handlers' annotations and the DTOs.

use std::sync::OnceLock;

use utoipa::OpenApi;

use super::errors::ErrorBody;
use super::{admin, admin_queues, cards, consent, lists, token_lists, transactions, uploads};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tkm — Token Manager",
        description = "mTLS API of tkm; see README.md for roles."
    ),
    paths(
        consent::post_consent,
        consent::get_consent,
        consent::delete_consent,
        consent::get_status,
        consent::get_history,
        cards::get_card,
        cards::delete_card,
        admin::refresh_bin_ranges,
        admin::refresh_pars,
        admin::run_retention,
        admin::list_jobs,
        admin::get_job,
        admin::status,
        admin_queues::list_parked,
        admin_queues::retry_parked,
        admin_queues::list_dead_letters,
        admin_queues::replay_dead_letter,
        lists::bin_range_links,
        lists::known_hash_links,
        lists::hashed_pans,
        lists::hashed_pans_delta,
        lists::par_list,
        lists::par_list_delta,
        lists::download,
        lists::salt,
        lists::generate,
        lists::generate_alias,
        token_lists::public_key,
        token_lists::upload,
        token_lists::report,
        transactions::upload,
        transactions::report,
        transactions::outcomes,
        transactions::explain,
        transactions::add_period,
        transactions::list_periods,
    ),
    components(schemas(
        ErrorBody,
        consent::ConsentRequest,
        consent::ConsentResponse,
        consent::CardServiceConsent,
        consent::ServiceConsent,
        consent::StatusResponse,
        consent::HistoryEntry,
        cards::CardResponse,
        admin::JobAccepted,
        admin::JobView,
        admin::CircuitStatus,
        admin_queues::ParkedView,
        admin_queues::DeadLetterView,
        lists::LinksResponse,
        uploads::Accepted,
        token_lists::TokenListReport,
        transactions::TransactionsReport,
        transactions::ReversalCounts,
        transactions::AwardPeriodBody,
        crate::actors::transaction_matcher::explain::Explanation,
        crate::actors::transaction_matcher::explain::IntervalView,
        crate::actors::transaction_matcher::explain::ConsentView,
        crate::actors::transaction_matcher::explain::InstrumentView,
        crate::actors::transaction_matcher::explain::RecordView,
        crate::actors::transaction_matcher::explain::PaymentView,
        token_lists::DiscardedRow,
        crate::domain::Consent,
        crate::domain::Summary,
        crate::domain::Service,
    ))
)]
pub struct ApiDoc;

/// The document as JSON (built once).
pub fn document() -> String {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|_| "{}".to_owned())
    })
    .clone()
}
