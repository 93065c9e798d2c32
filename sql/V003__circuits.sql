-- Circuits (TK6, TK7): token BIN ranges per circuit, the state of each circuit's last refresh,
-- the PAR lookups the resolver owes, and the stored admin jobs.

-- Token BIN ranges: bounds as digit strings (6–21 digits), compared numerically after padding
-- (files.md), never as plain strings.
CREATE TABLE bin_range (
    id           bigserial   PRIMARY KEY,
    circuit      text        NOT NULL CHECK (circuit IN ('VISA', 'MASTERCARD', 'AMEX')),
    min_bound    text        NOT NULL CHECK (min_bound ~ '^[0-9]{6,21}$'),
    max_bound    text        NOT NULL CHECK (max_bound ~ '^[0-9]{6,21}$'),
    token        boolean     NOT NULL DEFAULT true,
    issuer_bin   text,
    issuer_name  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text        NOT NULL
);
CREATE INDEX bin_range_circuit ON bin_range (circuit);

-- One row per circuit: what the last refresh did (admin status, metrics).
CREATE TABLE bin_refresh (
    circuit        text        PRIMARY KEY CHECK (circuit IN ('VISA', 'MASTERCARD', 'AMEX')),
    ranges         integer     NOT NULL DEFAULT 0,
    last_success   timestamptz,
    last_attempt   timestamptz,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text        NOT NULL
);

-- PAR lookups owed to the circuits: one row per card or token to ask about. Rows are leased
-- (leased_until) by one resolver worker at a time; eligibility is re-checked under the lease.
CREATE TABLE par_lookup (
    subject       text        NOT NULL CHECK (subject IN ('card', 'token')),
    subject_id    bigint      NOT NULL,
    circuit       text        NOT NULL CHECK (circuit IN ('VISA', 'MASTERCARD', 'AMEX')),
    state         text        NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'exhausted')),
    next_at       timestamptz NOT NULL DEFAULT now(),
    leased_until  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    reasks        integer     NOT NULL DEFAULT 0,
    last_outcome  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text        NOT NULL,
    PRIMARY KEY (subject, subject_id)
);
CREATE INDEX par_lookup_due ON par_lookup (circuit, next_at) WHERE state = 'pending';

-- Circuit calls per circuit and day (admin status `lookupsToday`).
CREATE TABLE circuit_call_day (
    circuit   text    NOT NULL CHECK (circuit IN ('VISA', 'MASTERCARD', 'AMEX')),
    day       date    NOT NULL,
    lookups   bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (circuit, day)
);

-- Jobs started by admins or schedules, with progress; a job cut off by a restart ends FAILED.
CREATE TABLE job (
    id           uuid        PRIMARY KEY,
    kind         text        NOT NULL,
    scope        text        NOT NULL DEFAULT '',
    state        text        NOT NULL CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    done         bigint      NOT NULL DEFAULT 0,
    total        bigint,
    error        text,
    started_at   timestamptz,
    finished_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text        NOT NULL
);
-- At most one unfinished job per kind and scope (a second request joins the running one).
CREATE UNIQUE INDEX job_one_running ON job (kind, scope) WHERE state IN ('QUEUED', 'RUNNING');
CREATE INDEX job_created ON job (created_at DESC);
