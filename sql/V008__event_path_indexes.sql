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
