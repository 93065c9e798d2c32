-- The inbound messages applied, by queue and message_id, remembered for
-- rabbitmq.dedup_retention_hours (at least the broker's redelivery horizon): a redelivered message
-- is recognised and never applied again, so it can never undo a later change.
CREATE TABLE inbound_message (
    queue       text        NOT NULL,
    message_id  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    PRIMARY KEY (queue, message_id)
);
CREATE INDEX inbound_message_created ON inbound_message (created_at);
