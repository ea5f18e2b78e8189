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
            Err(RowError::Nul { column }) => {
                return Err(ImportError::input(
                    file,
                    Some(Location::Line(line)),
                    Some(&schema.columns[column].name),
                    load::NUL_MESSAGE,
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
    /// The header's column names, once read.
    names: Vec<String>,
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
                quotes: QuoteTracker::default(),
            });
        Ok(Input {
            file,
            reader,
            record_start,
            record: ByteRecord::new(),
            width: 0,
            names: Vec::new(),
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
            csv::ErrorKind::Io(io)
                if io
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<UnclosedQuote>())
                    .is_some() =>
            {
                let open = io
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<UnclosedQuote>())
                    .expect("checked above");
                let column = self.names.get(open.field).map(String::as_str);
                let field = match column {
                    Some(_) => "field".to_string(),
                    None => format!("field {}", open.field + 1),
                };
                ImportError::input(
                    self.file,
                    Some(Location::Line(open.line)),
                    column,
                    format!(
                        "unbalanced quote: the quoted {field} that starts on this line is never closed (it would run to the end of the file, line {})",
                        open.last_line
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
            let at = Some(Location::Line(line));
            if i == 0 && (raw.starts_with(b"\xFF\xFE") || raw.starts_with(b"\xFE\xFF")) {
                return Err(ImportError::input(self.file, at, None, UTF16));
            }
            let name = std::str::from_utf8(raw).map_err(|e| {
                ImportError::input(
                    self.file,
                    at,
                    None,
                    format!(
                        "column {} of the header: {}",
                        i + 1,
                        utf8_message(raw, &e, "value")
                    ),
                )
            })?;
            if name.contains('\0') {
                return Err(ImportError::input(
                    self.file,
                    at,
                    None,
                    format!(
                        "column {} of the header holds NUL bytes: is the file UTF-16? It must be UTF-8",
                        i + 1
                    ),
                ));
            }
            names.push(name.to_string());
        }
        if let [only] = names.as_slice() {
            if only.contains('\t') {
                return Err(ImportError::input(
                    self.file,
                    Some(Location::Line(line)),
                    None,
                    "the header has a single column holding tabs: the file seems to use tabs as its delimiter, but CSV files must use ','",
                ));
            }
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
        self.names = names.clone();
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

/// The message for a file that starts with a UTF-16 byte order mark.
pub(crate) const UTF16: &str =
    "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8";

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

/// The marker error of a file that ends inside a quoted field: the csv reader would silently
/// take everything from the opening quote to the end of the file as one field.
#[derive(Debug)]
struct UnclosedQuote {
    /// The line on which the quoted field starts (1-based).
    line: u64,
    /// The field's index in its record (0-based).
    field: usize,
    /// The last line of the file.
    last_line: u64,
}

impl std::fmt::Display for UnclosedQuote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unclosed quote on line {}", self.line)
    }
}

impl std::error::Error for UnclosedQuote {}

/// Follows the quoting of the bytes read, as the csv reader (`csv_core`, with its defaults:
/// `,`, `"`, doubled quotes, CR/LF/CRLF terminators) sees them, to tell at the end of the file
/// whether a quoted field was left open.
#[derive(Debug, Default)]
struct QuoteTracker {
    state: QuoteState,
    /// Line being read (0-based count of `\n` seen).
    newlines: u64,
    field: usize,
    open_line: u64,
    open_field: usize,
    /// Whether the last byte seen was `\n`.
    at_line_end: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    #[default]
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` inside a quoted field: the field's end, or the first half of a doubled quote.
    QuoteInQuoted,
}

impl QuoteTracker {
    fn feed(&mut self, bytes: &[u8]) {
        use QuoteState::*;
        if let Some(&last) = bytes.last() {
            self.at_line_end = last == b'\n';
        }
        for &b in bytes {
            self.state = match (self.state, b) {
                (Quoted, b'"') => QuoteInQuoted,
                (Quoted, b'\n') => {
                    self.newlines += 1;
                    Quoted
                }
                (Quoted, _) => Quoted,
                (QuoteInQuoted, b'"') => Quoted,
                (FieldStart, b'"') => {
                    self.open_line = self.newlines + 1;
                    self.open_field = self.field;
                    Quoted
                }
                (_, b',') => {
                    self.field += 1;
                    FieldStart
                }
                (_, b'\n' | b'\r') => {
                    if b == b'\n' {
                        self.newlines += 1;
                    }
                    self.field = 0;
                    FieldStart
                }
                _ => Unquoted,
            };
        }
    }

    /// At the end of the file: the quoted field left open, if any.
    fn unclosed(&self) -> Option<UnclosedQuote> {
        (self.state == QuoteState::Quoted).then(|| UnclosedQuote {
            line: self.open_line,
            field: self.open_field,
            last_line: self.newlines + u64::from(!self.at_line_end),
        })
    }
}

/// The file, refusing to deliver more than [`MAX_RECORD_BYTES`] past the current record's
/// start, so that an unbalanced quote cannot pull the whole file into one field in memory,
/// and refusing to end inside a quoted field.
struct Guarded {
    inner: File,
    read: u64,
    record_start: Rc<StdCell<u64>>,
    quotes: QuoteTracker,
}

impl Read for Guarded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read.saturating_sub(self.record_start.get()) > MAX_RECORD_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, RecordTooLong));
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(open) = self.quotes.unclosed() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, open));
            }
        }
        // The csv reader skips a UTF-8 byte order mark at the start; so does the tracker.
        let skip = if self.read == 0 && buf[..n].starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        self.quotes.feed(&buf[skip..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unclosed(bytes: &[u8]) -> Option<(u64, usize, u64)> {
        let mut t = QuoteTracker::default();
        // Fed in small pieces, as reads deliver them.
        for piece in bytes.chunks(3) {
            t.feed(piece);
        }
        t.unclosed().map(|u| (u.line, u.field, u.last_line))
    }

    #[test]
    fn quote_tracker_follows_the_csv_reader() {
        for ok in [
            &b"a,b\n1,2\n"[..],
            b"a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n",
            b"a,b\n\"multi\nline\",2\n",
            b"a,b\n5'11\",x\n",     // a quote inside an unquoted field is literal
            b"a,b\n\"q\"after,x\n", // text after a closing quote joins the field
            b"a,b\n\"\",\"\"\n",    // empty quoted fields
            b"a,b\n1,\"2\"",        // no newline at the end
            b"",
        ] {
            assert_eq!(unclosed(ok), None, "{:?}", String::from_utf8_lossy(ok));
        }
        assert_eq!(unclosed(b"a,b\n1,\"2\n3,4\n"), Some((2, 1, 3)));
        assert_eq!(unclosed(b"a,b\n1,2\n\"x"), Some((3, 0, 3)));
        assert_eq!(unclosed(b"a,b\n1,\"say \"\"hi\"\"\n"), Some((2, 1, 2)));
        assert_eq!(unclosed(b"a,b\r\n1,\"2\r\n3,4"), Some((2, 1, 3)));
    }
}
