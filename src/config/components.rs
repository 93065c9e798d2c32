//! `[consent]`, `[cards]`, `[rabbitmq]`, `[telemetry]`: the tuning of tkm's own components.

use secrecy::SecretString;
use serde::Deserialize;

/// `[consent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentSettings {
    /// Citizens kept in the in-memory cache.
    pub cache_capacity: usize,
    /// Longest time a cached citizen is used without re-reading it (the bound on staleness if a
    /// change notification from another replica is ever lost).
    pub cache_ttl_secs: u64,
    /// Bound of the registry's mailbox.
    pub mailbox_capacity: usize,
}

/// `[cards]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSettings {
    /// Most provisional (token-list, transaction) tokens per PAR.
    pub max_learnt_tokens_per_par: usize,
    /// Bound of the registry's mailbox.
    pub mailbox_capacity: usize,
}

/// `[rabbitmq]` (names default to `messages.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitSettings {
    /// `amqp://user:password@host:port/vhost` (or `amqps://`).
    pub url: SecretString,
    /// Declare quorum queues (RabbitMQ ≥ 3.8); classic durable queues otherwise.
    pub quorum_queues: bool,
    /// Deliveries a consumer holds unacknowledged.
    pub prefetch: u16,
    /// Redeliveries before the broker dead-letters a message itself (quorum queues).
    pub delivery_limit: u32,
    /// Most card commands applied in one transaction.
    pub batch_size: usize,
    /// How long a consumer waits to fill a batch.
    pub batch_wait_ms: u64,
    /// Largest card event, compressed or decompressed.
    pub max_message_bytes: usize,
    /// Largest `tkm-transactions` message (a JSON array of records).
    #[serde(default = "default_max_transaction_message_bytes")]
    pub max_transaction_message_bytes: usize,
    /// Outbox rows published per relay round.
    pub relay_batch: usize,
    /// Relay poll interval when idle.
    pub relay_poll_ms: u64,
    /// Longest wait between reconnection attempts.
    pub reconnect_max_ms: u64,
    /// Longest wait for in-flight work and confirms at shutdown.
    pub shutdown_timeout_ms: u64,
    /// Inbound card events.
    pub card_events_queue: String,
    /// Inbound card deletions.
    pub card_deletions_queue: String,
    /// Inbound transaction records.
    pub transactions_queue: String,
    /// Outbound topic exchange.
    pub out_exchange: String,
    /// Card updates queue (bound to `card.update`).
    pub card_updates_queue: String,
    /// Transaction outcomes queue (bound to `transaction.outcome`).
    pub outcomes_queue: String,
    /// Dead-letter exchange (fanout).
    pub dead_letter_exchange: String,
    /// Dead-letter queue.
    pub dead_letter_queue: String,
    /// tkm's own copy of every dead letter, consumed at once to count those the broker
    /// dead-lettered itself (delivery limit); operators read `dead_letter_queue`.
    pub dead_letter_audit_queue: String,
    /// Delete queues unused for this long (`x-expires`; for ephemeral environments such as
    /// tests — never set it in production).
    #[serde(default)]
    pub queue_expires_ms: Option<u64>,
    /// How long the ids of applied inbound messages are remembered, so a redelivery (same
    /// `message_id`) is never applied again: at least the longest a message can wait in a queue.
    pub dedup_retention_hours: u32,
    /// How long the sealed originals of dead letters are kept for replay.
    pub dead_letter_retention_days: u32,
}

/// `[outbox]`: how the relay retries a failing row before parking it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// Failed attempts after which a row is parked (kept, reported, retried by an operator).
    pub max_attempts: u32,
    /// Wait after a row's first failure; doubled after each further one.
    pub retry_base_ms: u64,
    /// Longest wait between two attempts of a row.
    pub retry_max_ms: u64,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `tracing` filter (e.g. `info`, `tkm=debug,info`).
    pub level: String,
    /// JSON lines (production) or human-readable.
    pub json: bool,
}

/// 16 MiB: about 40 000 records of a JSON array.
fn default_max_transaction_message_bytes() -> usize {
    16 << 20
}
