//! The embedded profile store and the segment predicate engine.
//!
//! Profiles live in one SQLite file (e.g. `HOME/profiles.sqlite`), in a table `profiles` whose
//! columns are those of the last imported file, with types inferred from it (or taken from a
//! Parquet schema). An import streams the file into a new table and swaps it in, in one
//! transaction, so a failed import changes nothing. Segments are SQL boolean expressions over
//! that table, evaluated by SQLite on read-only connections that may read nothing else.
//!
//! ```no_run
//! # use segsync::profiles::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = ProfileStore::open(std::path::Path::new("home/profiles.sqlite"))?;
//! let report = store.import(std::path::Path::new("customers.csv"), None, "customer_id")?;
//! println!("{} profiles, {} columns", report.rows, report.columns.len());
//! store.check_predicate("lifetime_value > 500 AND country = 'RO'")?;
//! let stats = store.select(
//!     &["email".to_string()],
//!     &["lifetime_value > 500".to_string(), "country = 'RO'".to_string()],
//!     |row| -> Result<(), std::convert::Infallible> {
//!         println!("{} {:?} {:?}", row.key, row.values, row.in_segment);
//!         Ok(())
//!     },
//! )?;
//! # Ok(()) }
//! ```

mod changes;
mod csv_input;
mod dialect;
mod error;
mod fuzz;
mod infer;
mod load;
mod my_conn;
mod my_scan;
mod my_types;
mod mysql;
mod ndjson_input;
mod parquet_guard;
mod parquet_input;
mod pg_calls;
pub(crate) mod postgres;
pub(crate) mod predicate;
mod read_ahead;
mod typecheck;
mod typing;

pub use self::mysql::{check_mysql_source, MyReach, MySqlSource, MySqlSourceError};
pub use self::postgres::{check_source, PgRelation, PgSource, PgSourceError, Reach, BATCH_ROWS};
pub use changes::ProfileChanges;
pub use dialect::{
    delimiter_name, parse_delimiter, DateFormat, Dialect, ImportOptions, OnBadValue,
};
pub use error::{
    BadValue, ImportError, InputError, Location, PredicateError, ProfileError, SelectError,
};
pub use my_conn::{is_mysql_url, MyConnError};
/// Where a database source's profiles are: a table or a query (PostgreSQL or MySQL).
pub type Relation = PgRelation;
pub use fuzz::{fuzz_import, fuzz_predicate, FUZZ_KEY};
pub use infer::ColumnType;
pub use typecheck::comparison_warnings;

use error::{list, quoted};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The table that holds the profiles.
pub const PROFILES_TABLE: &str = "profiles";
/// Facts about the last import (key column, source file, time).
pub(crate) const META_TABLE: &str = "segsync_profiles_meta";
/// How long an import waits for another writer (another process importing) to finish.
pub(crate) const WRITER_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The format of a file to import.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited values (`,` `;` tab `|`, detected) with a header line, UTF-8.
    Csv,
    /// One JSON object per line, UTF-8.
    Ndjson,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format told by a file's extension: `.csv`, `.ndjson` / `.jsonl`, `.parquet` (any case).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    /// `csv`, `ndjson` (or `jsonl`), `parquet`, in any case.
    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            "parquet" => Ok(Format::Parquet),
            _ => Err(format!(
                "unknown format {}: expected csv, ndjson (or jsonl) or parquet",
                quoted(s)
            )),
        }
    }
}

/// A profile column: its name as in the imported file, and its type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
}

/// What an import did.
#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    pub file: PathBuf,
    pub format: Format,
    pub key_column: String,
    /// Profiles stored.
    pub rows: u64,
    /// The columns in file order, with their types (the key column is always text).
    pub columns: Vec<Column>,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// How a CSV file was read (delimiter, number and date formats): given or detected.
    pub dialect: Option<Dialect>,
    /// What was done with values that do not fit their column's type.
    pub on_bad_value: OnBadValue,
    /// The first values that do not fit their column's type (at most 100), in file order.
    pub bad_values: Vec<BadValue>,
    /// All of them.
    pub bad_value_count: u64,
    /// Profiles left out for their bad values (with [`OnBadValue::Skip`]).
    pub skipped_rows: u64,
    /// What people should know about the types chosen (a column kept as text although most
    /// of its values are numbers; dates that could be read day first or month first).
    pub notes: Vec<String>,
}

/// A predicate's member count and a few of its members.
#[derive(Clone, Debug, Serialize)]
pub struct Preview {
    /// Profiles for which the predicate is true.
    pub count: u64,
    /// The column names, in table order (the keys of each sample map).
    pub columns: Vec<String>,
    /// Up to `sample` matching profiles, column name → value.
    pub sample: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// One profile from [`ProfileStore::select`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProfileRow {
    /// The key column's value, as text.
    pub key: String,
    /// The requested columns' values, in the order requested: integers and reals as JSON
    /// numbers, text (also dates and timestamps) as strings, booleans as `true`/`false`,
    /// JSON columns parsed, NULL as `null`.
    pub values: Vec<serde_json::Value>,
    /// Whether each predicate holds for this profile, in the order given.
    pub in_segment: Vec<bool>,
    /// Where a full pass reads it, when the source has such an order (the embedded store's
    /// row number): the profiles of one address merge in that order, however many passes
    /// read them.
    pub position: Option<i64>,
}

/// What a [`ProfileStore::select`] pass found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SelectStats {
    /// Profiles passed to the callback (in at least one segment).
    pub rows: u64,
    /// Members of each predicate, in the order given.
    pub per_predicate: Vec<u64>,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
}

/// How long predicate queries may run before they are interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// For [`ProfileStore::check_predicate`] and [`ProfileStore::preview`] (default 5 s).
    pub check_timeout: Duration,
    /// For [`ProfileStore::select`]: time spent inside SQLite, not in the callback (default 30 s).
    pub select_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            check_timeout: Duration::from_secs(5),
            select_timeout: Duration::from_secs(30),
        }
    }
}

/// The profile store: one SQLite file.
///
/// `Send + Sync`: imports are serialised on one writer connection; every read (metadata,
/// predicates) opens its own read-only connection and sees the last committed import, even
/// while another import is running.
pub struct ProfileStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    limits: Limits,
    /// The last answer of [`ProfileStore::changes`] about a generation, while the store is
    /// still at the generation it answered for: a run asks how much changed, then which.
    last_changes: Mutex<Option<(u64, ProfileChanges)>>,
}

impl fmt::Debug for ProfileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileStore")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ProfileStore {
    /// Opens the store, creating the file (and its folder) if missing; the file (personal
    /// data) and its `-wal` and `-shm` are private to their owner (0600).
    pub fn open(path: &Path) -> Result<ProfileStore, ProfileError> {
        let err = |source| ProfileError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::create_dir_all(parent).map_err(|source| ProfileError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
        }
        crate::home::private_sqlite_file(path).map_err(|source| ProfileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(WRITER_BUSY_TIMEOUT).map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "profile store not in WAL mode");
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL;
             PRAGMA temp_store = FILE;
             CREATE TABLE IF NOT EXISTS {META_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
        ))
        .map_err(err)?;
        Ok(ProfileStore {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            limits: Limits::default(),
            last_changes: Mutex::new(None),
        })
    }

    /// The same store with other time limits for predicate queries.
    pub fn with_limits(mut self, limits: Limits) -> ProfileStore {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Imports `file` (format from `format`, else from its extension) as the new profiles,
    /// keyed by `key_column`.
    ///
    /// Streams the file into a new table with typed columns, then swaps it in atomically in one
    /// transaction; on any error the previous data is untouched. The key column must exist,
    /// and its values be non-empty and unique; it is stored as text.
    pub fn import(
        &self,
        file: &Path,
        format: Option<Format>,
        key_column: &str,
    ) -> Result<ImportReport, ImportError> {
        self.import_with(file, format, key_column, &ImportOptions::default())
    }

    /// [`ProfileStore::import`], with what the person importing says about a CSV file:
    /// delimiter, number and date formats, columns kept as text, what to do with values that
    /// do not fit their column's type.
    pub fn import_with(
        &self,
        file: &Path,
        format: Option<Format>,
        key_column: &str,
        options: &ImportOptions,
    ) -> Result<ImportReport, ImportError> {
        let started = Instant::now();
        let format = format.or_else(|| Format::from_path(file)).ok_or_else(|| {
            ImportError::UnknownFormat {
                file: file.to_path_buf(),
            }
        })?;
        if format != Format::Csv && options.has_csv_options() {
            return Err(ImportError::input(
                file,
                None,
                None,
                format!("the import options (delimiter, decimal comma, date format, bad values, text columns) apply to CSV files only, not to {format}"),
            ));
        }
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let err = |source| ProfileError::Sqlite {
            path: self.path.clone(),
            source,
        };
        // A bigger page cache while importing (bounded: memory stays flat with the file's size).
        conn.execute_batch("PRAGMA cache_size = -16384; PRAGMA temp.cache_size = -16384;")
            .map_err(err)?;
        let result = match format {
            Format::Csv => csv_input::import(&mut conn, &self.path, file, key_column, options),
            Format::Ndjson => ndjson_input::import(&mut conn, &self.path, file, key_column)
                .map(csv_input::Imported::other),
            Format::Parquet => parquet_input::import(&mut conn, &self.path, file, key_column)
                .map(csv_input::Imported::other),
        };
        if let Err(e) =
            conn.execute_batch("PRAGMA cache_size = -2000; PRAGMA temp.cache_size = -2000;")
        {
            tracing::debug!(error = %e, "restoring the cache size failed");
        }
        drop(conn);
        let imported = result?;
        let report = ImportReport {
            file: file.to_path_buf(),
            format,
            key_column: key_column.to_string(),
            rows: imported.rows,
            columns: imported.columns,
            duration: started.elapsed(),
            dialect: imported.dialect,
            on_bad_value: options.on_bad_value,
            bad_values: imported.bad_values,
            bad_value_count: imported.bad_value_count,
            skipped_rows: imported.skipped_rows,
            notes: imported.notes,
        };
        tracing::info!(
            file = %file.display(),
            %format,
            rows = report.rows,
            columns = report.columns.len(),
            bad_values = report.bad_value_count,
            seconds = report.duration.as_secs_f64(),
            "profiles imported"
        );
        Ok(report)
    }

    /// The key column of the last import, if any.
    pub fn key_column(&self) -> Result<Option<String>, ProfileError> {
        let conn = predicate::open_read_only(&self.path)?;
        predicate::key_column(&conn).map_err(|source| self.error(source))
    }

    /// The profile columns with their types (empty before the first import).
    pub fn columns(&self) -> Result<Vec<Column>, ProfileError> {
        let conn = predicate::open_read_only(&self.path)?;
        table_columns(&conn, &self.path)
    }

    /// The number of profiles.
    pub fn row_count(&self) -> Result<u64, ProfileError> {
        let conn = predicate::open_read_only(&self.path)?;
        if table_columns(&conn, &self.path)?.is_empty() {
            return Ok(0);
        }
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {PROFILES_TABLE}"), [], |r| {
                r.get(0)
            })
            .map_err(|source| self.error(source))?;
        Ok(n as u64)
    }

    /// Checks a segment predicate (a SQL boolean expression over the profiles table) without
    /// running it over the data: it must be one expression that compiles, names existing
    /// columns, and reads nothing but the profiles table.
    pub fn check_predicate(&self, predicate: &str) -> Result<(), PredicateError> {
        predicate::check(&self.path, predicate, self.limits.check_timeout)
    }

    /// The number of profiles for which `predicate` holds, and up to `sample` of them.
    pub fn preview(&self, predicate: &str, sample: usize) -> Result<Preview, PredicateError> {
        predicate::preview(&self.path, predicate, sample, self.limits.check_timeout)
    }

    /// One pass over the profiles: every row where at least one predicate is true, with the
    /// requested columns and one bool per predicate, streamed to `each` (one SQL query:
    /// `SELECT key, cols..., (p1), (p2)... FROM profiles WHERE (p1) OR (p2) ...`).
    ///
    /// The store is read in a thread of its own, a few handfuls of rows ahead of `each`,
    /// which is called on the calling thread. `each` returning an error stops the pass with
    /// [`SelectError::Callback`]. The deadline ([`Limits::select_timeout`]) counts the time
    /// spent in SQLite only.
    pub fn select<E, F>(
        &self,
        columns: &[String],
        predicates: &[String],
        each: F,
    ) -> Result<SelectStats, SelectError<E>>
    where
        F: FnMut(ProfileRow) -> Result<(), E>,
    {
        read_ahead::select(self.pass(columns, predicates, None), each)
    }

    /// [`ProfileStore::select`] over the profiles keyed `keys` only (those that exist), in
    /// the order a full pass reads them, provided the store is still at `generation` (else
    /// [`SelectError::Failed`]: an import came in between).
    pub fn select_keys<E, F>(
        &self,
        columns: &[String],
        predicates: &[String],
        keys: &[String],
        generation: u64,
        each: F,
    ) -> Result<SelectStats, SelectError<E>>
    where
        F: FnMut(ProfileRow) -> Result<(), E>,
    {
        let only = predicate::Only { keys, generation };
        read_ahead::select(self.pass(columns, predicates, Some(only)), each)
    }

    /// A pass over the store, as [`read_ahead::select`] runs it.
    fn pass<'a>(
        &'a self,
        columns: &'a [String],
        predicates: &'a [String],
        only: Option<predicate::Only<'a>>,
    ) -> read_ahead::Pass<'a> {
        read_ahead::Pass {
            store: &self.path,
            columns,
            predicates,
            limit: self.limits.select_timeout,
            only,
        }
    }

    /// What the imports changed after generation `since` (`None`: nothing asked, only the
    /// current generations). Generation 0: no import recorded its changes yet.
    pub fn changes(&self, since: Option<u64>) -> Result<ProfileChanges, ProfileError> {
        let conn = predicate::open_read_only(&self.path)?;
        let now = changes::since(&conn, None).map_err(|source| self.error(source))?;
        let Some(since) = since else {
            return Ok(now);
        };
        let mut last = self.last_changes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((asked, answer)) = last.as_ref() {
            let same = (answer.generation, answer.schema_generation)
                == (now.generation, now.schema_generation);
            if *asked == since && same {
                return Ok(answer.clone());
            }
        }
        let answer = changes::since(&conn, Some(since)).map_err(|source| self.error(source))?;
        *last = Some((since, answer.clone()));
        Ok(answer)
    }

    /// Whether the imports changed any profile after generation `since` (new, changed or
    /// removed), without listing them.
    pub fn changed_after(&self, since: u64) -> Result<bool, ProfileError> {
        let conn = predicate::open_read_only(&self.path)?;
        changes::any_since(&conn, since).map_err(|source| self.error(source))
    }

    /// How many profiles the imports changed after generation `since` (new, changed or
    /// removed), and how many the last import read.
    pub fn changed_count(&self, since: u64) -> Result<(u64, u64), ProfileError> {
        let changed = self.changes(Some(since))?.keys.len() as u64;
        let conn = predicate::open_read_only(&self.path)?;
        let total = changes::profile_count(&conn).map_err(|source| self.error(source))?;
        Ok((changed, total))
    }

    fn error(&self, source: rusqlite::Error) -> ProfileError {
        ProfileError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// `"name"`, safe as an SQL identifier whatever `name` holds.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The columns of the profiles table (none when nothing was imported yet).
pub(crate) fn table_columns(conn: &Connection, store: &Path) -> Result<Vec<Column>, ProfileError> {
    let err = |source| ProfileError::Sqlite {
        path: store.to_path_buf(),
        source,
    };
    let mut stmt = conn
        .prepare(&format!("PRAGMA main.table_info({PROFILES_TABLE})"))
        .map_err(err)?;
    let columns = stmt
        .query_map([], |r| {
            Ok(Column {
                name: r.get(1)?,
                kind: ColumnType::from_decl(&r.get::<_, String>(2)?),
            })
        })
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    Ok(columns)
}

/// Checks the column names of a file's header (CSV) or schema (Parquet).
pub(crate) fn check_column_names(
    file: &Path,
    location: Option<Location>,
    names: &[String],
) -> Result<(), ImportError> {
    let fail = |m: String| Err(ImportError::input(file, location, None, m));
    if names.len() > load::MAX_COLUMNS {
        return fail(format!(
            "too many columns ({}; at most {})",
            names.len(),
            load::MAX_COLUMNS
        ));
    }
    let mut seen: std::collections::HashMap<String, usize> =
        std::collections::HashMap::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            return fail(format!("column {} has no name", i + 1));
        }
        if name.chars().any(char::is_control) {
            return fail(format!(
                "column {} name {} contains a control character",
                i + 1,
                quoted(name)
            ));
        }
        if let Some(&j) = seen.get(&name.to_ascii_lowercase()) {
            return fail(if names[j] == *name {
                format!(
                    "duplicate column name {} (columns {} and {})",
                    quoted(name),
                    j + 1,
                    i + 1
                )
            } else {
                format!(
                    "column names {} and {} differ only in case (columns {} and {}); column names are case-insensitive",
                    quoted(&names[j]),
                    quoted(name),
                    j + 1,
                    i + 1
                )
            });
        }
        seen.insert(name.to_ascii_lowercase(), i);
    }
    Ok(())
}

/// The index of the key column, or an error listing the columns there are.
pub(crate) fn key_index(file: &Path, names: &[String], key: &str) -> Result<usize, ImportError> {
    if let Some(i) = names.iter().position(|n| n == key) {
        return Ok(i);
    }
    let mut message = format!("no column {} (columns: {})", quoted(key), list(names));
    if let Some(near) = names.iter().find(|n| n.eq_ignore_ascii_case(key)) {
        message.push_str(&format!("; did you mean {}?", quoted(near)));
    } else if let [only] = names {
        if let Some(d) = [';', '\t', '|'].into_iter().find(|d| only.contains(*d)) {
            message.push_str(&format!(
                "; the file seems to use {d:?} as its delimiter: give the delimiter {d:?}"
            ));
        }
    }
    Err(ImportError::input(file, None, None, message))
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
