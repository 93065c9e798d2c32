-- Acquirers' uploads (files.md: token lists TK9, and transaction files TK10): stored under
-- storage.dir by their random id (never the client's name), encrypted; processed in the
-- background, resumably per line.

CREATE TABLE upload (
    id          uuid        PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('token-list', 'transactions')),
    abi         text        NOT NULL CHECK (abi ~ '^[A-Za-z0-9]{5}$'),
    filename    text        NOT NULL CHECK (length(filename) <= 64),
    sha256      text        NOT NULL CHECK (length(sha256) = 64 AND sha256 ~ '^[0-9a-f]+$'),
    bytes       bigint      NOT NULL CHECK (bytes >= 0),
    state       text        NOT NULL DEFAULT 'RECEIVED'
                            CHECK (state IN ('RECEIVED', 'PROCESSING', 'DONE', 'REJECTED')),
    error       text,
    -- Data rows read (comments and blank lines are not rows), kept and discarded so far; the
    -- last physical line whose row is committed: processing resumes after it.
    rows        bigint      NOT NULL DEFAULT 0,
    accepted    bigint      NOT NULL DEFAULT 0,
    discarded   jsonb       NOT NULL DEFAULT '{}',
    last_line   bigint      NOT NULL DEFAULT 0,
    started_at  timestamptz,
    finished_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    CHECK ((state = 'REJECTED') = (error IS NOT NULL)),
    CHECK ((state IN ('DONE', 'REJECTED')) = (finished_at IS NOT NULL))
);
-- The same file (name and SHA-256) is processed once: a second upload is answered with the
-- first one's id — unless that one was rejected, so a file can be sent again after a failure.
CREATE UNIQUE INDEX upload_once ON upload (kind, filename, sha256) WHERE state <> 'REJECTED';
-- Uploads left unfinished (resumed at start-up).
CREATE INDEX upload_unfinished ON upload (created_at) WHERE state IN ('RECEIVED', 'PROCESSING');
-- An acquirer's reports.
CREATE INDEX upload_abi ON upload (abi, kind, created_at DESC);

-- Every discarded row of an upload, by physical line, with its reason (and failing field).
CREATE TABLE upload_discard (
    upload_id   uuid        NOT NULL REFERENCES upload (id) ON DELETE CASCADE,
    line        bigint      NOT NULL CHECK (line > 0),
    reason      text        NOT NULL,
    field       text,
    PRIMARY KEY (upload_id, line)
);
