//! Errors of the profile store: opening it, importing a file, checking and running predicates.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A failure of the SQLite file that holds the profiles.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// SQLite refused or failed an operation on the store.
    #[error("profile store {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The store's folder could not be created.
    #[error("profile store {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where in an input file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A 1-based line number (CSV: the line on which the record starts; NDJSON: the line).
    Line(u64),
    /// A 1-based row number (Parquet).
    Row(u64),
}

impl Location {
    /// The number, whatever its unit.
    pub fn number(self) -> u64 {
        match self {
            Location::Line(n) | Location::Row(n) => n,
        }
    }

    /// "on line 12" / "in row 12", for messages that point back at an earlier place.
    pub(crate) fn phrase(self) -> String {
        match self {
            Location::Line(n) => format!("on line {n}"),
            Location::Row(n) => format!("in row {n}"),
        }
    }
}

/// Bad content in an imported file, with the place it was found.
///
/// Displays as `FILE:LINE: column "NAME": MESSAGE` (CSV, NDJSON),
/// `FILE: row N: column "NAME": MESSAGE` (Parquet) or `FILE: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The file as it was given to [`super::ProfileStore::import`].
    pub file: PathBuf,
    pub location: Option<Location>,
    /// The column concerned, when there is one.
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        match self.location {
            Some(Location::Line(n)) => write!(f, ":{n}: ")?,
            Some(Location::Row(n)) => write!(f, ": row {n}: ")?,
            None => write!(f, ": ")?,
        }
        if let Some(column) = &self.column {
            write!(f, "column {}: ", quoted(column))?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for InputError {}

/// Why an import failed. In every case the previously imported profiles are untouched.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file's content is wrong (the message says what and where).
    #[error("{0}")]
    Input(InputError),
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No format was given and the extension does not tell it.
    #[error(
        "{}: cannot tell the format from the file name (expected .csv, .ndjson, .jsonl or .parquet); give the format explicitly",
        file.display()
    )]
    UnknownFormat { file: PathBuf },
    /// Several rows of the file cannot be imported (each error says where and why): the
    /// first of them listed, all counted.
    #[error("{}", rows_message(file, *count, errors))]
    Rows {
        file: PathBuf,
        count: u64,
        errors: Vec<InputError>,
    },
    /// Values that do not fit their column's type, and the import was to be refused for them
    /// ([`super::OnBadValue::Refuse`]): the first of them listed, all counted.
    #[error("{}", bad_values_message(file, *count, values))]
    BadValues {
        file: PathBuf,
        count: u64,
        values: Vec<BadValue>,
    },
    /// The store itself failed.
    #[error(transparent)]
    Store(#[from] ProfileError),
}

/// A value that does not fit its column's type (an `x` among numbers).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BadValue {
    /// The line on which its record starts (1-based, the header being line 1).
    pub line: u64,
    pub column: String,
    pub value: String,
    /// What is wrong with it: `not a number (with a decimal comma, as 1.234,50)`.
    pub problem: String,
}

impl fmt::Display for BadValue {
    /// `line 7: column "Lifetime value": "x" is not a number (...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: column {}: {} is {}",
            self.line,
            quoted(&self.column),
            quoted(&self.value),
            self.problem
        )
    }
}

fn rows_message(file: &std::path::Path, count: u64, errors: &[InputError]) -> String {
    let mut out = format!(
        "{}: {count} rows cannot be imported, so nothing was:",
        file.display()
    );
    for e in errors {
        out.push_str(&format!("\n  {e}"));
    }
    if count > errors.len() as u64 {
        out.push_str(&format!("\n  … and {} more", count - errors.len() as u64));
    }
    out
}

fn bad_values_message(file: &std::path::Path, count: u64, values: &[BadValue]) -> String {
    let mut out = format!(
        "{}: {count} value{} do{} not fit {} column's type, so nothing was imported (to import the rest, choose to leave bad values empty or to skip their rows):",
        file.display(),
        if count == 1 { "" } else { "s" },
        if count == 1 { "es" } else { "" },
        if count == 1 { "its" } else { "their" },
    );
    for v in values {
        out.push_str(&format!("\n  {v}"));
    }
    if count > values.len() as u64 {
        out.push_str(&format!("\n  … and {} more", count - values.len() as u64));
    }
    out
}

impl ImportError {
    pub(crate) fn input(
        file: &std::path::Path,
        location: Option<Location>,
        column: Option<&str>,
        message: impl Into<String>,
    ) -> ImportError {
        ImportError::Input(InputError {
            file: file.to_path_buf(),
            location,
            column: column.map(str::to_owned),
            message: message.into(),
        })
    }

    /// The input error, when the file's content was at fault (the first, when several rows
    /// were).
    pub fn as_input(&self) -> Option<&InputError> {
        match self {
            ImportError::Input(e) => Some(e),
            ImportError::Rows { errors, .. } => errors.first(),
            _ => None,
        }
    }
}

/// Why a segment predicate was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PredicateError {
    #[error("the predicate is empty")]
    Empty,
    /// A `;` outside quotes: a predicate is one SQL expression, never several statements.
    #[error(
        "more than one statement: a segment predicate is a single SQL expression, without ';'"
    )]
    MultipleStatements,
    /// Parentheses that close more than they open, or that stay open.
    #[error("unbalanced parentheses: {0}")]
    Unbalanced(&'static str),
    /// A `/*` comment, a quoted string or a quoted identifier without its end.
    #[error("unterminated {0}")]
    Unterminated(&'static str),
    /// SQLite could not compile the predicate; its message says why
    /// (e.g. `no such column: lifetime_valu`).
    #[error("invalid predicate: {0}")]
    Invalid(String),
    /// The predicate tried something other than reading the profiles table.
    #[error(
        "not allowed in a segment predicate: {0} (a predicate can only read the profiles table)"
    )]
    NotAllowed(String),
    /// PostgreSQL refused the predicate or failed running it (a PostgreSQL profile source);
    /// its message says why (e.g. `column "ltv" does not exist`).
    #[error("segment predicate rejected by PostgreSQL: {message}")]
    Postgres { predicate: String, message: String },
    /// MySQL or MariaDB (`server`) refused the predicate or failed running it (a MySQL
    /// profile source); its message says why (e.g. `Unknown column 'ltv' in 'where clause'`).
    #[error("segment predicate rejected by {server}: {message}")]
    MySql {
        server: &'static str,
        predicate: String,
        message: String,
    },
    /// The predicate compiled but failed while running (SQLite's message).
    #[error("the predicate failed: {0}")]
    Failed(String),
    /// The query ran past its deadline and was interrupted.
    #[error("the predicate ran longer than {limit:?} and was stopped")]
    Timeout { limit: Duration },
    /// The query made a value longer than it may (bytes): stopped before it took the memory.
    #[error(
        "the predicate made a value longer than {}, the most a segment predicate may make over \
         these profiles (twice their longest row, at least 4 MiB), and was stopped",
        mebibytes(*limit)
    )]
    TooBig { limit: u64 },
    #[error("no profiles have been imported yet")]
    NoProfiles,
    #[error(transparent)]
    Store(#[from] ProfileError),
}

/// Why [`super::ProfileStore::select`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SelectError<E> {
    /// Predicate number `index` (0-based, in the order given) was refused.
    #[error("segment predicate {} ({}): {source}", index + 1, quoted(predicate))]
    Predicate {
        index: usize,
        predicate: String,
        #[source]
        source: PredicateError,
    },
    /// A requested column is not in the profiles.
    #[error(
        "no column {} in the profiles (columns: {})",
        quoted(column),
        list(columns)
    )]
    UnknownColumn {
        column: String,
        columns: Vec<String>,
    },
    #[error("no segment predicates given")]
    NoPredicates,
    #[error("no profiles have been imported yet")]
    NoProfiles,
    /// The query spent longer than its deadline inside SQLite (time in the callback is not counted).
    #[error("selecting the profiles took longer than {limit:?} and was stopped")]
    Timeout { limit: Duration },
    /// SQLite failed while running the query.
    #[error("selecting the profiles failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Store(ProfileError),
    /// The callback returned an error; the query was stopped there.
    #[error("{0}")]
    Callback(E),
}

impl<E> SelectError<E> {
    /// Refuses an empty list of predicates, and the first one `scan` refuses: what a
    /// database source checks before it sends any of them.
    pub(crate) fn check_predicates(
        predicates: &[String],
        scan: impl Fn(&str) -> Result<(), PredicateError>,
    ) -> Result<(), SelectError<E>> {
        if predicates.is_empty() {
            return Err(SelectError::NoPredicates);
        }
        for (index, predicate) in predicates.iter().enumerate() {
            scan(predicate).map_err(|source| SelectError::Predicate {
                index,
                predicate: predicate.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// `4 MiB`, `1.5 MiB`.
fn mebibytes(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib.fract() == 0.0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{mib:.1} MiB")
    }
}

/// `"value"` with control characters and quotes escaped, cut after 100 characters.
pub(crate) fn quoted(s: &str) -> String {
    const MAX: usize = 100;
    let mut out = String::from("\"");
    let mut chars = s.chars();
    for c in chars.by_ref().take(MAX) {
        escape_into(&mut out, c, true);
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

/// `a, b, c` for a list of column names (escaped, at most 50 shown).
pub(crate) fn list(names: &[String]) -> String {
    const MAX: usize = 50;
    let mut out: Vec<String> = names
        .iter()
        .take(MAX)
        .map(|n| {
            let mut s = String::new();
            n.chars().for_each(|c| escape_into(&mut s, c, false));
            s
        })
        .collect();
    if names.len() > MAX {
        out.push(format!("… and {} more", names.len() - MAX));
    }
    out.join(", ")
}

/// Pushes `c`, escaping control characters (and `"` and `\\` inside quotes).
fn escape_into(out: &mut String, c: char, in_quotes: bool) {
    match c {
        '"' | '\\' if in_quotes => {
            out.push('\\');
            out.push(c);
        }
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}
