//! The PostgreSQL backend: the same records as the SQLite one, in a database that several
//! `segsync serve` workers (on several machines) share.
//!
//! Every method runs its SQL on the connection's own thread ([`PgThread::call`]), so that it
//! may be called from anywhere, tokio's threads included. What is one transaction in SQLite
//! is one transaction (or one statement) here too. Concurrency between processes is the
//! database's: `ON CONFLICT` for names and schedule ticks, row locks and
//! `FOR UPDATE SKIP LOCKED` for the run queue, advisory transaction locks where a value is
//! computed from what is there (tag bits, migrations), and the database's clock (`now()`) for
//! lease deadlines, so that workers whose clocks differ still agree.
//!
//! Batches (snapshot checkpoints, create intents, run errors) are one statement each over
//! arrays (`unnest`); big reads (the snapshot a diff merges with, table copies) stream in
//! batches through a bounded channel, so that memory stays flat.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, ToSql};
use postgres::{Client, Row};
use rusqlite::Connection;
use segsync_core::{MemberKey, RecordError, SnapshotEntry, Status, TagSet};

use super::copy::{postgres_type, Cell, Import, TableDef};
use super::{
    millis_text, now, ttl_millis, AuditEntry, ConnectionRecord, ExportConfig, MigrationReport,
    Outcome, ProfileSourceRecord, QueueState, QueuedRun, Result, Role, RunCounts, RunRecord,
    SegmentRecord, SessionRecord, SnapshotSink, StateBackend, StateError, TokenRecord, UserRecord,
    STREAM_BATCH,
};
use super::{msg, schema};
use crate::pg::{error_text, PgError, PgThread};

/// A statement parameter that can travel to the connection's thread.
type Param = Box<dyn ToSql + Sync + Send>;

macro_rules! params {
    ($($x:expr),* $(,)?) => { vec![$(Box::new($x) as Param),*] };
}

/// The database's clock, in milliseconds since the Unix epoch.
const NOW_MS: &str = "(extract(epoch FROM now()) * 1000)::bigint";

/// Advisory lock keys (`pg_advisory_xact_lock`), in a range of their own ("segs" in ASCII).
const MIGRATION_LOCK: i64 = 0x7365_6773_0001;
const QUEUE_LOCK: i64 = 0x7365_6773_0002;
/// The two-key form's first key, for per-export tag dictionaries.
const TAG_LOCK_CLASS: i32 = 0x7365_6701;

const CONNECTION_COLUMNS: &str = "name, display_name, base_url, credential_kind, sealed_secret, consent_by, consent_at, shared_with_contributors, export_user, created_at";
const PROFILE_SOURCE_COLUMNS: &str =
    "name, kind, sealed_url, relation_kind, relation, key_column, email_hint, created_at";
const RUN_COLUMNS: &str = "id, export, trigger, started_at, finished_at, outcome, counts, error";
const QUEUE_COLUMNS: &str =
    "id, export, trigger, requested_by, tick, requested_at, state, worker, lease_until, run_id";
const SNAPSHOT_COLUMNS: &str = "key, email, fingerprint, tags, status, owned";

/// The state in a PostgreSQL database.
pub struct PgState {
    pg: PgThread,
}

fn pg_err(op: &str, e: &postgres::Error) -> StateError {
    StateError::Postgres(format!("{op}: {}", error_text(e)))
}

fn closed(e: PgError) -> StateError {
    StateError::Postgres(e.to_string())
}

fn is_unique(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
}

/// Column `i` of `row`, or why it could not be read.
fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i)
        .map_err(|e| StateError::Corrupt(format!("column {i}: {e}")))
}

fn key_of(bytes: Vec<u8>, what: &str) -> Result<MemberKey> {
    let key: [u8; 16] = bytes.try_into().map_err(|_| msg::bad_key(what))?;
    Ok(MemberKey(key))
}

fn status_of(text: &str) -> Result<Status> {
    Status::parse(text).ok_or_else(|| StateError::Corrupt(format!("snapshot status {text}")))
}

/// A snapshot row of [`SNAPSHOT_COLUMNS`].
fn snapshot_row(r: &Row) -> Result<(MemberKey, SnapshotEntry)> {
    let status: String = get(r, 4)?;
    Ok((
        key_of(get(r, 0)?, "snapshot")?,
        SnapshotEntry {
            email: get(r, 1)?,
            fingerprint: get::<Option<i64>>(r, 2)?.map(|f| f as u64),
            tags: TagSet(get::<i64>(r, 3)? as u64),
            status: status_of(&status)?,
            owned: get(r, 5)?,
        },
    ))
}

fn connection_row(r: &Row) -> Result<ConnectionRecord> {
    Ok(ConnectionRecord {
        name: get(r, 0)?,
        display_name: get(r, 1)?,
        base_url: get(r, 2)?,
        credential_kind: get(r, 3)?,
        sealed_secret: get(r, 4)?,
        consent_by: get(r, 5)?,
        consent_at: get(r, 6)?,
        shared_with_contributors: get(r, 7)?,
        export_user: get(r, 8)?,
        created_at: get(r, 9)?,
    })
}

fn segment_row(r: &Row) -> Result<SegmentRecord> {
    Ok(SegmentRecord {
        name: get(r, 0)?,
        predicate: get(r, 1)?,
        created_at: get(r, 2)?,
        source: get(r, 3)?,
    })
}

fn profile_source_row(r: &Row) -> Result<ProfileSourceRecord> {
    Ok(ProfileSourceRecord {
        name: get(r, 0)?,
        kind: get(r, 1)?,
        sealed_url: get(r, 2)?,
        relation_kind: get(r, 3)?,
        relation: get(r, 4)?,
        key_column: get(r, 5)?,
        email_hint: get(r, 6)?,
        created_at: get(r, 7)?,
    })
}

fn run_row(r: &Row) -> Result<RunRecord> {
    let outcome: String = get(r, 5)?;
    let counts: String = get(r, 6)?;
    Ok(RunRecord {
        id: get(r, 0)?,
        export: get(r, 1)?,
        trigger: get(r, 2)?,
        started_at: get(r, 3)?,
        finished_at: get(r, 4)?,
        outcome: Outcome::parse(&outcome),
        counts: serde_json::from_str(&counts).unwrap_or_default(),
        error: get(r, 7)?,
    })
}

fn record_error_row(r: &Row) -> Result<RecordError> {
    Ok(RecordError {
        profile_key: get(r, 0)?,
        email: get(r, 1)?,
        reason: get(r, 2)?,
    })
}

fn queue_row(r: &Row) -> Result<QueuedRun> {
    let state: String = get(r, 6)?;
    Ok(QueuedRun {
        id: get(r, 0)?,
        export: get(r, 1)?,
        trigger: get(r, 2)?,
        requested_by: get(r, 3)?,
        tick: get(r, 4)?,
        requested_at: get(r, 5)?,
        state: QueueState::parse(&state)?,
        worker: get(r, 7)?,
        lease_until: get::<Option<i64>>(r, 8)?.map(millis_text),
        run_id: get(r, 9)?,
    })
}

fn user_row(r: &Row) -> Result<UserRecord> {
    let role: String = get(r, 1)?;
    Ok(UserRecord {
        name: get(r, 0)?,
        role: Role::parse(&role)
            .ok_or_else(|| StateError::Corrupt(format!("unknown role {role:?}")))?,
        created_at: get(r, 2)?,
    })
}

fn token_row(r: &Row) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: get(r, 0)?,
        user: get(r, 1)?,
        label: get(r, 2)?,
        created_at: get(r, 3)?,
        last_used_at: get(r, 4)?,
    })
}

impl PgState {
    /// Connects to the database at `url` (password from the URL or `PGPASSWORD`; errors show
    /// the URL without it). [`StateBackend::migrate`] brings its schema up to date.
    pub fn connect(url: &str) -> Result<PgState> {
        Ok(PgState {
            pg: PgThread::connect(url).map_err(closed)?,
        })
    }

    /// Runs `f` on the connection's thread.
    fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Client) -> Result<R> + Send + 'static,
    {
        self.pg.call(f).map_err(closed)?
    }

    fn execute(&self, op: &'static str, sql: &'static str, params: Vec<Param>) -> Result<u64> {
        self.call(move |c| c.execute(sql, &refs(&params)).map_err(|e| pg_err(op, &e)))
    }

    /// Like [`Self::execute`], a unique violation being `conflict`.
    fn execute_unique(
        &self,
        op: &'static str,
        sql: &'static str,
        params: Vec<Param>,
        conflict: StateError,
    ) -> Result<u64> {
        let r = self.call(move |c| Ok(c.execute(sql, &refs(&params))))?;
        match r {
            Err(e) if is_unique(&e) => Err(conflict),
            Err(e) => Err(pg_err(op, &e)),
            Ok(n) => Ok(n),
        }
    }

    fn query(&self, op: &'static str, sql: String, params: Vec<Param>) -> Result<Vec<Row>> {
        self.call(move |c| c.query(&sql, &refs(&params)).map_err(|e| pg_err(op, &e)))
    }

    fn query_opt(&self, op: &'static str, sql: String, params: Vec<Param>) -> Result<Option<Row>> {
        self.call(move |c| {
            c.query_opt(&sql, &refs(&params))
                .map_err(|e| pg_err(op, &e))
        })
    }

    fn query_one(&self, op: &'static str, sql: String, params: Vec<Param>) -> Result<Row> {
        self.call(move |c| {
            c.query_one(&sql, &refs(&params))
                .map_err(|e| pg_err(op, &e))
        })
    }

    /// Streams the rows of `sql`, converted on the connection's thread, to `sink` in batches
    /// (a bounded channel between the two threads: memory stays flat).
    fn stream<T: Send + 'static>(
        &self,
        op: &'static str,
        sql: String,
        params: Vec<Param>,
        convert: impl Fn(&Row) -> Result<T> + Send + 'static,
        sink: &mut dyn FnMut(Vec<T>) -> Result<()>,
    ) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Vec<T>>(2);
        let finished = self
            .pg
            .submit(move |c| -> Result<()> {
                let mut rows = c
                    .query_raw(sql.as_str(), refs(&params))
                    .map_err(|e| pg_err(op, &e))?;
                let mut batch = Vec::with_capacity(STREAM_BATCH);
                while let Some(row) = rows.next().map_err(|e| pg_err(op, &e))? {
                    batch.push(convert(&row)?);
                    if batch.len() == STREAM_BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(STREAM_BATCH));
                        if tx.send(full).is_err() {
                            // The reader stopped (its sink failed): so do we.
                            return Ok(());
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                Ok(())
            })
            .map_err(closed)?;
        let mut failed = None;
        for batch in rx.iter() {
            if let Err(e) = sink(batch) {
                failed = Some(e);
                break;
            }
        }
        drop(rx);
        let produced = finished.recv().map_err(|_| {
            StateError::Postgres(format!(
                "the PostgreSQL connection to {} is closed",
                self.pg.url()
            ))
        })?;
        match failed {
            Some(e) => Err(e),
            None => produced,
        }
    }
}

/// Deduplicated snapshot entries as column arrays (the last entry of a key wins, as when
/// SQLite writes them one by one).
type SnapshotArrays = (
    Vec<Vec<u8>>,
    Vec<String>,
    Vec<Option<i64>>,
    Vec<i64>,
    Vec<String>,
    Vec<bool>,
);

fn snapshot_arrays(entries: &[(MemberKey, SnapshotEntry)]) -> SnapshotArrays {
    let mut last: HashMap<MemberKey, usize> = HashMap::with_capacity(entries.len());
    for (i, (k, _)) in entries.iter().enumerate() {
        last.insert(*k, i);
    }
    let mut out: SnapshotArrays = Default::default();
    for (i, (k, e)) in entries.iter().enumerate() {
        if last[k] != i {
            continue;
        }
        out.0.push(k.0.to_vec());
        out.1.push(e.email.clone());
        out.2.push(e.fingerprint.map(|f| f as i64));
        out.3.push(e.tags.0 as i64);
        out.4.push(e.status.as_str().to_string());
        out.5.push(e.owned);
    }
    out
}

impl StateBackend for PgState {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> String {
        self.pg.url().to_string()
    }

    fn sqlite(&self) -> Option<&Connection> {
        None
    }

    fn sqlite_mut(&mut self) -> Option<&mut Connection> {
        None
    }

    // --- schema ---

    fn schema_version(&self) -> Result<u32> {
        self.call(|c| {
            let op = "read the schema version";
            let recorded: bool = c
                .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
                .map_err(|e| pg_err(op, &e))?
                .get(0);
            if !recorded {
                return Ok(0);
            }
            let v: i32 = c
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    &[],
                )
                .map_err(|e| pg_err(op, &e))?
                .get(0);
            Ok(v as u32)
        })
    }

    /// One transaction under an advisory lock: workers starting together apply each
    /// migration once, the others wait and find nothing left to do.
    fn migrate(&mut self) -> Result<MigrationReport> {
        self.call(|c| {
            let op = "migrate the schema";
            let e = |e: postgres::Error| pg_err(op, &e);
            let mut tx = c.transaction().map_err(e)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .map_err(e)?;
            tx.batch_execute(schema::POSTGRES_MIGRATIONS_TABLE)
                .map_err(e)?;
            let from: i32 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    &[],
                )
                .map_err(e)?
                .get(0);
            let from = from as u32;
            let latest = schema::latest("postgres");
            if from > latest {
                return Err(schema::too_new(from, latest));
            }
            let mut applied = Vec::new();
            for m in schema::POSTGRES.iter().filter(|m| m.version > from) {
                tx.batch_execute(m.sql).map_err(|err| {
                    StateError::Postgres(format!(
                        "migration {} ({}): {}",
                        m.version,
                        m.name,
                        error_text(&err)
                    ))
                })?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    &[&(m.version as i32), &m.name, &now()],
                )
                .map_err(e)?;
                applied.push((m.version, m.name.to_string()));
            }
            tx.commit().map_err(e)?;
            Ok(MigrationReport {
                backend: "postgres",
                from_version: from,
                to_version: latest,
                applied,
            })
        })
    }

    // --- connections ---

    fn add_connection(&self, c: &ConnectionRecord) -> Result<()> {
        self.execute_unique(
            "add a connection",
            "INSERT INTO connections (name, display_name, base_url, credential_kind, sealed_secret, consent_by, consent_at, shared_with_contributors, export_user, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            params![
                c.name.clone(),
                c.display_name.clone(),
                c.base_url.clone(),
                c.credential_kind.clone(),
                c.sealed_secret.clone(),
                c.consent_by.clone(),
                c.consent_at.clone(),
                c.shared_with_contributors,
                c.export_user.clone(),
                c.created_at.clone()
            ],
            msg::connection_exists(&c.name),
        )?;
        Ok(())
    }

    fn connection(&self, name: &str) -> Result<ConnectionRecord> {
        self.query_opt(
            "read a connection",
            format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE name = $1"),
            params![name.to_string()],
        )?
        .map(|r| connection_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_connection_listed(name))
    }

    fn connections(&self) -> Result<Vec<ConnectionRecord>> {
        self.query(
            "list connections",
            format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY name"),
            params![],
        )?
        .iter()
        .map(connection_row)
        .collect()
    }

    fn update_connection(&self, c: &ConnectionRecord) -> Result<()> {
        let n = self.execute(
            "update a connection",
            "UPDATE connections SET display_name = $2, base_url = $3, credential_kind = $4, sealed_secret = $5, consent_by = $6, consent_at = $7, shared_with_contributors = $8, export_user = $9 WHERE name = $1",
            params![
                c.name.clone(),
                c.display_name.clone(),
                c.base_url.clone(),
                c.credential_kind.clone(),
                c.sealed_secret.clone(),
                c.consent_by.clone(),
                c.consent_at.clone(),
                c.shared_with_contributors,
                c.export_user.clone()
            ],
        )?;
        if n == 0 {
            return Err(msg::no_connection(&c.name));
        }
        Ok(())
    }

    fn remove_connection(&self, name: &str) -> Result<()> {
        let n = self.execute(
            "remove a connection",
            "DELETE FROM connections WHERE name = $1",
            params![name.to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_connection(name));
        }
        Ok(())
    }

    // --- segments ---

    fn add_segment_from(&self, name: &str, predicate: &str, source: Option<&str>) -> Result<()> {
        if let Some(source) = source {
            self.profile_source(source)?;
        }
        self.execute_unique(
            "add a segment",
            "INSERT INTO segments (name, predicate, source, created_at) VALUES ($1, $2, $3, $4)",
            params![
                name.to_string(),
                predicate.to_string(),
                source.map(str::to_string),
                now()
            ],
            msg::segment_exists(name),
        )?;
        Ok(())
    }

    fn segment(&self, name: &str) -> Result<SegmentRecord> {
        self.query_opt(
            "read a segment",
            "SELECT name, predicate, created_at, source FROM segments WHERE name = $1".into(),
            params![name.to_string()],
        )?
        .map(|r| segment_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_segment_listed(name))
    }

    fn segments(&self) -> Result<Vec<SegmentRecord>> {
        self.query(
            "list segments",
            "SELECT name, predicate, created_at, source FROM segments ORDER BY name".into(),
            params![],
        )?
        .iter()
        .map(segment_row)
        .collect()
    }

    fn set_segment_predicate(&self, name: &str, predicate: &str) -> Result<()> {
        let n = self.execute(
            "change a segment",
            "UPDATE segments SET predicate = $2 WHERE name = $1",
            params![name.to_string(), predicate.to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_segment(name));
        }
        Ok(())
    }

    fn remove_segment(&self, name: &str) -> Result<()> {
        msg::check_segment_unused(name, &self.exports()?)?;
        let n = self.execute(
            "remove a segment",
            "DELETE FROM segments WHERE name = $1",
            params![name.to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_segment(name));
        }
        Ok(())
    }

    // --- profile sources ---

    fn add_profile_source(&self, p: &ProfileSourceRecord) -> Result<()> {
        msg::check_relation_kind(&p.relation_kind)?;
        self.execute_unique(
            "add a profile source",
            "INSERT INTO profile_sources (name, kind, sealed_url, relation_kind, relation, key_column, email_hint, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            params![
                p.name.clone(),
                p.kind.clone(),
                p.sealed_url.clone(),
                p.relation_kind.clone(),
                p.relation.clone(),
                p.key_column.clone(),
                p.email_hint.clone(),
                p.created_at.clone()
            ],
            msg::profile_source_exists(&p.name),
        )?;
        Ok(())
    }

    fn profile_source(&self, name: &str) -> Result<ProfileSourceRecord> {
        self.query_opt(
            "read a profile source",
            format!("SELECT {PROFILE_SOURCE_COLUMNS} FROM profile_sources WHERE name = $1"),
            params![name.to_string()],
        )?
        .map(|r| profile_source_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_profile_source(name))
    }

    fn profile_sources(&self) -> Result<Vec<ProfileSourceRecord>> {
        self.query(
            "list profile sources",
            format!("SELECT {PROFILE_SOURCE_COLUMNS} FROM profile_sources ORDER BY name"),
            params![],
        )?
        .iter()
        .map(profile_source_row)
        .collect()
    }

    fn remove_profile_source(&self, name: &str) -> Result<()> {
        let users = self
            .query(
                "remove a profile source",
                "SELECT name FROM segments WHERE source = $1 ORDER BY name".into(),
                params![name.to_string()],
            )?
            .iter()
            .map(|r| get::<String>(r, 0))
            .collect::<Result<Vec<_>>>()?;
        if !users.is_empty() {
            return Err(msg::profile_source_in_use(name, &users));
        }
        let n = self.execute(
            "remove a profile source",
            "DELETE FROM profile_sources WHERE name = $1",
            params![name.to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_profile_source(name));
        }
        Ok(())
    }

    // --- exports ---

    fn add_export(&self, e: &ExportConfig) -> Result<()> {
        let config = serde_json::to_string(e).expect("config serialises");
        self.execute_unique(
            "add an export",
            "INSERT INTO exports (name, config, created_at) VALUES ($1, $2, $3)",
            params![e.name.clone(), config, now()],
            msg::export_exists(&e.name),
        )?;
        Ok(())
    }

    fn export(&self, name: &str) -> Result<ExportConfig> {
        let row = self
            .query_opt(
                "read an export",
                "SELECT config FROM exports WHERE name = $1".into(),
                params![name.to_string()],
            )?
            .ok_or_else(|| msg::no_export_listed(name))?;
        msg::parse_export(name, &get::<String>(&row, 0)?)
    }

    fn exports(&self) -> Result<Vec<ExportConfig>> {
        self.query(
            "list exports",
            "SELECT name, config FROM exports ORDER BY name".into(),
            params![],
        )?
        .iter()
        .map(|r| msg::parse_export(&get::<String>(r, 0)?, &get::<String>(r, 1)?))
        .collect()
    }

    fn replace_export(&mut self, e: &ExportConfig) -> Result<()> {
        let new = e.clone();
        self.call(move |c| {
            let op = "replace an export";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            let old = tx
                .query_opt(
                    "SELECT config FROM exports WHERE name = $1 FOR UPDATE",
                    &[&new.name],
                )
                .map_err(pe)?
                .ok_or_else(|| msg::no_export_listed(&new.name))?;
            let old = msg::parse_export(&new.name, &get::<String>(&old, 0)?)?;
            let config = serde_json::to_string(&new).expect("config serialises");
            tx.execute(
                "UPDATE exports SET config = $2 WHERE name = $1",
                &[&new.name, &config],
            )
            .map_err(pe)?;
            if old.connection != new.connection || old.audience_id != new.audience_id {
                for table in ["snapshot", "export_tags", "sync_marks", "create_intents"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE export = $1"),
                        &[&new.name],
                    )
                    .map_err(pe)?;
                }
            }
            tx.commit().map_err(pe)
        })
    }

    fn remove_export(&mut self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.call(move |c| {
            let op = "remove an export";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            let n = tx
                .execute("DELETE FROM exports WHERE name = $1", &[&name])
                .map_err(pe)?;
            if n == 0 {
                return Err(msg::no_export(&name));
            }
            for table in ["snapshot", "export_tags", "sync_marks", "create_intents"] {
                tx.execute(&format!("DELETE FROM {table} WHERE export = $1"), &[&name])
                    .map_err(pe)?;
            }
            tx.commit().map_err(pe)
        })
    }

    // --- tag dictionary ---

    fn tag_bits(&mut self, export: &str, tags: &[String]) -> Result<Vec<usize>> {
        let (export, tags) = (export.to_string(), tags.to_vec());
        self.call(move |c| {
            let op = "assign tag bits";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            // Two processes naming new tags of one export at once take turns.
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&TAG_LOCK_CLASS, &export],
            )
            .map_err(pe)?;
            let mut bits = Vec::with_capacity(tags.len());
            for tag in &tags {
                let bit: Option<i64> = tx
                    .query_opt(
                        "SELECT bit FROM export_tags WHERE export = $1 AND tag = $2",
                        &[&export, tag],
                    )
                    .map_err(pe)?
                    .map(|r| r.get(0));
                let bit = match bit {
                    Some(b) => b,
                    None => {
                        let next: i64 = tx
                            .query_one(
                                "SELECT COALESCE(MAX(bit) + 1, 0) FROM export_tags WHERE export = $1",
                                &[&export],
                            )
                            .map_err(pe)?
                            .get(0);
                        if next as usize >= TagSet::MAX {
                            return Err(msg::too_many_tags(&export));
                        }
                        tx.execute(
                            "INSERT INTO export_tags (export, bit, tag) VALUES ($1, $2, $3)",
                            &[&export, &next, tag],
                        )
                        .map_err(pe)?;
                        next
                    }
                };
                bits.push(bit as usize);
            }
            tx.commit().map_err(pe)?;
            Ok(bits)
        })
    }

    fn tag_names(&self, export: &str) -> Result<HashMap<usize, String>> {
        self.query(
            "read tag names",
            "SELECT bit, tag FROM export_tags WHERE export = $1".into(),
            params![export.to_string()],
        )?
        .iter()
        .map(|r| Ok((get::<i64>(r, 0)? as usize, get::<String>(r, 1)?)))
        .collect()
    }

    // --- snapshot ---

    fn snapshot(&self, export: &str) -> Result<HashMap<MemberKey, SnapshotEntry>> {
        let mut out = HashMap::new();
        self.stream(
            "read a snapshot",
            format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshot WHERE export = $1"),
            params![export.to_string()],
            snapshot_row,
            &mut |batch| {
                out.extend(batch);
                Ok(())
            },
        )?;
        Ok(out)
    }

    fn save_snapshot(
        &mut self,
        export: &str,
        entries: &[(MemberKey, SnapshotEntry)],
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let (keys, emails, fps, tags, statuses, owned) = snapshot_arrays(entries);
        self.execute(
            "save a snapshot checkpoint",
            "INSERT INTO snapshot (export, key, email, fingerprint, tags, status, owned)
             SELECT $1::text, * FROM unnest($2::bytea[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::bool[])
             ON CONFLICT (export, key) DO UPDATE SET email = excluded.email, fingerprint = excluded.fingerprint,
               tags = excluded.tags, status = excluded.status, owned = excluded.owned",
            params![export.to_string(), keys, emails, fps, tags, statuses, owned],
        )?;
        Ok(())
    }

    fn snapshot_entries(
        &self,
        export: &str,
        keys: &[MemberKey],
    ) -> Result<HashMap<MemberKey, SnapshotEntry>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.0.to_vec()).collect();
        self.query(
            "read snapshot entries",
            format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshot WHERE export = $1 AND key = ANY($2)"),
            params![export.to_string(), keys],
        )?
        .iter()
        .map(snapshot_row)
        .collect()
    }

    fn has_snapshot(&self, export: &str) -> Result<bool> {
        get(
            &self.query_one(
                "read a snapshot",
                "SELECT EXISTS (SELECT 1 FROM snapshot WHERE export = $1)".into(),
                params![export.to_string()],
            )?,
            0,
        )
    }

    fn snapshot_in_key_order(&self, export: &str, sink: &mut SnapshotSink<'_>) -> Result<()> {
        self.stream(
            "read a snapshot",
            format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshot WHERE export = $1 ORDER BY key"),
            params![export.to_string()],
            snapshot_row,
            &mut |batch| sink(&batch),
        )
    }

    // --- create intents ---

    fn record_create_intents(&mut self, export: &str, members: &[(MemberKey, &str)]) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = members.iter().map(|(k, _)| k.0.to_vec()).collect();
        let emails: Vec<String> = members.iter().map(|(_, e)| e.to_string()).collect();
        self.execute(
            "record create intents",
            "INSERT INTO create_intents (export, key, email)
             SELECT $1::text, * FROM unnest($2::bytea[], $3::text[]) ON CONFLICT (export, key) DO NOTHING",
            params![export.to_string(), keys, emails],
        )?;
        Ok(())
    }

    fn create_intents(&self, export: &str) -> Result<Vec<(MemberKey, String)>> {
        self.query(
            "read create intents",
            "SELECT key, email FROM create_intents WHERE export = $1".into(),
            params![export.to_string()],
        )?
        .iter()
        .map(|r| Ok((key_of(get(r, 0)?, "create intent")?, get(r, 1)?)))
        .collect()
    }

    fn forget_create_intents(&mut self, export: &str, keys: &[MemberKey]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.0.to_vec()).collect();
        self.execute(
            "forget create intents",
            "DELETE FROM create_intents WHERE export = $1 AND key = ANY($2)",
            params![export.to_string(), keys],
        )?;
        Ok(())
    }

    fn clear_create_intents(&self, export: &str) -> Result<()> {
        self.execute(
            "clear create intents",
            "DELETE FROM create_intents WHERE export = $1",
            params![export.to_string()],
        )?;
        Ok(())
    }

    fn audience_read_at(&self, export: &str) -> Result<Option<String>> {
        self.query_opt(
            "read a sync mark",
            "SELECT audience_read_at FROM sync_marks WHERE export = $1".into(),
            params![export.to_string()],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn set_audience_read_at(&self, export: &str, at: &str) -> Result<()> {
        self.execute(
            "write a sync mark",
            "INSERT INTO sync_marks (export, audience_read_at) VALUES ($1, $2) ON CONFLICT (export) DO UPDATE SET audience_read_at = excluded.audience_read_at",
            params![export.to_string(), at.to_string()],
        )?;
        Ok(())
    }

    // --- runs ---

    fn exports_with_running_runs(&self) -> Result<Vec<String>> {
        self.query(
            "list running runs",
            "SELECT DISTINCT export FROM runs WHERE outcome = 'running' ORDER BY export".into(),
            params![],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    fn interrupt_stale_runs(&self, export: &str) -> Result<usize> {
        Ok(self.execute(
            "mark stale runs interrupted",
            "UPDATE runs SET outcome = 'interrupted', finished_at = COALESCE(finished_at, $2), error = COALESCE(error, 'the process stopped before the run finished; the next run resumes from its checkpoint') WHERE export = $1 AND outcome = 'running'",
            params![export.to_string(), now()],
        )? as usize)
    }

    fn start_run(&self, export: &str, trigger: &str) -> Result<i64> {
        get(
            &self.query_one(
                "record a run",
                "INSERT INTO runs (export, trigger, started_at, outcome, counts) VALUES ($1, $2, $3, 'running', $4) RETURNING id".into(),
                params![
                    export.to_string(),
                    trigger.to_string(),
                    now(),
                    serde_json::to_string(&RunCounts::default()).unwrap()
                ],
            )?,
            0,
        )
    }

    fn update_run_counts(&self, id: i64, counts: &RunCounts) -> Result<()> {
        self.execute(
            "update a run's counts",
            "UPDATE runs SET counts = $2 WHERE id = $1",
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
        self.execute(
            "finish a run",
            "UPDATE runs SET outcome = $2, counts = $3, error = $4, finished_at = $5 WHERE id = $1",
            params![
                id,
                outcome.as_str().to_string(),
                serde_json::to_string(counts).unwrap(),
                error.map(str::to_string),
                now()
            ],
        )?;
        Ok(())
    }

    fn add_run_errors(&mut self, id: i64, errors: &[RecordError]) -> Result<()> {
        if errors.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = errors.iter().map(|e| e.profile_key.clone()).collect();
        let emails: Vec<String> = errors.iter().map(|e| e.email.clone()).collect();
        let reasons: Vec<String> = errors.iter().map(|e| e.reason.clone()).collect();
        self.call(move |c| {
            let op = "record a run's errors";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            // Writers of one run's errors take turns on its row.
            tx.execute("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", &[&id])
                .map_err(pe)?;
            let start: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM run_errors WHERE run_id = $1",
                    &[&id],
                )
                .map_err(pe)?
                .get(0);
            tx.execute(
                "INSERT INTO run_errors (run_id, seq, profile_key, email, reason)
                 SELECT $1::bigint, $2::bigint + u.n - 1, u.k, u.e, u.r
                 FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS u(k, e, r, n)",
                &[&id, &start, &keys, &emails, &reasons],
            )
            .map_err(pe)?;
            tx.commit().map_err(pe)
        })
    }

    fn runs(&self, export: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        self.query(
            "list runs",
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE ($1::text IS NULL OR export = $1) ORDER BY id DESC LIMIT $2"),
            params![export.map(str::to_string), limit as i64],
        )?
        .iter()
        .map(run_row)
        .collect()
    }

    fn run(&self, id: i64) -> Result<RunRecord> {
        self.query_opt(
            "read a run",
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
            params![id],
        )?
        .map(|r| run_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_run(id))
    }

    fn run_errors(&self, id: i64) -> Result<Vec<RecordError>> {
        let mut out = Vec::new();
        self.stream(
            "read a run's errors",
            "SELECT profile_key, email, reason FROM run_errors WHERE run_id = $1 ORDER BY seq"
                .into(),
            params![id],
            record_error_row,
            &mut |batch| {
                out.extend(batch);
                Ok(())
            },
        )?;
        Ok(out)
    }

    fn run_error_count(&self, id: i64) -> Result<u64> {
        Ok(get::<i64>(
            &self.query_one(
                "count a run's errors",
                "SELECT COUNT(*) FROM run_errors WHERE run_id = $1".into(),
                params![id],
            )?,
            0,
        )? as u64)
    }

    fn run_errors_head(&self, id: i64, limit: usize) -> Result<Vec<RecordError>> {
        self.query(
            "read a run's errors",
            "SELECT profile_key, email, reason FROM run_errors WHERE run_id = $1 ORDER BY seq LIMIT $2".into(),
            params![id, limit as i64],
        )?
        .iter()
        .map(record_error_row)
        .collect()
    }

    /// PostgreSQL checks its own pages; this checks that the database answers and holds the
    /// schema.
    fn integrity_check(&self) -> Result<String> {
        self.query_one(
            "check the database",
            "SELECT COUNT(*) FROM schema_migrations".into(),
            params![],
        )?;
        Ok("ok".to_string())
    }

    // --- leases (the database's clock) ---

    fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let n = self.call({
            let (name, holder) = (name.to_string(), holder.to_string());
            move |c| {
                c.execute(
                    &format!(
                        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, {NOW_MS} + $3)
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                         WHERE leases.holder = excluded.holder OR leases.expires_at <= {NOW_MS}"
                    ),
                    &[&name, &holder, &ttl_millis(ttl)],
                )
                .map_err(|e| pg_err("take a lease", &e))
            }
        })?;
        Ok(n == 1)
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.execute(
            "release a lease",
            "DELETE FROM leases WHERE name = $1 AND holder = $2",
            params![name.to_string(), holder.to_string()],
        )?;
        Ok(())
    }

    // --- run queue (the database's clock) ---

    fn enqueue_run(
        &self,
        export: &str,
        trigger: &str,
        requested_by: &str,
        tick: Option<&str>,
    ) -> Result<Option<i64>> {
        self.query_opt(
            "queue a run",
            "INSERT INTO run_queue (export, trigger, requested_by, tick, requested_at, state) VALUES ($1, $2, $3, $4, $5, 'pending')
             ON CONFLICT (export, tick) DO NOTHING RETURNING id".into(),
            params![
                export.to_string(),
                trigger.to_string(),
                requested_by.to_string(),
                tick.map(str::to_string),
                now()
            ],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    /// Claims take turns (an advisory lock), so that two workers never start runs of the
    /// same export; the row itself is locked with `FOR UPDATE SKIP LOCKED`.
    fn claim_queued_run(&self, worker: &str, ttl: Duration) -> Result<Option<QueuedRun>> {
        let worker = worker.to_string();
        let ttl = ttl_millis(ttl);
        self.call(move |c| {
            let op = "claim a queued run";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&QUEUE_LOCK])
                .map_err(pe)?;
            let id: Option<i64> = tx
                .query_opt(
                    &format!(
                        "SELECT q.id FROM run_queue q
                         WHERE (q.state = 'pending' OR (q.state = 'claimed' AND q.lease_until <= {NOW_MS}))
                           AND NOT EXISTS (SELECT 1 FROM run_queue o WHERE o.export = q.export AND o.id <> q.id
                                           AND o.state = 'claimed' AND o.lease_until > {NOW_MS})
                         ORDER BY q.id LIMIT 1 FOR UPDATE OF q SKIP LOCKED"
                    ),
                    &[],
                )
                .map_err(pe)?
                .map(|r| r.get(0));
            let Some(id) = id else {
                tx.commit().map_err(pe)?;
                return Ok(None);
            };
            let row = tx
                .query_one(
                    &format!(
                        "UPDATE run_queue SET state = 'claimed', worker = $2, lease_until = {NOW_MS} + $3
                         WHERE id = $1 RETURNING {QUEUE_COLUMNS}"
                    ),
                    &[&id, &worker, &ttl],
                )
                .map_err(pe)?;
            tx.commit().map_err(pe)?;
            queue_row(&row).map(Some)
        })
    }

    fn renew_queued_run(&self, id: i64, worker: &str, ttl: Duration) -> Result<bool> {
        let worker = worker.to_string();
        let ttl = ttl_millis(ttl);
        let n = self.call(move |c| {
            c.execute(
                &format!(
                    "UPDATE run_queue SET lease_until = {NOW_MS} + $3 WHERE id = $1 AND worker = $2 AND state = 'claimed'"
                ),
                &[&id, &worker, &ttl],
            )
            .map_err(|e| pg_err("renew a queued run", &e))
        })?;
        Ok(n == 1)
    }

    fn complete_queued_run(&self, id: i64, worker: &str, run_id: Option<i64>) -> Result<()> {
        let n = self.execute(
            "complete a queued run",
            "UPDATE run_queue SET state = 'done', run_id = $3, lease_until = NULL WHERE id = $1 AND worker = $2 AND state = 'claimed'",
            params![id, worker.to_string(), run_id],
        )?;
        if n == 1 {
            return Ok(());
        }
        let exists: bool = get(
            &self.query_one(
                "complete a queued run",
                "SELECT EXISTS (SELECT 1 FROM run_queue WHERE id = $1)".into(),
                params![id],
            )?,
            0,
        )?;
        Err(if exists {
            msg::queued_run_not_held(id, worker)
        } else {
            msg::no_queued_run(id)
        })
    }

    fn queued_runs(&self, export: Option<&str>) -> Result<Vec<QueuedRun>> {
        self.query(
            "list queued runs",
            format!("SELECT {QUEUE_COLUMNS} FROM run_queue WHERE state <> 'done' AND ($1::text IS NULL OR export = $1) ORDER BY id"),
            params![export.map(str::to_string)],
        )?
        .iter()
        .map(queue_row)
        .collect()
    }

    // --- people ---

    fn add_user(&self, name: &str, role: Role, password_hash: &str) -> Result<()> {
        self.execute_unique(
            "add a user",
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            params![
                name.to_string(),
                role.as_str().to_string(),
                password_hash.to_string(),
                now()
            ],
            msg::user_exists(name),
        )?;
        Ok(())
    }

    fn user(&self, name: &str) -> Result<UserRecord> {
        self.query_opt(
            "read a user",
            "SELECT name, role, created_at FROM users WHERE name = $1".into(),
            params![name.to_string()],
        )?
        .map(|r| user_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_user(name))
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        self.query(
            "list users",
            "SELECT name, role, created_at FROM users ORDER BY name".into(),
            params![],
        )?
        .iter()
        .map(user_row)
        .collect()
    }

    fn password_hash(&self, name: &str) -> Result<Option<String>> {
        self.query_opt(
            "read a password hash",
            "SELECT password_hash FROM users WHERE name = $1".into(),
            params![name.to_string()],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn set_password_hash(&self, name: &str, hash: &str) -> Result<()> {
        let (name, hash) = (name.to_string(), hash.to_string());
        self.call(move |c| {
            let op = "change a password";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            let n = tx
                .execute(
                    "UPDATE users SET password_hash = $2 WHERE name = $1",
                    &[&name, &hash],
                )
                .map_err(pe)?;
            if n == 0 {
                return Err(msg::no_user(&name));
            }
            tx.execute("DELETE FROM sessions WHERE \"user\" = $1", &[&name])
                .map_err(pe)?;
            tx.commit().map_err(pe)
        })
    }

    fn set_role(&self, name: &str, role: Role) -> Result<()> {
        let n = self.execute(
            "change a role",
            "UPDATE users SET role = $2 WHERE name = $1",
            params![name.to_string(), role.as_str().to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_user(name));
        }
        Ok(())
    }

    fn remove_user(&self, name: &str) -> Result<()> {
        let n = self.execute(
            "remove a user",
            "DELETE FROM users WHERE name = $1",
            params![name.to_string()],
        )?;
        if n == 0 {
            return Err(msg::no_user(name));
        }
        Ok(())
    }

    fn count_admins(&self) -> Result<u64> {
        Ok(get::<i64>(
            &self.query_one(
                "count admins",
                "SELECT COUNT(*) FROM users WHERE role = 'admin'".into(),
                params![],
            )?,
            0,
        )? as u64)
    }

    fn add_token(&self, user: &str, label: &str, token_hash: &[u8]) -> Result<i64> {
        get(
            &self.query_one(
                "add an API token",
                "INSERT INTO api_tokens (\"user\", label, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id".into(),
                params![user.to_string(), label.to_string(), token_hash.to_vec(), now()],
            )?,
            0,
        )
    }

    fn token_user(&self, token_hash: &[u8]) -> Result<Option<UserRecord>> {
        self.query_opt(
            "check an API token",
            "WITH t AS (UPDATE api_tokens SET last_used_at = $2 WHERE token_hash = $1 RETURNING \"user\")
             SELECT u.name, u.role, u.created_at FROM t JOIN users u ON u.name = t.\"user\"".into(),
            params![token_hash.to_vec(), now()],
        )?
        .map(|r| user_row(&r))
        .transpose()
    }

    fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>> {
        self.query(
            "list API tokens",
            "SELECT id, \"user\", label, created_at, last_used_at FROM api_tokens WHERE ($1::text IS NULL OR \"user\" = $1) ORDER BY id".into(),
            params![user.map(str::to_string)],
        )?
        .iter()
        .map(token_row)
        .collect()
    }

    fn revoke_token(&self, id: i64) -> Result<TokenRecord> {
        self.query_opt(
            "revoke an API token",
            "DELETE FROM api_tokens WHERE id = $1 RETURNING id, \"user\", label, created_at, last_used_at".into(),
            params![id],
        )?
        .map(|r| token_row(&r))
        .transpose()?
        .ok_or_else(|| msg::no_token(id))
    }

    fn add_session(&self, id_hash: &[u8], user: &str, csrf: &str, expires_at: &str) -> Result<()> {
        let (id_hash, user, csrf, expires_at) = (
            id_hash.to_vec(),
            user.to_string(),
            csrf.to_string(),
            expires_at.to_string(),
        );
        self.call(move |c| {
            let op = "open a session";
            let pe = |err: postgres::Error| pg_err(op, &err);
            let mut tx = c.transaction().map_err(pe)?;
            tx.execute("DELETE FROM sessions WHERE expires_at < $1", &[&now()])
                .map_err(pe)?;
            tx.execute(
                "INSERT INTO sessions (id_hash, \"user\", csrf, expires_at) VALUES ($1, $2, $3, $4)",
                &[&id_hash, &user, &csrf, &expires_at],
            )
            .map_err(pe)?;
            tx.commit().map_err(pe)
        })
    }

    fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRecord>> {
        self.query_opt(
            "read a session",
            "SELECT u.name, u.role, u.created_at, s.csrf, s.expires_at FROM sessions s JOIN users u ON u.name = s.\"user\" WHERE s.id_hash = $1 AND s.expires_at >= $2".into(),
            params![id_hash.to_vec(), now()],
        )?
        .map(|r| {
            Ok(SessionRecord {
                user: user_row(&r)?,
                csrf: get(&r, 3)?,
                expires_at: get(&r, 4)?,
            })
        })
        .transpose()
    }

    fn remove_session(&self, id_hash: &[u8]) -> Result<()> {
        self.execute(
            "close a session",
            "DELETE FROM sessions WHERE id_hash = $1",
            params![id_hash.to_vec()],
        )?;
        Ok(())
    }

    fn audit(&self, actor: &str, action: &str, target: &str, detail: &str) -> Result<()> {
        self.execute(
            "write the audit log",
            "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
            params![
                now(),
                actor.to_string(),
                action.to_string(),
                target.to_string(),
                detail.to_string()
            ],
        )?;
        Ok(())
    }

    fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        self.query(
            "read the audit log",
            "SELECT id, at, actor, action, target, detail FROM audit WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2".into(),
            params![before, limit as i64],
        )?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: get(r, 0)?,
                at: get(r, 1)?,
                actor: get(r, 2)?,
                action: get(r, 3)?,
                target: get(r, 4)?,
                detail: get(r, 5)?,
            })
        })
        .collect()
    }

    fn setting(&self, name: &str) -> Result<Option<String>> {
        self.query_opt(
            "read a setting",
            "SELECT value FROM settings WHERE name = $1".into(),
            params![name.to_string()],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn set_setting(&self, name: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.execute(
                "write a setting",
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name.to_string(), v.to_string()],
            )?,
            None => self.execute(
                "write a setting",
                "DELETE FROM settings WHERE name = $1",
                params![name.to_string()],
            )?,
        };
        Ok(())
    }

    fn add_oauth_flow(&self, state: &str, user: &str, request: &str) -> Result<()> {
        self.execute(
            "begin an OAuth flow",
            "INSERT INTO oauth_flows (state, \"user\", request, created_at) VALUES ($1, $2, $3, $4)",
            params![state.to_string(), user.to_string(), request.to_string(), now()],
        )?;
        Ok(())
    }

    fn take_oauth_flow(&self, state: &str) -> Result<Option<(String, String, String)>> {
        self.query_opt(
            "take an OAuth flow",
            "DELETE FROM oauth_flows WHERE state = $1 RETURNING \"user\", request, created_at"
                .into(),
            params![state.to_string()],
        )?
        .map(|r| Ok((get(&r, 0)?, get(&r, 1)?, get(&r, 2)?)))
        .transpose()
    }

    // --- rows, for copies ---

    fn copy_out(
        &self,
        table: &'static TableDef,
        sink: &mut dyn FnMut(Vec<Cell>) -> Result<()>,
    ) -> Result<()> {
        self.stream(
            "read a table",
            table.select_sql(),
            params![],
            move |row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| {
                        Cell::from_postgres(row, i, *kind).map_err(|e| pg_err(table.name, &e))
                    })
                    .collect::<Result<Vec<Cell>>>()
            },
            &mut |batch| batch.into_iter().try_for_each(&mut *sink),
        )
    }

    fn sequence_value(&self, table: &'static TableDef) -> Result<i64> {
        get(
            &self.query_one(
                "read an id sequence",
                "SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass), 0)".into(),
                params![table.name.to_string()],
            )?,
            0,
        )
    }

    fn import(&mut self) -> Result<Box<dyn Import + '_>> {
        self.call(|c| {
            c.batch_execute("BEGIN")
                .map_err(|e| pg_err("begin a copy", &e))
        })?;
        Ok(Box::new(PgImport {
            state: self,
            open: true,
        }))
    }
}

/// Rows written in one transaction (`BEGIN` ... `COMMIT` on the connection's thread; the
/// `&mut` borrow of the backend keeps anything else off the connection meanwhile). Dropped
/// before [`Import::commit`], it rolls back.
struct PgImport<'a> {
    state: &'a mut PgState,
    open: bool,
}

impl Import for PgImport<'_> {
    fn count(&mut self, table: &'static TableDef) -> Result<u64> {
        Ok(get::<i64>(
            &self.state.query_one(
                "count rows",
                format!("SELECT COUNT(*) FROM {}", table.name),
                params![],
            )?,
            0,
        )? as u64)
    }

    /// One binary `COPY` per batch.
    fn write(&mut self, table: &'static TableDef, rows: Vec<Vec<Cell>>) -> Result<()> {
        self.state.call(move |c| {
            let pe = |e: postgres::Error| pg_err(&format!("copy into {}", table.name), &e);
            let types: Vec<_> = table
                .columns
                .iter()
                .map(|(_, k)| postgres_type(*k))
                .collect();
            let sink = c
                .copy_in(&format!(
                    "COPY {} ({}) FROM STDIN (FORMAT binary)",
                    table.name,
                    table.column_list()
                ))
                .map_err(pe)?;
            let mut writer = BinaryCopyInWriter::new(sink, &types);
            for row in &rows {
                let values: Vec<&(dyn ToSql + Sync)> =
                    row.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                writer.write(&values).map_err(pe)?;
            }
            writer.finish().map_err(pe)?;
            Ok(())
        })
    }

    fn set_sequence(&mut self, table: &'static TableDef, value: i64) -> Result<()> {
        self.state.call(move |c| {
            let sql = format!(
                "SELECT GREATEST($1::bigint, (SELECT COALESCE(MAX(id), 0) FROM {}))",
                table.name
            );
            let pe = |e: postgres::Error| pg_err("set an id sequence", &e);
            let last: i64 = c.query_one(&sql, &[&value]).map_err(pe)?.get(0);
            // The next id is `last + 1` (1 for a sequence never used).
            c.execute(
                "SELECT setval(pg_get_serial_sequence($1, 'id'), GREATEST($2::bigint, 1), $2::bigint > 0)",
                &[&table.name, &last],
            )
            .map_err(pe)?;
            Ok(())
        })
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.open = false;
        self.state.call(|c| {
            c.batch_execute("COMMIT")
                .map_err(|e| pg_err("commit a copy", &e))
        })
    }
}

impl Drop for PgImport<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.state.call(|c| {
                c.batch_execute("ROLLBACK")
                    .map_err(|e| pg_err("roll back a copy", &e))
            });
        }
    }
}
