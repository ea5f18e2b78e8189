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
use crate::pg::{error_text, PgError, PgThread, PgUse};

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

const CONNECTION_COLUMNS: &str = "name, display_name, base_url, credential_kind, sealed_secret, consent_by, consent_at, shared_with_contributors, export_user, created_at, account_id, slot_budget";
const PROFILE_SOURCE_COLUMNS: &str =
    "name, kind, sealed_url, relation_kind, relation, key_column, email_hint, created_at, cursor_column";
/// A run's columns, and its number among its export's runs (`runs_by_export` answers it).
const RUN_COLUMNS: &str = "id, export, trigger, started_at, finished_at, outcome, counts, error, \
     (SELECT count(*) FROM runs r2 WHERE r2.export = runs.export AND r2.id <= runs.id)";
const QUEUE_COLUMNS: &str =
    "id, export, trigger, requested_by, tick, requested_at, state, worker, lease_until, run_id";
const SNAPSHOT_COLUMNS: &str = "key, email, fingerprint, tags, status, owned, profiles";

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
            profiles: get(r, 6)?,
        },
    ))
}

fn connection_row(r: &Row) -> Result<ConnectionRecord> {
    Ok(ConnectionRecord {
        name: get(r, 0)?,
        display_name: get(r, 1)?,
        base_url: get(r, 2)?,
        credential_kind: {
            let text: String = get(r, 3)?;
            crate::mailchimp::CredentialKind::parse(&text).ok_or_else(|| {
                StateError::Config(format!(
                    "a connection has an unknown credential kind {text:?}"
                ))
            })?
        },
        sealed_secret: get(r, 4)?,
        consent_by: get(r, 5)?,
        consent_at: get(r, 6)?,
        shared_with_contributors: get(r, 7)?,
        export_user: get(r, 8)?,
        created_at: get(r, 9)?,
        account_id: get(r, 10)?,
        slot_budget: get::<Option<i32>>(r, 11)?.map(|b| b as u32),
    })
}

fn segment_row(r: &Row) -> Result<SegmentRecord> {
    Ok(SegmentRecord {
        name: get(r, 0)?,
        predicate: get(r, 1)?,
        created_at: get(r, 2)?,
        source: get(r, 3)?,
        rule: get(r, 4)?,
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
        cursor_column: get(r, 8)?,
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
        number: get(r, 8)?,
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
            pg: PgThread::connect(url, PgUse::State).map_err(closed)?,
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
    Vec<Option<String>>,
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
        out.6.push(e.profiles.clone());
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
            tx.batch_execute(schema::MIGRATIONS_TABLE).map_err(e)?;
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
            for m in migrations::MIGRATIONS.iter().filter(|m| m.version > from) {
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

// The store's aggregates, a file each (after the helpers and macros they use), and the
// schema's migrations.
mod connections;
mod exports;
pub(crate) mod migrations;
mod people;
mod queue;
mod runs;
mod segments;
pub mod slots;
mod snapshots;
mod suppressions;
