//! The PostgreSQL backend's schema, as its ordered migrations: the SQLite tables in
//! PostgreSQL's dialect (see `state::schema`).

use crate::state::schema::Migration;

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "connections, segments, exports, snapshots, runs, people, audit, settings",
        sql: POSTGRES_V1,
    },
    Migration {
        version: 2,
        name: "profile sources, segment sources, leases, run queue",
        sql: POSTGRES_V2,
    },
    Migration {
        version: 3,
        name: "the profiles behind each delivered member (members follow their profiles)",
        sql: POSTGRES_V3,
    },
    Migration {
        version: 4,
        name:
            "connection budgets: each connection's Mailchimp account and slot budget, slot leases",
        sql: POSTGRES_V4,
    },
    Migration {
        version: 5,
        name: "the structured rule a segment was built from, next to its SQL",
        sql: POSTGRES_V5,
    },
    Migration {
        version: 6,
        name: "suppression lists and remembered refusals",
        sql: POSTGRES_V6,
    },
    Migration {
        version: 7,
        name: "each run's change log; each connection's account name and health",
        sql: POSTGRES_V7,
    },
    Migration {
        version: 8,
        name: "a profile source's cursor column (re-runs read only the rows past it)",
        sql: POSTGRES_V8,
    },
    Migration {
        version: 9,
        name: "an index of the delivered members no longer subscribed",
        sql: POSTGRES_V9,
    },
];

/// The snapshot's members at a status other than `subscribed` (few, in most audiences): a
/// re-run asks which statuses its members hold (to choose its audience reads) without
/// reading the whole snapshot.
const POSTGRES_V9: &str =
    "CREATE INDEX IF NOT EXISTS snapshot_not_subscribed ON snapshot (export, status) WHERE status <> 'subscribed';";

const POSTGRES_V8: &str = "ALTER TABLE profile_sources ADD COLUMN cursor_column TEXT;";

/// Suppression lists (`export` '' is the installation's list) and the addresses Mailchimp
/// refused for good, with the fingerprint of the content refused.
const POSTGRES_V6: &str = r#"
CREATE TABLE suppressions (
    export TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('email', 'key')),
    value TEXT COLLATE "C" NOT NULL,
    note TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (export, kind, value)
);
CREATE TABLE refusals (
    export TEXT COLLATE "C" NOT NULL,
    email TEXT COLLATE "C" NOT NULL,
    profile_key TEXT NOT NULL,
    fingerprint BIGINT NOT NULL,
    reason TEXT NOT NULL,
    refused_at TEXT NOT NULL,
    run_id BIGINT NOT NULL,
    PRIMARY KEY (export, email)
);
"#;

/// A run's change log (`state::changes`), and what the last check of a connection found.
const POSTGRES_V7: &str = "CREATE TABLE run_changes (
    run_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    action BIGINT NOT NULL,
    email TEXT NOT NULL,
    detail TEXT NOT NULL,
    profile_key TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
ALTER TABLE connections ADD COLUMN account_name TEXT;
ALTER TABLE connections ADD COLUMN health TEXT;
ALTER TABLE connections ADD COLUMN health_detail TEXT;
ALTER TABLE connections ADD COLUMN health_checked_at TEXT;";

/// The account a connection's credential belongs to (learned from the API root), the
/// connection's slot budget (NULL: the default), and the slots of each account held by
/// workers as leases (`state::postgres::slots`).
const POSTGRES_V4: &str = r#"
ALTER TABLE connections ADD COLUMN account_id TEXT;
ALTER TABLE connections ADD COLUMN slot_budget INTEGER;
CREATE TABLE account_slots (
    account_id TEXT COLLATE "C" NOT NULL,
    slot INTEGER NOT NULL,
    holder TEXT,
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (account_id, slot)
);
"#;

const POSTGRES_V3: &str = "ALTER TABLE snapshot ADD COLUMN profiles TEXT;";

const POSTGRES_V5: &str = "ALTER TABLE segments ADD COLUMN rule TEXT;";

const POSTGRES_V1: &str = r#"
CREATE TABLE connections (
    name TEXT COLLATE "C" PRIMARY KEY,
    display_name TEXT NOT NULL,
    base_url TEXT NOT NULL,
    credential_kind TEXT NOT NULL,
    sealed_secret BYTEA NOT NULL,
    consent_by TEXT NOT NULL,
    consent_at TEXT NOT NULL,
    shared_with_contributors BOOLEAN NOT NULL DEFAULT FALSE,
    export_user TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE segments (
    name TEXT COLLATE "C" PRIMARY KEY,
    predicate TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE exports (
    name TEXT COLLATE "C" PRIMARY KEY,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE export_tags (
    export TEXT COLLATE "C" NOT NULL,
    bit BIGINT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (export, bit),
    UNIQUE (export, tag)
);
CREATE TABLE snapshot (
    export TEXT COLLATE "C" NOT NULL,
    key BYTEA NOT NULL,
    email TEXT NOT NULL,
    fingerprint BIGINT,
    tags BIGINT NOT NULL,
    status TEXT NOT NULL,
    owned BOOLEAN NOT NULL,
    PRIMARY KEY (export, key)
);
CREATE TABLE create_intents (
    export TEXT COLLATE "C" NOT NULL,
    key BYTEA NOT NULL,
    email TEXT NOT NULL,
    PRIMARY KEY (export, key)
);
CREATE TABLE sync_marks (
    export TEXT COLLATE "C" PRIMARY KEY,
    audience_read_at TEXT NOT NULL
);
CREATE TABLE runs (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    export TEXT COLLATE "C" NOT NULL,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    counts TEXT NOT NULL,
    error TEXT
);
CREATE INDEX runs_by_export ON runs (export, id);
CREATE INDEX runs_running ON runs (export) WHERE outcome = 'running';
CREATE TABLE users (
    name TEXT COLLATE "C" PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE api_tokens (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    "user" TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    label TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE TABLE sessions (
    id_hash BYTEA PRIMARY KEY,
    "user" TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL
);
CREATE TABLE audit (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE settings (
    name TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE oauth_flows (
    state TEXT COLLATE "C" PRIMARY KEY,
    "user" TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE run_errors (
    run_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    profile_key TEXT NOT NULL,
    email TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"#;

const POSTGRES_V2: &str = r#"
CREATE TABLE profile_sources (
    name TEXT COLLATE "C" PRIMARY KEY,
    kind TEXT NOT NULL,
    sealed_url BYTEA NOT NULL,
    relation_kind TEXT NOT NULL CHECK (relation_kind IN ('table', 'query')),
    relation TEXT NOT NULL,
    key_column TEXT NOT NULL,
    email_hint TEXT,
    created_at TEXT NOT NULL
);
ALTER TABLE segments ADD COLUMN source TEXT COLLATE "C";
CREATE TABLE leases (
    name TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE run_queue (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    export TEXT COLLATE "C" NOT NULL,
    trigger TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    tick TEXT COLLATE "C",
    requested_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'claimed', 'done')),
    worker TEXT,
    lease_until BIGINT,
    run_id BIGINT,
    UNIQUE (export, tick)
);
CREATE INDEX run_queue_open ON run_queue (id) WHERE state <> 'done';
"#;
