//! Profiles read from PostgreSQL: a table (or a `SELECT`) in a database the team already has.
//!
//! [`PgSource`] has the reading contract of [`super::ProfileStore`] (columns, row count,
//! predicate check, preview, and one-pass [`PgSource::select`]), so the engine can export from
//! either. Segment predicates are SQL boolean expressions evaluated by PostgreSQL itself: a
//! select is ONE query,
//!
//! ```sql
//! SELECT ("key")::text, <columns>, COALESCE((p1), false), ...
//! FROM <relation> AS profiles WHERE (p1) OR (p2) ...
//! ```
//!
//! where `<relation>` is the quoted table name, or `(<query>)`. Its rows are streamed through a
//! portal (a server-side cursor) in batches of [`BATCH_ROWS`], handed from the connection's
//! thread to the caller through a bounded channel: memory stays flat for any number of rows.
//!
//! # Connections
//!
//! The blocking `postgres` client cannot run on a tokio thread, so each source owns a
//! [`PgThread`] (one connection on a thread of its own), reopened when it was closed. Calls
//! are served one after the other; `each` (the callback of `select`) must not call the same
//! source. The URL's password never appears in errors or `Debug` output.
//!
//! # What a predicate can do
//!
//! Every statement runs in a `READ ONLY` transaction that is always rolled back, with its
//! settings fixed first (`standard_conforming_strings`, `statement_timeout`, `work_mem`): a
//! predicate cannot write (PostgreSQL refuses `INSERT`, writing functions…) nor switch the
//! transaction to read-write. A statement that holds a predicate and runs is the only one
//! its transaction runs after its settings were fixed (a preview's count and sample are two
//! transactions; a select's batches fix the settings again before each fetch), so nothing a
//! predicate could change reaches how a later statement is read. Predicates may not call the
//! functions that change the session or reach outside the profiles ([`super::pg_calls`]:
//! `set_config`, advisory locks, files, `dblink`, large objects, SQL run from text…), and the
//! connection's session is reset after every use ([`crate::pg::reset_session`]). A predicate
//! can read whatever the connecting role may read, so give the source a role that can only
//! read the profiles: `segsync profiles source add` refuses a superuser and warns about a role
//! that can read more ([`PgSource::reach`]).
//!
//! Time limits ([`Limits`]): `check_timeout` bounds [`PgSource::check_predicate`] and
//! [`PgSource::preview`] (all their statements together). `select_timeout` bounds the time
//! spent waiting for PostgreSQL during a select: describing, checking, and fetching each
//! batch — not the time spent in `each`, nor waiting for the caller to take a batch. Before
//! each batch `statement_timeout` is set to what is left of the budget, so PostgreSQL itself
//! stops a query that would overrun it, even inside a single batch.
//!
//! # Injection
//!
//! A predicate is put in the query between parentheses on lines of their own (`(\n…\n)`, so
//! that a trailing `--` comment ends there). Parentheses alone would not keep it there:
//! `1=1) OR (true` closes the `WHERE (` and changes the query. So before PostgreSQL sees it,
//! [`scan`] tokenizes the predicate the way PostgreSQL's lexer does — standard strings
//! (`'it''s'`), escape strings (`E'\''`, including their continuation on a following line),
//! bit/hex/national/Unicode strings, dollar-quoted strings (`$tag$…$tag$`), quoted identifiers,
//! nested `/* */` comments, `--` comments — and refuses the predicate unless, outside all of
//! these, its parentheses balance (never closing more than were opened) and it holds no `;`
//! and no parameter (`$1`). Control characters other than tab and line breaks are refused, so
//! that no whitespace rule can differ between the scanner and the server. With balanced
//! parentheses the predicate can only be an expression (or a scalar subquery) inside our
//! parentheses: the query's shape cannot change. `standard_conforming_strings` is fixed on
//! before every statement that holds a predicate is read, and no predicate can turn it off
//! for a later one, so `'\'` means what the scanner thinks it means. A naive scanner
//! (one that knows only `'…'`) would be fooled by `x = E'\'' ) OR (true --'` or
//! `x = $$'$$ ) OR (true --'`; this one is not. Beyond the scanner, the extended query
//! protocol accepts one statement only, and the read-only transaction limits any damage.
//!
//! A `Query` relation is the source's definition (written by whoever adds the source, not by
//! segment authors); it gets the same scan, with one trailing `;` allowed. Table names are
//! split on `.` (`crm.customers`), each part double-quoted as written (so names are
//! case-sensitive); names with a `"`, a NUL or a control character are refused.
//!
//! # Types
//!
//! | PostgreSQL | [`ColumnType`] | JSON value in a [`ProfileRow`] |
//! |---|---|---|
//! | `boolean` | boolean | `true` / `false` |
//! | `smallint`, `integer`, `bigint`, `oid` | integer | number |
//! | `real`, `double precision` | real | number (NaN, ±Infinity: `null`) |
//! | `numeric` | real | number (as a 64-bit float; NaN: `null`) |
//! | `date` | date | `"2024-03-01"` (`"infinity"`, `"-infinity"`) |
//! | `timestamp` | timestamp | `"2024-03-01T10:00:00"` (fraction when there is one) |
//! | `timestamptz` | timestamp | RFC 3339 in UTC: `"2024-03-01T10:00:00Z"` |
//! | `json`, `jsonb`, arrays, composite types | json | parsed JSON |
//! | text types and everything else (uuid, enums, intervals…) | text | the value's text |
//!
//! Domains are read as their base type. NULL is `null`. The key is always read as text.

use super::error::{list, quoted};
use super::{
    quote_ident, Column, ColumnType, Limits, PredicateError, Preview, ProfileRow, SelectError,
    SelectStats,
};
use crate::pg::{error_text, redact, reset_session, PgError, PgThread, PgUse};
use ::postgres::error::SqlState;
use ::postgres::types::{FromSql, Kind, Type};
use ::postgres::{Client, Row, Statement, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "pg_reach.rs"]
mod reach;
pub use reach::Reach;
#[path = "pg_cursor.rs"]
mod cursor;

/// Rows fetched from the portal at a time by [`PgSource::select`].
pub const BATCH_ROWS: i32 = 2000;

/// Batches a select may have fetched ahead of the caller.
const QUEUED_BATCHES: usize = 2;

/// Where the profiles are: a table or view, or a query.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PgRelation {
    /// A table or view, maybe schema-qualified (`crm.customers`); case-sensitive.
    Table(String),
    /// A `SELECT` (or `VALUES`, `TABLE`, `WITH … SELECT`) whose rows are the profiles.
    Query(String),
}

impl fmt::Display for PgRelation {
    /// `table "crm.customers"` or `query "SELECT …"` (cut after 100 characters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgRelation::Table(t) => write!(f, "table {}", quoted(t)),
            PgRelation::Query(q) => write!(f, "query {}", quoted(q.trim())),
        }
    }
}

impl PgRelation {
    /// The SQL that follows `FROM` (before `AS profiles`): the quoted table name, or `(\nquery\n)`.
    fn sql(&self) -> Result<String, PgSourceError> {
        let bad = |reason: String| PgSourceError::BadRelation {
            relation: self.to_string(),
            reason,
        };
        match self {
            PgRelation::Table(name) => {
                let parts: Vec<&str> = name.split('.').collect();
                if parts.len() > 3 {
                    return Err(bad(
                        "too many '.': give table, schema.table or database.schema.table".into(),
                    ));
                }
                for part in &parts {
                    if part.is_empty() {
                        return Err(bad("empty name (around a '.')".into()));
                    }
                    if part.contains('"') {
                        return Err(bad("a table name cannot contain '\"'".into()));
                    }
                    if part.chars().any(char::is_control) {
                        return Err(bad(
                            "a table name cannot contain control characters or NUL".into()
                        ));
                    }
                }
                Ok(parts
                    .iter()
                    .map(|p| quote_ident(p))
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
                        PredicateError::NotAllowed(what) => {
                            format!("not allowed in the query: {what}")
                        }
                        other => other.to_string(),
                    })
                })?;
                Ok(wrap(q))
            }
        }
    }
}

/// Why a PostgreSQL source could not be opened or read. URLs are shown without their password.
#[derive(Debug, thiserror::Error)]
pub enum PgSourceError {
    /// The URL is not valid, or the server cannot be reached or refused the login.
    #[error(transparent)]
    Connection(#[from] PgError),
    /// The table name or the query cannot be used as given.
    #[error("{relation}: {reason}")]
    BadRelation { relation: String, reason: String },
    /// The key column is not among the relation's columns.
    #[error(
        "PostgreSQL at {url}: {relation} has no column {} (columns: {}){}",
        quoted(column),
        list(columns),
        near_name(column, columns)
    )]
    NoKeyColumn {
        url: String,
        relation: String,
        column: String,
        columns: Vec<String>,
    },
    /// Two columns of the relation have the same name (a query joining tables, say).
    #[error(
        "PostgreSQL at {url}: {relation} has two columns named {}; give them distinct names (… AS other_name)",
        quoted(column)
    )]
    DuplicateColumn {
        url: String,
        relation: String,
        column: String,
    },
    /// PostgreSQL refused or failed a statement on the relation (its message), e.g. the table
    /// does not exist or the role may not read it.
    #[error("PostgreSQL at {url}: {relation}: {message}")]
    Failed {
        url: String,
        relation: String,
        message: String,
    },
}

/// `; did you mean "Id"?` when a column differs from `name` only in case.
fn near_name(name: &str, columns: &[String]) -> String {
    columns
        .iter()
        .find(|c| c.eq_ignore_ascii_case(name))
        .map(|c| format!("; did you mean {}? (names are case-sensitive)", quoted(c)))
        .unwrap_or_default()
}

/// Checks a source definition (for `profiles source add`): connects, checks that the relation
/// can be read and has the key column, and returns its columns and what else its role can
/// read.
pub fn check_source(
    url: &str,
    relation: PgRelation,
    key_column: &str,
) -> Result<(Vec<Column>, Reach), PgSourceError> {
    let source = PgSource::connect(url, relation, key_column)?;
    Ok((source.columns()?, source.reach()?))
}

/// Profiles in a PostgreSQL table or query. `Send + Sync`; one connection, used by one call at
/// a time.
pub struct PgSource {
    /// The URL as given (it may hold a password): only for reconnecting.
    connect_url: String,
    /// The URL without its password.
    url: String,
    relation: PgRelation,
    from: String,
    key: String,
    /// The column re-runs read past (see [`PgSource::changes`]).
    cursor: Option<String>,
    limits: Limits,
    conn: Mutex<Arc<PgThread>>,
}

impl fmt::Debug for PgSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSource")
            .field("url", &self.url)
            .field("relation", &self.relation)
            .field("key_column", &self.key)
            .field("cursor_column", &self.cursor)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A column of the relation as PostgreSQL describes it.
#[derive(Clone)]
struct Field {
    name: String,
    ty: Type,
}

impl Field {
    fn kind(&self) -> ColumnType {
        kind_of(&self.ty)
    }

    /// The expression that reads this column in a form [`Cell`] decodes.
    fn read(&self) -> String {
        read_expr(&quote_ident(&self.name), &self.ty)
    }
}

/// Why a statement failed, on the connection's thread.
#[derive(Debug)]
enum Fault {
    /// `statement_timeout` fired.
    Timeout,
    /// PostgreSQL refused or failed the statement: its message.
    Refused(String),
    /// The connection or the client failed: its message.
    Client(String),
    /// The predicate holds SQL parameters.
    Parameters,
    /// Predicate number `.0` was refused.
    Predicate(usize, Box<Fault>),
    /// A requested column is not in the relation.
    UnknownColumn {
        column: String,
        columns: Vec<String>,
    },
}

impl From<::postgres::Error> for Fault {
    fn from(e: ::postgres::Error) -> Fault {
        match e.as_db_error() {
            Some(db)
                if *db.code() == SqlState::QUERY_CANCELED
                    && db.message().contains("statement timeout") =>
            {
                Fault::Timeout
            }
            Some(_) => Fault::Refused(error_text(&e)),
            None => Fault::Client(error_text(&e)),
        }
    }
}

impl PgSource {
    /// Connects to `url` (password from the URL or `PGPASSWORD`) and checks that `relation`
    /// can be read and has `key_column`. Errors name the URL (without its password), the
    /// relation and the column.
    pub fn connect(
        url: &str,
        relation: PgRelation,
        key_column: &str,
    ) -> Result<PgSource, PgSourceError> {
        let from = relation.sql()?;
        let thread = PgThread::connect(url, PgUse::Source)?;
        let source = PgSource {
            connect_url: url.to_string(),
            url: redact(url),
            relation,
            from,
            key: key_column.to_string(),
            cursor: None,
            limits: Limits::default(),
            conn: Mutex::new(Arc::new(thread)),
        };
        let fields = source.fields()?;
        let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
        if !names.contains(&source.key) {
            return Err(PgSourceError::NoKeyColumn {
                url: source.url.clone(),
                relation: source.relation.to_string(),
                column: source.key.clone(),
                columns: names,
            });
        }
        Ok(source)
    }

    /// The same source with other time limits.
    pub fn with_limits(mut self, limits: Limits) -> PgSource {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn relation(&self) -> &PgRelation {
        &self.relation
    }

    pub fn key_column(&self) -> &str {
        &self.key
    }

    /// The relation's columns, in order, with their types (see the module's table).
    pub fn columns(&self) -> Result<Vec<Column>, PgSourceError> {
        Ok(self
            .fields()?
            .into_iter()
            .map(|f| Column {
                kind: f.kind(),
                name: f.name,
            })
            .collect())
    }

    /// The number of profiles (rows of the relation); bounded by [`Limits::select_timeout`].
    pub fn row_count(&self) -> Result<u64, PgSourceError> {
        let sql = format!("SELECT count(*) FROM {} AS profiles", self.from);
        let limit = self.limits.select_timeout;
        let n = self
            .call(move |client| -> Result<i64, Fault> {
                let mut tx = begin(client, limit)?;
                Ok(tx.query_one(sql.as_str(), &[])?.try_get(0)?)
            })?
            .map_err(|f| self.source_error(f, limit))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Checks a segment predicate without reading data: PostgreSQL parses and analyses
    /// `SELECT 1 FROM <relation> AS profiles WHERE (predicate)`. A refusal carries
    /// PostgreSQL's message ([`PredicateError::Postgres`]).
    pub fn check_predicate(&self, predicate: &str) -> Result<(), PredicateError> {
        scan(predicate)?;
        let sql = format!(
            "SELECT 1 FROM {} AS profiles WHERE {}",
            self.from,
            wrap(predicate)
        );
        let limit = self.limits.check_timeout;
        self.call(move |client| -> Result<(), Fault> {
            let mut tx = begin(client, limit)?;
            prepare_predicate(&mut tx, &sql).map(drop)
        })
        .map_err(|e| PredicateError::Failed(e.to_string()))?
        .map_err(|f| self.predicate_error(predicate, f, limit))
    }

    /// The number of profiles for which `predicate` holds, and up to `sample` of them (all
    /// columns). Bounded, all statements together, by [`Limits::check_timeout`].
    pub fn preview(&self, predicate: &str, sample: usize) -> Result<Preview, PredicateError> {
        scan(predicate)?;
        let from = self.from.clone();
        let condition = wrap(predicate);
        let limit = self.limits.check_timeout;
        let sample = i64::try_from(sample).unwrap_or(i64::MAX);
        self.call(move |client| -> Result<Preview, Fault> {
            let started = Instant::now();
            // Each statement that holds the predicate runs in a transaction of its own, its
            // settings fixed first: nothing the count changed can reach how the sample reads.
            let (fields, count) = {
                let mut tx = begin(client, limit)?;
                let fields = describe(&mut tx, &from)?;
                let count_sql =
                    format!("SELECT count(*) FROM {from} AS profiles WHERE {condition}");
                let stmt = prepare_predicate(&mut tx, &count_sql)?;
                let count: i64 = tx.query_one(&stmt, &[])?.try_get(0)?;
                (fields, count)
            };
            let rows = if sample > 0 {
                let mut tx = begin(client, remaining(limit, started.elapsed())?)?;
                sample_rows(&mut tx, &from, &condition, &fields, sample)?
            } else {
                Vec::new()
            };
            Ok(Preview {
                count: u64::try_from(count).unwrap_or(0),
                columns: fields.into_iter().map(|f| f.name).collect(),
                sample: rows,
            })
        })
        .map_err(|e| PredicateError::Failed(e.to_string()))?
        .map_err(|f| self.predicate_error(predicate, f, limit))
    }

    /// One pass over the profiles, evaluated inside PostgreSQL: every row where at least one
    /// predicate is true, with the key (as text), the requested columns (in the order given,
    /// as JSON) and one bool per predicate, streamed to `each`.
    ///
    /// `each` returning an error stops the pass with [`SelectError::Callback`]. The deadline
    /// ([`Limits::select_timeout`]) counts the time spent waiting for PostgreSQL only. `each`
    /// must not call this source (the connection is busy with the pass).
    pub fn select<E, F>(
        &self,
        columns: &[String],
        predicates: &[String],
        each: F,
    ) -> Result<SelectStats, SelectError<E>>
    where
        F: FnMut(ProfileRow) -> Result<(), E>,
    {
        self.select_only(columns, predicates, None, each)
    }

    /// [`PgSource::select`] over the rows keyed `keys` only (those that exist).
    pub fn select_keys<E, F>(
        &self,
        columns: &[String],
        predicates: &[String],
        keys: &[String],
        each: F,
    ) -> Result<SelectStats, SelectError<E>>
    where
        F: FnMut(ProfileRow) -> Result<(), E>,
    {
        self.select_only(columns, predicates, Some(keys.to_vec()), each)
    }

    fn select_only<E, F>(
        &self,
        columns: &[String],
        predicates: &[String],
        keys: Option<Vec<String>>,
        mut each: F,
    ) -> Result<SelectStats, SelectError<E>>
    where
        F: FnMut(ProfileRow) -> Result<(), E>,
    {
        let started = Instant::now();
        SelectError::check_predicates(predicates, scan)?;
        let plan = Plan {
            from: self.from.clone(),
            key: self.key.clone(),
            columns: columns.to_vec(),
            predicates: predicates.to_vec(),
            keys,
            limit: self.limits.select_timeout,
        };
        let (batches, incoming) = mpsc::sync_channel::<Vec<ProfileRow>>(QUEUED_BATCHES);
        let done = self
            .thread()
            .and_then(|t| {
                t.submit(move |client| {
                    let done = plan.run(client, &batches);
                    reset_session(client);
                    done
                })
            })
            .map_err(|e| SelectError::Failed(e.to_string()))?;
        let mut stats = SelectStats {
            rows: 0,
            per_predicate: vec![0; predicates.len()],
            duration: Duration::ZERO,
        };
        for batch in incoming.iter() {
            for row in batch {
                stats.rows += 1;
                for (count, hit) in stats.per_predicate.iter_mut().zip(&row.in_segment) {
                    *count += u64::from(*hit);
                }
                // On error, `incoming` is dropped on return: the connection's thread stops.
                each(row).map_err(SelectError::Callback)?;
            }
        }
        match done.recv() {
            Ok(Ok(())) => {}
            Ok(Err(fault)) => return Err(self.select_error(fault, predicates)),
            Err(_) => {
                return Err(SelectError::Failed(format!(
                    "the PostgreSQL connection to {} is closed",
                    self.url
                )))
            }
        }
        stats.duration = started.elapsed();
        Ok(stats)
    }

    /// The connection's thread, reconnected first if its connection was closed.
    fn thread(&self) -> Result<Arc<PgThread>, PgError> {
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if !slot.call(|client| !client.is_closed()).unwrap_or(false) {
            tracing::info!(url = %self.url, "reconnecting to PostgreSQL");
            *slot = Arc::new(PgThread::connect(&self.connect_url, PgUse::Source)?);
        }
        Ok(Arc::clone(&slot))
    }

    /// Runs `f` on the connection, then resets its session ([`reset_session`]): nothing a
    /// statement left behind reaches the next call.
    fn call<R, F>(&self, f: F) -> Result<R, PgError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Client) -> R + Send + 'static,
    {
        self.thread()?.call(|client| {
            let answer = f(client);
            reset_session(client);
            answer
        })
    }

    /// The relation's columns, checked for duplicate names.
    fn fields(&self) -> Result<Vec<Field>, PgSourceError> {
        let from = self.from.clone();
        let limit = self.limits.check_timeout;
        let fields = self
            .call(move |client| -> Result<Vec<Field>, Fault> {
                let mut tx = begin(client, limit)?;
                describe(&mut tx, &from)
            })?
            .map_err(|f| self.source_error(f, limit))?;
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|g| g.name == f.name) {
                return Err(PgSourceError::DuplicateColumn {
                    url: self.url.clone(),
                    relation: self.relation.to_string(),
                    column: f.name.clone(),
                });
            }
        }
        Ok(fields)
    }

    fn source_error(&self, fault: Fault, limit: Duration) -> PgSourceError {
        let message = match fault {
            Fault::Timeout => format!("took longer than {limit:?} and was stopped"),
            // The error names the server already.
            Fault::Client(message) | Fault::Refused(message) => message,
            other => self.fault_text(other),
        };
        PgSourceError::Failed {
            url: self.url.clone(),
            relation: self.relation.to_string(),
            message,
        }
    }

    fn predicate_error(&self, predicate: &str, fault: Fault, limit: Duration) -> PredicateError {
        match fault {
            Fault::Timeout => PredicateError::Timeout { limit },
            Fault::Refused(message) => PredicateError::Postgres {
                predicate: predicate.to_string(),
                message,
            },
            Fault::Parameters => PredicateError::NotAllowed("SQL parameters ($1, $2, …)".into()),
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
            Fault::UnknownColumn { column, columns } => {
                SelectError::UnknownColumn { column, columns }
            }
            other => SelectError::Failed(self.fault_text(other)),
        }
    }

    /// A fault's message, naming the server when the connection failed.
    fn fault_text(&self, fault: Fault) -> String {
        match fault {
            Fault::Client(message) => format!("PostgreSQL at {}: {message}", self.url),
            Fault::Refused(message) => message,
            Fault::Timeout => "canceled by the statement timeout".to_string(),
            Fault::Parameters => "SQL parameters ($1, $2, …) are not allowed".to_string(),
            Fault::Predicate(index, inner) => {
                format!("predicate {}: {}", index + 1, self.fault_text(*inner))
            }
            Fault::UnknownColumn { column, columns } => format!(
                "no column {} (columns: {})",
                quoted(&column),
                list(&columns)
            ),
        }
    }
}

/// Up to `sample` rows of `from` where `condition` holds, all columns, as JSON.
fn sample_rows(
    tx: &mut Transaction<'_>,
    from: &str,
    condition: &str,
    fields: &[Field],
    sample: i64,
) -> Result<Vec<Map<String, Value>>, Fault> {
    let reads: Vec<String> = fields.iter().map(Field::read).collect();
    let sql = format!(
        "SELECT {} FROM {from} AS profiles WHERE {condition} LIMIT {sample}",
        reads.join(", ")
    );
    let stmt = prepare_predicate(tx, &sql)?;
    let mut rows = Vec::new();
    for row in tx.query(&stmt, &[])? {
        let mut map = Map::new();
        for (i, field) in fields.iter().enumerate() {
            let Cell(value) = row.try_get(i)?;
            map.insert(field.name.clone(), finish(field.kind(), value));
        }
        rows.push(map);
    }
    Ok(rows)
}

/// A select, as run on the connection's thread.
struct Plan {
    from: String,
    key: String,
    columns: Vec<String>,
    predicates: Vec<String>,
    /// Only the rows with these keys (compared as text).
    keys: Option<Vec<String>>,
    limit: Duration,
}

impl Plan {
    /// Describes, checks, then streams the rows in batches to `batches`; stops early (with
    /// `Ok`) when the caller drops its end.
    fn run(
        self,
        client: &mut Client,
        batches: &mpsc::SyncSender<Vec<ProfileRow>>,
    ) -> Result<(), Fault> {
        let started = Instant::now();
        let mut tx = begin(client, self.limit)?;
        let fields = describe(&mut tx, &self.from)?;
        let mut wanted: Vec<&Field> = Vec::with_capacity(self.columns.len());
        for name in &self.columns {
            let found = fields
                .iter()
                .find(|f| f.name == *name)
                .or_else(|| fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)));
            match found {
                Some(f) => wanted.push(f),
                None => {
                    return Err(Fault::UnknownColumn {
                        column: name.clone(),
                        columns: fields.iter().map(|f| f.name.clone()).collect(),
                    })
                }
            }
        }
        for (index, predicate) in self.predicates.iter().enumerate() {
            let sql = format!(
                "SELECT 1 FROM {} AS profiles WHERE {}",
                self.from,
                wrap(predicate)
            );
            prepare_predicate(&mut tx, &sql).map_err(|f| Fault::Predicate(index, Box::new(f)))?;
        }
        let mut sql = format!("SELECT ({})::text", quote_ident(&self.key));
        for field in &wanted {
            sql.push_str(", ");
            sql.push_str(&field.read());
        }
        for predicate in &self.predicates {
            sql.push_str(&format!(", COALESCE({}, false)", wrap(predicate)));
        }
        let conditions: Vec<String> = self.predicates.iter().map(|p| wrap(p)).collect();
        sql.push_str(&format!(
            " FROM {} AS profiles WHERE ({})",
            self.from,
            conditions.join(" OR ")
        ));
        if self.keys.is_some() {
            sql.push_str(&format!(
                " AND ({})::text = ANY($1::text[])",
                quote_ident(&self.key)
            ));
        }
        let kinds: Vec<ColumnType> = wanted.iter().map(|f| f.kind()).collect();
        let stmt = tx.prepare(&sql)?;
        let portal = match &self.keys {
            Some(keys) => tx.bind(&stmt, &[keys])?,
            None => tx.bind(&stmt, &[])?,
        };
        let mut used = started.elapsed();
        loop {
            let fetch = Instant::now();
            pin(&mut tx, remaining(self.limit, used)?)?;
            let rows = tx.query_portal(&portal, BATCH_ROWS)?;
            used += fetch.elapsed();
            let last = rows.len() < BATCH_ROWS as usize;
            if !rows.is_empty() {
                let batch = rows
                    .iter()
                    .map(|row| profile_row(row, &kinds, self.predicates.len()))
                    .collect::<Result<Vec<_>, Fault>>()?;
                if batches.send(batch).is_err() {
                    return Ok(());
                }
            }
            if last {
                return Ok(());
            }
        }
    }
}

/// One result row of a select: key, values, then one bool per predicate.
fn profile_row(row: &Row, kinds: &[ColumnType], predicates: usize) -> Result<ProfileRow, Fault> {
    let key: Option<String> = row.try_get(0)?;
    let mut values = Vec::with_capacity(kinds.len());
    for (i, kind) in kinds.iter().enumerate() {
        let Cell(value) = row.try_get(1 + i)?;
        values.push(finish(*kind, value));
    }
    let mut in_segment = Vec::with_capacity(predicates);
    for i in 0..predicates {
        in_segment.push(row.try_get::<_, bool>(1 + kinds.len() + i)?);
    }
    Ok(ProfileRow {
        key: key.unwrap_or_default(),
        values,
        in_segment,
        position: None,
    })
}

/// The memory each sort or hash of a predicate's query may take before it spills to disk.
const WORK_MEM: &str = "16MB";

/// A read-only transaction with its settings fixed ([`pin`]). Dropping it rolls it back (and
/// with it any setting a statement changed).
fn begin(client: &mut Client, limit: Duration) -> Result<Transaction<'_>, Fault> {
    let mut tx = client.build_transaction().read_only(true).start()?;
    pin(&mut tx, limit)?;
    Ok(tx)
}

/// Fixes, for the rest of the transaction, what a statement's meaning and cost depend on:
/// PostgreSQL's standard string syntax (so that `'\'` reads as [`scan`] read it), the
/// statement timeout, and the memory of each sort or hash. Set again before each batch of a
/// select, so that a setting the previous batch changed cannot outlast it.
fn pin(tx: &mut Transaction<'_>, limit: Duration) -> Result<(), Fault> {
    tx.batch_execute(&format!(
        "SET LOCAL standard_conforming_strings = on; SET LOCAL statement_timeout = {}; \
         SET LOCAL work_mem = '{WORK_MEM}'",
        millis(limit)
    ))?;
    Ok(())
}

/// What is left of `limit` after `used`, or a timeout when nothing is.
fn remaining(limit: Duration, used: Duration) -> Result<Duration, Fault> {
    limit
        .checked_sub(used)
        .filter(|d| d.as_millis() > 0)
        .ok_or(Fault::Timeout)
}

/// Milliseconds for `statement_timeout`: at least 1 (0 would mean no limit).
fn millis(d: Duration) -> u128 {
    d.as_millis().clamp(1, i32::MAX as u128)
}

/// Prepares (parses and analyses, without running) a statement around a predicate, which
/// must not hold parameters.
fn prepare_predicate(tx: &mut Transaction<'_>, sql: &str) -> Result<Statement, Fault> {
    let stmt = tx.prepare(sql)?;
    if !stmt.params().is_empty() {
        return Err(Fault::Parameters);
    }
    Ok(stmt)
}

/// The relation's columns, as PostgreSQL describes `SELECT *` over it (nothing is read).
fn describe(tx: &mut Transaction<'_>, from: &str) -> Result<Vec<Field>, Fault> {
    let stmt = tx.prepare(&format!("SELECT * FROM {from} AS profiles"))?;
    Ok(stmt
        .columns()
        .iter()
        .map(|c| Field {
            name: c.name().to_string(),
            ty: c.type_().clone(),
        })
        .collect())
}

/// A domain's base type (the type itself otherwise).
fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(base) => base_type(base),
        _ => ty,
    }
}

/// The profile column type of a PostgreSQL type.
fn kind_of(ty: &Type) -> ColumnType {
    let ty = base_type(ty);
    match ty.kind() {
        Kind::Array(_) | Kind::Composite(_) => ColumnType::Json,
        Kind::Simple => match *ty {
            Type::BOOL => ColumnType::Boolean,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => ColumnType::Integer,
            Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => ColumnType::Real,
            Type::DATE => ColumnType::Date,
            Type::TIMESTAMP | Type::TIMESTAMPTZ => ColumnType::Timestamp,
            Type::JSON | Type::JSONB => ColumnType::Json,
            _ => ColumnType::Text,
        },
        _ => ColumnType::Text,
    }
}

/// An expression reading column `ident` (quoted) as a type [`Cell`] decodes: booleans, 64-bit
/// integers and floats, dates, timestamps and JSON natively; arrays and composites as `jsonb`;
/// `numeric` and everything else as text.
fn read_expr(ident: &str, ty: &Type) -> String {
    let ty = base_type(ty);
    let cast = match ty.kind() {
        Kind::Array(_) | Kind::Composite(_) => return format!("to_jsonb({ident})"),
        Kind::Simple => match *ty {
            Type::BOOL => "boolean",
            Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => "int8",
            Type::FLOAT4 | Type::FLOAT8 => "float8",
            Type::DATE => "date",
            Type::TIMESTAMP => "timestamp",
            Type::TIMESTAMPTZ => "timestamptz",
            Type::JSON => "json",
            Type::JSONB => "jsonb",
            _ => "text",
        },
        _ => "text",
    };
    format!("({ident})::{cast}")
}

/// A value's final JSON: `numeric` (read as text) becomes a number.
fn finish(kind: ColumnType, value: Value) -> Value {
    match value {
        Value::String(s) if kind == ColumnType::Real => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        other => other,
    }
}

/// One value of a row read by [`read_expr`], as JSON.
struct Cell(Value);

type DecodeError = Box<dyn std::error::Error + Sync + Send>;

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, DecodeError> {
        let value = match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::from(i16::from_sql(ty, raw)?),
            Type::INT4 => Value::from(i32::from_sql(ty, raw)?),
            Type::INT8 => Value::from(i64::from_sql(ty, raw)?),
            Type::FLOAT4 => float(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => float(f64::from_sql(ty, raw)?),
            Type::JSON | Type::JSONB => Value::from_sql(ty, raw)?,
            Type::DATE => Value::String(date(i32::from_sql(&Type::INT4, raw)?)?),
            Type::TIMESTAMP => Value::String(timestamp(i64::from_sql(&Type::INT8, raw)?, false)?),
            Type::TIMESTAMPTZ => Value::String(timestamp(i64::from_sql(&Type::INT8, raw)?, true)?),
            // Text (every other column is read as text).
            _ => Value::String(String::from_utf8_lossy(raw).into_owned()),
        };
        Ok(Cell(value))
    }

    fn from_sql_null(_: &Type) -> Result<Cell, DecodeError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A float as a JSON number (NaN and infinities, which JSON lacks, as `null`).
fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn epoch() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

/// A `date` (days since 2000-01-01) as `YYYY-MM-DD`.
fn date(days: i32) -> Result<String, DecodeError> {
    match days {
        i32::MAX => Ok("infinity".into()),
        i32::MIN => Ok("-infinity".into()),
        d => chrono::TimeDelta::try_days(i64::from(d))
            .and_then(|delta| epoch().date().checked_add_signed(delta))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .ok_or_else(|| "date out of range".into()),
    }
}

/// A `timestamp` / `timestamptz` (microseconds since 2000-01-01) as ISO 8601; with `utc`,
/// RFC 3339 with `Z`.
fn timestamp(micros: i64, utc: bool) -> Result<String, DecodeError> {
    match micros {
        i64::MAX => Ok("infinity".into()),
        i64::MIN => Ok("-infinity".into()),
        t => {
            let at = epoch()
                .checked_add_signed(chrono::TimeDelta::microseconds(t))
                .ok_or("timestamp out of range")?;
            Ok(if utc {
                at.and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            } else {
                at.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
            })
        }
    }
}

/// `(predicate)`, on lines of its own so that a trailing `--` comment ends where it should.
fn wrap(sql: &str) -> String {
    format!("(\n{sql}\n)")
}

/// Checks SQL text the way PostgreSQL's lexer would see it: one expression (or query) whose
/// parentheses balance outside strings, quoted identifiers and comments, without `;`,
/// parameters (`$1`) or control characters other than tab and line breaks.
pub(crate) fn scan(sql: &str) -> Result<(), PredicateError> {
    let b = sql.as_bytes();
    if b.iter()
        .any(|&c| (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r')) || c == 0x7f)
    {
        return Err(PredicateError::NotAllowed(
            "control characters (other than tab and line breaks)".into(),
        ));
    }
    let mut depth: i64 = 0;
    let mut tokens = 0usize;
    // The name written last (comments and spaces aside): a function's, when `(` follows.
    let mut name: Option<Name> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let start = i;
        let last = name.take();
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                name = last;
            }
            b'-' if next == Some(b'-') => {
                i = line_end(b, i);
                name = last;
            }
            b'/' if next == Some(b'*') => {
                i = comment_end(b, i)?;
                name = last;
            }
            b'\'' => {
                tokens += 1;
                i = string_end(b, i, false)?;
            }
            b'"' => {
                tokens += 1;
                i = identifier_end(b, i)?;
                name = Some(Name::Quoted(sql[start + 1..i - 1].replace("\"\"", "\"")));
            }
            b'$' => {
                tokens += 1;
                if next.is_some_and(|d| d.is_ascii_digit()) {
                    return Err(PredicateError::NotAllowed(
                        "SQL parameters ($1, $2, …)".into(),
                    ));
                }
                i = match dollar_tag_end(b, i) {
                    Some(open_end) => {
                        let tag = &b[i..open_end];
                        match find(&b[open_end..], tag) {
                            Some(at) => open_end + at + tag.len(),
                            None => {
                                return Err(PredicateError::Unterminated("dollar-quoted string"))
                            }
                        }
                    }
                    None => i + 1,
                };
            }
            b';' => return Err(PredicateError::MultipleStatements),
            b'(' => {
                if let Some(called) = last {
                    called.check_call()?;
                }
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
            b'0'..=b'9' => {
                tokens += 1;
                i = number_end(b, i);
            }
            b'.' if next.is_some_and(|d| d.is_ascii_digit()) => {
                tokens += 1;
                i = number_end(b, i);
            }
            c if ident_start(c) => {
                tokens += 1;
                let third = b.get(i + 2).copied();
                i = match (c.to_ascii_lowercase(), next, third) {
                    (b'e', Some(b'\''), _) => string_end(b, i + 1, true)?,
                    (b'b' | b'x' | b'n', Some(b'\''), _) => string_end(b, i + 1, false)?,
                    (b'u', Some(b'&'), Some(b'\'')) => string_end(b, i + 2, false)?,
                    (b'u', Some(b'&'), Some(b'"')) => {
                        name = Some(Name::Escaped);
                        identifier_end(b, i + 2)?
                    }
                    _ => {
                        let mut j = i + 1;
                        while j < b.len() && ident_cont(b[j]) {
                            j += 1;
                        }
                        name = Some(Name::Plain(sql[start..j].to_string()));
                        j
                    }
                };
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

/// A name as [`scan`] read it, to check when a `(` follows (a function call).
enum Name {
    /// Unquoted: PostgreSQL folds it to lower case.
    Plain(String),
    /// A quoted identifier's content.
    Quoted(String),
    /// `U&"…"`, whose escapes could spell any name.
    Escaped,
}

impl Name {
    /// Refuses a call of a function [`super::pg_calls`] lists.
    fn check_call(self) -> Result<(), PredicateError> {
        let why = match self {
            Name::Plain(n) | Name::Quoted(n) => super::pg_calls::refused(&n),
            Name::Escaped => Some("function names written with Unicode escapes (U&\"…\")".into()),
        };
        why.map_or(Ok(()), |w| Err(PredicateError::NotAllowed(w)))
    }
}

/// PostgreSQL's `ident_start`: a letter, `_` or any byte of a non-ASCII character.
fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// PostgreSQL's `ident_cont`: also digits and `$`.
fn ident_cont(c: u8) -> bool {
    ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// The end of a `--` comment: the next line break (or the end).
fn line_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && !matches!(b[i], b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end of a `/* */` comment starting at `i`; these nest in PostgreSQL.
fn comment_end(b: &[u8], mut i: usize) -> Result<usize, PredicateError> {
    let mut depth = 0usize;
    loop {
        match (b.get(i), b.get(i + 1)) {
            (None, _) => return Err(PredicateError::Unterminated("/* comment")),
            (Some(b'/'), Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (Some(b'*'), Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => i += 1,
        }
    }
}

/// The end of a string whose opening quote is at `i`. `''` is a quote; with `escapes`
/// (`E'…'`), so is `\'` (a backslash escapes the next character). A string continues after
/// whitespace holding a line break (and `--` comments) when another `'` follows, in the same
/// mode — as in PostgreSQL, where `E'a'<newline>'\''` is one escape string.
fn string_end(b: &[u8], mut i: usize, escapes: bool) -> Result<usize, PredicateError> {
    loop {
        i += 1;
        loop {
            match b.get(i) {
                None => return Err(PredicateError::Unterminated("string")),
                Some(b'\\') if escapes => i += 2,
                Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                Some(b'\'') => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
        match continuation(b, i) {
            Some(quote) => i = quote,
            None => return Ok(i),
        }
    }
}

/// Where a string ended at `i` continues: the index of the next `'` when only whitespace
/// (with at least one line break) and `--` comments come before it.
fn continuation(b: &[u8], mut i: usize) -> Option<usize> {
    let mut line_break = false;
    loop {
        match b.get(i) {
            Some(b' ' | b'\t') => i += 1,
            Some(b'\n' | b'\r') => {
                line_break = true;
                i += 1;
            }
            Some(b'-') if b.get(i + 1) == Some(&b'-') => i = line_end(b, i),
            Some(b'\'') if line_break => return Some(i),
            _ => return None,
        }
    }
}

/// The end of a quoted identifier whose opening `"` is at `i` (`""` is a quote).
fn identifier_end(b: &[u8], mut i: usize) -> Result<usize, PredicateError> {
    i += 1;
    loop {
        match b.get(i) {
            None => return Err(PredicateError::Unterminated("quoted identifier")),
            Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
            Some(b'"') => return Ok(i + 1),
            Some(_) => i += 1,
        }
    }
}

/// When a `$` at `i` opens a dollar quote (`$$` or `$tag$`), the end of the opening delimiter.
fn dollar_tag_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if b.get(j) == Some(&b'$') {
        return Some(j + 1);
    }
    if !b.get(j).is_some_and(|&c| ident_start(c)) {
        return None;
    }
    while b
        .get(j)
        .is_some_and(|&c| ident_start(c) || c.is_ascii_digit())
    {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

/// The end of a number at `i`: digits, a fraction, an exponent (`1e5`, `1.5E-3`). A letter
/// after it starts the next token, as in PostgreSQL before 15 (`1e'x'` is `1` then `e'x'`;
/// later versions refuse such input).
fn number_end(b: &[u8], mut i: usize) -> usize {
    let digits = |b: &[u8], mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    i = digits(b, i);
    if b.get(i) == Some(&b'.') && b.get(i + 1) != Some(&b'.') {
        i = digits(b, i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        if b.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
            i = digits(b, i + 1 + sign);
        }
    }
    i
}

/// The first position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> PredicateError {
        match scan(sql) {
            Err(e) => e,
            Ok(()) => panic!("accepted: {sql}"),
        }
    }

    #[test]
    fn scans_ordinary_predicates() {
        for ok in [
            "ltv > 500 AND country = 'RO'",
            "email ILIKE '%@example.com' AND name = 'it''s; (not) code'",
            "attrs @> '{\"plan\": \"pro\"}' AND attrs->>'city' = 'Cluj'",
            "tags[1] = 'a' AND x IN (1, (2)) AND \"we;ird (col\" = 1",
            "signed_up >= DATE '2024-01-01' - INTERVAL '30 days'",
            "note = $$ it's ) ; $$ OR note = $t$ $$ ) $t$",
            "a$b$c = 1 -- a comment with ) and ;",
            "x = 1 /* outer /* inner ) ; */ still comment */",
            "x = E'a\\'b' AND y = U&'d\\0061t' AND z = B'101' AND w = X'1F'",
            "1.5e3 < amount AND .5 < ratio",
            "x = 'a'\n'b'",
        ] {
            assert!(scan(ok).is_ok(), "{ok}: {:?}", scan(ok));
        }
    }

    #[test]
    fn refuses_what_would_change_the_query() {
        assert!(matches!(refused("  "), PredicateError::Empty));
        assert!(matches!(refused("-- only"), PredicateError::Empty));
        assert!(matches!(
            refused("true; DROP TABLE customers"),
            PredicateError::MultipleStatements
        ));
        for breakout in [
            "1=1) OR (true",
            // PostgreSQL ends E'\'' after the second quote; a naive scanner would not.
            "email = E'\\'' ) OR (true --'",
            // The same trick inside a continued escape string.
            "email = E'a'\n'\\'' ) OR (true --'",
            // A dollar-quoted string hides the quote from a naive scanner.
            "email = $$'$$ ) OR (true --'",
            // Nested comments: PostgreSQL's comment ends after the second '*/'.
            "true /* /* */ ( */ ) OR (true",
        ] {
            assert!(
                matches!(refused(breakout), PredicateError::Unbalanced(_)),
                "{breakout}"
            );
        }
        assert!(matches!(refused("(true"), PredicateError::Unbalanced(_)));
        assert!(matches!(
            refused("x = 'open"),
            PredicateError::Unterminated(_)
        ));
        assert!(matches!(
            refused("x = E'open\\'"),
            PredicateError::Unterminated(_)
        ));
        assert!(matches!(
            refused("\"open = 1"),
            PredicateError::Unterminated(_)
        ));
        assert!(matches!(
            refused("x /* /* */"),
            PredicateError::Unterminated(_)
        ));
        assert!(matches!(
            refused("x = $a$ open $b$"),
            PredicateError::Unterminated(_)
        ));
        assert!(matches!(refused("id = $1"), PredicateError::NotAllowed(_)));
        for call in [
            "set_config('standard_conforming_strings', 'off', true) = 'off'",
            "pg_catalog.SET_CONFIG ('work_mem', '1GB', false) IS NOT NULL",
            "\"set_config\"('a.b', 'c', true) IS NULL",
            "pg_advisory_lock /* a comment */ (42) IS NULL",
            "x IN (SELECT 1 FROM dblink('host=h', 'SELECT 1') AS t(a int))",
            "U&\"set\\005fconfig\"('a.b', 'c', true) IS NULL",
            "length(query_to_xml('SELECT 1', true, true, '')::text) > 0",
        ] {
            assert!(
                matches!(refused(call), PredicateError::NotAllowed(_)),
                "{call}"
            );
        }
        // The same names as strings, columns or in comments are fine.
        for ok in [
            "note = 'set_config(1)' AND \"pg_advisory_lock\" = 1",
            "lo_level > 2 -- set_config(",
            "lower(email) LIKE '%@x.ro'",
        ] {
            assert!(scan(ok).is_ok(), "{ok}: {:?}", scan(ok));
        }
        assert!(matches!(refused("x = 1\0"), PredicateError::NotAllowed(_)));
        assert!(matches!(
            refused("x = 1\u{b}"),
            PredicateError::NotAllowed(_)
        ));
    }

    #[test]
    fn table_names_are_quoted_part_by_part() {
        let from = |t: &str| PgRelation::Table(t.into()).sql();
        assert_eq!(from("customers").unwrap(), "\"customers\"");
        assert_eq!(from("crm.Customers").unwrap(), "\"crm\".\"Customers\"");
        for bad in ["a\"b", "crm.", ".x", "a.b.c.d", "x\0y"] {
            assert!(from(bad).is_err(), "{bad}");
        }
        let q = |s: &str| PgRelation::Query(s.into()).sql();
        assert_eq!(q("SELECT 1 AS id;").unwrap(), "(\nSELECT 1 AS id\n)");
        assert!(q("SELECT 1; DROP TABLE x").is_err());
        assert!(q("SELECT 1) AS x, (SELECT 2").is_err());
    }

    #[test]
    fn values_are_decoded_as_specified() {
        assert_eq!(date(0).unwrap(), "2000-01-01");
        assert_eq!(date(-1).unwrap(), "1999-12-31");
        assert_eq!(date(i32::MAX).unwrap(), "infinity");
        assert_eq!(
            timestamp(1_500_000, false).unwrap(),
            "2000-01-01T00:00:01.500"
        );
        assert_eq!(
            timestamp(3_600_000_000, true).unwrap(),
            "2000-01-01T01:00:00Z"
        );
        assert_eq!(
            finish(ColumnType::Real, Value::String("12.50".into())),
            serde_json::json!(12.5)
        );
        assert_eq!(
            finish(ColumnType::Real, Value::String("NaN".into())),
            Value::Null
        );
        assert_eq!(
            finish(ColumnType::Text, Value::String("12".into())),
            Value::String("12".into())
        );
    }
}
