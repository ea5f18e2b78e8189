//! MySQL / MariaDB column types and values as profile columns and JSON (the table in
//! [`super::mysql`]'s documentation).

use super::ColumnType;
use mysql::consts::ColumnType as T;
use mysql::Value as V;
use serde_json::Value;

/// The profile column type of a column as the server describes it.
pub(crate) fn kind_of(c: &mysql::Column) -> ColumnType {
    match c.column_type() {
        T::MYSQL_TYPE_TINY | T::MYSQL_TYPE_BIT if c.column_length() == 1 => ColumnType::Boolean,
        T::MYSQL_TYPE_TINY
        | T::MYSQL_TYPE_SHORT
        | T::MYSQL_TYPE_INT24
        | T::MYSQL_TYPE_LONG
        | T::MYSQL_TYPE_LONGLONG
        | T::MYSQL_TYPE_YEAR
        | T::MYSQL_TYPE_BIT => ColumnType::Integer,
        T::MYSQL_TYPE_FLOAT
        | T::MYSQL_TYPE_DOUBLE
        | T::MYSQL_TYPE_DECIMAL
        | T::MYSQL_TYPE_NEWDECIMAL => ColumnType::Real,
        T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE => ColumnType::Date,
        T::MYSQL_TYPE_DATETIME
        | T::MYSQL_TYPE_DATETIME2
        | T::MYSQL_TYPE_TIMESTAMP
        | T::MYSQL_TYPE_TIMESTAMP2 => ColumnType::Timestamp,
        T::MYSQL_TYPE_JSON => ColumnType::Json,
        _ => ColumnType::Text,
    }
}

/// Whether a `DATETIME`-like column is a `TIMESTAMP` (stored in UTC, read in the session's
/// time zone, which the source fixes to UTC).
fn is_utc(c: &mysql::Column) -> bool {
    matches!(
        c.column_type(),
        T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_TIMESTAMP2
    )
}

/// How a column's values are decoded: its profile type, and for timestamps whether in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decode {
    pub kind: ColumnType,
    pub utc: bool,
}

impl Decode {
    pub(crate) fn of(c: &mysql::Column, kind: ColumnType) -> Decode {
        Decode {
            kind,
            utc: is_utc(c),
        }
    }
}

/// A value (binary protocol) as JSON, as its column's type says.
pub(crate) fn decode(how: Decode, value: V) -> Value {
    match (how.kind, value) {
        (_, V::NULL) => Value::Null,
        (ColumnType::Boolean, V::Int(i)) => Value::Bool(i != 0),
        (ColumnType::Boolean, V::UInt(u)) => Value::Bool(u != 0),
        (ColumnType::Boolean, V::Bytes(b)) => Value::Bool(b.iter().any(|&x| x != 0)),
        (_, V::Int(i)) => Value::from(i),
        (_, V::UInt(u)) => Value::from(u),
        (_, V::Float(f)) => float(f64::from(f)),
        (_, V::Double(f)) => float(f),
        (ColumnType::Integer, V::Bytes(b)) if b.len() <= 8 => {
            // BIT(n): big-endian bytes.
            Value::from(b.iter().fold(0u64, |n, &x| (n << 8) | u64::from(x)))
        }
        (ColumnType::Real, V::Bytes(b)) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map_or(Value::Null, float),
        (ColumnType::Json, V::Bytes(b)) => serde_json::from_slice(&b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b).into_owned())),
        (ColumnType::Date, V::Date(0, 0, 0, ..))
        | (ColumnType::Timestamp, V::Date(0, 0, 0, ..)) => {
            // The zero date ('0000-00-00') is no date.
            Value::Null
        }
        (ColumnType::Date, V::Date(y, m, d, ..)) => Value::String(format!("{y:04}-{m:02}-{d:02}")),
        (_, V::Date(y, m, d, h, i, s, us)) => {
            Value::String(datetime(y, m, d, h, i, s, us, how.utc))
        }
        (_, other) => Value::String(text_of(other)),
    }
}

/// Any value as text (the key, and columns read as text).
pub(crate) fn text_of(value: V) -> String {
    match value {
        V::NULL => String::new(),
        V::Bytes(b) => String::from_utf8(b)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        V::Int(i) => i.to_string(),
        V::UInt(u) => u.to_string(),
        V::Float(f) => f.to_string(),
        V::Double(f) => f.to_string(),
        V::Date(y, m, d, h, i, s, us) => datetime(y, m, d, h, i, s, us, false),
        V::Time(negative, days, h, m, s, us) => {
            let hours = days * 24 + u32::from(h);
            let sign = if negative { "-" } else { "" };
            let fraction = if us > 0 {
                format!(".{us:06}")
            } else {
                String::new()
            };
            format!("{sign}{hours:02}:{m:02}:{s:02}{fraction}")
        }
    }
}

/// `2024-03-01T10:00:00` (a fraction when there is one); with `utc`, RFC 3339 with `Z`.
#[allow(clippy::too_many_arguments)]
fn datetime(y: u16, m: u8, d: u8, h: u8, i: u8, s: u8, us: u32, utc: bool) -> String {
    let at = chrono::NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
        .and_then(|date| date.and_hms_micro_opt(u32::from(h), u32::from(i), u32::from(s), us));
    match at {
        Some(at) if utc => at
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Some(at) => at.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        // A date MySQL allows and chrono does not (a zero month or day): as written.
        None => format!("{y:04}-{m:02}-{d:02}T{h:02}:{i:02}:{s:02}"),
    }
}

/// A float as a JSON number (NaN and infinities, which JSON lacks, as `null`).
fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_decoded_as_specified() {
        let d = |kind| Decode { kind, utc: false };
        assert_eq!(decode(d(ColumnType::Boolean), V::Int(1)), json!(true));
        assert_eq!(
            decode(d(ColumnType::Real), V::Bytes(b"12.50".to_vec())),
            json!(12.5)
        );
        assert_eq!(
            decode(d(ColumnType::Json), V::Bytes(br#"{"a":[1]}"#.to_vec())),
            json!({"a": [1]})
        );
        assert_eq!(
            decode(d(ColumnType::Date), V::Date(2024, 3, 1, 0, 0, 0, 0)),
            json!("2024-03-01")
        );
        assert_eq!(
            decode(
                d(ColumnType::Timestamp),
                V::Date(2024, 3, 1, 10, 0, 0, 500_000)
            ),
            json!("2024-03-01T10:00:00.500")
        );
        assert_eq!(
            decode(
                Decode {
                    kind: ColumnType::Timestamp,
                    utc: true
                },
                V::Date(2024, 3, 1, 10, 0, 0, 0)
            ),
            json!("2024-03-01T10:00:00Z")
        );
        assert_eq!(
            decode(d(ColumnType::Date), V::Date(0, 0, 0, 0, 0, 0, 0)),
            Value::Null
        );
        assert_eq!(
            decode(
                d(ColumnType::Text),
                V::Bytes("Ștefan 🙂".as_bytes().to_vec())
            ),
            json!("Ștefan 🙂")
        );
        assert_eq!(
            decode(d(ColumnType::Integer), V::Bytes(vec![1, 2])),
            json!(258)
        );
        assert_eq!(text_of(V::Time(false, 1, 2, 3, 4, 0)), "26:03:04");
    }
}
