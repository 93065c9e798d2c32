-- Consent registry (TK1–TK3) and the outbox of outgoing messages.
-- Every table carries the audit columns of data.md; *_by is a client identity or a component.

-- One live row per citizen: the lock that serialises changes, the version, the current state
-- ({"services": {"BPD": "Allow", …}, "cards": {…}}) and, for SQL readers, its per-service values.
CREATE TABLE consent_citizen (
    tax_code    text        PRIMARY KEY CHECK (tax_code ~ '^[A-Z0-9]{16}$'),
    version     bigint      NOT NULL,
    state       jsonb,
    bpd_allowed boolean     GENERATED ALWAYS AS (coalesce(state->'services'->>'BPD' = 'Allow', false)) STORED,
    fa_allowed  boolean     GENERATED ALWAYS AS (coalesce(state->'services'->>'FA' = 'Allow', false)) STORED,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL
);

-- Card overrides (HPAN × service).
CREATE TABLE consent_card_override (
    tax_code    text        NOT NULL REFERENCES consent_citizen (tax_code),
    hpan        text        NOT NULL CHECK (hpan ~ '^[0-9a-f]{64}$'),
    service     text        NOT NULL CHECK (service IN ('BPD', 'FA')),
    allowed     boolean     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    PRIMARY KEY (tax_code, hpan, service)
);
CREATE INDEX consent_card_override_hpan ON consent_card_override (hpan);

-- Append-only history: one row per accepted request with the whole state after it (the state
-- before is the previous version's, read with lag()).
CREATE TABLE consent_history (
    tax_code    text        NOT NULL REFERENCES consent_citizen (tax_code),
    version     bigint      NOT NULL,
    at          timestamptz NOT NULL,
    request     jsonb       NOT NULL,
    after       jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    PRIMARY KEY (tax_code, version)
);

CREATE FUNCTION consent_history_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_history is append-only';
END;
$$;
CREATE TRIGGER consent_history_no_update BEFORE UPDATE OR DELETE ON consent_history
    FOR EACH ROW EXECUTE FUNCTION consent_history_immutable();

-- Outgoing messages, written in the transaction of the change that causes them; the relay
-- publishes and deletes them. Order is per partition key (a card or a citizen).
CREATE TABLE outbox (
    id            bigserial   PRIMARY KEY,
    kind          text        NOT NULL,
    partition_key text        NOT NULL,
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text        NOT NULL
);
