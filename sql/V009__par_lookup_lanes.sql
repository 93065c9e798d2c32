-- PAR lookups in two lanes per circuit, so that a consenting citizen's card never waits behind
-- token checks: card lookups, ordered by priority (0: the card of a citizen who just gave
-- consent) then due time, and token checks, by due time. Each lane is leased from its own
-- partial index, so a lease costs the same whatever the queue's size.
ALTER TABLE par_lookup ADD COLUMN priority smallint NOT NULL DEFAULT 1;
DROP INDEX par_lookup_due;
CREATE INDEX par_lookup_card_due ON par_lookup (circuit, priority, next_at)
    WHERE state = 'pending' AND subject = 'card';
CREATE INDEX par_lookup_token_due ON par_lookup (circuit, next_at)
    WHERE state = 'pending' AND subject = 'token';

-- Where the periodic eligibility sweep of each table stopped: it goes on from there a few pages
-- a cycle, instead of rescanning the tables.
CREATE TABLE par_sweep (
    subject     text        PRIMARY KEY CHECK (subject IN ('card', 'token')),
    after_id    bigint      NOT NULL DEFAULT 0,
    passes      bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL
);
