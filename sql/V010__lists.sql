-- Published lists (TK8): each build of a list is a generation of one or more ZIP parts under
-- storage.dir; the newest ready generation of a kind is the one served. Deltas turn an earlier
-- generation into a later one. One-shot links are stored by the SHA-256 of their token only.

CREATE TABLE list_generation (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('hpans', 'pars', 'bin-ranges', 'known-hashes')),
    state       text        NOT NULL CHECK (state IN ('building', 'ready', 'failed')),
    entries     bigint,
    -- SHA-256 of the content (every part's lines in order): what a client that rebuilt the list
    -- from an earlier one and a delta checks against.
    content_sha256 text,
    error       text,
    ready_at    timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    CHECK ((state = 'ready') = (ready_at IS NOT NULL AND entries IS NOT NULL AND content_sha256 IS NOT NULL))
);
-- The generation served: the newest ready one of a kind.
CREATE INDEX list_generation_ready ON list_generation (kind, id DESC) WHERE state = 'ready';

-- The files of a generation: its parts (delta_since NULL, part 0…) and its deltas from earlier
-- generations (part 0, delta_since = the earlier generation).
CREATE TABLE list_file (
    generation_id bigint    NOT NULL REFERENCES list_generation (id) ON DELETE CASCADE,
    delta_since bigint,
    part        integer     NOT NULL CHECK (part >= 0),
    file_name   text        NOT NULL CHECK (file_name ~ '^[A-Za-z0-9_.]+$'),
    entries     bigint      NOT NULL,
    bytes       bigint      NOT NULL,
    sha256      text        NOT NULL CHECK (length(sha256) = 64 AND sha256 ~ '^[0-9a-f]+$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL
);
CREATE UNIQUE INDEX list_file_key ON list_file (generation_id, coalesce(delta_since, 0), part);

-- A one-shot link to one file: consumed by the first download of the client that minted it.
CREATE TABLE list_link (
    token_sha256 bytea      PRIMARY KEY CHECK (length(token_sha256) = 32),
    generation_id bigint    NOT NULL REFERENCES list_generation (id) ON DELETE CASCADE,
    delta_since bigint,
    part        integer     NOT NULL,
    client      text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL
);
CREATE INDEX list_link_expiry ON list_link (expires_at);
