//! What changed in a PostgreSQL source with a cursor column: a column the database sets
//! whenever a row is written (`updated_at DEFAULT now()` kept by a trigger, a version
//! number). A run records the cursor's highest value (its mark); the next one evaluates
//! only the rows at or past it, and lists the keys to find the rows that left.
//!
//! PostgreSQL's `now()` is when a transaction began, so a row written by a transaction that
//! was still open at the last run can carry a value below that run's mark: for a timestamp
//! or date column the rows since [`LOOKBACK`] before the mark are read again. A rolled back
//! write changes nothing; a row whose cursor is NULL is always read.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::time::Instant;

use ::postgres::types::Type;
use ::postgres::Client;

use super::PgSourceError;
use super::{base_type, describe, pin, quote_ident, remaining, Fault, PgSource};

/// How far before the last mark a timestamp cursor is read again.
pub const LOOKBACK: &str = "15 minutes";

/// Keys fetched at a time (a key and a flag: far smaller rows than a select's).
const KEY_BATCH: i32 = 50_000;

/// What a source holds now, against the last run's mark.
#[derive(Debug, Default)]
pub struct SourceChanges {
    /// The cursor's highest value now, as PostgreSQL prints it (`None`: no row has one).
    pub mark: Option<String>,
    /// The keys of the rows at or past the last mark (all of them without one).
    pub changed: Vec<String>,
    /// Every key now (only when asked for changes since a mark).
    pub keys: KeySet,
}

/// Which keys a source holds, kept as a 128-bit digest each (16 bytes, where a million
/// `String`s take about 70 MB): two SipHash digests under this process's random keys, so
/// that two keys share one with a chance of about n^2 / 2^129 (10^-26 at a million), and
/// nobody can choose keys that do.
#[derive(Debug, Default)]
pub struct KeySet {
    digests: HashSet<u128>,
    hashers: (RandomState, RandomState),
}

impl KeySet {
    fn digest(&self, key: &str) -> u128 {
        let (a, b) = &self.hashers;
        (u128::from(a.hash_one(key)) << 64) | u128::from(b.hash_one(key))
    }

    pub fn insert(&mut self, key: &str) {
        let d = self.digest(key);
        self.digests.insert(d);
    }

    pub fn contains(&self, key: &str) -> bool {
        self.digests.contains(&self.digest(key))
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

impl PgSource {
    /// The same source, re-read past `column` (see the module's notes).
    pub fn with_cursor(mut self, column: Option<String>) -> PgSource {
        self.cursor = column;
        self
    }

    pub fn cursor_column(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// The cursor's mark now and, given the last run's mark `since`, the rows past it and
    /// every key, all read in one snapshot of the database (a repeatable-read transaction).
    /// Bounded by [`super::Limits::select_timeout`].
    pub fn changes(&self, since: Option<&str>) -> Result<SourceChanges, PgSourceError> {
        let Some(cursor) = self.cursor.clone() else {
            return Ok(SourceChanges::default());
        };
        let read = Read {
            from: self.from.clone(),
            key: self.key.clone(),
            cursor,
            since: since.map(str::to_string),
        };
        let limit = self.limits.select_timeout;
        self.call(move |client| read.run(client, limit))?
            .map_err(|f| self.source_error(f, limit))
    }
}

/// A read of the cursor, on the connection's thread.
struct Read {
    from: String,
    key: String,
    cursor: String,
    since: Option<String>,
}

impl Read {
    fn run(self, client: &mut Client, limit: std::time::Duration) -> Result<SourceChanges, Fault> {
        let started = Instant::now();
        let mut tx = client
            .build_transaction()
            .read_only(true)
            .isolation_level(::postgres::IsolationLevel::RepeatableRead)
            .start()?;
        pin(&mut tx, limit)?;
        let fields = describe(&mut tx, &self.from)?;
        let Some(field) = fields.iter().find(|f| f.name == self.cursor) else {
            return Err(Fault::UnknownColumn {
                column: self.cursor.clone(),
                columns: fields.iter().map(|f| f.name.clone()).collect(),
            });
        };
        let column = quote_ident(&self.cursor);
        let mark: Option<String> = tx
            .query_one(
                &format!("SELECT max({column})::text FROM {} AS profiles", self.from),
                &[],
            )?
            .try_get(0)?;
        let mut out = SourceChanges {
            mark,
            ..SourceChanges::default()
        };
        let Some(since) = self.since else {
            return Ok(out);
        };
        let past = past_mark(&field.ty);
        let sql = format!(
            "SELECT ({})::text, {column} IS NULL OR {column} >= {past} FROM {} AS profiles",
            quote_ident(&self.key),
            self.from
        );
        let stmt = tx.prepare(&sql)?;
        let portal = tx.bind(&stmt, &[&since])?;
        loop {
            pin(&mut tx, remaining(limit, started.elapsed())?)?;
            let rows = tx.query_portal(&portal, KEY_BATCH)?;
            for row in &rows {
                let key: Option<String> = row.try_get(0)?;
                let key = key.unwrap_or_default();
                out.keys.insert(&key);
                if row.try_get::<_, bool>(1)? {
                    out.changed.push(key);
                }
            }
            if rows.len() < KEY_BATCH as usize {
                return Ok(out);
            }
        }
    }
}

/// The SQL for "the last mark" (`$1`, as text) in the cursor's type, [`LOOKBACK`] earlier
/// for a timestamp or a date.
fn past_mark(ty: &Type) -> String {
    match *base_type(ty) {
        Type::TIMESTAMPTZ => format!("$1::text::timestamptz - interval '{LOOKBACK}'"),
        Type::TIMESTAMP => format!("$1::text::timestamp - interval '{LOOKBACK}'"),
        Type::DATE => "$1::text::date - 1".to_string(),
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => "$1::text::bigint".to_string(),
        Type::FLOAT4 | Type::FLOAT8 => "$1::text::float8".to_string(),
        _ => "$1::text::numeric".to_string(),
    }
}
