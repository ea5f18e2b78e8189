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

/// The table that records which migrations were applied, the same in both dialects.
pub(crate) const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
);";

/// One step of a backend's schema.
pub(crate) struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations of backend `kind`.
pub(crate) fn migrations(kind: &str) -> &'static [Migration] {
    match kind {
        "postgres" => super::postgres::migrations::MIGRATIONS,
        _ => super::sqlite::migrations::MIGRATIONS,
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
