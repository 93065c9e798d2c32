-- The statements of one POST /consent, for pgbench: the limit PostgreSQL alone reaches on this
-- machine (scripts/bench-consent.sh runs it in the same run as the HTTP benchmark).
\set n random(1, 64)
BEGIN;
SELECT version, state, updated_at FROM consent_citizen WHERE tax_code = 'BENCH' || lpad(:n::text, 11, '0') FOR UPDATE;
WITH c AS (
    UPDATE consent_citizen SET version = version + 1,
        state = '{"cards": {}, "services": {"BPD": "Allow", "FA": "Deny"}}', updated_at = now(), updated_by = 'bench'
    WHERE tax_code = 'BENCH' || lpad(:n::text, 11, '0') RETURNING tax_code, version),
h AS (
    INSERT INTO consent_history (tax_code, version, at, request, after, created_at, created_by, updated_at, updated_by)
    SELECT tax_code, version, now(), '{"consent": "Allow", "services": ["BPD"], "clientId": "bench"}',
        '{"cards": {}, "services": {"BPD": "Allow", "FA": "Deny"}}',
        now(), 'bench', now(), 'bench' FROM c)
INSERT INTO outbox (kind, partition_key, payload, created_at, created_by, updated_at, updated_by)
SELECT 'consent.changed', tax_code, '{"taxCode": "BENCH", "version": 2, "at": "2026-11-23T10:00:00Z", "before": {"cards": {}, "services": {"BPD": "Deny", "FA": "Deny"}}, "after": {"cards": {}, "services": {"BPD": "Allow", "FA": "Deny"}}}',
    now(), 'bench', now(), 'bench' FROM c;
END;
