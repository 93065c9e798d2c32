//! The `transaction.outcome` messages (`messages.md`): what each record publishes, written to the
//! outbox with the batch that decided it.

/// One record of a `transaction.outcome` message (`messages.md`): discarded records carry only
/// line, id, outcome, reason and match (data minimisation).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedRecord {
    /// Line (or index in a queue message).
    pub line: i64,
    /// `id_trx_acquirer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_trx_acquirer: Option<String>,
    /// Outcome name.
    pub outcome: &'static str,
    /// Reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Match kind.
    #[serde(rename = "match")]
    pub kind: &'static str,
    /// Accepted payments and correlated reversals only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<PublishedDetails>,
}

/// What accepted payments and correlated reversals also carry.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedDetails {
    /// `codice_acquirer`.
    pub acquirer_code: String,
    /// `acquirer_id`.
    pub acquirer_id: String,
    /// `date_time` as received.
    pub trx_date: String,
    /// `tipo_operazione`.
    pub operation_type: &'static str,
    /// `total_amount`.
    pub amount: u64,
    /// `hash_pan`.
    pub hpan: String,
    /// The PAR, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub par: Option<String>,
    /// A reversal's payment line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlated_line: Option<i64>,
}

/// Where published records come from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublishedSource {
    /// The file name (uploads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The upload id (or message id).
    pub id: String,
}

/// One `transaction.outcome` message.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeMessage<'a> {
    /// The file or queue message.
    pub source: &'a PublishedSource,
    /// When the batch was written.
    pub processed_at: String,
    /// At most [`RECORDS_PER_MESSAGE`] records.
    pub records: &'a [PublishedRecord],
}

/// The outbox kind (and routing key) of outcome messages.
pub const TRANSACTION_OUTCOME: &str = "transaction.outcome";

/// Records per `transaction.outcome` message at most (`messages.md`).
pub const RECORDS_PER_MESSAGE: usize = 10_000;
