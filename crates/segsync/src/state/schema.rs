//! The schema of each backend as an ordered list of migrations. Version 1 is the schema
//! segsync had before migrations were recorded: on SQLite it is the same `CREATE TABLE IF NOT
//! EXISTS` text, so a file made before then upgrades cleanly (version 1 changes nothing and is
//! recorded; version 2 follows).
//!
//! PostgreSQL keeps the same tables in its dialect: `BYTEA` for blobs, `BIGINT` for integers
//! (the 64-bit fingerprints and tag sets are stored as the `i64` with the same bits, as in
//! SQLite), identity columns for ids, `BOOLEAN` for flags, and timestamps as RFC 3339 `TEXT`
//! so that both backends return identical records. Names and timestamps compare byte-wise
//! (`COLLATE "C"`), as in SQLite. Lease and queue deadlines are milliseconds since the Unix
//! epoch (`BIGINT`), by the database's clock on PostgreSQL.

use super::StateError;

/// One step of a backend's schema.
pub(crate) struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const SQLITE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
);";

pub(crate) const POSTGRES_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
);";

pub(crate) const SQLITE: &[Migration] = &[
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
];

pub(crate) const POSTGRES: &[Migration] = &[
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
];

/// The migrations of backend `kind`.
pub(crate) fn migrations(kind: &str) -> &'static [Migration] {
    match kind {
        "postgres" => POSTGRES,
        _ => SQLITE,
    }
}

/// The version the migrations of backend `kind` end at.
pub(crate) fn latest(kind: &str) -> u32 {
    migrations(kind).last().map_or(0, |m| m.version)
}

pub(crate) fn too_new(current: u32, latest: u32) -> StateError {
    StateError::Config(format!(
        "the state store's schema is at version {current}, newer than this segsync knows \
         (version {latest}): use a newer segsync"
    ))
}

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
