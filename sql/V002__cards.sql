-- Card registry (TK4, TK5, TK9): cards, citizen links and their enrolment intervals, tokens, and
-- the history of association changes and conflicts. PANs and token PANs are stored only
-- encrypted (vault: key id + AES-256-GCM blob, AAD bound to the hash); at most the last four
-- digits beside the hash.

CREATE TABLE card (
    id             bigserial   PRIMARY KEY,
    hpan           text        NOT NULL UNIQUE CHECK (hpan ~ '^[0-9a-f]{64}$'),
    pan_key_id     text,
    pan_ct         bytea,
    pan_last4      text        CHECK (pan_last4 ~ '^[0-9]{4}$'),
    circuit        text        NOT NULL CHECK (circuit IN ('VISA', 'MASTERCARD', 'AMEX')),
    par            text,
    par_key        text,
    par_source     text        CHECK (par_source IN ('circuit', 'issuer', 'token-list', 'transaction')),
    active         boolean     NOT NULL DEFAULT false,
    last_update_ts timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text        NOT NULL,
    CHECK ((par IS NULL) = (par_key IS NULL) AND (par IS NULL) = (par_source IS NULL)),
    CHECK ((pan_ct IS NULL) = (pan_key_id IS NULL))
);
CREATE INDEX card_par_key ON card (par_key) WHERE par_key IS NOT NULL;

-- A citizen↔card link: open while the payment manager says the citizen has the card.
CREATE TABLE card_link (
    card_id     bigint      NOT NULL REFERENCES card (id),
    tax_code    text        NOT NULL CHECK (tax_code ~ '^[A-Z0-9]{16}$'),
    live        boolean     NOT NULL,
    opened_at   timestamptz NOT NULL,
    closed_at   timestamptz,
    changed_at  timestamptz NOT NULL,
    published   boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    PRIMARY KEY (card_id, tax_code)
);
CREATE INDEX card_link_tax_code ON card_link (tax_code);

-- Enrolment intervals: the periods each link was live (the matcher's "enrolled at").
CREATE TABLE card_link_interval (
    card_id     bigint      NOT NULL,
    tax_code    text        NOT NULL,
    opened_at   timestamptz NOT NULL,
    closed_at   timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    PRIMARY KEY (card_id, tax_code, opened_at),
    FOREIGN KEY (card_id, tax_code) REFERENCES card_link (card_id, tax_code)
);

-- Tokens belong to a PAR; one whose card's PAR is not known yet waits on that card.
CREATE TABLE token (
    id           bigserial   PRIMARY KEY,
    htoken       text        NOT NULL UNIQUE CHECK (htoken ~ '^[0-9a-f]{64}$'),
    token_key_id text,
    token_ct     bytea,
    token_last4  text        CHECK (token_last4 ~ '^[0-9]{4}$'),
    circuit      text        CHECK (circuit IN ('VISA', 'MASTERCARD', 'AMEX')),
    par          text,
    par_key      text,
    card_id      bigint      REFERENCES card (id),
    source       text        NOT NULL CHECK (source IN ('circuit', 'issuer', 'token-list', 'transaction')),
    deleted      boolean     NOT NULL DEFAULT false,
    since        timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text        NOT NULL,
    CHECK (par_key IS NULL OR card_id IS NULL),
    CHECK ((par IS NULL) = (par_key IS NULL)),
    CHECK ((token_ct IS NULL) = (token_key_id IS NULL))
);
CREATE INDEX token_par_key ON token (par_key) WHERE par_key IS NOT NULL;
CREATE INDEX token_card ON token (card_id) WHERE card_id IS NOT NULL;

-- Associations moved to another PAR by a more trusted source, and refused claims (PAR_CONFLICT).
CREATE TABLE association_event (
    id          bigserial   PRIMARY KEY,
    subject     text        NOT NULL CHECK (subject IN ('card', 'token')),
    key         text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('moved', 'conflict')),
    from_par    text,
    to_par      text        NOT NULL,
    source      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL
);
CREATE INDEX association_event_key ON association_event (key);
