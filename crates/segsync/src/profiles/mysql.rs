//! Profiles read from MySQL or MariaDB: a table (or a `SELECT`) in the shop's own database
//! (WooCommerce, Magento, PrestaShop, an in-house store).
//!
//! [`MySqlSource`] has the reading contract of [`super::PgSource`] (columns, row count,
//! predicate check, preview, one-pass [`MySqlSource::select`]). Segment predicates are SQL
//! boolean expressions evaluated by the server itself: a select is ONE query,
//!
//! ```sql
//! SELECT `key`, <columns>, IF((p1), 1, 0), ... FROM <relation> AS profiles WHERE (p1) OR (p2) ...
//! ```
//!
//! run as a prepared statement whose rows are read from the socket one at a time as the
//! caller takes them (the client never holds the result): memory stays flat for any number of
//! rows.
//!
//! # What a predicate can do
//!
//! Every statement runs in a `START TRANSACTION READ ONLY` transaction that is always rolled
//! back, after the session's settings are fixed (`sql_mode` without `ANSI_QUOTES` and
//! `NO_BACKSLASH_ESCAPES`, so that strings read as [`scan`] read them; `time_zone` UTC; for
//! checks, previews and counts the statement time limit, `max_execution_time` on MySQL,
//! `max_statement_time` on MariaDB).
//! After every use the session is reset (`COM_RESET_CONNECTION`): nothing a statement left
//! (a variable, a lock) reaches the next. [`scan`] tokenises each predicate as the server's
//! lexer does and refuses anything that could change the query's shape or reach outside the
//! profiles (see [`super::my_scan`]): `;`, unbalanced parentheses, version comments, hints,
//! `INTO OUTFILE`, `SLEEP()`, `LOAD_FILE()`… A predicate can read whatever the connecting user
//! may read, so give the source a user that can only read the profiles: `profiles source add`
//! refuses a user with global rights (reading every database, `FILE`, `SUPER`) and warns
//! about one that can read more tables ([`MySqlSource::reach`]).
//!
//! Time limits ([`Limits`]): `check_timeout` bounds a check and a preview, `select_timeout`
//! the time a select spends waiting for the server (not the time spent in `each`); past it a
//! watchdog has the server stop the statement (`KILL QUERY`), and the error says so.
//!
//! # Types
//!
//! | MySQL / MariaDB | [`ColumnType`] | JSON value in a [`ProfileRow`] |
//! |---|---|---|
//! | `TINYINT(1)` (`BOOL`), `BIT(1)` | boolean | `true` / `false` |
//! | other integers, `YEAR`, `BIT(n)` | integer | number |
//! | `FLOAT`, `DOUBLE`, `DECIMAL` | real | number (`DECIMAL` as a 64-bit float) |
//! | `DATE` | date | `"2024-03-01"` (the zero date: `null`) |
//! | `DATETIME` | timestamp | `"2024-03-01T10:00:00"` (fraction when there is one) |
//! | `TIMESTAMP` | timestamp | RFC 3339 in UTC: `"2024-03-01T10:00:00Z"` |
//! | `JSON` (MariaDB: a column checked by `JSON_VALID`) | json | parsed JSON |
//! | text (utf8mb4) and everything else (`TIME`, `ENUM`, `SET`…) | text | the value's text |
//!
//! NULL is `null`. The key is always read as text.

use super::error::{list, quoted};
use super::my_conn::{error_code, error_text, Flavor, MyConnError, Target, Watchdog};
use super::my_scan::scan;
use super::my_types::{decode, kind_of, text_of, Decode};
use super::{Column, ColumnType, Limits, PgRelation, PredicateError, Preview, ProfileRow};
use super::{SelectError, SelectStats};
use mysql::prelude::Queryable;
use mysql::{Conn, Statement};
use serde_json::Map;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "my_reach.rs"]
mod reach;
pub use reach::MyReach;

/// The `sql_mode` of every statement: strings and identifiers read as [`scan`] reads them.
const SQL_MODE: &str = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";

/// Error codes of a statement stopped by its time limit: MySQL's `ER_QUERY_TIMEOUT`,
/// MariaDB's `ER_STATEMENT_TIMEOUT`. (One the watchdog stopped fails with
/// `ER_QUERY_INTERRUPTED`, read as a timeout because the watchdog fired.)
const TIMEOUT_CODES: [u16; 2] = [3024, 1969];

/// Why a MySQL source could not be opened or read. URLs are shown without their password.
#[derive(Debug, thiserror::Error)]
pub enum MySqlSourceError {
    #[error(transparent)]
    Connection(#[from] MyConnError),
    #[error("{relation}: {reason}")]
    BadRelation { relation: String, reason: String },
    #[error(
        "{server} at {url}: {relation} has no column {} (columns: {})",
        quoted(column),
        list(columns)
    )]
    NoKeyColumn {
        server: &'static str,
        url: String,
        relation: String,
        column: String,
        columns: Vec<String>,
    },
    #[error(
        "{server} at {url}: {relation} has two columns named {}; give them distinct names (… AS other_name)",
        quoted(column)
    )]
    DuplicateColumn {
        server: &'static str,
        url: String,
        relation: String,
        column: String,
    },
    /// The server refused or failed a statement on the relation (its message).
    #[error("{server} at {url}: {relation}: {message}")]
    Failed {
        server: &'static str,
        url: String,
        relation: String,
        message: String,
    },
}

/// Checks a source definition (for `profiles source add`): connects, checks that the relation
/// can be read and has the key column; returns its columns and what else its user can read.
pub fn check_mysql_source(
    url: &str,
    relation: PgRelation,
    key_column: &str,
) -> Result<(Vec<Column>, MyReach), MySqlSourceError> {
    let source = MySqlSource::connect(url, relation, key_column)?;
    Ok((source.columns()?, source.reach()?))
}

/// Profiles in a MySQL or MariaDB table or query. `Send + Sync`; one connection, used by one
/// call at a time.
pub struct MySqlSource {
    target: Target,
    flavor: Flavor,
    relation: PgRelation,
    from: String,
    key: String,
    limits: Limits,
    conn: Mutex<Option<Conn>>,
}

impl fmt::Debug for MySqlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlSource")
            .field("url", &self.target.shown)
            .field("server", &self.flavor)
            .field("relation", &self.relation)
            .field("key_column", &self.key)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A column of the relation as the server describes it.
#[derive(Clone)]
pub(super) struct Field {
    pub name: String,
    pub kind: ColumnType,
    /// How its values are decoded.
    pub how: Decode,
}

/// Why a statement failed.
#[derive(Debug)]
enum Fault {
    Timeout,
    Refused(String),
    Client(String),
    Predicate(usize, Box<Fault>),
}

impl From<mysql::Error> for Fault {
    fn from(e: mysql::Error) -> Fault {
        match error_code(&e) {
            Some(code) if TIMEOUT_CODES.contains(&code) => Fault::Timeout,
            Some(_) => Fault::Refused(error_text(&e)),
            None => Fault::Client(error_text(&e)),
        }
    }
}

/// How a call's time is limited.
#[derive(Clone, Copy)]
enum Clock {
    /// By the server's statement time limit (and the watchdog): the whole statement.
    Server(Duration),
    /// By the watchdog only: the time spent waiting for the server (a select, whose caller
    /// takes its time with each row).
    Watchdog(Duration),
}

/// The SQL after `FROM` (before `AS profiles`): the backquoted table name, or `(\nquery\n)`.
fn relation_sql(relation: &PgRelation) -> Result<String, MySqlSourceError> {
    let bad = |reason: String| MySqlSourceError::BadRelation {
        relation: relation.to_string(),
        reason,
    };
    match relation {
        PgRelation::Table(name) => {
            let parts: Vec<&str> = name.split('.').collect();
            if parts.len() > 2 {
                return Err(bad("too many '.': give table or database.table".into()));
            }
            for part in &parts {
                if part.is_empty() {
                    return Err(bad("empty name (around a '.')".into()));
                }
                if part.contains('`') || part.chars().any(char::is_control) {
                    return Err(bad(
                        "a table name cannot contain '`', control characters or NUL".into(),
                    ));
                }
            }
            Ok(parts
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join("."))
        }
        PgRelation::Query(query) => {
            let mut q = query.trim();
            if let Some(stripped) = q.strip_suffix(';') {
                q = stripped.trim_end();
            }
            scan(q).map_err(|e| {
                bad(match e {
                    PredicateError::Empty => "the query is empty".to_string(),
                    PredicateError::MultipleStatements => {
                        "more than one statement: give a single SELECT (one trailing ';' at most)"
                            .to_string()
                    }
                    PredicateError::NotAllowed(what) => format!("not allowed in the query: {what}"),
                    other => other.to_string(),
                })
            })?;
            Ok(wrap(q))
        }
    }
}

/// `(predicate)`, on lines of its own so that a trailing `#` or `-- ` comment ends there.
fn wrap(sql: &str) -> String {
    format!("(\n{sql}\n)")
}

/// `` `name` `` (a backtick doubled).
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl MySqlSource {
    /// Connects to `url` and checks that `relation` can be read and has `key_column`.
    pub fn connect(
        url: &str,
        relation: PgRelation,
        key_column: &str,
    ) -> Result<MySqlSource, MySqlSourceError> {
        let from = relation_sql(&relation)?;
        let target = Target::parse(url)?;
        let (conn, flavor) = target.connect()?;
        let source = MySqlSource {
            target,
            flavor,
            relation,
            from,
            key: key_column.to_string(),
            limits: Limits::default(),
            conn: Mutex::new(Some(conn)),
        };
        let names: Vec<String> = source.fields()?.into_iter().map(|f| f.name).collect();
        if !names.contains(&source.key) {
            return Err(MySqlSourceError::NoKeyColumn {
                server: flavor.name(),
                url: source.target.shown.clone(),
                relation: source.relation.to_string(),
                column: source.key.clone(),
                columns: names,
            });
        }
        Ok(source)
    }

    /// The same source with other time limits.
    pub fn with_limits(mut self, limits: Limits) -> MySqlSource {
        self.limits = limits;
        self
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        &self.target.shown
    }

    /// `MySQL` or `MariaDB`.
    pub fn server(&self) -> &'static str {
        self.flavor.name()
    }

    pub fn relation(&self) -> &PgRelation {
        &self.relation
    }

    pub fn key_column(&self) -> &str {
        &self.key
    }

    /// The relation's columns, in order, with their types (see the module's table).
    pub fn columns(&self) -> Result<Vec<Column>, MySqlSourceError> {
        Ok(self
            .fields()?
            .into_iter()
            .map(|f| Column {
                name: f.name,
                kind: f.kind,
            })
            .collect())
    }

    /// The number of profiles; bounded by [`Limits::select_timeout`].
    pub fn row_count(&self) -> Result<u64, MySqlSourceError> {
        let sql = format!("SELECT COUNT(*) FROM {} AS profiles", self.from);
        let limit = self.limits.select_timeout;
        self.call(Clock::Server(limit), |conn, _| -> Result<u64, Fault> {
            let n: Option<u64> = conn.query_first(sql)?;
            Ok(n.unwrap_or(0))
        })
        .map_err(|f| self.source_error(f, limit))
    }

    /// Checks a segment predicate without reading data: the server parses and resolves
    /// `SELECT 1 FROM <relation> AS profiles WHERE (predicate)` (a prepared statement, never
    /// run). A refusal carries the server's message ([`PredicateError::MySql`]).
    pub fn check_predicate(&self, predicate: &str) -> Result<(), PredicateError> {
        scan(predicate)?;
        let sql = format!(
            "SELECT 1 FROM {} AS profiles WHERE {}",
            self.from,
            wrap(predicate)
        );
        let limit = self.limits.check_timeout;
        self.call(Clock::Server(limit), |conn, _| {
            prepare(conn, &sql).map(drop)
        })
        .map_err(|f| self.predicate_error(predicate, f, limit))
    }

    /// The number of profiles for which `predicate` holds, and up to `sample` of them (all
    /// columns). Bounded, all statements together, by [`Limits::check_timeout`].
    pub fn preview(&self, predicate: &str, sample: usize) -> Result<Preview, PredicateError> {
        scan(predicate)?;
        let fields = self
            .fields()
            .map_err(|e| PredicateError::Failed(e.to_string()))?;
        let condition = wrap(predicate);
        let count_sql = format!(
            "SELECT COUNT(*) FROM {} AS profiles WHERE {condition}",
            self.from
        );
        let reads: Vec<String> = fields.iter().map(|f| quote_ident(&f.name)).collect();
        let sample_sql = format!(
            "SELECT {} FROM {} AS profiles WHERE {condition} LIMIT {sample}",
            reads.join(", "),
            self.from
        );
        let limit = self.limits.check_timeout;
        self.call(
            Clock::Server(limit),
            |conn, watch| -> Result<Preview, Fault> {
                let stmt = prepare(conn, &count_sql)?;
                let count: Option<u64> = conn.exec_first(&stmt, ())?;
                let mut rows = Vec::new();
                if sample > 0 {
                    let stmt = prepare(conn, &sample_sql)?;
                    for row in conn.exec_iter(&stmt, ())? {
                        let values = row?.unwrap();
                        let mut map = Map::new();
                        for (field, value) in fields.iter().zip(values) {
                            map.insert(field.name.clone(), decode(field.how, value));
                        }
                        rows.push(map);
                    }
                }
                if watch.fired() {
                    return Err(Fault::Timeout);
                }
                Ok(Preview {
                    count: count.unwrap_or(0),
                    columns: fields.iter().map(|f| f.name.clone()).collect(),
                    sample: rows,
                })
            },
        )
        .map_err(|f| self.predicate_error(predicate, f, limit))
    }

    /// One pass over the profiles, evaluated inside the server: every row where at least one
    /// predicate is true, with the key (as text), the requested columns (in the order given,
    /// as JSON) and one bool per predicate, streamed to `each`.
    pub fn select<E, F>(
        &self,
        columns: &[String],
        predicates: &[String],
        mut each: F,
    ) -> Result<SelectStats, SelectError<E>>
    where
        F: FnMut(ProfileRow) -> Result<(), E>,
    {
        let started = Instant::now();
        SelectError::check_predicates(predicates, scan)?;
        let fields = self
            .fields()
            .map_err(|e| SelectError::Failed(e.to_string()))?;
        let mut wanted: Vec<&Field> = Vec::with_capacity(columns.len());
        for name in columns {
            let found = fields
                .iter()
                .find(|f| f.name == *name)
                .or_else(|| fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)));
            match found {
                Some(f) => wanted.push(f),
                None => {
                    return Err(SelectError::UnknownColumn {
                        column: name.clone(),
                        columns: fields.iter().map(|f| f.name.clone()).collect(),
                    })
                }
            }
        }
        let limit = self.limits.select_timeout;
        let mut stats = SelectStats {
            rows: 0,
            per_predicate: vec![0; predicates.len()],
            duration: Duration::ZERO,
        };
        let mut callback_error = None;
        // The watchdog alone bounds it: the server's limit would count the time `each` takes.
        let done = self.call(Clock::Watchdog(limit), |conn, watch| -> Result<(), Fault> {
            for (index, predicate) in predicates.iter().enumerate() {
                let sql = format!(
                    "SELECT 1 FROM {} AS profiles WHERE {}",
                    self.from,
                    wrap(predicate)
                );
                prepare(conn, &sql).map_err(|f| Fault::Predicate(index, Box::new(f)))?;
            }
            let sql = select_sql(&self.from, &self.key, &wanted, predicates);
            let kinds: Vec<Decode> = wanted.iter().map(|f| f.how).collect();
            let stmt = prepare(conn, &sql)?;
            let id = conn.connection_id();
            let mut rows = conn.exec_iter(&stmt, ())?;
            loop {
                watch.waiting();
                let next = rows.next();
                watch.answered();
                let Some(row) = next else { return Ok(()) };
                let row = profile_row(row?.unwrap(), &kinds, predicates.len());
                stats.rows += 1;
                for (count, hit) in stats.per_predicate.iter_mut().zip(&row.in_segment) {
                    *count += u64::from(*hit);
                }
                if let Err(e) = each(row) {
                    callback_error = Some(e);
                    // Dropping the rows reads what is left: have the server stop sending.
                    self.target.kill_query(id);
                    return Ok(());
                }
            }
        });
        if let Some(e) = callback_error {
            return Err(SelectError::Callback(e));
        }
        done.map_err(|fault| self.select_error(fault, predicates))?;
        stats.duration = started.elapsed();
        Ok(stats)
    }

    /// Runs `f` on the connection (reconnecting if it was closed) inside a read-only
    /// transaction with the session's settings fixed and the time limit `clock` says,
    /// watched by a [`Watchdog`]; then rolls back and resets the session.
    fn call<R>(
        &self,
        clock: Clock,
        f: impl FnOnce(&mut Conn, &Watchdog) -> Result<R, Fault>,
    ) -> Result<R, Fault> {
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_mut().is_none_or(|c| c.ping().is_err()) {
            tracing::info!(url = %self.target.shown, "reconnecting to {}", self.flavor.name());
            *slot = None;
            let (conn, _) = self
                .target
                .connect()
                .map_err(|e| Fault::Client(e.to_string()))?;
            *slot = Some(conn);
        }
        let conn = slot
            .as_mut()
            .ok_or_else(|| Fault::Client("no connection".into()))?;
        let (limit, server_limit) = match clock {
            Clock::Server(limit) => (limit, format!(", {}", self.flavor.time_limit(limit))),
            Clock::Watchdog(limit) => (limit, String::new()),
        };
        conn.query_drop(format!(
            "SET SESSION sql_mode = '{SQL_MODE}', SESSION time_zone = '+00:00'{server_limit}"
        ))?;
        conn.query_drop("START TRANSACTION READ ONLY")?;
        let watch = Watchdog::start(&self.target, conn.connection_id(), limit);
        let answer = f(conn, &watch);
        let fired = watch.fired();
        drop(watch);
        let reset = conn.query_drop("ROLLBACK").and_then(|()| conn.reset());
        if reset.is_err() {
            *slot = None;
        }
        match answer {
            // Whatever the statement's error says (interrupted, connection lost), it was
            // stopped for its time.
            Err(_) if fired => Err(Fault::Timeout),
            other => other,
        }
    }

    /// The relation's columns, checked for duplicate names.
    pub(super) fn fields(&self) -> Result<Vec<Field>, MySqlSourceError> {
        let sql = format!("SELECT * FROM {} AS profiles", self.from);
        let limit = self.limits.check_timeout;
        let flavor = self.flavor;
        let fields = self
            .call(
                Clock::Server(limit),
                |conn, _| -> Result<Vec<Field>, Fault> {
                    let stmt = conn.prep(&sql)?;
                    let json = match flavor {
                        Flavor::MariaDb => json_columns(conn, &stmt)?,
                        Flavor::MySql => Vec::new(),
                    };
                    let fields = stmt
                        .columns()
                        .iter()
                        .map(|c| {
                            let origin = (
                                c.org_table_str().into_owned(),
                                c.org_name_str().into_owned(),
                            );
                            let kind = if json.contains(&origin) {
                                ColumnType::Json
                            } else {
                                kind_of(c)
                            };
                            Field {
                                name: c.name_str().into_owned(),
                                kind,
                                how: Decode::of(c, kind),
                            }
                        })
                        .collect();
                    conn.close(stmt)?;
                    Ok(fields)
                },
            )
            .map_err(|f| self.source_error(f, limit))?;
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|g| g.name == f.name) {
                return Err(MySqlSourceError::DuplicateColumn {
                    server: self.flavor.name(),
                    url: self.target.shown.clone(),
                    relation: self.relation.to_string(),
                    column: f.name.clone(),
                });
            }
        }
        Ok(fields)
    }

    fn source_error(&self, fault: Fault, limit: Duration) -> MySqlSourceError {
        let message = match fault {
            Fault::Timeout => format!("took longer than {limit:?} and was stopped"),
            Fault::Client(message) | Fault::Refused(message) => message,
            other => self.fault_text(other),
        };
        MySqlSourceError::Failed {
            server: self.flavor.name(),
            url: self.target.shown.clone(),
            relation: self.relation.to_string(),
            message,
        }
    }

    fn predicate_error(&self, predicate: &str, fault: Fault, limit: Duration) -> PredicateError {
        match fault {
            Fault::Timeout => PredicateError::Timeout { limit },
            Fault::Refused(message) => PredicateError::MySql {
                server: self.flavor.name(),
                predicate: predicate.to_string(),
                message,
            },
            Fault::Predicate(_, inner) => self.predicate_error(predicate, *inner, limit),
            other => PredicateError::Failed(self.fault_text(other)),
        }
    }

    fn select_error<E>(&self, fault: Fault, predicates: &[String]) -> SelectError<E> {
        let limit = self.limits.select_timeout;
        match fault {
            Fault::Timeout => SelectError::Timeout { limit },
            Fault::Predicate(index, inner) => {
                let predicate = predicates.get(index).cloned().unwrap_or_default();
                SelectError::Predicate {
                    index,
                    source: self.predicate_error(&predicate, *inner, limit),
                    predicate,
                }
            }
            other => SelectError::Failed(self.fault_text(other)),
        }
    }

    fn fault_text(&self, fault: Fault) -> String {
        match fault {
            Fault::Client(message) => {
                format!("{} at {}: {message}", self.flavor.name(), self.target.shown)
            }
            Fault::Refused(message) => message,
            Fault::Timeout => "stopped by the statement time limit".to_string(),
            Fault::Predicate(index, inner) => {
                format!("predicate {}: {}", index + 1, self.fault_text(*inner))
            }
        }
    }
}

/// Prepares (parses and resolves, without running) a statement; one with parameters is
/// refused (the scanner refuses `?` already).
fn prepare(conn: &mut Conn, sql: &str) -> Result<Statement, Fault> {
    let stmt = conn.prep(sql)?;
    if stmt.num_params() > 0 {
        return Err(Fault::Refused("SQL parameters (?) are not allowed".into()));
    }
    Ok(stmt)
}

/// The one query of a select.
fn select_sql(from: &str, key: &str, wanted: &[&Field], predicates: &[String]) -> String {
    let mut sql = format!("SELECT {}", quote_ident(key));
    for field in wanted {
        sql.push_str(", ");
        sql.push_str(&quote_ident(&field.name));
    }
    for predicate in predicates {
        sql.push_str(&format!(", IF({}, 1, 0)", wrap(predicate)));
    }
    let conditions: Vec<String> = predicates.iter().map(|p| wrap(p)).collect();
    sql.push_str(&format!(
        " FROM {from} AS profiles WHERE {}",
        conditions.join(" OR ")
    ));
    sql
}

/// One result row of a select: key, values, then one flag per predicate.
fn profile_row(values: Vec<mysql::Value>, kinds: &[Decode], predicates: usize) -> ProfileRow {
    let mut values = values.into_iter();
    let key = values.next().map(text_of).unwrap_or_default();
    let decoded = kinds
        .iter()
        .zip(values.by_ref())
        .map(|(kind, v)| decode(*kind, v))
        .collect();
    let in_segment = values
        .take(predicates)
        .map(|v| matches!(v, mysql::Value::Int(1) | mysql::Value::UInt(1)))
        .collect();
    ProfileRow {
        key,
        values: decoded,
        in_segment,
        position: None,
    }
}

/// MariaDB's `JSON` is `LONGTEXT` with a `JSON_VALID` check: the (table, column) pairs of
/// `stmt`'s columns that have one.
fn json_columns(conn: &mut Conn, stmt: &Statement) -> Result<Vec<(String, String)>, Fault> {
    let mut by_table: HashMap<(String, String), Vec<String>> = HashMap::new();
    for c in stmt.columns().iter() {
        let table = c.org_table_str().into_owned();
        if !table.is_empty() && c.column_type() == mysql::consts::ColumnType::MYSQL_TYPE_BLOB {
            by_table
                .entry((c.schema_str().into_owned(), table))
                .or_default()
                .push(c.org_name_str().into_owned());
        }
    }
    let mut json = Vec::new();
    for ((schema, table), names) in by_table {
        let clauses: Vec<String> = conn.exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (&schema, &table),
        )?;
        for name in names {
            let check = format!("json_valid({})", quote_ident(&name));
            if clauses.iter().any(|c| c.eq_ignore_ascii_case(&check)) {
                json.push((table.clone(), name));
            }
        }
    }
    Ok(json)
}
