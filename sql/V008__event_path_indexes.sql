-- The card event path and its periodic queries, index-backed and flat as the tables grow.

-- PAR lookups owed: the eligibility scans read only the candidates (a live card without PAR; a
-- clear token of known circuit that has no PAR and no card, or a provisional PAR), not the
-- whole tables.
CREATE INDEX card_needs_par ON card (id) WHERE active AND par_key IS NULL;
CREATE INDEX token_needs_check ON token (id)
    WHERE NOT deleted AND token_ct IS NOT NULL AND circuit IS NOT NULL
      AND ((par_key IS NULL AND card_id IS NULL) OR (par_key IS NOT NULL AND source <> 'circuit'));

-- The outbox: every event inserts rows that the relay deletes within seconds. Vacuum it after a
-- fixed number of dead rows rather than a fraction of a table whose size swings, without
-- throttling, so its pages are reused and the relay's index range stays short.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_insert_scale_factor = 0.0,
    autovacuum_vacuum_insert_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0
);
-- Likewise the applied messages' ids (inserted per event, deleted in bulk after the retention).
ALTER TABLE inbound_message SET (autovacuum_vacuum_cost_delay = 0);

-- The same format checks, written so PostgreSQL's regular expressions run fast: a bounded
-- repetition (`{64}`) costs about 7 µs a row there, a `+` with a length test under 1 µs — on
-- every card, token and link an event writes. What they accept is unchanged (the old checks
-- held for every stored row, so there is nothing to validate again).
ALTER TABLE card DROP CONSTRAINT card_hpan_check,
    ADD CONSTRAINT card_hpan_check CHECK (length(hpan) = 64 AND hpan ~ '^[0-9a-f]+$') NOT VALID;
ALTER TABLE card DROP CONSTRAINT card_pan_last4_check,
    ADD CONSTRAINT card_pan_last4_check CHECK (length(pan_last4) = 4 AND pan_last4 ~ '^[0-9]+$') NOT VALID;
ALTER TABLE token DROP CONSTRAINT token_htoken_check,
    ADD CONSTRAINT token_htoken_check CHECK (length(htoken) = 64 AND htoken ~ '^[0-9a-f]+$') NOT VALID;
ALTER TABLE token DROP CONSTRAINT token_token_last4_check,
    ADD CONSTRAINT token_token_last4_check CHECK (length(token_last4) = 4 AND token_last4 ~ '^[0-9]+$') NOT VALID;
ALTER TABLE card_link DROP CONSTRAINT card_link_tax_code_check,
    ADD CONSTRAINT card_link_tax_code_check CHECK (length(tax_code) = 16 AND tax_code ~ '^[A-Z0-9]+$') NOT VALID;
ALTER TABLE consent_citizen DROP CONSTRAINT consent_citizen_tax_code_check,
    ADD CONSTRAINT consent_citizen_tax_code_check CHECK (length(tax_code) = 16 AND tax_code ~ '^[A-Z0-9]+$') NOT VALID;
ALTER TABLE consent_card_override DROP CONSTRAINT consent_card_override_hpan_check,
    ADD CONSTRAINT consent_card_override_hpan_check CHECK (length(hpan) = 64 AND hpan ~ '^[0-9a-f]+$') NOT VALID;

-- The keys held back by parked rows, read by the relay every few seconds from a tiny index.
DROP INDEX outbox_parked;
CREATE INDEX outbox_parked ON outbox (partition_key) WHERE parked_at IS NOT NULL;
