-- The outbox keeps a failing row without blocking the others: each row has its own attempts and
-- due time, and a row that keeps failing is parked (never deleted) with its reason until an
-- operator retries it. Order holds per partition key: a row waits while an older row of its key
-- (parked or not) is unpublished.
ALTER TABLE outbox
    ADD COLUMN attempts        integer     NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error      text,
    ADD COLUMN parked_at       timestamptz;
CREATE INDEX outbox_partition ON outbox (partition_key, id);
CREATE INDEX outbox_parked ON outbox (id) WHERE parked_at IS NOT NULL;
