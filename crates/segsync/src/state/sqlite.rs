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
/// diffs against) with the parameters (export, key, email, fingerprint, tags, status, owned).
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
        e.owned
    ])
}

const CONNECTION_COLUMNS: &str = "name, display_name, base_url, credential_kind, sealed_secret, consent_by, consent_at, shared_with_contributors, export_user, created_at";

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

fn segment_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentRecord> {
    Ok(SegmentRecord {
        name: r.get(0)?,
        predicate: r.get(1)?,
        created_at: r.get(2)?,
        source: r.get(3)?,
    })
}

const PROFILE_SOURCE_COLUMNS: &str =
    "name, kind, sealed_url, relation_kind, relation, key_column, email_hint, created_at";

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
    })
}

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

/// A snapshot entry from columns email, fingerprint, tags, status, owned at `at`...
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
    /// Opens (creating if needed) the file at `path`; [`StateBackend::migrate`] brings its
    /// schema up to date.
    pub fn open(path: &Path) -> Result<SqliteState> {
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
    // --- connections ---

    fn add_connection(&self, c: &ConnectionRecord) -> Result<()> {
        let r = self.conn.execute(
            "INSERT INTO connections (name, display_name, base_url, credential_kind, sealed_secret, consent_by, consent_at, shared_with_contributors, export_user, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![c.name, c.display_name, c.base_url, c.credential_kind, c.sealed_secret, c.consent_by, c.consent_at, c.shared_with_contributors, c.export_user, c.created_at],
        );
        match r {
            Err(e) if is_constraint(&e) => Err(msg::connection_exists(&c.name)),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn connection(&self, name: &str) -> Result<ConnectionRecord> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {} FROM connections WHERE name = ?1",
                    CONNECTION_COLUMNS
                ),
                [name],
                connection_from_row,
            )
            .optional()?
            .ok_or_else(|| msg::no_connection_listed(name))
    }

    fn connections(&self) -> Result<Vec<ConnectionRecord>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {} FROM connections ORDER BY name",
            CONNECTION_COLUMNS
        ))?;
        let rows = st
            .query_map([], connection_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Changes what may change of a connection after its creation: its display name, who may
    /// use it, the export user, and (on re-authentication) its credential and API root.
    fn update_connection(&self, c: &ConnectionRecord) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE connections SET display_name = ?2, base_url = ?3, credential_kind = ?4, sealed_secret = ?5, consent_by = ?6, consent_at = ?7, shared_with_contributors = ?8, export_user = ?9 WHERE name = ?1",
            params![c.name, c.display_name, c.base_url, c.credential_kind, c.sealed_secret, c.consent_by, c.consent_at, c.shared_with_contributors, c.export_user],
        )?;
        if n == 0 {
            return Err(msg::no_connection(&c.name));
        }
        Ok(())
    }

    /// Removes a connection and its sealed secret; the exports on it stop running.
    fn remove_connection(&self, name: &str) -> Result<()> {
        // Overwrite before deleting, so the sealed secret does not linger in free pages.
        self.conn.execute("UPDATE connections SET sealed_secret = zeroblob(length(sealed_secret)) WHERE name = ?1", [name])?;
        let n = self
            .conn
            .execute("DELETE FROM connections WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(msg::no_connection(name));
        }
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    // --- segments ---

    fn add_segment_from(&self, name: &str, predicate: &str, source: Option<&str>) -> Result<()> {
        if let Some(source) = source {
            self.profile_source(source)?;
        }
        let r = self.conn.execute(
            "INSERT INTO segments (name, predicate, source, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, predicate, source, now()],
        );
        match r {
            Err(e) if is_constraint(&e) => Err(msg::segment_exists(name)),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn segment(&self, name: &str) -> Result<SegmentRecord> {
        self.conn
            .query_row(
                "SELECT name, predicate, created_at, source FROM segments WHERE name = ?1",
                [name],
                segment_from_row,
            )
            .optional()?
            .ok_or_else(|| msg::no_segment_listed(name))
    }

    fn segments(&self) -> Result<Vec<SegmentRecord>> {
        let mut st = self
            .conn
            .prepare("SELECT name, predicate, created_at, source FROM segments ORDER BY name")?;
        let rows = st
            .query_map([], segment_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn set_segment_predicate(&self, name: &str, predicate: &str) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE segments SET predicate = ?2 WHERE name = ?1",
            params![name, predicate],
        )?;
        if n == 0 {
            return Err(msg::no_segment(name));
        }
        Ok(())
    }

    fn remove_segment(&self, name: &str) -> Result<()> {
        msg::check_segment_unused(name, &self.exports()?)?;
        let n = self
            .conn
            .execute("DELETE FROM segments WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(msg::no_segment(name));
        }
        Ok(())
    }

    // --- exports ---

    fn add_export(&self, e: &ExportConfig) -> Result<()> {
        let config = serde_json::to_string(e).expect("config serialises");
        let r = self.conn.execute(
            "INSERT INTO exports (name, config, created_at) VALUES (?1, ?2, ?3)",
            params![e.name, config, now()],
        );
        match r {
            Err(err) if is_constraint(&err) => Err(msg::export_exists(&e.name)),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn export(&self, name: &str) -> Result<ExportConfig> {
        let text: String = self
            .conn
            .query_row("SELECT config FROM exports WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| msg::no_export_listed(name))?;
        msg::parse_export(name, &text)
    }

    fn exports(&self) -> Result<Vec<ExportConfig>> {
        let mut st = self
            .conn
            .prepare("SELECT name, config FROM exports ORDER BY name")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(n, c)| msg::parse_export(&n, &c))
            .collect()
    }

    /// Replaces an export's configuration. Pointing it at another connection or audience
    /// starts it afresh there: its snapshot, tag dictionary and marks belong to the old
    /// audience and are dropped.
    fn replace_export(&mut self, e: &ExportConfig) -> Result<()> {
        let old = self.export(&e.name)?;
        let config = serde_json::to_string(e).expect("config serialises");
        let tx = self.write_tx()?;
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
    fn remove_export(&mut self, name: &str) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx.execute("DELETE FROM exports WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(msg::no_export(name));
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
    fn tag_bits(&mut self, export: &str, tags: &[String]) -> Result<Vec<usize>> {
        let tx = self.write_tx()?;
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
                        return Err(msg::too_many_tags(export));
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
    fn tag_names(&self, export: &str) -> Result<HashMap<usize, String>> {
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

    fn snapshot(&self, export: &str) -> Result<HashMap<MemberKey, SnapshotEntry>> {
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
    fn save_snapshot(
        &mut self,
        export: &str,
        entries: &[(MemberKey, SnapshotEntry)],
    ) -> Result<()> {
        let tx = self.write_tx()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO snapshot (export, key, email, fingerprint, tags, status, owned) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (export, key) DO UPDATE SET email = excluded.email, fingerprint = excluded.fingerprint,
                   tags = excluded.tags, status = excluded.status, owned = excluded.owned",
            )?;
            for (k, e) in entries {
                insert_snapshot_row(&mut st, export, k, e)?;
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
    fn record_create_intents(&mut self, export: &str, members: &[(MemberKey, &str)]) -> Result<()> {
        let tx = self.write_tx()?;
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
    fn create_intents(&self, export: &str) -> Result<Vec<(MemberKey, String)>> {
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
    fn forget_create_intents(&mut self, export: &str, keys: &[MemberKey]) -> Result<()> {
        let tx = self.write_tx()?;
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

    fn clear_create_intents(&self, export: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM create_intents WHERE export = ?1", [export])?;
        Ok(())
    }

    /// When the audience was last read, for the next `since_last_changed`.
    fn audience_read_at(&self, export: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT audience_read_at FROM sync_marks WHERE export = ?1",
                [export],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_audience_read_at(&self, export: &str, at: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO sync_marks (export, audience_read_at) VALUES (?1, ?2) ON CONFLICT (export) DO UPDATE SET audience_read_at = excluded.audience_read_at",
            params![export, at],
        )?;
        Ok(())
    }

    // --- runs ---

    /// Exports that have a run still marked `running` (alive, or left so by a process that
    /// died).
    fn exports_with_running_runs(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(
            "SELECT DISTINCT export FROM runs WHERE outcome = 'running' ORDER BY export",
        )?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// Marks runs left `running` by a process that died as interrupted.
    fn interrupt_stale_runs(&self, export: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE runs SET outcome = 'interrupted', finished_at = COALESCE(finished_at, ?2), error = COALESCE(error, 'the process stopped before the run finished; the next run resumes from its checkpoint') WHERE export = ?1 AND outcome = 'running'",
            params![export, now()],
        )?)
    }

    fn start_run(&self, export: &str, trigger: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (export, trigger, started_at, outcome, counts) VALUES (?1, ?2, ?3, 'running', ?4)",
            params![export, trigger, now(), serde_json::to_string(&RunCounts::default()).unwrap()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn update_run_counts(&self, id: i64, counts: &RunCounts) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET counts = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(counts).unwrap()],
        )?;
        Ok(())
    }

    fn finish_run(
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

    fn add_run_errors(&mut self, id: i64, errors: &[RecordError]) -> Result<()> {
        if errors.is_empty() {
            return Ok(());
        }
        let tx = self.write_tx()?;
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

    fn runs(&self, export: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        let mut st = self.conn.prepare(
            "SELECT id, export, trigger, started_at, finished_at, outcome, counts, error FROM runs WHERE (?1 IS NULL OR export = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![export, limit as i64], run_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn run(&self, id: i64) -> Result<RunRecord> {
        self.conn
            .query_row("SELECT id, export, trigger, started_at, finished_at, outcome, counts, error FROM runs WHERE id = ?1", [id], run_from_row)
            .optional()?
            .ok_or_else(|| msg::no_run(id))
    }

    fn run_errors(&self, id: i64) -> Result<Vec<RecordError>> {
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
    fn run_error_count(&self, id: i64) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM run_errors WHERE run_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The first `limit` records run `id` could not send, in order (for the web UI's run page).
    fn run_errors_head(&self, id: i64, limit: usize) -> Result<Vec<RecordError>> {
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
    fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    // --- users ---

    fn add_user(&self, name: &str, role: Role, password_hash: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, role.as_str(), password_hash, now()],
            )
            .map_err(|e| {
                if is_constraint(&e) {
                    msg::user_exists(name)
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    fn user(&self, name: &str) -> Result<UserRecord> {
        self.conn
            .query_row(
                "SELECT name, role, created_at FROM users WHERE name = ?1",
                [name],
                user_from_row,
            )
            .optional()?
            .ok_or_else(|| msg::no_user(name))
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        let mut st = self
            .conn
            .prepare("SELECT name, role, created_at FROM users ORDER BY name")?;
        let rows = st
            .query_map([], user_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The stored password hash (a PHC string), for verification only.
    fn password_hash(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT password_hash FROM users WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_password_hash(&self, name: &str, hash: &str) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1",
            params![name, hash],
        )?;
        if n == 0 {
            return Err(msg::no_user(name));
        }
        // A new password ends every session opened with the old one.
        self.conn
            .execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        Ok(())
    }

    fn set_role(&self, name: &str, role: Role) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE users SET role = ?2 WHERE name = ?1",
            params![name, role.as_str()],
        )?;
        if n == 0 {
            return Err(msg::no_user(name));
        }
        Ok(())
    }

    /// Removes a user with their sessions and tokens.
    fn remove_user(&self, name: &str) -> Result<()> {
        let n = self
            .conn
            .execute("DELETE FROM users WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(msg::no_user(name));
        }
        Ok(())
    }

    fn count_admins(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM users WHERE role = 'admin'", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    // --- API tokens ---

    fn add_token(&self, user: &str, label: &str, token_hash: &[u8]) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO api_tokens (user, label, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![user, label, token_hash, now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The user a token (by its hash) belongs to; records its use.
    fn token_user(&self, token_hash: &[u8]) -> Result<Option<UserRecord>> {
        let user = self
            .conn
            .query_row(
                "SELECT u.name, u.role, u.created_at FROM api_tokens t JOIN users u ON u.name = t.user WHERE t.token_hash = ?1",
                [token_hash],
                user_from_row,
            )
            .optional()?;
        if user.is_some() {
            self.conn.execute(
                "UPDATE api_tokens SET last_used_at = ?2 WHERE token_hash = ?1",
                params![token_hash, now()],
            )?;
        }
        Ok(user)
    }

    fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>> {
        let mut st = self.conn.prepare(
            "SELECT id, user, label, created_at, last_used_at FROM api_tokens WHERE (?1 IS NULL OR user = ?1) ORDER BY id",
        )?;
        let rows = st
            .query_map([user], |r| {
                Ok(TokenRecord {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    label: r.get(2)?,
                    created_at: r.get(3)?,
                    last_used_at: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn revoke_token(&self, id: i64) -> Result<TokenRecord> {
        let t = self
            .tokens(None)?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| msg::no_token(id))?;
        self.conn
            .execute("DELETE FROM api_tokens WHERE id = ?1", [id])?;
        Ok(t)
    }

    // --- sessions ---

    fn add_session(&self, id_hash: &[u8], user: &str, csrf: &str, expires_at: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM sessions WHERE expires_at < ?1", [now()])?;
        self.conn.execute(
            "INSERT INTO sessions (id_hash, user, csrf, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![id_hash, user, csrf, expires_at],
        )?;
        Ok(())
    }

    /// The live session with this hash (expired ones are not returned).
    fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT u.name, u.role, u.created_at, s.csrf, s.expires_at FROM sessions s JOIN users u ON u.name = s.user WHERE s.id_hash = ?1 AND s.expires_at >= ?2",
                params![id_hash, now()],
                |r| {
                    Ok(SessionRecord {
                        user: user_from_row(r)?,
                        csrf: r.get(3)?,
                        expires_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    fn remove_session(&self, id_hash: &[u8]) -> Result<()> {
        self.conn
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }

    // --- audit ---

    /// Records who did what to what. `detail` must never hold a secret.
    fn audit(&self, actor: &str, action: &str, target: &str, detail: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now(), actor, action, target, detail],
        )?;
        Ok(())
    }

    /// The newest entries first, `limit` of them, older than `before` when given.
    fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        let mut st = self.conn.prepare(
            "SELECT id, at, actor, action, target, detail FROM audit WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![before, limit as i64], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    // --- settings ---

    fn setting(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, name: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.conn.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, v],
            )?,
            None => self
                .conn
                .execute("DELETE FROM settings WHERE name = ?1", [name])?,
        };
        Ok(())
    }

    // --- pending "Authenticate with Mailchimp" flows ---

    fn add_oauth_flow(&self, state: &str, user: &str, request: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO oauth_flows (state, user, request, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![state, user, request, now()],
        )?;
        Ok(())
    }

    /// Takes (and forgets) a pending flow: its user, its request and when it began.
    fn take_oauth_flow(&self, state: &str) -> Result<Option<(String, String, String)>> {
        Ok(self
            .conn
            .query_row(
                "DELETE FROM oauth_flows WHERE state = ?1 RETURNING user, request, created_at",
                [state],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    // --- backend ---

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
        tx.execute_batch(schema::SQLITE_MIGRATIONS_TABLE)?;
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
        for m in schema::SQLITE.iter().filter(|m| m.version > from) {
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

    // --- profile sources ---

    fn add_profile_source(&self, p: &ProfileSourceRecord) -> Result<()> {
        msg::check_relation_kind(&p.relation_kind)?;
        let r = self.conn.execute(
            "INSERT INTO profile_sources (name, kind, sealed_url, relation_kind, relation, key_column, email_hint, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![p.name, p.kind, p.sealed_url, p.relation_kind, p.relation, p.key_column, p.email_hint, p.created_at],
        );
        match r {
            Err(e) if is_constraint(&e) => Err(msg::profile_source_exists(&p.name)),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn profile_source(&self, name: &str) -> Result<ProfileSourceRecord> {
        self.conn
            .query_row(
                &format!("SELECT {PROFILE_SOURCE_COLUMNS} FROM profile_sources WHERE name = ?1"),
                [name],
                profile_source_from_row,
            )
            .optional()?
            .ok_or_else(|| msg::no_profile_source(name))
    }

    fn profile_sources(&self) -> Result<Vec<ProfileSourceRecord>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {PROFILE_SOURCE_COLUMNS} FROM profile_sources ORDER BY name"
        ))?;
        let rows = st
            .query_map([], profile_source_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn remove_profile_source(&self, name: &str) -> Result<()> {
        let mut st = self
            .conn
            .prepare("SELECT name FROM segments WHERE source = ?1 ORDER BY name")?;
        let users = st
            .query_map([name], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        if !users.is_empty() {
            return Err(msg::profile_source_in_use(name, &users));
        }
        let n = self
            .conn
            .execute("DELETE FROM profile_sources WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(msg::no_profile_source(name));
        }
        Ok(())
    }

    // --- snapshot, read for a run ---

    fn snapshot_entries(
        &self,
        export: &str,
        keys: &[MemberKey],
    ) -> Result<HashMap<MemberKey, SnapshotEntry>> {
        // One read transaction for all the lookups: alone, each would take and release the
        // file's locks (a run looks up 500 members per answer, and every member the audience
        // reports on the first re-run).
        let tx = self.conn.unchecked_transaction()?;
        let mut out = HashMap::with_capacity(keys.len());
        {
            let mut st = tx.prepare_cached(
                "SELECT email, fingerprint, tags, status, owned FROM snapshot WHERE export = ?1 AND key = ?2",
            )?;
            for k in keys {
                let e = st
                    .query_row(params![export, &k.0[..]], |r| snapshot_entry(r, 0))
                    .optional()?;
                if let Some(e) = e {
                    out.insert(*k, e);
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn has_snapshot(&self, export: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM snapshot WHERE export = ?1)",
            [export],
            |r| r.get(0),
        )?)
    }

    fn snapshot_in_key_order(&self, export: &str, sink: &mut SnapshotSink<'_>) -> Result<()> {
        let mut st = self.conn.prepare(
            "SELECT key, email, fingerprint, tags, status, owned FROM snapshot WHERE export = ?1 ORDER BY key",
        )?;
        let mut rows = st.query([export])?;
        let mut batch = Vec::with_capacity(super::STREAM_BATCH);
        while let Some(r) = rows.next()? {
            batch.push((member_key(r.get(0)?, "snapshot")?, snapshot_entry(r, 1)?));
            if batch.len() == super::STREAM_BATCH {
                sink(&batch)?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            sink(&batch)?;
        }
        Ok(())
    }

    // --- leases (this machine's clock) ---

    fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = now_millis();
        let n = self.conn.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4",
            params![name, holder, now.saturating_add(ttl_millis(ttl)), now],
        )?;
        Ok(n == 1)
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
            params![name, holder],
        )?;
        Ok(())
    }

    // --- run queue (this machine's clock) ---

    fn enqueue_run(
        &self,
        export: &str,
        trigger: &str,
        requested_by: &str,
        tick: Option<&str>,
    ) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "INSERT INTO run_queue (export, trigger, requested_by, tick, requested_at, state) VALUES (?1, ?2, ?3, ?4, ?5, 'pending')
                 ON CONFLICT (export, tick) DO NOTHING RETURNING id",
                params![export, trigger, requested_by, tick, now()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// One statement: SQLite takes the write lock before it reads, so two workers never
    /// claim the same row.
    fn claim_queued_run(&self, worker: &str, ttl: Duration) -> Result<Option<QueuedRun>> {
        let now = now_millis();
        let row = self
            .conn
            .query_row(
                &format!(
                    "UPDATE run_queue SET state = 'claimed', worker = ?1, lease_until = ?3
                     WHERE id = (
                       SELECT q.id FROM run_queue q
                       WHERE (q.state = 'pending' OR (q.state = 'claimed' AND q.lease_until <= ?2))
                         AND NOT EXISTS (SELECT 1 FROM run_queue o WHERE o.export = q.export AND o.id <> q.id
                                         AND o.state = 'claimed' AND o.lease_until > ?2)
                       ORDER BY q.id LIMIT 1)
                     RETURNING {QUEUE_COLUMNS}"
                ),
                params![worker, now, now.saturating_add(ttl_millis(ttl))],
                queue_row,
            )
            .optional()?;
        row.map(queued_run).transpose()
    }

    fn renew_queued_run(&self, id: i64, worker: &str, ttl: Duration) -> Result<bool> {
        let until = now_millis().saturating_add(ttl_millis(ttl));
        let n = self.conn.execute(
            "UPDATE run_queue SET lease_until = ?3 WHERE id = ?1 AND worker = ?2 AND state = 'claimed'",
            params![id, worker, until],
        )?;
        Ok(n == 1)
    }

    fn complete_queued_run(&self, id: i64, worker: &str, run_id: Option<i64>) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE run_queue SET state = 'done', run_id = ?3, lease_until = NULL WHERE id = ?1 AND worker = ?2 AND state = 'claimed'",
            params![id, worker, run_id],
        )?;
        if n == 1 {
            return Ok(());
        }
        let exists: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM run_queue WHERE id = ?1)",
            [id],
            |r| r.get(0),
        )?;
        Err(if exists {
            msg::queued_run_not_held(id, worker)
        } else {
            msg::no_queued_run(id)
        })
    }

    fn queued_runs(&self, export: Option<&str>) -> Result<Vec<QueuedRun>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {QUEUE_COLUMNS} FROM run_queue WHERE state <> 'done' AND (?1 IS NULL OR export = ?1) ORDER BY id"
        ))?;
        let rows = st
            .query_map([export], queue_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(queued_run).collect()
    }

    // --- rows, for copies ---

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
