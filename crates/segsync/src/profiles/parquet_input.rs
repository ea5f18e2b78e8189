//! Parquet import through the parquet crate's record API (no Arrow).
//!
//! The column types come from the file's schema, so one streaming pass is enough. Top-level
//! fields become columns; nested fields (groups, lists, maps) are stored as JSON text.

use super::error::{quoted, ImportError, Location};
use super::infer::ColumnType;
use super::load::{self, Cell, ImportMeta, Loader, RowError, Schema};
use super::parquet_guard::CheckedFile;
use super::{check_column_names, key_index, Column, Format};
use chrono::{DateTime, NaiveDate, NaiveTime};
use parquet::basic::{ConvertedType, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::data_type::Decimal;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::record::Field;
use rusqlite::Connection;
use serde_json::Value;
use std::borrow::Cow;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// How the values of one top-level field are stored.
#[derive(Debug, Clone, Copy)]
struct Conversion {
    kind: ColumnType,
    /// Timestamps: whether they are UTC instants (written with a `Z`).
    utc: bool,
    /// Plain INT64 timestamps in nanoseconds (no converted type, so the record API gives a Long).
    nanos: bool,
    /// FIXED_LEN_BYTE_ARRAY(16) holding a UUID.
    uuid: bool,
}

pub(crate) fn import(
    conn: &mut Connection,
    store: &Path,
    file: &Path,
    key_column: &str,
) -> Result<(u64, Vec<Column>), ImportError> {
    let io_error = |source| ImportError::Io {
        file: file.to_path_buf(),
        source,
    };
    let f = File::open(file).map_err(io_error)?;
    let file_len = f.metadata().map_err(io_error)?.len();
    // The footer parser may panic on a damaged file: that is an error here, not a crash.
    let reader = match quietly(|| SerializedFileReader::new(f)) {
        Ok(Ok(reader)) => Ok(reader),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!(
            "the file is damaged (the Parquet reader failed: {panic})"
        )),
    }
    .map_err(|e| {
        ImportError::input(
            file,
            None,
            None,
            format!("not a readable Parquet file: {e}"),
        )
    })?;
    check_chunks(file, &reader, file_len)?;
    let (schema, conversions) = read_schema(file, &reader, key_column)?;
    let meta = ImportMeta {
        file,
        format: Format::Parquet,
        key_column,
    };
    let rows = load::replace_profiles(conn, store, &schema, &meta, |loader| {
        // The record API panics on a few type combinations that `read_schema` refuses first,
        // and on damaged pages (definition levels beyond the schema's, found by fuzzing):
        // this turns them into an error rather than a crash.
        let mut row = 0u64;
        match quietly(|| store_rows(file, &reader, &schema, &conversions, loader, &mut row)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(panic) => {
                return Err(ImportError::input(
                    file,
                    Some(Location::Row(row + 1)),
                    None,
                    format!("the file is damaged (the Parquet reader failed: {panic})"),
                ))
            }
        }
        // The rows read must be the rows the footer announces: fewer (even none, found by
        // fuzzing) means damaged row groups, and must not replace the profiles.
        let announced = reader.metadata().file_metadata().num_rows();
        if i64::try_from(loader.rows) != Ok(announced) {
            return Err(ImportError::input(
                file,
                None,
                None,
                format!(
                    "the file is damaged: its footer announces {announced} rows, but {} could be read",
                    loader.rows
                ),
            ));
        }
        Ok(())
    })?;
    Ok((rows, schema.columns))
}

/// Runs `f`; a panic in it (the parquet crate asserts on some damaged files) becomes its
/// message, without the panic hook printing "thread 'main' panicked" and a backtrace on the
/// user's terminal. Panics elsewhere, and on other threads, are reported as before.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    thread_local! {
        static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|panic| panic_message(&*panic).to_string())
}

/// Refuses column chunks whose byte range is negative or past the end of the file (the
/// reader would assert on the first, and read garbage or fail late on the second).
fn check_chunks(
    file: &Path,
    reader: &SerializedFileReader<File>,
    file_len: u64,
) -> Result<(), ImportError> {
    let metadata = reader.metadata();
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for chunk in group.columns() {
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or_else(|| chunk.data_page_offset());
            let len = chunk.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(s, l)| s.checked_add(l));
            if end.is_none_or(|end| end > file_len) {
                return Err(ImportError::input(
                    file,
                    None,
                    Some(&chunk.column_path().string()),
                    format!(
                        "not a readable Parquet file: its chunk in row group {} is at byte {start} and {len} bytes long, in a file of {file_len} bytes",
                        g + 1
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown error")
}

fn read_schema(
    file: &Path,
    reader: &SerializedFileReader<File>,
    key_column: &str,
) -> Result<(Schema, Vec<Conversion>), ImportError> {
    let metadata = reader.metadata().file_metadata();
    let descr = metadata.schema_descr();
    // Leaves whose physical / converted type pair the record API cannot convert.
    for leaf in descr.columns() {
        use ConvertedType as C;
        use PhysicalType as P;
        let converted = leaf.converted_type();
        let supported = match leaf.physical_type() {
            P::INT32 => matches!(
                converted,
                C::NONE
                    | C::INT_8
                    | C::INT_16
                    | C::INT_32
                    | C::UINT_8
                    | C::UINT_16
                    | C::UINT_32
                    | C::DATE
                    | C::TIME_MILLIS
                    | C::DECIMAL
            ),
            P::INT64 => matches!(
                converted,
                C::NONE
                    | C::INT_64
                    | C::UINT_64
                    | C::TIME_MICROS
                    | C::TIMESTAMP_MILLIS
                    | C::TIMESTAMP_MICROS
                    | C::DECIMAL
            ),
            P::BYTE_ARRAY => matches!(
                converted,
                C::NONE | C::UTF8 | C::ENUM | C::JSON | C::BSON | C::DECIMAL
            ),
            P::FIXED_LEN_BYTE_ARRAY => matches!(converted, C::NONE | C::DECIMAL),
            _ => true,
        };
        if !supported {
            return Err(ImportError::input(
                file,
                None,
                Some(&leaf.path().string()),
                format!(
                    "unsupported Parquet type {} ({})",
                    leaf.physical_type(),
                    converted
                ),
            ));
        }
    }
    let fields = descr.root_schema().get_fields();
    let names: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
    if names.is_empty() {
        return Err(ImportError::input(
            file,
            None,
            None,
            "the file has no columns",
        ));
    }
    check_column_names(file, None, &names)?;
    let key = key_index(file, &names, key_column)?;
    let mut conversions = Vec::with_capacity(fields.len());
    for field in fields {
        let info = field.get_basic_info();
        let repeated = info.has_repetition() && info.repetition() == Repetition::REPEATED;
        let mut c = Conversion {
            kind: ColumnType::Json,
            utc: true,
            nanos: false,
            uuid: false,
        };
        if field.is_primitive() && !repeated {
            let logical = info.logical_type_ref();
            let converted = info.converted_type();
            c.kind = match (field.get_physical_type(), logical, converted) {
                (_, Some(LogicalType::Timestamp(t)), _) => {
                    c.utc = t.is_adjusted_to_u_t_c;
                    c.nanos = matches!(t.unit, TimeUnit::NANOS) && converted == ConvertedType::NONE;
                    ColumnType::Timestamp
                }
                (PhysicalType::INT96, _, _)
                | (_, _, ConvertedType::TIMESTAMP_MILLIS | ConvertedType::TIMESTAMP_MICROS) => {
                    ColumnType::Timestamp
                }
                (_, Some(LogicalType::Date), _) | (_, _, ConvertedType::DATE) => ColumnType::Date,
                (_, Some(LogicalType::Time(_)), _)
                | (_, _, ConvertedType::TIME_MILLIS | ConvertedType::TIME_MICROS) => {
                    ColumnType::Text
                }
                (_, Some(LogicalType::Decimal(_)), _) | (_, _, ConvertedType::DECIMAL) => {
                    ColumnType::Real
                }
                (_, Some(LogicalType::Json), _) | (_, _, ConvertedType::JSON) => ColumnType::Json,
                (_, Some(LogicalType::Bson), _) | (_, _, ConvertedType::BSON) => {
                    return Err(ImportError::input(
                        file,
                        None,
                        Some(field.name()),
                        "BSON columns are not supported",
                    ))
                }
                (_, Some(LogicalType::Uuid), _) => {
                    c.uuid = true;
                    ColumnType::Text
                }
                (_, Some(LogicalType::Float16), _) => ColumnType::Real,
                (PhysicalType::BOOLEAN, _, _) => ColumnType::Boolean,
                (PhysicalType::INT32 | PhysicalType::INT64, _, _) => ColumnType::Integer,
                (PhysicalType::FLOAT | PhysicalType::DOUBLE, _, _) => ColumnType::Real,
                (PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY, _, _) => {
                    ColumnType::Text
                }
            };
        }
        conversions.push(c);
    }
    let columns = names
        .into_iter()
        .zip(&conversions)
        .enumerate()
        .map(|(i, (name, c))| Column {
            name,
            kind: if i == key { load::KEY_TYPE } else { c.kind },
        })
        .collect();
    if metadata.num_rows() == 0 {
        return Err(ImportError::input(
            file,
            None,
            None,
            "no profiles: the file has no rows",
        ));
    }
    Ok((Schema { columns, key }, conversions))
}

fn store_rows(
    file: &Path,
    reader: &SerializedFileReader<File>,
    schema: &Schema,
    conversions: &[Conversion],
    loader: &mut Loader<'_>,
    row_number: &mut u64,
) -> Result<(), ImportError> {
    let checked = CheckedFile(reader);
    let rows = checked
        .get_row_iter(None)
        .map_err(|e| ImportError::input(file, None, None, format!("cannot read the rows: {e}")))?;
    let key_name = &schema.columns[schema.key].name;
    let announced = reader.metadata().file_metadata().num_rows();
    let mut cells: Vec<Cell<'static>> = Vec::with_capacity(schema.columns.len());
    for row in rows {
        let n = *row_number + 1;
        let at = Some(Location::Row(n));
        // Damaged pages can hold far more values than the footer announces rows: the footer
        // bounds the read (the count used to be compared only once every row was stored).
        if i64::try_from(n).map_or(true, |n| n > announced) {
            return Err(ImportError::input(
                file,
                at,
                None,
                format!("the file is damaged: its footer announces {announced} rows, but its pages hold more"),
            ));
        }
        let row = row
            .map_err(|e| ImportError::input(file, at, None, format!("cannot read the row: {e}")))?;
        let fields = row.into_columns();
        if fields.len() != schema.columns.len() {
            return Err(ImportError::input(
                file,
                at,
                None,
                format!(
                    "expected {} fields, found {}",
                    schema.columns.len(),
                    fields.len()
                ),
            ));
        }
        cells.clear();
        for (i, (_, field)) in fields.into_iter().enumerate() {
            let column = &schema.columns[i].name;
            let cell = if i == schema.key {
                key_cell(field).map_err(|m| ImportError::input(file, at, Some(column), m))?
            } else {
                cell(field, &conversions[i])
                    .map_err(|m| ImportError::input(file, at, Some(column), m))?
            };
            cells.push(cell);
        }
        match loader.add(Location::Row(n), &cells) {
            Ok(()) => {}
            Err(RowError::Duplicate { key, first }) => {
                return Err(ImportError::input(
                    file,
                    at,
                    Some(key_name),
                    format!("duplicate key {} (first {})", quoted(&key), first.phrase()),
                ))
            }
            Err(RowError::Nul { column }) => {
                return Err(ImportError::input(
                    file,
                    at,
                    Some(&schema.columns[column].name),
                    load::NUL_MESSAGE,
                ))
            }
            Err(RowError::Sql(e)) => {
                return Err(ImportError::input(
                    file,
                    at,
                    None,
                    format!("cannot store the row: {e}"),
                ))
            }
        }
        *row_number = n;
    }
    Ok(())
}

fn key_cell(field: Field) -> Result<Cell<'static>, String> {
    let text = match field {
        Field::Null => return Err("empty key".into()),
        Field::Str(s) => s,
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Bytes(b) => String::from_utf8(b.data().to_vec())
            .map_err(|_| "the key is binary, not UTF-8 text".to_string())?,
        other => {
            return Err(format!(
                "the key column must hold text or integers, found {}",
                describe(&other)
            ))
        }
    };
    if text.trim().is_empty() {
        return Err("empty key".into());
    }
    Ok(Cell::Text(Cow::Owned(text)))
}

fn describe(field: &Field) -> &'static str {
    match field {
        Field::Bool(_) => "a boolean",
        Field::Float16(_) | Field::Float(_) | Field::Double(_) | Field::Decimal(_) => "a number",
        Field::Date(_) => "a date",
        Field::TimeMillis(_) | Field::TimeMicros(_) => "a time",
        Field::TimestampMillis(_) | Field::TimestampMicros(_) => "a timestamp",
        Field::Group(_) => "a group",
        Field::ListInternal(_) => "a list",
        Field::MapInternal(_) => "a map",
        _ => "a value",
    }
}

fn cell(field: Field, c: &Conversion) -> Result<Cell<'static>, String> {
    let text = |s: String| Ok(Cell::Text(Cow::Owned(s)));
    match field {
        Field::Null => Ok(Cell::Null),
        Field::Bool(b) => Ok(Cell::Int(i64::from(b))),
        Field::Byte(v) => Ok(Cell::Int(v.into())),
        Field::Short(v) => Ok(Cell::Int(v.into())),
        Field::Int(v) => Ok(Cell::Int(v.into())),
        Field::Long(v) if c.nanos => text(timestamp(v, 1_000_000_000, c.utc)?),
        Field::Long(v) => Ok(Cell::Int(v)),
        Field::UByte(v) => Ok(Cell::Int(v.into())),
        Field::UShort(v) => Ok(Cell::Int(v.into())),
        Field::UInt(v) => Ok(Cell::Int(v.into())),
        Field::ULong(v) => i64::try_from(v)
            .map(Cell::Int)
            .map_err(|_| format!("value {v} does not fit a 64-bit signed integer")),
        Field::Float16(v) => Ok(Cell::Real(f64::from(v))),
        Field::Float(v) => Ok(Cell::Real(f64::from(v))),
        Field::Double(v) => Ok(Cell::Real(v)),
        Field::Decimal(d) => decimal(&d).map(Cell::Real),
        Field::Str(s) => text(s),
        Field::Bytes(b) if c.uuid && b.len() == 16 => text(uuid(b.data())),
        Field::Bytes(b) => String::from_utf8(b.data().to_vec())
            .map_err(|_| "binary value is not UTF-8 text".to_string())
            .map(|s| Cell::Text(Cow::Owned(s))),
        Field::Date(days) => text(date(days)?),
        Field::TimeMillis(ms) => text(time(i64::from(ms) * 1_000_000, 3)?),
        Field::TimeMicros(us) => text(time(us.saturating_mul(1_000), 6)?),
        Field::TimestampMillis(ms) => text(timestamp(ms, 1_000, c.utc)?),
        Field::TimestampMicros(us) => text(timestamp(us, 1_000_000, c.utc)?),
        nested @ (Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_)) => {
            text(json(&nested).to_string())
        }
    }
}

fn date(days: i32) -> Result<String, String> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(days.into())))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .ok_or_else(|| format!("date {days} (days since 1970-01-01) is out of range"))
}

fn time(nanos: i64, digits: usize) -> Result<String, String> {
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000);
    NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, sub as u32)
        .filter(|_| (0..86_400).contains(&secs))
        .map(|t| {
            let frac = format!("{:09}", chrono::Timelike::nanosecond(&t));
            format!("{}.{}", t.format("%H:%M:%S"), &frac[..digits])
        })
        .ok_or_else(|| format!("time of day {nanos} ns is out of range"))
}

/// An ISO 8601 timestamp from `value` units of 1/`per_second` s since the epoch.
fn timestamp(value: i64, per_second: i64, utc: bool) -> Result<String, String> {
    let secs = value.div_euclid(per_second);
    let sub = value.rem_euclid(per_second);
    let nanos = sub * (1_000_000_000 / per_second);
    let t = DateTime::from_timestamp(secs, nanos as u32)
        .ok_or_else(|| format!("timestamp {value} is out of range"))?;
    let digits = match per_second {
        1_000 => "%.3f",
        1_000_000 => "%.6f",
        _ => "%.9f",
    };
    let zone = if utc { "Z" } else { "" };
    Ok(format!(
        "{}{zone}",
        t.format(&format!("%Y-%m-%dT%H:%M:%S{digits}"))
    ))
}

fn uuid(b: &[u8]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn decimal(d: &Decimal) -> Result<f64, String> {
    let bytes = d.data();
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(format!("decimal of {} bytes is not supported", bytes.len()));
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut full = [if negative { 0xFF } else { 0 }; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    let unscaled = i128::from_be_bytes(full);
    Ok(unscaled as f64 / 10f64.powi(d.scale()))
}

/// A nested value as JSON.
fn json(field: &Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => (*v).into(),
        Field::Short(v) => (*v).into(),
        Field::Int(v) => (*v).into(),
        Field::Long(v) => (*v).into(),
        Field::UByte(v) => (*v).into(),
        Field::UShort(v) => (*v).into(),
        Field::UInt(v) => (*v).into(),
        Field::ULong(v) => (*v).into(),
        Field::Float16(v) => number(f64::from(*v)),
        Field::Float(v) => number(f64::from(*v)),
        Field::Double(v) => number(*v),
        Field::Decimal(d) => decimal(d).map_or(Value::Null, number),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => {
                use base64::Engine;
                Value::String(base64::engine::general_purpose::STANDARD.encode(b.data()))
            }
        },
        Field::Date(d) => date(*d).map_or(Value::Null, Value::String),
        Field::TimeMillis(ms) => {
            time(i64::from(*ms) * 1_000_000, 3).map_or(Value::Null, Value::String)
        }
        Field::TimeMicros(us) => {
            time(us.saturating_mul(1_000), 6).map_or(Value::Null, Value::String)
        }
        Field::TimestampMillis(v) => timestamp(*v, 1_000, true).map_or(Value::Null, Value::String),
        Field::TimestampMicros(v) => {
            timestamp(*v, 1_000_000, true).map_or(Value::Null, Value::String)
        }
        Field::Group(row) => Value::Object(
            row.get_column_iter()
                .map(|(k, v)| (k.clone(), json(v)))
                .collect(),
        ),
        Field::ListInternal(list) => Value::Array(list.elements().iter().map(json).collect()),
        Field::MapInternal(map) => {
            let entries = map.entries();
            if entries.iter().all(|(k, _)| matches!(k, Field::Str(_))) {
                Value::Object(
                    entries
                        .iter()
                        .map(|(k, v)| match k {
                            Field::Str(k) => (k.clone(), json(v)),
                            _ => unreachable!("checked above"),
                        })
                        .collect(),
                )
            } else {
                Value::Array(
                    entries
                        .iter()
                        .map(|(k, v)| Value::Array(vec![json(k), json(v)]))
                        .collect(),
                )
            }
        }
    }
}

fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_temporal_values() {
        assert_eq!(date(0).unwrap(), "1970-01-01");
        assert_eq!(date(19_727).unwrap(), "2024-01-05");
        assert_eq!(time(3_723_004_000_000, 3).unwrap(), "01:02:03.004");
        assert_eq!(
            timestamp(1_704_448_800_123, 1_000, true).unwrap(),
            "2024-01-05T10:00:00.123Z"
        );
        assert_eq!(
            timestamp(-1, 1_000_000, false).unwrap(),
            "1969-12-31T23:59:59.999999"
        );
        assert!(timestamp(i64::MAX, 1_000, true).is_err());
    }

    #[test]
    fn converts_decimals_and_uuids() {
        assert_eq!(decimal(&Decimal::from_i32(-12345, 9, 2)).unwrap(), -123.45);
        assert_eq!(decimal(&Decimal::from_i64(5, 18, 0)).unwrap(), 5.0);
        assert_eq!(
            uuid(&[
                0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
                0x40, 0x00
            ]),
            "123e4567-e89b-12d3-a456-426614174000"
        );
    }
}
