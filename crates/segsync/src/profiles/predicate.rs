//! Segment predicates: checked, previewed and evaluated by SQLite over the profiles table.
//!
//! Every predicate query runs on its own connection, opened read-only, with an authorizer that
//! allows nothing but reading the `profiles` table (and calling functions), and a progress
//! handler that interrupts the query once it has spent its time budget inside SQLite.

use super::error::{PredicateError, ProfileError, SelectError};
use super::infer::ColumnType;
use super::{
    quote_ident, table_columns, Column, Preview, ProfileRow, SelectStats, META_TABLE,
    PROFILES_TABLE,
};
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Statement};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// SQLite virtual machine steps between two looks at the clock.
const PROGRESS_STEPS: i32 = 1000;

/// The longest string, blob or row a predicate query may ever handle (SQLITE_LIMIT_LENGTH):
/// twice the longest record an import accepts.
const MAX_VALUE_BYTES: u64 = 2 * super::csv_input::MAX_RECORD_BYTES;
/// The least a predicate query may make, whatever the profiles.
const MIN_VALUE_BYTES: u64 = 4 * 1024 * 1024;

/// The longest value a predicate query may make over profiles whose longest row takes
/// `longest_row` bytes (unknown for stores imported before it was recorded): twice that (a
/// predicate may join columns), at least [`MIN_VALUE_BYTES`], at most [`MAX_VALUE_BYTES`].
/// SQLite stops a query that makes a longer one, so a predicate cannot build huge values
/// (`WITH RECURSIVE` doubling a string) and take the process's memory with them.
fn value_limit(longest_row: Option<u64>) -> u64 {
    longest_row.map_or(MAX_VALUE_BYTES, |n| {
        n.saturating_mul(2).clamp(MIN_VALUE_BYTES, MAX_VALUE_BYTES)
    })
}

/// Checks the predicate's text without SQLite: one expression, not several statements, and
/// no parenthesis that closes the `WHERE (...)` it is put in.
pub(crate) fn scan(predicate: &str) -> Result<(), PredicateError> {
    let b = predicate.as_bytes();
    let mut depth: i64 = 0;
    let mut tokens = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => match predicate[i + 2..].find("*/") {
                Some(end) => i += 2 + end + 2,
                None => return Err(PredicateError::Unterminated("/* comment")),
            },
            q @ (b'\'' | b'"' | b'`') => {
                // Quoted string or identifier; a doubled quote is an escaped quote.
                tokens += 1;
                i += 1;
                loop {
                    match b.get(i) {
                        None if q == b'\'' => return Err(PredicateError::Unterminated("string")),
                        None => return Err(PredicateError::Unterminated("quoted identifier")),
                        Some(&c) if c == q && b.get(i + 1) == Some(&q) => i += 2,
                        Some(&c) if c == q => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'[' => {
                tokens += 1;
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
                if i == b.len() {
                    return Err(PredicateError::Unterminated("quoted identifier"));
                }
                i += 1;
            }
            b';' => return Err(PredicateError::MultipleStatements),
            b'(' => {
                tokens += 1;
                depth += 1;
                i += 1;
            }
            b')' => {
                tokens += 1;
                depth -= 1;
                if depth < 0 {
                    return Err(PredicateError::Unbalanced("a ')' without its '('"));
                }
                i += 1;
            }
            _ => {
                tokens += 1;
                i += 1;
            }
        }
    }
    if tokens == 0 {
        return Err(PredicateError::Empty);
    }
    if depth > 0 {
        return Err(PredicateError::Unbalanced("a '(' without its ')'"));
    }
    Ok(())
}

/// `(predicate)`, on lines of its own so that a trailing `--` comment ends where it should.
fn wrap(predicate: &str) -> String {
    format!("(\n{predicate}\n)")
}

/// Time spent inside SQLite by one query, against a budget.
pub(crate) struct Clock {
    base: Instant,
    limit: Duration,
    /// Nanoseconds spent in SQLite before the current stretch.
    used: AtomicU64,
    /// Start of the current stretch in SQLite (nanoseconds from `base`), or `u64::MAX`.
    since: AtomicU64,
    fired: AtomicBool,
}

impl Clock {
    fn new(limit: Duration) -> Clock {
        Clock {
            base: Instant::now(),
            limit,
            used: AtomicU64::new(0),
            since: AtomicU64::new(u64::MAX),
            fired: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// SQLite is working from now on.
    fn resume(&self) {
        self.since.store(self.now(), Ordering::Relaxed);
    }

    /// SQLite has stopped working (the caller is busy with a row).
    fn pause(&self) {
        let since = self.since.swap(u64::MAX, Ordering::Relaxed);
        if since != u64::MAX {
            self.used
                .fetch_add(self.now().saturating_sub(since), Ordering::Relaxed);
        }
    }

    fn over(&self) -> bool {
        let since = self.since.load(Ordering::Relaxed);
        let running = if since == u64::MAX {
            0
        } else {
            self.now().saturating_sub(since)
        };
        let spent = self.used.load(Ordering::Relaxed) + running;
        spent > self.limit.as_nanos() as u64
    }
}

/// A read-only connection to the store, for predicate queries once [`Guarded::guard`] is called.
pub(crate) struct Guarded {
    pub conn: Connection,
    store: std::path::PathBuf,
    denied: Arc<Mutex<Option<String>>>,
    clock: Arc<Clock>,
    /// The longest value a query may make ([`value_limit`]).
    max_value: u64,
}

/// Opens the store read-only (no guard yet: for reading the schema and the meta table).
pub(crate) fn open_read_only(store: &Path) -> Result<Connection, ProfileError> {
    let err = |source| ProfileError::Sqlite {
        path: store.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        store,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    Ok(conn)
}

impl Guarded {
    pub(crate) fn open(store: &Path, limit: Duration) -> Result<Guarded, ProfileError> {
        let conn = open_read_only(store)?;
        let longest_row = meta_value(&conn, super::load::LONGEST_ROW)
            .map_err(|source| ProfileError::Sqlite {
                path: store.to_path_buf(),
                source,
            })?
            .and_then(|v| v.parse().ok());
        Ok(Guarded {
            conn,
            store: store.to_path_buf(),
            denied: Arc::new(Mutex::new(None)),
            clock: Arc::new(Clock::new(limit)),
            max_value: value_limit(longest_row),
        })
    }

    fn store_error(&self, source: rusqlite::Error) -> ProfileError {
        ProfileError::Sqlite {
            path: self.store.clone(),
            source,
        }
    }

    /// Installs the authorizer, the deadline and the size limit; from here on only predicate
    /// queries are prepared.
    pub(crate) fn guard(&self) {
        // No string or blob a predicate makes (`randomblob(1e9)`, `zeroblob(...)`, a string
        // doubled by a recursive query) may be longer than the profiles call for.
        if let Err(e) = self.conn.set_limit(
            rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH,
            i32::try_from(self.max_value).unwrap_or(i32::MAX),
        ) {
            tracing::warn!(error = %e, "cannot limit the length of values in predicate queries");
        }
        let denied = self.denied.clone();
        self.conn
            .authorizer(Some(move |ctx: AuthContext<'_>| match allowed(&ctx) {
                Ok(()) => Authorization::Allow,
                Err(what) => {
                    let mut slot = denied.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert(what);
                    Authorization::Deny
                }
            }));
        let clock = self.clock.clone();
        self.conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || {
                if clock.over() {
                    clock.fired.store(true, Ordering::Relaxed);
                    true
                } else {
                    false
                }
            }),
        );
    }

    /// Compiles a query built around predicates, which must not hold SQL parameters (`?`,
    /// `?1`, `:name`, `@name`, `$name`): nothing would bind them but the query's own.
    pub(crate) fn prepare_predicate(&self, sql: &str) -> Result<Statement<'_>, PredicateError> {
        let stmt = self.prepare(sql)?;
        if stmt.parameter_count() > 0 {
            return Err(PredicateError::NotAllowed(
                "SQL parameters (?, ?1, :name, @name, $name)".to_string(),
            ));
        }
        Ok(stmt)
    }

    /// Compiles a query built around predicates.
    pub(crate) fn prepare(&self, sql: &str) -> Result<Statement<'_>, PredicateError> {
        self.conn.prepare(sql).map_err(|e| {
            if let Some(what) = self.denied.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return PredicateError::NotAllowed(what);
            }
            PredicateError::Invalid(sqlite_message(&e))
        })
    }

    /// A failure while running a predicate query.
    fn run_error(&self, e: rusqlite::Error) -> PredicateError {
        if self.clock.fired.load(Ordering::Relaxed)
            || e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted)
        {
            return PredicateError::Timeout {
                limit: self.clock.limit,
            };
        }
        if e.sqlite_error_code() == Some(ErrorCode::TooBig) {
            return PredicateError::TooBig {
                limit: self.max_value,
            };
        }
        match e {
            rusqlite::Error::SqliteFailure(..) => PredicateError::Failed(sqlite_message(&e)),
            other => PredicateError::Store(self.store_error(other)),
        }
    }
}

/// SQLite's own message, without rusqlite's decoration (which would quote our whole query).
fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        rusqlite::Error::MultipleStatement => "more than one statement".to_string(),
        other => other.to_string(),
    }
}

/// The authorizer's rule: reading `profiles` (in the main database), selecting, calling
/// functions (but `load_extension`), reading `json_each` / `json_tree`, and recursive common
/// table expressions. Anything else is described and refused.
fn allowed(ctx: &AuthContext<'_>) -> Result<(), String> {
    match ctx.action {
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            Err("load_extension()".to_string())
        }
        AuthAction::Select | AuthAction::Function { .. } | AuthAction::Recursive => Ok(()),
        // The profiles, and the JSON table-valued functions (they read only their arguments).
        AuthAction::Read { table_name, .. }
            if [PROFILES_TABLE, "json_each", "json_tree"]
                .iter()
                .any(|t| table_name.eq_ignore_ascii_case(t))
                && ctx.database_name.is_none_or(|db| db == "main") =>
        {
            Ok(())
        }
        AuthAction::Read { table_name, .. } => Err(format!("reading table \"{table_name}\"")),
        AuthAction::Insert { table_name } => Err(format!("inserting into \"{table_name}\"")),
        AuthAction::Update { table_name, .. } => Err(format!("updating \"{table_name}\"")),
        AuthAction::Delete { table_name } => Err(format!("deleting from \"{table_name}\"")),
        AuthAction::Pragma { pragma_name, .. } => Err(format!("PRAGMA {pragma_name}")),
        AuthAction::Attach { .. } => Err("ATTACH".to_string()),
        AuthAction::Detach { .. } => Err("DETACH".to_string()),
        AuthAction::Transaction { .. } => Err("transaction control".to_string()),
        AuthAction::Savepoint { .. } => Err("SAVEPOINT".to_string()),
        AuthAction::AlterTable { .. } => Err("ALTER TABLE".to_string()),
        AuthAction::Analyze { .. } => Err("ANALYZE".to_string()),
        AuthAction::Reindex { .. } => Err("REINDEX".to_string()),
        AuthAction::CreateTable { table_name } | AuthAction::CreateTempTable { table_name } => {
            Err(format!("CREATE TABLE \"{table_name}\""))
        }
        AuthAction::DropTable { table_name } | AuthAction::DropTempTable { table_name } => {
            Err(format!("DROP TABLE \"{table_name}\""))
        }
        AuthAction::CreateIndex { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateView { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::CreateTrigger { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateVtable { .. } => Err("CREATE".to_string()),
        AuthAction::DropIndex { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropView { .. }
        | AuthAction::DropTempView { .. }
        | AuthAction::DropTrigger { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropVtable { .. } => Err("DROP".to_string()),
        ref other => Err(format!("{other:?}")),
    }
}

/// Refuses `predicate` unless it compiles as a pure read of the profiles table.
pub(crate) fn check(store: &Path, predicate: &str, limit: Duration) -> Result<(), PredicateError> {
    scan(predicate)?;
    let g = Guarded::open(store, limit)?;
    if table_columns(&g.conn, store)?.is_empty() {
        return Err(PredicateError::NoProfiles);
    }
    g.guard();
    g.prepare_predicate(&format!(
        "SELECT 1 FROM {PROFILES_TABLE} WHERE {}",
        wrap(predicate)
    ))?;
    Ok(())
}

pub(crate) fn preview(
    store: &Path,
    predicate: &str,
    sample: usize,
    limit: Duration,
) -> Result<Preview, PredicateError> {
    scan(predicate)?;
    let g = Guarded::open(store, limit)?;
    let columns = table_columns(&g.conn, store)?;
    if columns.is_empty() {
        return Err(PredicateError::NoProfiles);
    }
    g.guard();
    let mut count = g.prepare_predicate(&format!(
        "SELECT count(*) FROM {PROFILES_TABLE} WHERE {}",
        wrap(predicate)
    ))?;
    g.clock.resume();
    let matched: i64 = count
        .query_row([], |row| row.get(0))
        .map_err(|e| g.run_error(e))?;
    let mut sample_query = g.prepare(&format!(
        "SELECT * FROM {PROFILES_TABLE} WHERE {} LIMIT ?1",
        wrap(predicate)
    ))?;
    let mut rows = sample_query
        .query([i64::try_from(sample).unwrap_or(i64::MAX)])
        .map_err(|e| g.run_error(e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| g.run_error(e))? {
        let mut map = Map::new();
        for (i, column) in columns.iter().enumerate() {
            let value = row.get_ref(i).map_err(|e| g.run_error(e))?;
            map.insert(column.name.clone(), to_json(value, column.kind));
        }
        out.push(map);
    }
    Ok(Preview {
        count: matched as u64,
        columns: columns.into_iter().map(|c| c.name).collect(),
        sample: out,
    })
}

/// The key column recorded by the last import.
pub(crate) fn key_column(conn: &Connection) -> rusqlite::Result<Option<String>> {
    meta_value(conn, "key_column")
}

/// What the last import recorded as `name`, if anything.
fn meta_value(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    let has_meta: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [META_TABLE],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    conn.query_row(
        &format!("SELECT value FROM {META_TABLE} WHERE name = ?1"),
        [name],
        |r| r.get(0),
    )
    .optional()
}

/// Which profiles a [`select`] reads: all, or the rows keyed so (see [`super::changes`]),
/// as long as the store is still at `generation`.
pub(crate) struct Only<'a> {
    pub keys: &'a [String],
    pub generation: u64,
}

/// Rowids bound per restricted query.
const ROWID_CHUNK: usize = 256;

pub(crate) fn select<E, F>(
    store: &Path,
    columns: &[String],
    predicates: &[String],
    limit: Duration,
    only: Option<Only<'_>>,
    mut each: F,
) -> Result<SelectStats, SelectError<E>>
where
    F: FnMut(ProfileRow) -> Result<(), E>,
{
    let started = Instant::now();
    if predicates.is_empty() {
        return Err(SelectError::NoPredicates);
    }
    let g = Guarded::open(store, limit).map_err(SelectError::Store)?;
    let rowids = match only {
        Some(only) => Some(restricted_rowids(&g, &only)?),
        None => None,
    };
    let table = table_columns(&g.conn, store).map_err(SelectError::Store)?;
    let key = key_column(&g.conn).map_err(|e| SelectError::Store(g.store_error(e)))?;
    let (Some(key), false) = (key, table.is_empty()) else {
        return Err(SelectError::NoProfiles);
    };
    let wanted = wanted_columns(&table, columns)?;
    g.guard();
    check_each(&g, predicates)?;
    let restricted = rowids.is_some();
    let sql = select_sql(&key, &wanted, predicates, restricted);
    let mut stmt = g.prepare(&sql).map_err(|e| match e {
        PredicateError::Store(e) => SelectError::Store(e),
        other => SelectError::Failed(other.to_string()),
    })?;
    let mut stats = SelectStats {
        rows: 0,
        per_predicate: vec![0; predicates.len()],
        duration: Duration::ZERO,
    };
    let mut pass = Pass {
        g: &g,
        n_wanted: wanted.len(),
        kinds: wanted.iter().map(|c| c.kind).collect(),
        stats: &mut stats,
    };
    match rowids {
        None => pass.rows(&mut stmt, &mut each)?,
        Some(rowids) => {
            for chunk in rowids.chunks(ROWID_CHUNK) {
                for i in 0..ROWID_CHUNK {
                    let rid = chunk.get(i).copied().unwrap_or(-1);
                    stmt.raw_bind_parameter(i + 1, rid)
                        .map_err(|e| SelectError::Store(g.store_error(e)))?;
                }
                pass.rows(&mut stmt, &mut each)?;
            }
        }
    }
    stats.duration = started.elapsed();
    Ok(stats)
}

/// The rowids of the profiles a restricted pass reads, in a read transaction that the pass
/// keeps (so that it reads the generation it checked).
fn restricted_rowids<E>(g: &Guarded, only: &Only<'_>) -> Result<Vec<i64>, SelectError<E>> {
    let store_err = |e| SelectError::Store(g.store_error(e));
    g.conn.execute_batch("BEGIN").map_err(store_err)?;
    let now = super::changes::generation(&g.conn).map_err(store_err)?;
    if now != only.generation {
        return Err(SelectError::Failed(format!(
            "the profiles were imported again while the run read them (generation {now}, expected {}): run it again",
            only.generation
        )));
    }
    super::changes::rowids(&g.conn, only.keys).map_err(store_err)
}

/// The requested columns, as the table has them (names matched exactly, else ignoring case).
fn wanted_columns<'t, E>(
    table: &'t [Column],
    columns: &[String],
) -> Result<Vec<&'t Column>, SelectError<E>> {
    let mut wanted: Vec<&Column> = Vec::with_capacity(columns.len());
    for name in columns {
        let found = table
            .iter()
            .find(|c| c.name == *name)
            .or_else(|| table.iter().find(|c| c.name.eq_ignore_ascii_case(name)));
        match found {
            Some(c) => wanted.push(c),
            None => {
                return Err(SelectError::UnknownColumn {
                    column: name.clone(),
                    columns: table.iter().map(|c| c.name.clone()).collect(),
                })
            }
        }
    }
    Ok(wanted)
}

/// Each predicate on its own, so that an error names the one at fault.
fn check_each<E>(g: &Guarded, predicates: &[String]) -> Result<(), SelectError<E>> {
    for (index, predicate) in predicates.iter().enumerate() {
        let checked = scan(predicate).and_then(|()| {
            g.prepare_predicate(&format!(
                "SELECT 1 FROM {PROFILES_TABLE} WHERE {}",
                wrap(predicate)
            ))
            .map(drop)
        });
        if let Err(source) = checked {
            return Err(SelectError::Predicate {
                index,
                predicate: predicate.clone(),
                source,
            });
        }
    }
    Ok(())
}

/// `SELECT rowid, key, cols..., (p1), (p2)... FROM profiles`, rows in no segment skipped as
/// read; restricted to [`ROWID_CHUNK`] bound rowids, in rowid order (the order of a full
/// pass).
fn select_sql(key: &str, wanted: &[&Column], predicates: &[String], restricted: bool) -> String {
    let mut sql = format!("SELECT rowid, {}", quote_ident(key));
    for c in wanted {
        sql.push_str(", ");
        sql.push_str(&quote_ident(&c.name));
    }
    for p in predicates {
        sql.push_str(&format!(", CASE WHEN {} THEN 1 ELSE 0 END", wrap(p)));
    }
    // Each predicate is evaluated once, in its CASE: rows in no segment are skipped as they
    // are read (a `WHERE p0 OR p1 ...` would evaluate every predicate a second time).
    sql.push_str(&format!(" FROM {PROFILES_TABLE}"));
    if restricted {
        let marks = vec!["?"; ROWID_CHUNK].join(", ");
        sql.push_str(&format!(" WHERE rowid IN ({marks}) ORDER BY rowid"));
    }
    sql
}

/// One pass's reading of rows into [`ProfileRow`]s.
struct Pass<'p> {
    g: &'p Guarded,
    n_wanted: usize,
    kinds: Vec<ColumnType>,
    stats: &'p mut SelectStats,
}

impl Pass<'_> {
    fn rows<E, F>(&mut self, stmt: &mut Statement<'_>, each: &mut F) -> Result<(), SelectError<E>>
    where
        F: FnMut(ProfileRow) -> Result<(), E>,
    {
        let g = self.g;
        let run_error = |e: rusqlite::Error| match g.run_error(e) {
            PredicateError::Timeout { limit } => SelectError::Timeout { limit },
            PredicateError::Store(e) => SelectError::Store(e),
            other => SelectError::Failed(other.to_string()),
        };
        g.clock.resume();
        let mut rows = stmt.raw_query();
        loop {
            g.clock.resume();
            let next = rows.next();
            g.clock.pause();
            let Some(row) = next.map_err(run_error)? else {
                return Ok(());
            };
            if let Some(profile) = self.profile(row).map_err(run_error)? {
                each(profile).map_err(SelectError::Callback)?;
            }
        }
    }

    /// The row as a profile, or `None` when it is in no segment.
    fn profile(&mut self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<ProfileRow>> {
        let n = self.stats.per_predicate.len();
        let mut in_segment = Vec::with_capacity(n);
        for i in 0..n {
            in_segment.push(matches!(
                row.get_ref(2 + self.n_wanted + i)?,
                ValueRef::Integer(1)
            ));
        }
        if !in_segment.contains(&true) {
            return Ok(None);
        }
        let key = match row.get_ref(1)? {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(f) => f.to_string(),
            ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
            ValueRef::Null => String::new(),
        };
        let mut values = Vec::with_capacity(self.n_wanted);
        for (i, kind) in self.kinds.iter().enumerate() {
            values.push(to_json(row.get_ref(2 + i)?, *kind));
        }
        for (count, hit) in self.stats.per_predicate.iter_mut().zip(&in_segment) {
            *count += u64::from(*hit);
        }
        self.stats.rows += 1;
        Ok(Some(ProfileRow {
            key,
            values,
            in_segment,
            // Not an integer only if a column is named `rowid`: then the order rows came in.
            position: match row.get_ref(0)? {
                ValueRef::Integer(i) => Some(i),
                _ => None,
            },
        }))
    }
}

/// A stored value as JSON: booleans as `true`/`false`, JSON columns parsed, the rest as is.
pub(crate) fn to_json(value: ValueRef<'_>, kind: ColumnType) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) if kind == ColumnType::Boolean => Value::Bool(i != 0),
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            if kind == ColumnType::Json {
                if let Ok(v) = serde_json::from_str(&s) {
                    return v;
                }
            }
            Value::String(s.into_owned())
        }
        ValueRef::Blob(b) => {
            use base64::Engine;
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_predicates() {
        assert!(scan("lifetime_value > 500 AND country = 'RO'").is_ok());
        assert!(scan("name = 'a;b' OR \"we;ird\" = 1 -- trailing; comment").is_ok());
        assert!(scan("x IN (1, (2))").is_ok());
        assert!(scan("name = 'it''s'").is_ok());
        assert!(matches!(scan("   "), Err(PredicateError::Empty)));
        assert!(matches!(scan("-- nothing"), Err(PredicateError::Empty)));
        assert!(matches!(
            scan("1=1; DROP TABLE profiles"),
            Err(PredicateError::MultipleStatements)
        ));
        assert!(matches!(
            scan("1) OR (1"),
            Err(PredicateError::Unbalanced(_))
        ));
        assert!(matches!(scan("(1"), Err(PredicateError::Unbalanced(_))));
        assert!(matches!(
            scan("1 /* open"),
            Err(PredicateError::Unterminated(_))
        ));
        assert!(matches!(
            scan("a = 'open"),
            Err(PredicateError::Unterminated("string"))
        ));
        assert!(matches!(
            scan("\"open = 1"),
            Err(PredicateError::Unterminated(_))
        ));
        assert!(matches!(
            scan("[open = 1"),
            Err(PredicateError::Unterminated(_))
        ));
    }

    #[test]
    fn guarded_connection_refuses_everything_but_reading_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE profiles (id TEXT, n INTEGER);
             INSERT INTO profiles VALUES ('a', 1);
             CREATE TABLE secrets (k TEXT);",
        )
        .unwrap();
        let g = Guarded::open(&path, Duration::from_secs(5)).unwrap();
        g.guard();
        g.prepare("SELECT id, upper(id) FROM profiles WHERE n > 0")
            .unwrap();
        for (sql, what) in [
            ("DELETE FROM profiles", "deleting from \"profiles\""),
            (
                "INSERT INTO profiles VALUES ('b', 2)",
                "inserting into \"profiles\"",
            ),
            ("UPDATE profiles SET n = 2", "updating \"profiles\""),
            ("DROP TABLE profiles", "deleting from \"sqlite_master\""),
            ("CREATE TABLE x (a)", "inserting into \"sqlite_master\""),
            (
                "CREATE TEMP TABLE x (a)",
                "inserting into \"sqlite_temp_master\"",
            ),
            ("PRAGMA table_info(profiles)", "PRAGMA table_info"),
            ("PRAGMA query_only = 0", "PRAGMA query_only"),
            ("ATTACH 'other.db' AS other", "ATTACH"),
            ("SELECT k FROM secrets", "reading table \"secrets\""),
            (
                "SELECT * FROM sqlite_temp_master",
                "reading table \"sqlite_temp_master\"",
            ),
            ("BEGIN", "transaction control"),
            ("SAVEPOINT s", "SAVEPOINT"),
        ] {
            match g.prepare(sql) {
                Err(PredicateError::NotAllowed(w)) => assert_eq!(w, what, "{sql}"),
                Err(other) => panic!("{sql}: {other}"),
                Ok(_) => panic!("{sql}: allowed"),
            }
        }
        // Even without the authorizer, the connection cannot write.
        let plain = open_read_only(&path).unwrap();
        let e = plain.execute("DELETE FROM profiles", []).unwrap_err();
        assert!(e.to_string().contains("readonly"), "{e}");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM profiles", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn clock_counts_only_time_inside_sqlite() {
        let clock = Clock::new(Duration::from_millis(20));
        clock.resume();
        clock.pause();
        std::thread::sleep(Duration::from_millis(30));
        assert!(!clock.over(), "time outside SQLite is not counted");
        clock.resume();
        std::thread::sleep(Duration::from_millis(30));
        assert!(clock.over());
    }
}
