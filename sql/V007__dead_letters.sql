-- Dead letters as tkm sent them to tkm.dlx: the queue, the reason, and the original message
-- (body, message_id, timestamp, content type) sealed with the vault key (AES-256-GCM, AAD bound
-- to the row id), so an operator can replay it once its cause is fixed — while what went to the
-- dead-letter queue had its card numbers masked. Kept rabbitmq.dead_letter_retention_days.
CREATE TABLE dead_letter (
    id           uuid        PRIMARY KEY,
    queue        text        NOT NULL,
    message_id   text,
    code         text        NOT NULL,
    reason       text        NOT NULL,
    key_id       text        NOT NULL,
    sealed       bytea       NOT NULL,
    replays      integer     NOT NULL DEFAULT 0,
    replayed_at  timestamptz,
    replayed_by  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text        NOT NULL
);
CREATE INDEX dead_letter_created ON dead_letter (created_at);
