//! Column types and their inference from text cells.
//!
//! An NDJSON string is classified on its own, and a column's type is the merge of the classes
//! of all its values; CSV columns are typed with the file's number and date formats in
//! `super::typing`. The rules are strict on purpose, so that nothing is
//! lost by storing a value as a number: `01234` (a zip code) and `+40 712` (a phone) stay text,
//! and so does an integer too large for 64 bits.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The type of a profile column, as declared in the SQLite table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// 64-bit signed integers.
    Integer,
    /// 64-bit floats.
    Real,
    /// `true` / `false`, stored as 1 / 0.
    Boolean,
    /// Any text (also a column whose values mix kinds).
    Text,
    /// `YYYY-MM-DD`, stored as text.
    Date,
    /// `YYYY-MM-DD[T ]HH:MM[:SS[.fff]][Z|±HH:MM]`, stored as text.
    Timestamp,
    /// Nested values (NDJSON objects and arrays, Parquet groups, lists and maps), stored as JSON text.
    Json,
}

impl ColumnType {
    /// Lower-case name: `integer`, `real`, `boolean`, `text`, `date`, `timestamp`, `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Real => "real",
            ColumnType::Boolean => "boolean",
            ColumnType::Text => "text",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Json => "json",
        }
    }

    /// The declared type of the SQLite column. INTEGER, REAL and TEXT get their affinity;
    /// BOOLEAN, DATE, TIMESTAMP and JSON get NUMERIC affinity, which leaves the values stored
    /// in them (0/1 integers, and text that never looks like a number) as they are.
    pub(crate) fn sql_decl(self) -> &'static str {
        match self {
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Text => "TEXT",
            ColumnType::Date => "DATE",
            ColumnType::Timestamp => "TIMESTAMP",
            ColumnType::Json => "JSON",
        }
    }

    /// Reads a declared type back (the inverse of [`ColumnType::sql_decl`], with SQLite's
    /// affinity rules for anything else).
    pub(crate) fn from_decl(decl: &str) -> ColumnType {
        let upper = decl.trim().to_ascii_uppercase();
        match upper.as_str() {
            "INTEGER" => ColumnType::Integer,
            "REAL" => ColumnType::Real,
            "BOOLEAN" => ColumnType::Boolean,
            "TEXT" => ColumnType::Text,
            "DATE" => ColumnType::Date,
            "TIMESTAMP" => ColumnType::Timestamp,
            "JSON" => ColumnType::Json,
            u if u.contains("INT") => ColumnType::Integer,
            u if u.contains("REAL") || u.contains("FLOA") || u.contains("DOUB") => ColumnType::Real,
            _ => ColumnType::Text,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of a column holding values of types `a` and `b`.
pub(crate) fn merge(a: Option<ColumnType>, b: ColumnType) -> ColumnType {
    use ColumnType::*;
    match (a, b) {
        (None, b) => b,
        (Some(a), b) if a == b => a,
        (Some(Integer), Real) | (Some(Real), Integer) => Real,
        (Some(Date), Timestamp) | (Some(Timestamp), Date) => Timestamp,
        _ => Text,
    }
}

/// The class of one non-empty text cell on its own, with a decimal point and ISO dates (the
/// strict rules that the CSV import's typing, `super::typing`, builds on).
#[cfg(test)]
pub(crate) fn classify(s: &str) -> ColumnType {
    let b = s.as_bytes();
    match b.first() {
        Some(b'-' | b'0'..=b'9') => {
            if parse_int(s).is_some() {
                ColumnType::Integer
            } else if parse_real(s).is_some() {
                ColumnType::Real
            } else if is_date(b) {
                ColumnType::Date
            } else if is_timestamp(b) {
                ColumnType::Timestamp
            } else {
                ColumnType::Text
            }
        }
        Some(b't' | b'T' | b'f' | b'F') if parse_bool(s).is_some() => ColumnType::Boolean,
        _ => ColumnType::Text,
    }
}

/// The class of one NDJSON string: text, unless it is a date or a timestamp.
pub(crate) fn classify_json_string(s: &str) -> ColumnType {
    let b = s.as_bytes();
    if is_date(b) {
        ColumnType::Date
    } else if is_timestamp(b) {
        ColumnType::Timestamp
    } else {
        ColumnType::Text
    }
}

/// `-?(0|[1-9][0-9]*)` that fits in an i64.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s).as_bytes();
    if !valid_int_digits(digits) {
        return None;
    }
    s.parse().ok()
}

fn valid_int_digits(d: &[u8]) -> bool {
    !d.is_empty() && d.iter().all(u8::is_ascii_digit) && (d[0] != b'0' || d.len() == 1)
}

/// A finite decimal `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?` (also an integer that fits
/// in an i64, so that an integer cell can go into a real column).
pub(crate) fn parse_real(s: &str) -> Option<f64> {
    let b = s.strip_prefix('-').unwrap_or(s).as_bytes();
    let int_end = b
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(b.len());
    if !valid_int_digits(&b[..int_end]) {
        return None;
    }
    let mut i = int_end;
    let mut decorated = false;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        decorated = true;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        decorated = true;
    }
    if i != b.len() {
        return None;
    }
    if !decorated && parse_int(s).is_none() {
        // An integer too large for 64 bits: an identifier, not a quantity.
        return None;
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// `true` / `false`, in any case.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

/// `YYYY-MM-DD`, a real calendar date.
pub(crate) fn is_date(b: &[u8]) -> bool {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    match (num(&b[0..4]), num(&b[5..7]), num(&b[8..10])) {
        (Some(y), Some(m), Some(d)) => chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some(),
        _ => false,
    }
}

/// `YYYY-MM-DD[T ]HH:MM[:SS[.f{1,9}]][Z | ±HH:MM | ±HHMM | ±HH]`.
pub(crate) fn is_timestamp(b: &[u8]) -> bool {
    if b.len() < 16 || !is_date(&b[..10]) || !matches!(b[10], b'T' | b't' | b' ') {
        return false;
    }
    let t = &b[11..];
    let two = |s: &[u8], max: u32| s.len() >= 2 && num(&s[..2]).is_some_and(|v| v <= max);
    if !(two(t, 23) && t.get(2) == Some(&b':') && two(&t[3..], 59)) {
        return false;
    }
    let mut i = 5;
    if t.get(i) == Some(&b':') {
        if !(t.len() >= i + 3 && two(&t[i + 1..], 60)) {
            return false;
        }
        i += 3;
        if t.get(i) == Some(&b'.') {
            let start = i + 1;
            i = start;
            while t.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start || i - start > 9 {
                return false;
            }
        }
    }
    let zone = &t[i..];
    match zone {
        [] | [b'Z' | b'z'] => true,
        [b'+' | b'-', rest @ ..] => match rest.len() {
            2 => two(rest, 23),
            4 => two(rest, 23) && two(&rest[2..], 59),
            5 => two(rest, 23) && rest[2] == b':' && two(&rest[3..], 59),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::ColumnType::*;
    use super::*;

    #[test]
    fn classifies_cells() {
        for (s, t) in [
            ("0", Integer),
            ("42", Integer),
            ("-7", Integer),
            ("9223372036854775807", Integer),
            ("9223372036854775808", Text), // too big for i64: an identifier
            ("01234", Text),               // zip code
            ("+40712345678", Text),        // phone
            ("1.5", Real),
            ("-0.25", Real),
            ("1e3", Real),
            ("2.5E-3", Real),
            ("1e999", Text), // not finite
            ("1.", Text),
            (".5", Text),
            ("00.5", Text),
            ("NaN", Text),
            ("inf", Text),
            ("true", Boolean),
            ("FALSE", Boolean),
            ("True", Boolean),
            ("yes", Text),
            ("t", Text),
            ("2024-01-05", Date),
            ("2024-02-30", Text),
            ("2024-1-5", Text),
            ("2024-01-05T10:00:00Z", Timestamp),
            ("2024-01-05 10:00", Timestamp),
            ("2024-01-05T10:00:00.123456+02:00", Timestamp),
            ("2024-01-05T10:00:00-0500", Timestamp),
            ("2024-01-05T25:00:00", Text),
            ("2024-01-05T10:00:00 UTC", Text),
            ("Ana-Maria", Text),
            ("", Text),
            ("-", Text),
        ] {
            assert_eq!(classify(s), t, "{s:?}");
        }
    }

    #[test]
    fn merges_types() {
        assert_eq!(merge(None, Integer), Integer);
        assert_eq!(merge(Some(Integer), Integer), Integer);
        assert_eq!(merge(Some(Integer), Real), Real);
        assert_eq!(merge(Some(Real), Integer), Real);
        assert_eq!(merge(Some(Date), Timestamp), Timestamp);
        assert_eq!(merge(Some(Integer), Boolean), Text);
        assert_eq!(merge(Some(Boolean), Text), Text);
        assert_eq!(merge(Some(Json), Integer), Text);
        assert_eq!(merge(Some(Text), Integer), Text);
    }

    #[test]
    fn parses_values_of_inferred_columns() {
        assert_eq!(parse_real("5"), Some(5.0));
        assert_eq!(parse_real("-1.5e2"), Some(-150.0));
        assert_eq!(parse_int("-0"), Some(0));
        assert_eq!(parse_int("1.0"), None);
        assert_eq!(parse_bool("TrUe"), Some(true));
    }

    #[test]
    fn declared_types_round_trip() {
        for t in [Integer, Real, Boolean, Text, Date, Timestamp, Json] {
            assert_eq!(ColumnType::from_decl(t.sql_decl()), t);
        }
        assert_eq!(ColumnType::from_decl("bigint"), Integer);
        assert_eq!(ColumnType::from_decl("double precision"), Real);
        assert_eq!(ColumnType::from_decl(""), Text);
    }
}
