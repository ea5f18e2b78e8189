//! Copying a whole state store from one backend to another (`segsync` state moves from a
//! SQLite file to PostgreSQL, or back).
//!
//! Both backends describe their durable tables the same way ([`TABLES`]: names, columns and
//! the kind of each column), read them row by row in primary-key order
//! ([`StateBackend::copy_out`]) and write them in one transaction ([`StateBackend::import`]).
//! [`copy_state`] streams each table from the source into the target in batches, so that a
//! million-member snapshot never sits in memory, checks first (inside the target's
//! transaction) that the target holds nothing, and carries the id sequences over so that new
//! runs, tokens and audit entries continue after the copied ones.

use std::collections::BTreeMap;

use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};
use serde::Serialize;

use super::{Result, StateBackend, StateError, StateStore, STREAM_BATCH};

/// What a column holds. Booleans are integers 0/1 in SQLite and `BOOLEAN` in PostgreSQL;
/// both read as [`Cell::Int`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColKind {
    Int,
    Bool,
    Text,
    Blob,
}

/// One value of a row being copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// A durable table as both backends have it.
#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColKind)],
    /// The primary key, the order rows are read in.
    pub order_by: &'static [&'static str],
    /// Whether `id` is handed out by a sequence (SQLite `AUTOINCREMENT`, PostgreSQL identity).
    pub has_sequence: bool,
}

use ColKind::{Blob, Bool, Int, Text};

/// Every durable table, parents before the tables that refer to them.
pub static TABLES: &[TableDef] = &[
    TableDef {
        name: "connections",
        columns: &[
            ("name", Text),
            ("display_name", Text),
            ("base_url", Text),
            ("credential_kind", Text),
            ("sealed_secret", Blob),
            ("consent_by", Text),
            ("consent_at", Text),
            ("shared_with_contributors", Bool),
            ("export_user", Text),
            ("created_at", Text),
        ],
        order_by: &["name"],
        has_sequence: false,
    },
    TableDef {
        name: "profile_sources",
        columns: &[
            ("name", Text),
            ("kind", Text),
            ("sealed_url", Blob),
            ("relation_kind", Text),
            ("relation", Text),
            ("key_column", Text),
            ("email_hint", Text),
            ("created_at", Text),
            ("cursor_column", Text),
        ],
        order_by: &["name"],
        has_sequence: false,
    },
    TableDef {
        name: "segments",
        columns: &[
            ("name", Text),
            ("predicate", Text),
            ("created_at", Text),
            ("source", Text),
            ("rule", Text),
        ],
        order_by: &["name"],
        has_sequence: false,
    },
    TableDef {
        name: "exports",
        columns: &[("name", Text), ("config", Text), ("created_at", Text)],
        order_by: &["name"],
        has_sequence: false,
    },
    TableDef {
        name: "export_tags",
        columns: &[("export", Text), ("bit", Int), ("tag", Text)],
        order_by: &["export", "bit"],
        has_sequence: false,
    },
    TableDef {
        name: "snapshot",
        columns: &[
            ("export", Text),
            ("key", Blob),
            ("email", Text),
            ("fingerprint", Int),
            ("tags", Int),
            ("status", Text),
            ("owned", Bool),
            ("profiles", Text),
        ],
        order_by: &["export", "key"],
        has_sequence: false,
    },
    TableDef {
        name: "create_intents",
        columns: &[("export", Text), ("key", Blob), ("email", Text)],
        order_by: &["export", "key"],
        has_sequence: false,
    },
    TableDef {
        name: "sync_marks",
        columns: &[("export", Text), ("audience_read_at", Text)],
        order_by: &["export"],
        has_sequence: false,
    },
    TableDef {
        name: "suppressions",
        columns: &[
            ("export", Text),
            ("kind", Text),
            ("value", Text),
            ("note", Text),
            ("added_by", Text),
            ("added_at", Text),
        ],
        order_by: &["export", "kind", "value"],
        has_sequence: false,
    },
    TableDef {
        name: "refusals",
        columns: &[
            ("export", Text),
            ("email", Text),
            ("profile_key", Text),
            ("fingerprint", Int),
            ("reason", Text),
            ("refused_at", Text),
            ("run_id", Int),
        ],
        order_by: &["export", "email"],
        has_sequence: false,
    },
    TableDef {
        name: "runs",
        columns: &[
            ("id", Int),
            ("export", Text),
            ("trigger", Text),
            ("started_at", Text),
            ("finished_at", Text),
            ("outcome", Text),
            ("counts", Text),
            ("error", Text),
        ],
        order_by: &["id"],
        has_sequence: true,
    },
    TableDef {
        name: "run_errors",
        columns: &[
            ("run_id", Int),
            ("seq", Int),
            ("profile_key", Text),
            ("email", Text),
            ("reason", Text),
        ],
        order_by: &["run_id", "seq"],
        has_sequence: false,
    },
    TableDef {
        name: "run_changes",
        columns: &[
            ("run_id", Int),
            ("seq", Int),
            ("action", Int),
            ("email", Text),
            ("detail", Text),
            ("profile_key", Text),
        ],
        order_by: &["run_id", "seq"],
        has_sequence: false,
    },
    TableDef {
        name: "users",
        columns: &[
            ("name", Text),
            ("role", Text),
            ("password_hash", Text),
            ("created_at", Text),
        ],
        order_by: &["name"],
        has_sequence: false,
    },
    TableDef {
        name: "api_tokens",
        columns: &[
            ("id", Int),
            ("user", Text),
            ("label", Text),
            ("token_hash", Blob),
            ("created_at", Text),
            ("last_used_at", Text),
        ],
        order_by: &["id"],
        has_sequence: true,
    },
    TableDef {
        name: "sessions",
        columns: &[
            ("id_hash", Blob),
            ("user", Text),
            ("csrf", Text),
            ("expires_at", Text),
        ],
        order_by: &["id_hash"],
        has_sequence: false,
    },
    TableDef {
        name: "audit",
        columns: &[
            ("id", Int),
            ("at", Text),
            ("actor", Text),
            ("action", Text),
            ("target", Text),
            ("detail", Text),
        ],
        order_by: &["id"],
        has_sequence: true,
    },
    TableDef {
        name: "settings",
        columns: &[("name", Text), ("value", Text)],
        order_by: &["name"],
        has_sequence: false,
    },
    TableDef {
        name: "oauth_flows",
        columns: &[
            ("state", Text),
            ("user", Text),
            ("request", Text),
            ("created_at", Text),
        ],
        order_by: &["state"],
        has_sequence: false,
    },
    TableDef {
        name: "leases",
        columns: &[("name", Text), ("holder", Text), ("expires_at", Int)],
        order_by: &["name"],
        has_sequence: false,
    },
    TableDef {
        name: "run_queue",
        columns: &[
            ("id", Int),
            ("export", Text),
            ("trigger", Text),
            ("requested_by", Text),
            ("tick", Text),
            ("requested_at", Text),
            ("state", Text),
            ("worker", Text),
            ("lease_until", Int),
            ("run_id", Int),
        ],
        order_by: &["id"],
        has_sequence: true,
    },
];

/// Tables whose rows mean that a store is in use: a copy never goes into such a store.
const IN_USE: &[&str] = &["connections", "segments", "exports", "runs", "users"];

impl TableDef {
    /// The table named `name`.
    pub fn named(name: &str) -> Option<&'static TableDef> {
        TABLES.iter().find(|t| t.name == name)
    }

    fn quoted(names: &[&str]) -> String {
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The columns, quoted (`user` is a reserved word in PostgreSQL), comma-separated.
    pub fn column_list(&self) -> String {
        Self::quoted(&self.columns.iter().map(|c| c.0).collect::<Vec<_>>())
    }

    /// `SELECT` of every column in primary-key order (both dialects).
    pub fn select_sql(&self) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            self.column_list(),
            self.name,
            Self::quoted(self.order_by)
        )
    }

    /// `INSERT` of one row, with placeholders made by `placeholder(1..)`.
    pub fn insert_sql(&self, placeholder: impl Fn(usize) -> String) -> String {
        let marks: Vec<String> = (1..=self.columns.len()).map(placeholder).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.name,
            self.column_list(),
            marks.join(", ")
        )
    }
}

fn mismatch(table: &str, column: &str, kind: ColKind) -> StateError {
    StateError::Corrupt(format!("{table}.{column} does not hold a {kind:?} value"))
}

impl Cell {
    /// A SQLite value of a column of `kind`.
    pub(crate) fn from_sqlite(
        v: ValueRef<'_>,
        kind: ColKind,
        table: &str,
        column: &str,
    ) -> Result<Cell> {
        Ok(match (v, kind) {
            (ValueRef::Null, _) => Cell::Null,
            (ValueRef::Integer(i), Int | Bool) => Cell::Int(i),
            (ValueRef::Text(t), Text) => Cell::Text(
                String::from_utf8(t.to_vec()).map_err(|_| mismatch(table, column, kind))?,
            ),
            (ValueRef::Blob(b) | ValueRef::Text(b), Blob) => Cell::Blob(b.to_vec()),
            _ => return Err(mismatch(table, column, kind)),
        })
    }

    /// A PostgreSQL value of a column of `kind`.
    pub(crate) fn from_postgres(
        row: &postgres::Row,
        i: usize,
        kind: ColKind,
    ) -> std::result::Result<Cell, postgres::Error> {
        Ok(match kind {
            Int => row.try_get::<_, Option<i64>>(i)?.map(Cell::Int),
            Bool => row
                .try_get::<_, Option<bool>>(i)?
                .map(|b| Cell::Int(i64::from(b))),
            Text => row.try_get::<_, Option<String>>(i)?.map(Cell::Text),
            Blob => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Cell::Blob),
        }
        .unwrap_or(Cell::Null))
    }
}

impl rusqlite::ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Cell::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Cell::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl ToSql for Cell {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Int(i) if *ty == Type::BOOL => (*i != 0).to_sql(ty, out),
            Cell::Int(i) => i.to_sql(ty, out),
            Cell::Text(t) => t.to_sql(ty, out),
            Cell::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [Type::INT8, Type::BOOL, Type::TEXT, Type::BYTEA].contains(ty)
    }

    to_sql_checked!();
}

/// The PostgreSQL type of a column of `kind`.
pub(crate) fn postgres_type(kind: ColKind) -> Type {
    match kind {
        Int => Type::INT8,
        Bool => Type::BOOL,
        Text => Type::TEXT,
        Blob => Type::BYTEA,
    }
}

/// Writing rows into a backend, all in one transaction.
pub trait Import {
    /// Rows `table` holds now.
    fn count(&mut self, table: &'static TableDef) -> Result<u64>;
    /// Writes `rows` (each with `table`'s columns, in order).
    fn write(&mut self, table: &'static TableDef, rows: Vec<Vec<Cell>>) -> Result<()>;
    /// Makes `table`'s id sequence continue after `value` (and after every id it holds).
    fn set_sequence(&mut self, table: &'static TableDef, value: i64) -> Result<()>;
    /// Makes everything written visible; dropping the import instead rolls it back.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// What [`copy_state`] copied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// `sqlite` or `postgres`, and where (without a password).
    pub from: String,
    pub to: String,
    /// Rows copied, per table.
    pub rows: BTreeMap<&'static str, u64>,
}

impl CopyReport {
    /// Rows copied in all.
    pub fn total(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// Copies every durable table of `from` into `to`, in one transaction of `to`: all or
/// nothing. Refused, changing nothing, when `to` holds anything already (an empty, migrated
/// store is the target). Both stores must be at the same schema version (`open_url` migrates
/// them).
pub fn copy_state(from: &StateStore, to: &mut StateStore) -> Result<CopyReport> {
    copy_between(&**from, &mut **to)
}

fn copy_between(from: &dyn StateBackend, to: &mut dyn StateBackend) -> Result<CopyReport> {
    let (from_version, to_version) = (from.schema_version()?, to.schema_version()?);
    if from_version != to_version {
        return Err(StateError::Conflict(format!(
            "the source's schema is at version {from_version} and the target's at \
             {to_version}: open both with this segsync first, so that both are migrated"
        )));
    }
    let mut report = CopyReport {
        from: format!("{} {}", from.kind(), from.location()),
        to: format!("{} {}", to.kind(), to.location()),
        rows: BTreeMap::new(),
    };
    let target = report.to.clone();
    let mut import = to.import()?;
    let in_use = IN_USE.iter().filter_map(|n| TableDef::named(n));
    for table in in_use.chain(TABLES.iter().filter(|t| !IN_USE.contains(&t.name))) {
        let n = import.count(table)?;
        if n > 0 {
            return Err(StateError::Conflict(format!(
                "the target state store ({target}) is not empty: its table {} holds {n} row(s); \
                 copy into a new, empty store",
                table.name
            )));
        }
    }
    for table in TABLES {
        let mut batch = Vec::with_capacity(STREAM_BATCH);
        let mut copied = 0u64;
        from.copy_out(table, &mut |row| {
            batch.push(row);
            if batch.len() == STREAM_BATCH {
                copied += batch.len() as u64;
                import.write(
                    table,
                    std::mem::replace(&mut batch, Vec::with_capacity(STREAM_BATCH)),
                )?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            copied += batch.len() as u64;
            import.write(table, batch)?;
        }
        if table.has_sequence {
            import.set_sequence(table, from.sequence_value(table)?)?;
        }
        report.rows.insert(table.name, copied);
    }
    import.commit()?;
    Ok(report)
}
