//! The state store: connections (secrets sealed), segments, exports, each export's tag
//! dictionary and snapshot, and the history of runs with their per-record errors. One SQLite
//! file (`state.sqlite` in the home folder), apart from the profiles, so that segment
//! predicates can never read it.
//!
//! People (users, API tokens, sessions), the audit log and installation settings are in
//! [`people`].
//!
//! Contract: the snapshot moves forward only for what Mailchimp acknowledged, one transaction
//! per acknowledged request, so a crash at any moment leaves a snapshot that is true.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use segsync_core::{
    MemberKey, NewStatus, RecordError, RemovalPolicy, SnapshotEntry, Status, TagSet,
};
use serde::{Deserialize, Serialize};

mod people;
mod staging;
pub use people::{AuditEntry, Role, SessionRecord, TokenRecord, UserRecord};
pub use staging::{PlanWriter, PlannedUpsert, StagedMember, UpsertPhase};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("state store: corrupt record: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StateError>;

const SCHEMA: &str = r#"
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

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A stored Mailchimp connection (its secret sealed).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub name: String,
    pub display_name: String,
    pub base_url: String,
    /// `api_key` or `oauth`.
    pub credential_kind: String,
    pub sealed_secret: Vec<u8>,
    pub consent_by: String,
    pub consent_at: String,
    pub shared_with_contributors: bool,
    pub export_user: Option<String>,
    pub created_at: String,
}

impl std::fmt::Debug for ConnectionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRecord")
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("base_url", &self.base_url)
            .field("credential_kind", &self.credential_kind)
            .field("sealed_secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub name: String,
    pub predicate: String,
    pub created_at: String,
}

/// A profile column sent as a merge field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMap {
    pub tag: String,
    pub column: String,
}

/// A chosen segment and the Mailchimp tag its members carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentTag {
    pub segment: String,
    pub tag: String,
}

/// An export's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportConfig {
    pub name: String,
    pub connection: String,
    pub audience_id: String,
    pub email_field: String,
    /// FNAME, LNAME and further merge fields, each from a profile column.
    pub fields: Vec<FieldMap>,
    pub segments: Vec<SegmentTag>,
    pub status_if_new: NewStatus,
    pub removal: RemovalPolicy,
    pub max_profiles: u64,
    pub create_merge_fields: bool,
    /// A column telling when a profile was last updated, to pick among duplicate addresses.
    pub updated_at_field: Option<String>,
    /// When the server runs it by itself.
    #[serde(default)]
    pub schedule: Schedule,
    /// A paused export keeps its configuration but its schedule does not fire.
    #[serde(default)]
    pub paused: bool,
}

/// When `segsync serve` runs an export by itself (besides "Run now").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Only when someone asks.
    #[default]
    Manual,
    /// On a cron schedule (`0 6 * * *`, five or six fields) in a time zone (`Europe/Paris`).
    Cron { cron: String, timezone: String },
    /// After every profile import or refresh ("runs with each scheduled refresh").
    AfterRefresh,
}

/// What a run did, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub profiles: u64,
    pub members: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub tagged: u64,
    pub untagged: u64,
    pub archived: u64,
    pub unsubscribed: u64,
    pub skipped: u64,
    pub failed: u64,
    pub requests: u64,
    pub retries: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Succeeded,
    SucceededWithErrors,
    Failed,
    Interrupted,
    /// Stopped by someone before the end; what was acknowledged is kept.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::SucceededWithErrors => "succeeded_with_errors",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Cancelled => "cancelled",
        }
    }
    fn parse(s: &str) -> Outcome {
        match s {
            "running" => Outcome::Running,
            "succeeded" => Outcome::Succeeded,
            "succeeded_with_errors" => Outcome::SucceededWithErrors,
            "interrupted" => Outcome::Interrupted,
            "cancelled" => Outcome::Cancelled,
            _ => Outcome::Failed,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: i64,
    pub export: String,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Outcome,
    pub counts: RunCounts,
    pub error: Option<String>,
}

pub struct StateStore {
    pub(crate) conn: Connection,
}

fn status_text(s: Status) -> &'static str {
    s.as_str()
}

impl StateStore {
    pub fn open(path: &Path) -> Result<StateStore> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        )?;
        conn.execute_batch(SCHEMA)?;
        Ok(StateStore { conn })
    }

    // --- connections ---

    pub fn add_connection(&self, c: &ConnectionRecord) -> Result<()> {
        let r = self.conn.execute(
            "INSERT INTO connections (name, display_name, base_url, credential_kind, sealed_secret, consent_by, consent_at, shared_with_contributors, export_user, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![c.name, c.display_name, c.base_url, c.credential_kind, c.sealed_secret, c.consent_by, c.consent_at, c.shared_with_contributors, c.export_user, c.created_at],
        );
        match r {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StateError::Conflict(format!(
                    "a connection named \"{}\" exists already",
                    c.name
                )))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn connection_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConnectionRecord> {
        Ok(ConnectionRecord {
            name: row.get(0)?,
            display_name: row.get(1)?,
            base_url: row.get(2)?,
            credential_kind: row.get(3)?,
            sealed_secret: row.get(4)?,
            consent_by: row.get(5)?,
            consent_at: row.get(6)?,
            shared_with_contributors: row.get(7)?,
            export_user: row.get(8)?,
            created_at: row.get(9)?,
        })
    }

    const CONNECTION_COLUMNS: &'static str = "name, display_name, base_url, credential_kind, sealed_secret, consent_by, consent_at, shared_with_contributors, export_user, created_at";

    pub fn connection(&self, name: &str) -> Result<ConnectionRecord> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {} FROM connections WHERE name = ?1",
                    Self::CONNECTION_COLUMNS
                ),
                [name],
                Self::connection_from_row,
            )
            .optional()?
            .ok_or_else(|| {
                StateError::NotFound(format!(
                    "no connection named \"{name}\" (see `segsync connection list`)"
                ))
            })
    }

    pub fn connections(&self) -> Result<Vec<ConnectionRecord>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {} FROM connections ORDER BY name",
            Self::CONNECTION_COLUMNS
        ))?;
        let rows = st
            .query_map([], Self::connection_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Changes what may change of a connection after its creation: its display name, who may
    /// use it, the export user, and (on re-authentication) its credential and API root.
    pub fn update_connection(&self, c: &ConnectionRecord) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE connections SET display_name = ?2, base_url = ?3, credential_kind = ?4, sealed_secret = ?5, consent_by = ?6, consent_at = ?7, shared_with_contributors = ?8, export_user = ?9 WHERE name = ?1",
            params![c.name, c.display_name, c.base_url, c.credential_kind, c.sealed_secret, c.consent_by, c.consent_at, c.shared_with_contributors, c.export_user],
        )?;
        if n == 0 {
            return Err(StateError::NotFound(format!(
                "no connection named \"{}\"",
                c.name
            )));
        }
        Ok(())
    }

    /// Removes a connection and its sealed secret; the exports on it stop running.
    pub fn remove_connection(&self, name: &str) -> Result<()> {
        // Overwrite before deleting, so the sealed secret does not linger in free pages.
        self.conn.execute("UPDATE connections SET sealed_secret = zeroblob(length(sealed_secret)) WHERE name = ?1", [name])?;
        let n = self
            .conn
            .execute("DELETE FROM connections WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(StateError::NotFound(format!(
                "no connection named \"{name}\""
            )));
        }
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    // --- segments ---

    pub fn add_segment(&self, name: &str, predicate: &str) -> Result<()> {
        let r = self.conn.execute(
            "INSERT INTO segments (name, predicate, created_at) VALUES (?1, ?2, ?3)",
            params![name, predicate, now()],
        );
        match r {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StateError::Conflict(format!(
                    "a segment named \"{name}\" exists already (remove it first to change it)"
                )))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    pub fn segment(&self, name: &str) -> Result<SegmentRecord> {
        self.conn
            .query_row(
                "SELECT name, predicate, created_at FROM segments WHERE name = ?1",
                [name],
                |r| {
                    Ok(SegmentRecord {
                        name: r.get(0)?,
                        predicate: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| {
                StateError::NotFound(format!(
                    "no segment named \"{name}\" (see `segsync segments list`)"
                ))
            })
    }

    pub fn segments(&self) -> Result<Vec<SegmentRecord>> {
        let mut st = self
            .conn
            .prepare("SELECT name, predicate, created_at FROM segments ORDER BY name")?;
        let rows = st
            .query_map([], |r| {
                Ok(SegmentRecord {
                    name: r.get(0)?,
                    predicate: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn set_segment_predicate(&self, name: &str, predicate: &str) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE segments SET predicate = ?2 WHERE name = ?1",
            params![name, predicate],
        )?;
        if n == 0 {
            return Err(StateError::NotFound(format!("no segment named \"{name}\"")));
        }
        Ok(())
    }

    pub fn remove_segment(&self, name: &str) -> Result<()> {
        let users: Vec<String> = self
            .exports()?
            .into_iter()
            .filter(|e| e.segments.iter().any(|s| s.segment == name))
            .map(|e| e.name)
            .collect();
        if !users.is_empty() {
            return Err(StateError::Conflict(format!(
                "segment \"{name}\" is used by export(s) {}: remove it from them first",
                users.join(", ")
            )));
        }
        let n = self
            .conn
            .execute("DELETE FROM segments WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(StateError::NotFound(format!("no segment named \"{name}\"")));
        }
        Ok(())
    }

    // --- exports ---

    pub fn add_export(&self, e: &ExportConfig) -> Result<()> {
        let config = serde_json::to_string(e).expect("config serialises");
        let r = self.conn.execute(
            "INSERT INTO exports (name, config, created_at) VALUES (?1, ?2, ?3)",
            params![e.name, config, now()],
        );
        match r {
            Err(rusqlite::Error::SqliteFailure(err, _))
                if err.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StateError::Conflict(format!(
                    "an export named \"{}\" exists already",
                    e.name
                )))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    pub fn export(&self, name: &str) -> Result<ExportConfig> {
        let text: String = self
            .conn
            .query_row("SELECT config FROM exports WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| {
                StateError::NotFound(format!(
                    "no export named \"{name}\" (see `segsync export list`)"
                ))
            })?;
        serde_json::from_str(&text).map_err(|e| StateError::Corrupt(format!("export {name}: {e}")))
    }

    pub fn exports(&self) -> Result<Vec<ExportConfig>> {
        let mut st = self
            .conn
            .prepare("SELECT name, config FROM exports ORDER BY name")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(n, c)| {
                serde_json::from_str(&c)
                    .map_err(|e| StateError::Corrupt(format!("export {n}: {e}")))
            })
            .collect()
    }

    /// Replaces an export's configuration. Pointing it at another connection or audience
    /// starts it afresh there: its snapshot, tag dictionary and marks belong to the old
    /// audience and are dropped.
    pub fn replace_export(&mut self, e: &ExportConfig) -> Result<()> {
        let old = self.export(&e.name)?;
        let config = serde_json::to_string(e).expect("config serialises");
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE exports SET config = ?2 WHERE name = ?1",
            params![e.name, config],
        )?;
        if old.connection != e.connection || old.audience_id != e.audience_id {
            for table in ["snapshot", "export_tags", "sync_marks", "create_intents"] {
                tx.execute(&format!("DELETE FROM {table} WHERE export = ?1"), [&e.name])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes an export with its snapshot and tag dictionary (its run history stays).
    pub fn remove_export(&mut self, name: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        let n = tx.execute("DELETE FROM exports WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(StateError::NotFound(format!("no export named \"{name}\"")));
        }
        tx.execute("DELETE FROM snapshot WHERE export = ?1", [name])?;
        tx.execute("DELETE FROM export_tags WHERE export = ?1", [name])?;
        tx.execute("DELETE FROM sync_marks WHERE export = ?1", [name])?;
        tx.execute("DELETE FROM create_intents WHERE export = ?1", [name])?;
        tx.commit()?;
        Ok(())
    }

    // --- tag dictionary: the bit each tag name has in the snapshot ---

    /// The bit of each tag name for `export`, assigning new bits for new names (never reused).
    pub fn tag_bits(&mut self, export: &str, tags: &[String]) -> Result<Vec<usize>> {
        let tx = self.conn.transaction()?;
        let mut bits = Vec::with_capacity(tags.len());
        for tag in tags {
            let bit: Option<i64> = tx
                .query_row(
                    "SELECT bit FROM export_tags WHERE export = ?1 AND tag = ?2",
                    params![export, tag],
                    |r| r.get(0),
                )
                .optional()?;
            let bit = match bit {
                Some(b) => b,
                None => {
                    let next: i64 = tx.query_row(
                        "SELECT COALESCE(MAX(bit) + 1, 0) FROM export_tags WHERE export = ?1",
                        [export],
                        |r| r.get(0),
                    )?;
                    if next as usize >= TagSet::MAX {
                        return Err(StateError::Conflict(format!(
                            "export \"{export}\" has used {} tag names; create a new export",
                            TagSet::MAX
                        )));
                    }
                    tx.execute(
                        "INSERT INTO export_tags (export, bit, tag) VALUES (?1, ?2, ?3)",
                        params![export, next, tag],
                    )?;
                    next
                }
            };
            bits.push(bit as usize);
        }
        tx.commit()?;
        Ok(bits)
    }

    /// Tag names by bit for `export`.
    pub fn tag_names(&self, export: &str) -> Result<HashMap<usize, String>> {
        let mut st = self
            .conn
            .prepare("SELECT bit, tag FROM export_tags WHERE export = ?1")?;
        let rows = st
            .query_map([export], |r| {
                Ok((r.get::<_, i64>(0)? as usize, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<HashMap<_, _>>>()?;
        Ok(rows)
    }

    // --- snapshot ---

    pub fn snapshot(&self, export: &str) -> Result<HashMap<MemberKey, SnapshotEntry>> {
        let mut st = self.conn.prepare(
            "SELECT key, email, fingerprint, tags, status, owned FROM snapshot WHERE export = ?1",
        )?;
        let mut out = HashMap::new();
        let mut rows = st.query([export])?;
        while let Some(r) = rows.next()? {
            let key: Vec<u8> = r.get(0)?;
            let key: [u8; 16] = key
                .try_into()
                .map_err(|_| StateError::Corrupt("snapshot key".into()))?;
            let status: String = r.get(4)?;
            let fp: Option<i64> = r.get(2)?;
            out.insert(
                MemberKey(key),
                SnapshotEntry {
                    email: r.get(1)?,
                    fingerprint: fp.map(|f| f as u64),
                    tags: TagSet(r.get::<_, i64>(3)? as u64),
                    status: Status::parse(&status)
                        .ok_or_else(|| StateError::Corrupt(format!("snapshot status {status}")))?,
                    owned: r.get(5)?,
                },
            );
        }
        Ok(out)
    }

    /// Writes snapshot entries in one transaction: one acknowledged request.
    pub fn save_snapshot(
        &mut self,
        export: &str,
        entries: &[(MemberKey, SnapshotEntry)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO snapshot (export, key, email, fingerprint, tags, status, owned) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (export, key) DO UPDATE SET email = excluded.email, fingerprint = excluded.fingerprint,
                   tags = excluded.tags, status = excluded.status, owned = excluded.owned",
            )?;
            for (k, e) in entries {
                st.execute(params![
                    export,
                    &k.0[..],
                    e.email,
                    e.fingerprint.map(|f| f as i64),
                    e.tags.0 as i64,
                    status_text(e.status),
                    e.owned
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    // --- create intents: members a run is about to create ---
    //
    // Written before a run sends its creates, cleared when the run ends. If the process dies
    // after Mailchimp created a member but before the answer was checkpointed, the next run
    // finds the member in the audience and, through its intent, knows this export added it
    // (so that `--removal archive|unsubscribe` may one day remove it, as if nothing had
    // crashed), instead of taking it for a contact from elsewhere.

    /// Records that the export is about to create these members (key, address).
    pub fn record_create_intents(
        &mut self,
        export: &str,
        members: &[(MemberKey, &str)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO create_intents (export, key, email) VALUES (?1, ?2, ?3)",
            )?;
            for (k, email) in members {
                st.execute(params![export, &k.0[..], email])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Members a run of the export meant to create, and did not see through (key, address).
    pub fn create_intents(&self, export: &str) -> Result<Vec<(MemberKey, String)>> {
        let mut st = self
            .conn
            .prepare("SELECT key, email FROM create_intents WHERE export = ?1")?;
        let mut rows = st.query([export])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let key: Vec<u8> = r.get(0)?;
            let key: [u8; 16] = key
                .try_into()
                .map_err(|_| StateError::Corrupt("create intent key".into()))?;
            out.push((MemberKey(key), r.get(1)?));
        }
        Ok(out)
    }

    /// Drops the intents of members found to exist already, added by someone else: not the
    /// export's own, whatever happens next.
    pub fn forget_create_intents(&mut self, export: &str, keys: &[MemberKey]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st =
                tx.prepare_cached("DELETE FROM create_intents WHERE export = ?1 AND key = ?2")?;
            for k in keys {
                st.execute(params![export, &k.0[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn clear_create_intents(&self, export: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM create_intents WHERE export = ?1", [export])?;
        Ok(())
    }

    /// When the audience was last read, for the next `since_last_changed`.
    pub fn audience_read_at(&self, export: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT audience_read_at FROM sync_marks WHERE export = ?1",
                [export],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_audience_read_at(&self, export: &str, at: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO sync_marks (export, audience_read_at) VALUES (?1, ?2) ON CONFLICT (export) DO UPDATE SET audience_read_at = excluded.audience_read_at",
            params![export, at],
        )?;
        Ok(())
    }

    // --- runs ---

    /// Exports that have a run still marked `running` (alive, or left so by a process that
    /// died).
    pub fn exports_with_running_runs(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT export FROM runs WHERE outcome = 'running'")?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// Marks runs left `running` by a process that died as interrupted.
    pub fn interrupt_stale_runs(&self, export: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE runs SET outcome = 'interrupted', finished_at = COALESCE(finished_at, ?2), error = COALESCE(error, 'the process stopped before the run finished; the next run resumes from its checkpoint') WHERE export = ?1 AND outcome = 'running'",
            params![export, now()],
        )?)
    }

    pub fn start_run(&self, export: &str, trigger: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (export, trigger, started_at, outcome, counts) VALUES (?1, ?2, ?3, 'running', ?4)",
            params![export, trigger, now(), serde_json::to_string(&RunCounts::default()).unwrap()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn update_run_counts(&self, id: i64, counts: &RunCounts) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET counts = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(counts).unwrap()],
        )?;
        Ok(())
    }

    pub fn finish_run(
        &self,
        id: i64,
        outcome: Outcome,
        counts: &RunCounts,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET outcome = ?2, counts = ?3, error = ?4, finished_at = ?5 WHERE id = ?1",
            params![
                id,
                outcome.as_str(),
                serde_json::to_string(counts).unwrap(),
                error,
                now()
            ],
        )?;
        Ok(())
    }

    pub fn add_run_errors(&mut self, id: i64, errors: &[RecordError]) -> Result<()> {
        if errors.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let start: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM run_errors WHERE run_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            let mut st = tx.prepare_cached("INSERT INTO run_errors (run_id, seq, profile_key, email, reason) VALUES (?1, ?2, ?3, ?4, ?5)")?;
            for (i, e) in errors.iter().enumerate() {
                st.execute(params![
                    id,
                    start + i as i64,
                    e.profile_key,
                    e.email,
                    e.reason
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
        let counts: String = r.get(6)?;
        let outcome: String = r.get(5)?;
        Ok(RunRecord {
            id: r.get(0)?,
            export: r.get(1)?,
            trigger: r.get(2)?,
            started_at: r.get(3)?,
            finished_at: r.get(4)?,
            outcome: Outcome::parse(&outcome),
            counts: serde_json::from_str(&counts).unwrap_or_default(),
            error: r.get(7)?,
        })
    }

    pub fn runs(&self, export: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        let mut st = self.conn.prepare(
            "SELECT id, export, trigger, started_at, finished_at, outcome, counts, error FROM runs WHERE (?1 IS NULL OR export = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![export, limit as i64], Self::run_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn run(&self, id: i64) -> Result<RunRecord> {
        self.conn
            .query_row("SELECT id, export, trigger, started_at, finished_at, outcome, counts, error FROM runs WHERE id = ?1", [id], Self::run_from_row)
            .optional()?
            .ok_or_else(|| StateError::NotFound(format!("no run {id} (see `segsync runs`)")))
    }

    pub fn run_errors(&self, id: i64) -> Result<Vec<RecordError>> {
        let mut st = self.conn.prepare(
            "SELECT profile_key, email, reason FROM run_errors WHERE run_id = ?1 ORDER BY seq",
        )?;
        let rows = st
            .query_map([id], |r| {
                Ok(RecordError {
                    profile_key: r.get(0)?,
                    email: r.get(1)?,
                    reason: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// How many records run `id` could not send (for lists, without reading them all).
    pub fn run_error_count(&self, id: i64) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM run_errors WHERE run_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The first `limit` records run `id` could not send, in order (for the web UI's run page).
    pub fn run_errors_head(&self, id: i64, limit: usize) -> Result<Vec<RecordError>> {
        let mut st = self.conn.prepare(
            "SELECT profile_key, email, reason FROM run_errors WHERE run_id = ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![id, limit as i64], |r| {
                Ok(RecordError {
                    profile_key: r.get(0)?,
                    email: r.get(1)?,
                    reason: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}
