//! CSV import: a header line, then one record per line (quoted fields may span lines).
//!
//! Two streaming passes: the first checks the structure (field counts, UTF-8, keys present)
//! and infers the column types; the second converts and stores the rows.

use super::error::{quoted, ImportError, Location};
use super::infer::{self, ColumnType};
use super::load::{self, Cell, ImportMeta, Loader, RowError, Schema};
use super::{check_column_names, key_index, Column, Format};
use csv::ByteRecord;
use rusqlite::Connection;
use std::borrow::Cow;
use std::cell::Cell as StdCell;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

/// The longest record accepted (a longer one is nearly always an unbalanced quote).
pub(crate) const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) fn import(
    conn: &mut Connection,
    store: &Path,
    file: &Path,
    key_column: &str,
) -> Result<(u64, Vec<Column>), ImportError> {
    let (schema, _rows) = infer_schema(file, key_column)?;
    let meta = ImportMeta {
        file,
        format: Format::Csv,
        key_column,
    };
    let rows = load::replace_profiles(conn, store, &schema, &meta, |loader| {
        store_rows(file, &schema, loader)
    })?;
    Ok((rows, schema.columns))
}

/// The columns of the file with their inferred types (the first pass).
pub(crate) fn infer_schema(file: &Path, key_column: &str) -> Result<(Schema, u64), ImportError> {
    let mut input = Input::open(file)?;
    let names = input.header()?;
    let key = key_index(file, &names, key_column)?;
    let mut types: Vec<Option<ColumnType>> = vec![None; names.len()];
    let mut rows = 0u64;
    while let Some(line) = input.next_record()? {
        let fields = input.fields(line, &names)?;
        for (i, value) in fields.iter().enumerate() {
            if i == key {
                if value.trim().is_empty() {
                    return Err(ImportError::input(
                        file,
                        Some(Location::Line(line)),
                        Some(&names[key]),
                        "empty key",
                    ));
                }
            } else if !value.is_empty() {
                types[i] = Some(infer::merge(types[i], infer::classify(value)));
            }
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(ImportError::input(
            file,
            None,
            None,
            "no profiles: the file has a header but no rows",
        ));
    }
    let columns = names
        .into_iter()
        .zip(types)
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
    Ok((Schema { columns, key }, rows))
}

/// The second pass: every record converted to the column types and stored.
fn store_rows(file: &Path, schema: &Schema, loader: &mut Loader<'_>) -> Result<(), ImportError> {
    let mut input = Input::open(file)?;
    let names = input.header()?;
    let expected: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    if names != expected {
        return Err(changed(file, Some(Location::Line(1)), None));
    }
    while let Some(line) = input.next_record()? {
        let fields = input.fields(line, &names)?;
        let mut cells = Vec::with_capacity(fields.len());
        for (i, (value, column)) in fields.iter().zip(&schema.columns).enumerate() {
            let cell = if i == schema.key {
                if value.trim().is_empty() {
                    return Err(changed(
                        file,
                        Some(Location::Line(line)),
                        Some(&column.name),
                    ));
                }
                Some(Cell::Text(Cow::Borrowed(*value)))
            } else {
                text_cell(value, column.kind)
            };
            match cell {
                Some(cell) => cells.push(cell),
                None => {
                    return Err(changed(
                        file,
                        Some(Location::Line(line)),
                        Some(&column.name),
                    ))
                }
            }
        }
        match loader.add(Location::Line(line), &cells) {
            Ok(()) => {}
            Err(RowError::Duplicate { key, first }) => {
                return Err(ImportError::input(
                    file,
                    Some(Location::Line(line)),
                    Some(&schema.columns[schema.key].name),
                    format!("duplicate key {} (first {})", quoted(&key), first.phrase()),
                ))
            }
            Err(RowError::Sql(e)) => return Err(loader_failed(file, line, e)),
        }
    }
    Ok(())
}

/// A cell of a column of type `kind`; `None` when the value does not fit the type.
pub(crate) fn text_cell(value: &str, kind: ColumnType) -> Option<Cell<'_>> {
    if value.is_empty() {
        return Some(Cell::Null);
    }
    match kind {
        ColumnType::Integer => infer::parse_int(value).map(Cell::Int),
        ColumnType::Real => infer::parse_real(value).map(Cell::Real),
        ColumnType::Boolean => infer::parse_bool(value).map(|b| Cell::Int(i64::from(b))),
        ColumnType::Text | ColumnType::Date | ColumnType::Timestamp | ColumnType::Json => {
            Some(Cell::Text(Cow::Borrowed(value)))
        }
    }
}

fn changed(file: &Path, location: Option<Location>, column: Option<&str>) -> ImportError {
    ImportError::input(
        file,
        location,
        column,
        "the file changed while it was being imported; import it again",
    )
}

fn loader_failed(file: &Path, line: u64, e: rusqlite::Error) -> ImportError {
    ImportError::input(
        file,
        Some(Location::Line(line)),
        None,
        format!("cannot store the record: {e}"),
    )
}

/// A CSV file being read, record by record.
struct Input<'f> {
    file: &'f Path,
    reader: csv::Reader<Guarded>,
    /// Byte offset where the current record starts (for the record size guard).
    record_start: Rc<StdCell<u64>>,
    record: ByteRecord,
    /// Number of fields of the header.
    width: usize,
}

impl<'f> Input<'f> {
    fn open(file: &'f Path) -> Result<Input<'f>, ImportError> {
        let f = File::open(file).map_err(|source| ImportError::Io {
            file: file.to_path_buf(),
            source,
        })?;
        let record_start = Rc::new(StdCell::new(0));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(Guarded {
                inner: f,
                read: 0,
                record_start: record_start.clone(),
            });
        Ok(Input {
            file,
            reader,
            record_start,
            record: ByteRecord::new(),
            width: 0,
        })
    }

    /// Reads the next record; returns the line it starts on.
    fn next_record(&mut self) -> Result<Option<u64>, ImportError> {
        let starts_on = self.reader.position().line();
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {
                self.record_start.set(self.reader.position().byte());
                let line = self
                    .record
                    .position()
                    .map_or(starts_on, csv::Position::line);
                Ok(Some(line))
            }
            Ok(false) => Ok(None),
            Err(e) => Err(self.read_error(e, starts_on)),
        }
    }

    fn read_error(&self, e: csv::Error, line: u64) -> ImportError {
        match e.into_kind() {
            csv::ErrorKind::Io(io) if io.get_ref().is_some_and(|e| e.is::<RecordTooLong>()) => {
                ImportError::input(
                    self.file,
                    Some(Location::Line(line)),
                    None,
                    format!(
                        "a record longer than {} MiB starts here (an unbalanced quote?)",
                        MAX_RECORD_BYTES / (1024 * 1024)
                    ),
                )
            }
            csv::ErrorKind::Io(source) => ImportError::Io {
                file: self.file.to_path_buf(),
                source,
            },
            other => ImportError::input(
                self.file,
                Some(Location::Line(line)),
                None,
                format!("{:?}", other),
            ),
        }
    }

    /// Reads and checks the header: the column names.
    fn header(&mut self) -> Result<Vec<String>, ImportError> {
        let Some(line) = self.next_record()? else {
            return Err(ImportError::input(
                self.file,
                None,
                None,
                "the file is empty",
            ));
        };
        let mut names = Vec::with_capacity(self.record.len());
        for (i, raw) in self.record.iter().enumerate() {
            let raw = if i == 0 {
                raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
            } else {
                raw
            };
            let name = std::str::from_utf8(raw).map_err(|e| {
                ImportError::input(
                    self.file,
                    Some(Location::Line(line)),
                    None,
                    format!(
                        "column {} of the header: {}",
                        i + 1,
                        utf8_message(raw, &e, "value")
                    ),
                )
            })?;
            names.push(name.to_string());
        }
        if names.len() == 1 && names[0].is_empty() {
            return Err(ImportError::input(
                self.file,
                Some(Location::Line(line)),
                None,
                "the header is empty",
            ));
        }
        check_column_names(self.file, Some(Location::Line(line)), &names)?;
        self.width = names.len();
        Ok(names)
    }

    /// The current record's fields, checked: as many as the header has, all UTF-8.
    fn fields(&self, line: u64, names: &[String]) -> Result<Vec<&str>, ImportError> {
        if self.record.len() != self.width {
            let mut message = format!(
                "expected {} fields, found {}",
                self.width,
                self.record.len()
            );
            let newlines: usize = self
                .record
                .iter()
                .map(|f| f.iter().filter(|&&b| b == b'\n').count())
                .sum();
            if newlines > 0 {
                message.push_str(&format!(
                    " (the record runs from line {line} to line {}: an unbalanced quote?)",
                    line + newlines as u64
                ));
            } else if self.width == 1 && self.record.len() > 1 {
                message.push_str(" (the header has a single column: is the delimiter ','?)");
            }
            return Err(ImportError::input(
                self.file,
                Some(Location::Line(line)),
                None,
                message,
            ));
        }
        self.record
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                std::str::from_utf8(raw).map_err(|e| {
                    ImportError::input(
                        self.file,
                        Some(Location::Line(line)),
                        Some(&names[i]),
                        utf8_message(raw, &e, "value"),
                    )
                })
            })
            .collect()
    }
}

/// "invalid UTF-8 (byte 0xE9 at offset 3 of the value); ..." (`of` names what `raw` is).
pub(crate) fn utf8_message(raw: &[u8], e: &std::str::Utf8Error, of: &str) -> String {
    let at = e.valid_up_to();
    format!(
        "invalid UTF-8 (byte 0x{:02X} at offset {at} of the {of}); the file must be UTF-8",
        raw[at]
    )
}

/// The marker error of a record longer than [`MAX_RECORD_BYTES`].
#[derive(Debug)]
struct RecordTooLong;

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record too long")
    }
}

impl std::error::Error for RecordTooLong {}

/// The file, refusing to deliver more than [`MAX_RECORD_BYTES`] past the current record's
/// start, so that an unbalanced quote cannot pull the whole file into one field in memory.
struct Guarded {
    inner: File,
    read: u64,
    record_start: Rc<StdCell<u64>>,
}

impl Read for Guarded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read.saturating_sub(self.record_start.get()) > MAX_RECORD_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, RecordTooLong));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}
