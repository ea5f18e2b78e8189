//! The SQLite backend: one file, WAL journal, foreign keys on. A run's working set lives in
//! temporary tables of this same connection ([`super::staging`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use segsync_core::{MemberKey, RecordError, SnapshotEntry, Status, TagSet};

use super::copy::{Cell, Import, TableDef};
use super::{
    millis_text, now, ttl_millis, AuditEntry, ConnectionRecord, ExportConfig, MigrationReport,
    Outcome, ProfileSourceRecord, QueueState, QueuedRun, Result, Role, RunCounts, RunRecord,
    SegmentRecord, SessionRecord, SnapshotSink, StateBackend, StateError, TokenRecord, UserRecord,
};
use super::{msg, schema};

/// The state in one SQLite file.
pub struct SqliteState {
    conn: Connection,
    path: PathBuf,
}

fn status_text(s: Status) -> &'static str {
    s.as_str()
}

/// Runs `st`, an insert into a `snapshot` table (this backend's, or the scratch copy a run
/// diffs against) with the parameters (export, key, email, fingerprint, tags, status, owned,
/// profiles).
pub(super) fn insert_snapshot_row(
    st: &mut rusqlite::CachedStatement<'_>,
    export: &str,
    key: &MemberKey,
    e: &SnapshotEntry,
) -> rusqlite::Result<usize> {
    st.execute(params![
        export,
        &key.0[..],
        e.email,
        e.fingerprint.map(|f| f as i64),
        e.tags.0 as i64,
        status_text(e.status),
        e.owned,
        e.profiles
    ])
}

const CONNECTION_COLUMNS: &str = "name, display_name, base_url, credential_kind, sealed_secret, consent_by, consent_at, shared_with_contributors, export_user, created_at, account_id, slot_budget";

fn connection_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConnectionRecord> {
    Ok(ConnectionRecord {
        name: row.get(0)?,
        display_name: row.get(1)?,
        base_url: row.get(2)?,
        credential_kind: kind_of(row.get::<_, String>(3)?)?,
        sealed_secret: row.get(4)?,
        consent_by: row.get(5)?,
        consent_at: row.get(6)?,
        shared_with_contributors: row.get(7)?,
        export_user: row.get(8)?,
        created_at: row.get(9)?,
        account_id: row.get(10)?,
        slot_budget: row.get::<_, Option<i64>>(11)?.map(|b| b as u32),
    })
}

/// A stored credential kind; a name no segsync wrote is a corrupt row.
fn kind_of(text: String) -> rusqlite::Result<crate::mailchimp::CredentialKind> {
    crate::mailchimp::CredentialKind::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            3,
            rusqlite::types::Type::Text,
            format!("unknown credential kind {text:?}").into(),
        )
    })
}

fn segment_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentRecord> {
    Ok(SegmentRecord {
        name: r.get(0)?,
        predicate: r.get(1)?,
        created_at: r.get(2)?,
        source: r.get(3)?,
        rule: r.get(4)?,
    })
}

const PROFILE_SOURCE_COLUMNS: &str =
    "name, kind, sealed_url, relation_kind, relation, key_column, email_hint, created_at, cursor_column";

fn profile_source_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProfileSourceRecord> {
    Ok(ProfileSourceRecord {
        name: r.get(0)?,
        kind: r.get(1)?,
        sealed_url: r.get(2)?,
        relation_kind: r.get(3)?,
        relation: r.get(4)?,
        key_column: r.get(5)?,
        email_hint: r.get(6)?,
        created_at: r.get(7)?,
        cursor_column: r.get(8)?,
    })
}

/// A run's columns, and its number among its export's runs (`runs_by_export` answers it).
pub(super) const RUN_COLUMNS: &str =
    "id, export, trigger, started_at, finished_at, outcome, counts, error, \
     (SELECT count(*) FROM runs r2 WHERE r2.export = runs.export AND r2.id <= runs.id)";
const QUEUE_COLUMNS: &str =
    "id, export, trigger, requested_by, tick, requested_at, state, worker, lease_until, run_id";

/// A run queue row as stored (the state and deadline still raw).
type QueueRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn queue_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn queued_run(row: QueueRow) -> Result<QueuedRun> {
    let (id, export, trigger, requested_by, tick, requested_at, state, worker, until, run_id) = row;
    Ok(QueuedRun {
        id,
        export,
        trigger,
        requested_by,
        tick,
        requested_at,
        state: QueueState::parse(&state)?,
        worker,
        lease_until: until.map(millis_text),
        run_id,
    })
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn member_key(bytes: Vec<u8>, what: &str) -> Result<MemberKey> {
    let key: [u8; 16] = bytes.try_into().map_err(|_| msg::bad_key(what))?;
    Ok(MemberKey(key))
}

/// A snapshot entry from columns email, fingerprint, tags, status, owned, profiles at `at`...
fn snapshot_entry(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<SnapshotEntry> {
    let status: String = r.get(at + 3)?;
    Ok(SnapshotEntry {
        email: r.get(at)?,
        fingerprint: r.get::<_, Option<i64>>(at + 1)?.map(|f| f as u64),
        tags: TagSet(r.get::<_, i64>(at + 2)? as u64),
        status: Status::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                at + 3,
                rusqlite::types::Type::Text,
                format!("unknown snapshot status {status:?}").into(),
            )
        })?,
        owned: r.get(at + 4)?,
        profiles: r.get(at + 5)?,
    })
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
        number: r.get(8)?,
    })
}

fn role_of(text: String) -> rusqlite::Result<Role> {
    Role::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown role {text:?}").into(),
        )
    })
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        name: r.get(0)?,
        role: role_of(r.get(1)?)?,
        created_at: r.get(2)?,
    })
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl SqliteState {
    /// Opens (creating if needed) the file at `path`, private to its owner (0600, with its
    /// `-wal` and `-shm`: it holds password hashes, addresses and the audit log);
    /// [`StateBackend::migrate`] brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteState> {
        crate::home::private_sqlite_file(path).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        )?;
        Ok(SqliteState {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// A write transaction that takes the database's write lock when it begins (`BEGIN
    /// IMMEDIATE`), waiting for it under the busy timeout. A deferred one that reads first
    /// would have to upgrade its read to a write, and SQLite refuses that at once ("database
    /// is locked", no waiting) when another connection wrote in between: a run's checkpoint
    /// thread and its sending task write the same file through two connections.
    fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }
}

impl StateBackend for SqliteState {
    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn sqlite(&self) -> Option<&Connection> {
        Some(&self.conn)
    }

    fn sqlite_mut(&mut self) -> Option<&mut Connection> {
        Some(&mut self.conn)
    }

    fn schema_version(&self) -> Result<u32> {
        let recorded: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
            [],
            |r| r.get(0),
        )?;
        if !recorded {
            return Ok(0);
        }
        let v: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        Ok(v as u32)
    }

    /// One `BEGIN IMMEDIATE` transaction: a second process waits for the first, then finds
    /// nothing left to do.
    fn migrate(&mut self) -> Result<MigrationReport> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(schema::MIGRATIONS_TABLE)?;
        let from: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        let from = from as u32;
        let latest = schema::latest("sqlite");
        if from > latest {
            return Err(schema::too_new(from, latest));
        }
        let mut applied = Vec::new();
        for m in migrations::MIGRATIONS.iter().filter(|m| m.version > from) {
            tx.execute_batch(m.sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                params![m.version, m.name, now()],
            )?;
            applied.push((m.version, m.name.to_string()));
        }
        tx.commit()?;
        Ok(MigrationReport {
            backend: "sqlite",
            from_version: from,
            to_version: latest,
            applied,
        })
    }

    fn copy_out(
        &self,
        table: &'static TableDef,
        sink: &mut dyn FnMut(Vec<Cell>) -> Result<()>,
    ) -> Result<()> {
        let mut st = self.conn.prepare(&table.select_sql())?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(table.columns.len());
            for (i, (column, kind)) in table.columns.iter().enumerate() {
                cells.push(Cell::from_sqlite(r.get_ref(i)?, *kind, table.name, column)?);
            }
            sink(cells)?;
        }
        Ok(())
    }

    fn sequence_value(&self, table: &'static TableDef) -> Result<i64> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                [table.name],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    fn import(&mut self) -> Result<Box<dyn Import + '_>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Ok(Box::new(SqliteImport { tx }))
    }
}

/// Rows written in one transaction, committed by [`Import::commit`] (rolled back if dropped).
struct SqliteImport<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl Import for SqliteImport<'_> {
    fn count(&mut self, table: &'static TableDef) -> Result<u64> {
        let n: i64 =
            self.tx
                .query_row(&format!("SELECT COUNT(*) FROM {}", table.name), [], |r| {
                    r.get(0)
                })?;
        Ok(n as u64)
    }

    fn write(&mut self, table: &'static TableDef, rows: Vec<Vec<Cell>>) -> Result<()> {
        let mut st = self
            .tx
            .prepare_cached(&table.insert_sql(|i| format!("?{i}")))?;
        for row in &rows {
            st.execute(rusqlite::params_from_iter(row.iter()))?;
        }
        Ok(())
    }

    fn set_sequence(&mut self, table: &'static TableDef, value: i64) -> Result<()> {
        let n = self.tx.execute(
            "UPDATE sqlite_sequence SET seq = MAX(seq, ?2) WHERE name = ?1",
            params![table.name, value],
        )?;
        if n == 0 && value > 0 {
            self.tx.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                params![table.name, value],
            )?;
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

// The store's aggregates, a file each (after the helpers and macros they use), and the
// schema's migrations.
mod connections;
mod exports;
pub(crate) mod migrations;
mod people;
mod queue;
mod runs;
mod segments;
mod snapshots;
mod suppressions;
