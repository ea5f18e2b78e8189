//! NDJSON import: one JSON object per line (blank lines are skipped).
//!
//! The columns are the union of the objects' keys, in order of first appearance; a key missing
//! from an object is NULL there. Two streaming passes, as for CSV: the first checks every line
//! and infers the column types, the second converts and stores.

use super::csv_input::{utf8_message, MAX_RECORD_BYTES, UTF16};
use super::error::{quoted, ImportError, Location};
use super::infer::{self, ColumnType};
use super::load::{self, Cell, ImportMeta, Loader, RowError, Schema};
use super::{key_index, Column, Format};
use rusqlite::Connection;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

pub(crate) fn import(
    conn: &mut Connection,
    store: &Path,
    file: &Path,
    key_column: &str,
) -> Result<(u64, Vec<Column>), ImportError> {
    let schema = infer_schema(file, key_column)?;
    let meta = ImportMeta {
        file,
        format: Format::Ndjson,
        key_column,
    };
    let rows = load::replace_profiles(conn, store, &schema, &meta, |loader| {
        store_rows(file, &schema, loader)
    })?;
    Ok((rows, schema.columns))
}

/// Column names seen so far, with the lookups that find them.
#[derive(Default)]
struct Columns {
    names: Vec<String>,
    types: Vec<Option<ColumnType>>,
    /// Where each column was first seen.
    first_line: Vec<u64>,
    exact: HashMap<String, usize>,
    /// ASCII-lower-cased name → index (SQLite's column names are case-insensitive).
    folded: HashMap<String, usize>,
}

impl Columns {
    fn index(&mut self, file: &Path, line: u64, name: &str) -> Result<usize, ImportError> {
        if let Some(&i) = self.exact.get(name) {
            return Ok(i);
        }
        let fold = name.to_ascii_lowercase();
        if let Some(&i) = self.folded.get(&fold) {
            return Err(ImportError::input(
                file,
                Some(Location::Line(line)),
                None,
                format!(
                    "key {} differs only in case from {} (first on line {}); column names are case-insensitive",
                    quoted(name),
                    quoted(&self.names[i]),
                    self.first_line[i]
                ),
            ));
        }
        let i = self.names.len();
        if i >= load::MAX_COLUMNS {
            return Err(ImportError::input(
                file,
                Some(Location::Line(line)),
                None,
                format!("too many columns (at most {})", load::MAX_COLUMNS),
            ));
        }
        // A key names a column: the rules of check_column_names, said of a key.
        if name.is_empty() {
            return Err(ImportError::input(
                file,
                Some(Location::Line(line)),
                None,
                "an empty key (\"\") cannot name a column",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(ImportError::input(
                file,
                Some(Location::Line(line)),
                None,
                format!("key {} contains a control character", quoted(name)),
            ));
        }
        self.names.push(name.to_string());
        self.types.push(None);
        self.first_line.push(line);
        self.exact.insert(name.to_string(), i);
        self.folded.insert(fold, i);
        Ok(i)
    }
}

fn infer_schema(file: &Path, key_column: &str) -> Result<Schema, ImportError> {
    let mut input = Input::open(file)?;
    let mut columns = Columns::default();
    let mut first_without_key: Option<u64> = None;
    let mut rows = 0u64;
    while let Some((line, object)) = input.next_object()? {
        let mut has_key = false;
        for (name, value) in &object.0 {
            let i = columns.index(file, line, name)?;
            if name == key_column {
                key_text(file, line, name, value)?;
                has_key = true;
                continue;
            }
            if let Some(class) = classify(value) {
                columns.types[i] = Some(infer::merge(columns.types[i], class));
            }
        }
        if !has_key && first_without_key.is_none() {
            first_without_key = Some(line);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(ImportError::input(
            file,
            None,
            None,
            "the file is empty (no JSON objects)",
        ));
    }
    let key = key_index(file, &columns.names, key_column)?;
    if let Some(line) = first_without_key {
        return Err(ImportError::input(
            file,
            Some(Location::Line(line)),
            Some(key_column),
            "missing key",
        ));
    }
    let columns = columns
        .names
        .into_iter()
        .zip(columns.types)
        .enumerate()
        .map(|(i, (name, kind))| Column {
            name,
            kind: if i == key {
                load::KEY_TYPE
            } else {
                kind.unwrap_or(ColumnType::Text)
            },
        })
        .collect();
    Ok(Schema { columns, key })
}

/// The class of one JSON value (`None` for null).
fn classify(value: &Value) -> Option<ColumnType> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => ColumnType::Boolean,
        Value::Number(n) if n.is_i64() => ColumnType::Integer,
        // An integer too large for 64 bits: an identifier, kept exact as text (as in CSV).
        Value::Number(n) if n.is_u64() => ColumnType::Text,
        Value::Number(_) => ColumnType::Real,
        Value::String(s) if s.is_empty() => return None,
        Value::String(s) => infer::classify_json_string(s),
        Value::Array(_) | Value::Object(_) => ColumnType::Json,
    })
}

/// The key of an object as text: a non-empty string or a number.
fn key_text(file: &Path, line: u64, name: &str, value: &Value) -> Result<String, ImportError> {
    let err = |m: &str| ImportError::input(file, Some(Location::Line(line)), Some(name), m);
    match value {
        Value::String(s) if s.trim().is_empty() => Err(err("empty key")),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Err(err("empty key")),
        Value::Bool(_) => Err(err("the key must be a string or a number, found a boolean")),
        Value::Array(_) => Err(err("the key must be a string or a number, found an array")),
        Value::Object(_) => Err(err("the key must be a string or a number, found an object")),
    }
}

/// A value converted for a column of type `kind`; `None` when it does not fit.
fn cell(value: Value, kind: ColumnType) -> Option<Cell<'static>> {
    Some(match (value, kind) {
        (Value::Null, _) => Cell::Null,
        (Value::String(s), _) if s.is_empty() => Cell::Null,
        (Value::Bool(b), ColumnType::Boolean) => Cell::Int(i64::from(b)),
        (Value::Number(n), ColumnType::Integer) => Cell::Int(n.as_i64()?),
        (Value::Number(n), ColumnType::Real) => Cell::Real(n.as_f64()?),
        (Value::String(s), ColumnType::Text | ColumnType::Date | ColumnType::Timestamp) => {
            Cell::Text(Cow::Owned(s))
        }
        (v @ (Value::Array(_) | Value::Object(_)), ColumnType::Json | ColumnType::Text) => {
            Cell::Text(Cow::Owned(v.to_string()))
        }
        (Value::Bool(b), ColumnType::Text) => {
            Cell::Text(Cow::Borrowed(if b { "true" } else { "false" }))
        }
        (Value::Number(n), ColumnType::Text) => Cell::Text(Cow::Owned(n.to_string())),
        _ => return None,
    })
}

fn store_rows(file: &Path, schema: &Schema, loader: &mut Loader<'_>) -> Result<(), ImportError> {
    let index: HashMap<&str, usize> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let key_name = &schema.columns[schema.key].name;
    let changed = |line: u64| {
        ImportError::input(
            file,
            Some(Location::Line(line)),
            None,
            "the file changed while it was being imported; import it again",
        )
    };
    let mut input = Input::open(file)?;
    let mut cells: Vec<Cell<'static>> = vec![Cell::Null; schema.columns.len()];
    while let Some((line, object)) = input.next_object()? {
        cells.iter_mut().for_each(|c| *c = Cell::Null);
        for (name, value) in object.0 {
            let i = *index.get(name.as_str()).ok_or_else(|| changed(line))?;
            cells[i] = if i == schema.key {
                Cell::Text(Cow::Owned(key_text(file, line, &name, &value)?))
            } else {
                let kind = schema.columns[i].kind;
                cell(value, kind).ok_or_else(|| changed(line))?
            };
        }
        if cells[schema.key] == Cell::Null {
            return Err(ImportError::input(
                file,
                Some(Location::Line(line)),
                Some(key_name),
                "missing key",
            ));
        }
        match loader.add(Location::Line(line), &cells) {
            Ok(()) => {}
            Err(RowError::Duplicate { key, first }) => {
                return Err(ImportError::input(
                    file,
                    Some(Location::Line(line)),
                    Some(key_name),
                    format!("duplicate key {} (first {})", quoted(&key), first.phrase()),
                ))
            }
            Err(RowError::Nul { column }) => {
                return Err(ImportError::input(
                    file,
                    Some(Location::Line(line)),
                    Some(&schema.columns[column].name),
                    load::NUL_MESSAGE,
                ))
            }
            Err(RowError::Sql(e)) => {
                return Err(ImportError::input(
                    file,
                    Some(Location::Line(line)),
                    None,
                    format!("cannot store the object: {e}"),
                ))
            }
        }
    }
    Ok(())
}

/// A JSON object with its members in file order (serde_json's own map sorts them).
struct Object(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Object, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    // A repeated key: the last value wins, as in most JSON readers.
                    if let Some(slot) = members
                        .iter_mut()
                        .find(|(name, _): &&mut (String, Value)| *name == k)
                    {
                        slot.1 = v;
                    } else {
                        members.push((k, v));
                    }
                }
                Ok(Object(members))
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// An NDJSON file being read line by line.
struct Input<'f> {
    file: &'f Path,
    reader: BufReader<File>,
    line: u64,
    buf: Vec<u8>,
}

impl<'f> Input<'f> {
    fn open(file: &'f Path) -> Result<Input<'f>, ImportError> {
        let f = File::open(file).map_err(|source| ImportError::Io {
            file: file.to_path_buf(),
            source,
        })?;
        Ok(Input {
            file,
            reader: BufReader::with_capacity(256 * 1024, f),
            line: 0,
            buf: Vec::new(),
        })
    }

    /// The next non-blank line, parsed, with its line number.
    fn next_object(&mut self) -> Result<Option<(u64, Object)>, ImportError> {
        loop {
            self.buf.clear();
            let n = (&mut self.reader)
                .take(MAX_RECORD_BYTES + 1)
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| ImportError::Io {
                    file: self.file.to_path_buf(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let line = self.line;
            let err =
                |m: String| ImportError::input(self.file, Some(Location::Line(line)), None, m);
            if n as u64 > MAX_RECORD_BYTES {
                return Err(err(format!(
                    "line longer than {} MiB",
                    MAX_RECORD_BYTES / (1024 * 1024)
                )));
            }
            let mut bytes: &[u8] = &self.buf;
            if line == 1 {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
                if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
                    return Err(err(UTF16.to_string()));
                }
            }
            let text =
                std::str::from_utf8(bytes).map_err(|e| err(utf8_message(bytes, &e, "line")))?;
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            if !text.starts_with('{') {
                let found = match text.as_bytes()[0] {
                    b'[' => "an array",
                    b'"' => "a string",
                    b'-' | b'0'..=b'9' => "a number",
                    b't' | b'f' => "a boolean",
                    b'n' => "null",
                    _ => "",
                };
                if !found.is_empty() && serde_json::from_str::<Value>(text).is_ok() {
                    return Err(err(format!("expected a JSON object, found {found}")));
                }
            }
            let object: Object = serde_json::from_str(text).map_err(|e| {
                let full = e.to_string();
                let message = match full.rfind(" at line ") {
                    Some(at) => format!("{} at column {}", &full[..at], e.column()),
                    None => full,
                };
                err(format!("invalid JSON: {message}"))
            })?;
            return Ok(Some((line, object)));
        }
    }
}
