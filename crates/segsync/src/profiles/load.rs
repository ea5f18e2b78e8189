//! The write side of an import: a new table filled in one transaction, then swapped in.

use super::error::{ImportError, Location, ProfileError};
use super::infer::ColumnType;
use super::{changes, quote_ident, Column, Format, META_TABLE, PROFILES_TABLE};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Statement, ToSql, TransactionBehavior};
use std::borrow::Cow;
use std::path::Path;

/// The table that an import fills before it becomes `profiles`.
const NEW_TABLE: &str = "segsync_profiles_import";
/// Keys seen so far in an import, with where each was first seen (a table, so that duplicate
/// detection needs no memory proportional to the file), its row's content hash and the import
/// generation in which that content last changed: it becomes [`changes::KEYS_TABLE`].
const KEYS_TABLE: &str = "segsync_import_keys";
/// SQLite's default limit on the number of columns of a table.
pub(crate) const MAX_COLUMNS: usize = 2000;

/// One value to store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
}

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Cell::Null => ValueRef::Null,
            Cell::Int(i) => ValueRef::Integer(*i),
            Cell::Real(f) => ValueRef::Real(*f),
            Cell::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

/// The columns of a file about to be imported.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub columns: Vec<Column>,
    /// Index of the key column in `columns`.
    pub key: usize,
}

/// Why one row could not be stored.
pub(crate) enum RowError {
    Duplicate {
        key: String,
        first: Location,
    },
    /// Text holding a NUL character (SQLite's text functions would stop at it): never in a
    /// real value, nearly always a binary or UTF-16 file.
    Nul {
        column: usize,
    },
    Sql(rusqlite::Error),
}

/// The message for [`RowError::Nul`].
pub(crate) const NUL_MESSAGE: &str =
    "the value holds a NUL character (\\0), which text cannot hold: is the file binary or UTF-16?";

/// Inserts rows into the new table.
pub(crate) struct Loader<'c> {
    insert: Statement<'c>,
    key_put: Statement<'c>,
    key_get: Statement<'c>,
    /// The previous import's content hash and generation of a key.
    old_get: Statement<'c>,
    /// This import's generation.
    generation: i64,
    key: usize,
    ncols: usize,
    rows_unit: fn(u64) -> Location,
    pub rows: u64,
    /// The size of the longest row stored so far, in bytes (as SQLite would hold it, near
    /// enough): predicate queries may make values of about twice that, no more.
    pub longest_row: u64,
}

impl Loader<'_> {
    /// Stores one row (`cells` in the schema's column order; the key cell is non-empty text).
    pub fn add(&mut self, location: Location, cells: &[Cell<'_>]) -> Result<(), RowError> {
        debug_assert_eq!(cells.len(), self.ncols);
        if let Some(column) = cells
            .iter()
            .position(|c| matches!(c, Cell::Text(t) if t.as_bytes().contains(&0)))
        {
            return Err(RowError::Nul { column });
        }
        let key = &cells[self.key];
        let hash = changes::row_hash(cells);
        let changed_in = self.changed_in(key, hash).map_err(RowError::Sql)?;
        self.key_put
            .raw_bind_parameter(1, key)
            .map_err(RowError::Sql)?;
        self.key_put
            .raw_bind_parameter(2, location.number() as i64)
            .map_err(RowError::Sql)?;
        // The row's rowid in the new table: it is filled by appends only, from 1.
        let bind = [self.rows as i64 + 1, hash, changed_in];
        for (i, v) in bind.into_iter().enumerate() {
            self.key_put
                .raw_bind_parameter(3 + i, v)
                .map_err(RowError::Sql)?;
        }
        if self.key_put.raw_execute().map_err(RowError::Sql)? == 0 {
            self.key_get
                .raw_bind_parameter(1, key)
                .map_err(RowError::Sql)?;
            let first: i64 = {
                let mut rows = self.key_get.raw_query();
                match rows.next().map_err(RowError::Sql)? {
                    Some(row) => row.get(0).map_err(RowError::Sql)?,
                    None => 0,
                }
            };
            let key = match key {
                Cell::Text(s) => s.to_string(),
                other => format!("{other:?}"),
            };
            return Err(RowError::Duplicate {
                key,
                first: (self.rows_unit)(first as u64),
            });
        }
        for (i, cell) in cells.iter().enumerate() {
            self.insert
                .raw_bind_parameter(i + 1, cell)
                .map_err(RowError::Sql)?;
        }
        self.insert.raw_execute().map_err(RowError::Sql)?;
        self.rows += 1;
        self.longest_row = self.longest_row.max(row_bytes(cells));
        Ok(())
    }
}

impl Loader<'_> {
    /// The generation in which the content of the row keyed `key` (hashing to `hash`) last
    /// changed: the previous import's when it held the same content, else this one.
    fn changed_in(&mut self, key: &Cell<'_>, hash: i64) -> rusqlite::Result<i64> {
        self.old_get.raw_bind_parameter(1, key)?;
        let mut rows = self.old_get.raw_query();
        Ok(match rows.next()? {
            Some(row) if row.get::<_, i64>(0)? == hash => row.get(1)?,
            _ => self.generation,
        })
    }
}

/// The bytes a row takes: its text, and 9 for each value's header and number.
fn row_bytes(cells: &[Cell<'_>]) -> u64 {
    cells
        .iter()
        .map(|c| match c {
            Cell::Text(t) => t.len() as u64 + 9,
            _ => 9,
        })
        .sum()
}

/// What the import records about itself in the meta table.
pub(crate) struct ImportMeta<'a> {
    pub file: &'a Path,
    pub format: Format,
    pub key_column: &'a str,
}

/// Creates the new table, lets `fill` stream the rows into it, then swaps it in for `profiles`
/// and records the key column, all in one transaction: on any error nothing is changed.
/// Returns the number of rows stored.
pub(crate) fn replace_profiles<F>(
    conn: &mut Connection,
    store: &Path,
    schema: &Schema,
    meta: &ImportMeta<'_>,
    fill: F,
) -> Result<u64, ImportError>
where
    F: FnOnce(&mut Loader<'_>) -> Result<(), ImportError>,
{
    let sql_err = |source: rusqlite::Error| {
        ImportError::Store(ProfileError::Sqlite {
            path: store.to_path_buf(),
            source,
        })
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let generation = changes::begin(&tx, schema, meta.key_column).map_err(sql_err)?;
    let defs: Vec<String> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let not_null = if i == schema.key { " NOT NULL" } else { "" };
            format!("{} {}{not_null}", quote_ident(&c.name), c.kind.sql_decl())
        })
        .collect();
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS main.{NEW_TABLE};
         CREATE TABLE main.{NEW_TABLE} ({});
         DROP TABLE IF EXISTS main.{KEYS_TABLE};
         CREATE TABLE main.{KEYS_TABLE} (key TEXT PRIMARY KEY, pos INTEGER NOT NULL, rid INTEGER NOT NULL, hash INTEGER NOT NULL, gen INTEGER NOT NULL) WITHOUT ROWID;",
        defs.join(", ")
    ))
    .map_err(sql_err)?;
    let (rows, longest_row) = {
        let placeholders = vec!["?"; schema.columns.len()].join(", ");
        let mut loader = Loader {
            insert: tx
                .prepare(&format!(
                    "INSERT INTO main.{NEW_TABLE} VALUES ({placeholders})"
                ))
                .map_err(sql_err)?,
            key_put: tx
                .prepare(&format!(
                    "INSERT INTO main.{KEYS_TABLE} (key, pos, rid, hash, gen) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING"
                ))
                .map_err(sql_err)?,
            key_get: tx
                .prepare(&format!(
                    "SELECT pos FROM main.{KEYS_TABLE} WHERE key = ?1"
                ))
                .map_err(sql_err)?,
            old_get: tx
                .prepare(&format!(
                    "SELECT hash, gen FROM main.{} WHERE key = ?1",
                    changes::KEYS_TABLE
                ))
                .map_err(sql_err)?,
            generation,
            key: schema.key,
            ncols: schema.columns.len(),
            rows_unit: match meta.format {
                Format::Parquet => Location::Row,
                Format::Csv | Format::Ndjson => Location::Line,
            },
            rows: 0,
            longest_row: 0,
        };
        fill(&mut loader)?;
        (loader.rows, loader.longest_row)
    };
    let mut set_meta = tx
        .prepare(&format!(
            "INSERT INTO main.{META_TABLE} (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        ))
        .map_err(sql_err)?;
    for (name, value) in [
        ("key_column", meta.key_column.to_string()),
        ("source_file", meta.file.display().to_string()),
        ("source_format", meta.format.to_string()),
        ("imported_at", chrono::Utc::now().to_rfc3339()),
        ("rows", rows.to_string()),
        (LONGEST_ROW, longest_row.to_string()),
    ] {
        set_meta.execute((name, value)).map_err(sql_err)?;
    }
    drop(set_meta);
    changes::finish(&tx, KEYS_TABLE, generation).map_err(sql_err)?;
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS main.{PROFILES_TABLE};
         ALTER TABLE main.{NEW_TABLE} RENAME TO {PROFILES_TABLE};"
    ))
    .map_err(sql_err)?;
    tx.commit().map_err(sql_err)?;
    // Fold the (large) write-ahead log back into the database and truncate it now, unless a
    // reader is busy (then SQLite's automatic checkpoints do it later); failure loses nothing.
    let checkpoint = conn
        .busy_timeout(std::time::Duration::ZERO)
        .and_then(|()| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())));
    if let Err(e) = checkpoint {
        tracing::debug!(error = %e, "checkpoint after import skipped");
    }
    if let Err(e) = conn.busy_timeout(super::WRITER_BUSY_TIMEOUT) {
        tracing::debug!(error = %e, "restoring the busy timeout failed");
    }
    Ok(rows)
}

/// The meta entry that records the size of the longest row of the last import, in bytes.
pub(crate) const LONGEST_ROW: &str = "longest_row";

/// The type of the key column: always text, whatever the file says.
pub(crate) const KEY_TYPE: ColumnType = ColumnType::Text;
