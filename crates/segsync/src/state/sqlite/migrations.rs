//! The SQLite backend's schema, as its ordered migrations (see `state::schema` for how they
//! are applied and versioned).

use crate::state::schema::Migration;

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "connections, segments, exports, snapshots, runs, people, audit, settings",
        sql: SQLITE_V1,
    },
    Migration {
        version: 2,
        name: "profile sources, segment sources, leases, run queue",
        sql: SQLITE_V2,
    },
    Migration {
        version: 3,
        name: "the profiles behind each delivered member (members follow their profiles)",
        sql: SQLITE_V3,
    },
    Migration {
        version: 4,
        name: "connection budgets: each connection's Mailchimp account and slot budget",
        sql: SQLITE_V4,
    },
    Migration {
        version: 5,
        name: "the structured rule a segment was built from, next to its SQL",
        sql: SQLITE_V5,
    },
    Migration {
        version: 6,
        name: "suppression lists and remembered refusals",
        sql: SQLITE_V6,
    },
    Migration {
        version: 7,
        name: "each run's change log; each connection's account name and health",
        sql: SQLITE_V7,
    },
    Migration {
        version: 8,
        name: "a profile source's cursor column (re-runs read only the rows past it)",
        sql: SQLITE_V8,
    },
    Migration {
        version: 9,
        name: "an index of the delivered members no longer subscribed",
        sql: SQLITE_V9,
    },
];

/// The snapshot's members at a status other than `subscribed` (few, in most audiences): a
/// re-run asks which statuses its members hold (to choose its audience reads) without
/// reading the whole snapshot.
const SQLITE_V9: &str =
    "CREATE INDEX IF NOT EXISTS snapshot_not_subscribed ON snapshot (export, status) WHERE status <> 'subscribed';";

const SQLITE_V8: &str = "ALTER TABLE profile_sources ADD COLUMN cursor_column TEXT;";

/// Suppression lists (`export` '' is the installation's list) and the addresses Mailchimp
/// refused for good, with the fingerprint of the content refused.
const SQLITE_V6: &str = r#"
CREATE TABLE suppressions (
    export TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('email', 'key')),
    value TEXT NOT NULL,
    note TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (export, kind, value)
);
CREATE TABLE refusals (
    export TEXT NOT NULL,
    email TEXT NOT NULL,
    profile_key TEXT NOT NULL,
    fingerprint INTEGER NOT NULL,
    reason TEXT NOT NULL,
    refused_at TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (export, email)
);
"#;

/// A run's change log (`state::changes`), and what the last check of a connection found.
const SQLITE_V7: &str = "CREATE TABLE run_changes (
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    action INTEGER NOT NULL,
    email TEXT NOT NULL,
    detail TEXT NOT NULL,
    profile_key TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
ALTER TABLE connections ADD COLUMN account_name TEXT;
ALTER TABLE connections ADD COLUMN health TEXT;
ALTER TABLE connections ADD COLUMN health_detail TEXT;
ALTER TABLE connections ADD COLUMN health_checked_at TEXT;";

/// The account a connection's credential belongs to (learned from the API root) and the
/// connection's slot budget (NULL: the default).
const SQLITE_V4: &str = "ALTER TABLE connections ADD COLUMN account_id TEXT;
ALTER TABLE connections ADD COLUMN slot_budget INTEGER;";

const SQLITE_V3: &str = "ALTER TABLE snapshot ADD COLUMN profiles TEXT;";

const SQLITE_V5: &str = "ALTER TABLE segments ADD COLUMN rule TEXT;";

const SQLITE_V1: &str = r#"
CREATE TABLE IF NOT EXISTS connections (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    base_url TEXT NOT NULL,
    credential_kind TEXT NOT NULL,
    sealed_secret BLOB NOT NULL,
    consent_by TEXT NOT NULL,
    consent_at TEXT NOT NULL,
    shared_with_contributors INTEGER NOT NULL DEFAULT 0,
    export_user TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    name TEXT PRIMARY KEY,
    predicate TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS exports (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS export_tags (
    export TEXT NOT NULL,
    bit INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (export, bit),
    UNIQUE (export, tag)
);
CREATE TABLE IF NOT EXISTS snapshot (
    export TEXT NOT NULL,
    key BLOB NOT NULL,
    email TEXT NOT NULL,
    fingerprint INTEGER,
    tags INTEGER NOT NULL,
    status TEXT NOT NULL,
    owned INTEGER NOT NULL,
    PRIMARY KEY (export, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS create_intents (
    export TEXT NOT NULL,
    key BLOB NOT NULL,
    email TEXT NOT NULL,
    PRIMARY KEY (export, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_marks (
    export TEXT PRIMARY KEY,
    audience_read_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    export TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    counts TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_export ON runs (export, id);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    label TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash BLOB PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_flows (
    state TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_errors (
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    profile_key TEXT NOT NULL,
    email TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"#;

const SQLITE_V2: &str = r#"
CREATE TABLE profile_sources (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    sealed_url BLOB NOT NULL,
    relation_kind TEXT NOT NULL CHECK (relation_kind IN ('table', 'query')),
    relation TEXT NOT NULL,
    key_column TEXT NOT NULL,
    email_hint TEXT,
    created_at TEXT NOT NULL
);
ALTER TABLE segments ADD COLUMN source TEXT;
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE run_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    export TEXT NOT NULL,
    trigger TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    tick TEXT,
    requested_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'claimed', 'done')),
    worker TEXT,
    lease_until INTEGER,
    run_id INTEGER,
    UNIQUE (export, tick)
);
CREATE INDEX run_queue_open ON run_queue (state, id);
"#;
