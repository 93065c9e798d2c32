-- Transaction matching (matching.md, TK11): award periods, every record's outcome, duplicate
-- keys, accepted payments (for reversals) and reversals (correlated, or waiting for a payment).
-- A record's source is its upload (or, for the tkm-transactions queue, its message's id).

CREATE TABLE award_period (
    id          text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    starts_on   date        NOT NULL,
    ends_on     date        NOT NULL CHECK (ends_on >= starts_on),
    grace_days  integer     NOT NULL CHECK (grace_days >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    EXCLUDE USING gist (daterange(starts_on, ends_on, '[]') WITH &&)
);

-- Narrow on purpose: written by binary COPY, one row per record. Discarded records keep only
-- line, ids, outcome and reason (matching.md) — and, for valid records, the operation, hash,
-- instant and PAR the decision is explained from (no amounts or merchant data).
CREATE TABLE txn_outcome (
    source_id       uuid        NOT NULL,
    line            bigint      NOT NULL CHECK (line > 0),
    processing_day  date        NOT NULL,
    id_trx_acquirer text,
    outcome         text        NOT NULL,
    reason          text,
    match           text        NOT NULL,
    detail          text,
    operation       text,
    hash_pan        bytea       CHECK (length(hash_pan) = 32),
    at              timestamptz,
    par             text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text        NOT NULL DEFAULT 'transaction-matcher',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL DEFAULT 'transaction-matcher',
    PRIMARY KEY (source_id, line)
);

-- The first record of each duplicate key (codice_acquirer, id_trx_acquirer, instant, operation),
-- digested to 16 bytes.
CREATE TABLE txn_key (
    key         bytea       PRIMARY KEY CHECK (length(key) = 16),
    source_id   uuid        NOT NULL,
    line        bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL DEFAULT 'transaction-matcher',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL DEFAULT 'transaction-matcher'
);

-- Accepted payments: what a later reversal is correlated with, and what outcomes publish.
CREATE TABLE txn_payment (
    source_id      uuid        NOT NULL,
    line           bigint      NOT NULL,
    hash_pan       bytea       NOT NULL CHECK (length(hash_pan) = 32),
    abi            text        NOT NULL,
    acquirer_id    text        NOT NULL,
    period_id      text        NOT NULL,
    correlation_id text,
    amount         bigint      NOT NULL CHECK (amount >= 0),
    merchant_id    text        NOT NULL,
    terminal_id    text        NOT NULL,
    at             timestamptz NOT NULL,
    operation      text        NOT NULL,
    match          text        NOT NULL,
    par            text,
    reversed       bigint      NOT NULL DEFAULT 0 CHECK (reversed >= 0 AND reversed <= amount),
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text        NOT NULL DEFAULT 'transaction-matcher',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text        NOT NULL DEFAULT 'transaction-matcher',
    PRIMARY KEY (source_id, line)
);
CREATE INDEX txn_payment_hash ON txn_payment (hash_pan);

-- Reversals: correlated (with their payment) or waiting for one until retry_until.
CREATE TABLE txn_reversal (
    source_id      uuid        NOT NULL,
    line           bigint      NOT NULL,
    hash_pan       bytea       NOT NULL CHECK (length(hash_pan) = 32),
    abi            text        NOT NULL,
    acquirer_id    text        NOT NULL,
    period_id      text        NOT NULL,
    correlation_id text,
    amount         bigint      NOT NULL CHECK (amount >= 0),
    merchant_id    text        NOT NULL,
    terminal_id    text        NOT NULL,
    at             timestamptz NOT NULL,
    retry_until    date        NOT NULL,
    payment_source uuid,
    payment_line   bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text        NOT NULL DEFAULT 'transaction-matcher',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text        NOT NULL DEFAULT 'transaction-matcher',
    PRIMARY KEY (source_id, line),
    CHECK ((payment_source IS NULL) = (payment_line IS NULL))
);
CREATE INDEX txn_reversal_waiting ON txn_reversal (hash_pan) WHERE payment_source IS NULL;
