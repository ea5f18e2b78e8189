//! CSV import: a header line, then one record per line (quoted fields may span lines).
//!
//! Two streaming passes: the first checks the structure (field counts, UTF-8, keys present)
//! and infers the column types; the second converts and stores the rows.

use super::dialect::{self, DateFormat, Dialect, ImportOptions, OnBadValue};
use super::error::{quoted, BadValue, ImportError, InputError, Location};
use super::infer::ColumnType;
use super::load::{self, Cell, ImportMeta, Loader, RowError, Schema};
use super::typing::{self, ColumnStats};
use super::{check_column_names, key_index, Column, Format};
use csv::ByteRecord;
use rusqlite::Connection;
use std::borrow::Cow;
use std::cell::{Cell as StdCell, RefCell};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

/// The longest record accepted (a longer one is nearly always an unbalanced quote).
pub(crate) const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;
/// The most bad values an import lists (all are counted).
pub(crate) const MAX_BAD_VALUES_LISTED: usize = 100;

/// What an import did, besides storing the rows (only CSV imports have a dialect and bad
/// values).
#[derive(Debug)]
pub(crate) struct Imported {
    pub rows: u64,
    pub columns: Vec<Column>,
    pub dialect: Option<Dialect>,
    /// The first [`MAX_BAD_VALUES_LISTED`] bad values, in file order.
    pub bad_values: Vec<BadValue>,
    pub bad_value_count: u64,
    /// Profiles left out for their bad values ([`OnBadValue::Skip`]).
    pub skipped_rows: u64,
    /// What people should know about the types chosen.
    pub notes: Vec<String>,
}

impl Imported {
    /// An import of another format: rows and columns.
    pub(crate) fn other((rows, columns): (u64, Vec<Column>)) -> Imported {
        Imported {
            rows,
            columns,
            dialect: None,
            bad_values: Vec::new(),
            bad_value_count: 0,
            skipped_rows: 0,
            notes: Vec::new(),
        }
    }
}

/// The columns of a file, its formats, and what the person importing asked for.
pub(crate) struct Plan {
    pub schema: Schema,
    pub dialect: Dialect,
    pub notes: Vec<String>,
}

pub(crate) fn import(
    conn: &mut Connection,
    store: &Path,
    file: &Path,
    key_column: &str,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    let (plan, _rows) = infer_schema(file, key_column, options)?;
    let meta = ImportMeta {
        file,
        format: Format::Csv,
        key_column,
    };
    let mut outcome = Outcome::default();
    let rows = load::replace_profiles(conn, store, &plan.schema, &meta, |loader| {
        store_rows(file, &plan, options.on_bad_value, loader, &mut outcome)?;
        if options.on_bad_value == OnBadValue::Refuse && outcome.count > 0 {
            return Err(ImportError::BadValues {
                file: file.to_path_buf(),
                count: outcome.count,
                values: std::mem::take(&mut outcome.listed),
            });
        }
        Ok(())
    })?;
    Ok(Imported {
        rows,
        columns: plan.schema.columns,
        dialect: Some(plan.dialect),
        bad_values: outcome.listed,
        bad_value_count: outcome.count,
        skipped_rows: outcome.skipped,
        notes: plan.notes,
    })
}

/// The columns of the file with their inferred types, and the file's formats (the first pass).
pub(crate) fn infer_schema(
    file: &Path,
    key_column: &str,
    options: &ImportOptions,
) -> Result<(Plan, u64), ImportError> {
    let sniffed = dialect::sniff(file, options.delimiter)?;
    let mut input = Input::open(file, sniffed.delimiter)?;
    let names = input.header()?;
    let key = key_index(file, &names, key_column)?;
    for name in &options.text_columns {
        if !names.contains(name) {
            return Err(ImportError::input(
                file,
                None,
                None,
                format!(
                    "no column {} to keep as text (columns: {})",
                    quoted(name),
                    super::error::list(&names)
                ),
            ));
        }
    }
    let mut stats: Vec<ColumnStats> = vec![ColumnStats::default(); names.len()];
    let mut rows = 0u64;
    let mut problems = RowProblems::default();
    while let Some(line) = input.next_record()? {
        rows += 1;
        let fields = match input.fields(line, &names) {
            Ok(fields) => fields,
            Err(e) => {
                problems.push(e)?;
                continue;
            }
        };
        if fields[key].trim().is_empty() {
            let at = Some(Location::Line(line));
            problems.push(ImportError::input(file, at, Some(&names[key]), "empty key"))?;
            continue;
        }
        for (i, value) in fields.iter().enumerate() {
            if i != key && !value.is_empty() {
                stats[i].add(value, line);
            }
        }
    }
    problems.finish(file)?;
    if rows == 0 {
        return Err(ImportError::input(
            file,
            None,
            None,
            "no profiles: the file has a header but no rows",
        ));
    }
    let (decimal_comma, date_format, mut notes) = formats(&stats, sniffed.delimiter, options);
    let columns = names
        .into_iter()
        .zip(&stats)
        .enumerate()
        .map(|(i, (name, stats))| {
            let kind = if i == key {
                load::KEY_TYPE
            } else if options.text_columns.contains(&name) {
                ColumnType::Text
            } else {
                let (kind, note) = stats.decide(decimal_comma, date_format);
                if let Some(note) = note {
                    notes.push(format!("column {}: {note}", quoted(&name)));
                }
                kind
            };
            Column { name, kind }
        })
        .collect();
    let dialect = Dialect {
        delimiter: dialect::delimiter_name(sniffed.delimiter),
        delimiter_detected: sniffed.delimiter_detected,
        bom: sniffed.bom,
        line_ending: if sniffed.crlf { "crlf" } else { "lf" }.to_string(),
        decimal_comma,
        date_format,
    };
    Ok((
        Plan {
            schema: Schema { columns, key },
            dialect,
            notes,
        },
        rows,
    ))
}

/// The file's number and date formats: given, else what its values say, else what its
/// delimiter suggests (`;` is the delimiter of the locales that write decimal commas and
/// day-first dates), with a note when the dates could be read either way.
fn formats(
    stats: &[ColumnStats],
    delimiter: u8,
    options: &ImportOptions,
) -> (bool, DateFormat, Vec<String>) {
    let sum = |f: fn(&ColumnStats) -> u64| stats.iter().map(f).sum::<u64>();
    let european = delimiter == b';';
    let decimal_comma = options.decimal_comma.unwrap_or_else(|| {
        let (comma, point) = (sum(|s| s.comma_only), sum(|s| s.point_only));
        if comma == point {
            european
        } else {
            comma > point
        }
    });
    let mut notes = Vec::new();
    let date_format = options.date_format.unwrap_or_else(|| {
        let (dmy, mdy) = (sum(|s| s.dmy_only), sum(|s| s.mdy_only));
        if dmy != mdy {
            return if dmy > mdy {
                DateFormat::DayMonthYear
            } else {
                DateFormat::MonthDayYear
            };
        }
        let guess = if european || decimal_comma {
            DateFormat::DayMonthYear
        } else {
            DateFormat::MonthDayYear
        };
        let ambiguous = stats
            .iter()
            .any(|s| s.decide(decimal_comma, guess).0 != s.decide(decimal_comma, DateFormat::Iso).0);
        if ambiguous {
            notes.push(format!(
                "dates such as 05/04/2024 could be day first or month first, and no date in the file tells: read as {guess} (give the date format to say otherwise)"
            ));
        }
        guess
    });
    (decimal_comma, date_format, notes)
}

/// The bad values found by the second pass.
#[derive(Default)]
struct Outcome {
    listed: Vec<BadValue>,
    count: u64,
    skipped: u64,
}

impl Outcome {
    fn bad(&mut self, line: u64, column: &Column, value: &str, dialect: &Dialect) {
        self.count += 1;
        if self.listed.len() < MAX_BAD_VALUES_LISTED {
            self.listed.push(BadValue {
                line,
                column: column.name.clone(),
                value: value.to_string(),
                problem: typing::expected(column.kind, dialect.decimal_comma, dialect.date_format),
            });
        }
    }
}

/// The second pass: every record converted to the column types and stored; values that do
/// not fit their column's type are counted and listed, and left empty or their row skipped.
fn store_rows(
    file: &Path,
    plan: &Plan,
    on_bad_value: OnBadValue,
    loader: &mut Loader<'_>,
    outcome: &mut Outcome,
) -> Result<(), ImportError> {
    let (schema, dialect) = (&plan.schema, &plan.dialect);
    let delimiter = dialect::parse_delimiter(&dialect.delimiter).expect("a delimiter read back");
    let mut input = Input::open(file, delimiter)?;
    let names = input.header()?;
    let expected: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    if names != expected {
        return Err(changed(file, Some(Location::Line(1)), None));
    }
    let mut problems = RowProblems::default();
    while let Some(line) = input.next_record()? {
        let fields = input.fields(line, &names)?;
        if fields[schema.key].trim().is_empty() {
            let column = &schema.columns[schema.key].name;
            return Err(changed(file, Some(Location::Line(line)), Some(column)));
        }
        let (cells, bad_row) = row_cells(line, &fields, plan, outcome);
        if bad_row && on_bad_value == OnBadValue::Skip {
            outcome.skipped += 1;
            continue;
        }
        if on_bad_value == OnBadValue::Refuse && outcome.count > 0 {
            // Nothing will be stored: the rest of the file is only read for its bad values.
            continue;
        }
        let at = Some(Location::Line(line));
        match loader.add(Location::Line(line), &cells) {
            Ok(()) => {}
            Err(RowError::Duplicate { key, first }) => problems.push(ImportError::input(
                file,
                at,
                Some(&schema.columns[schema.key].name),
                format!("duplicate key {} (first {})", quoted(&key), first.phrase()),
            ))?,
            Err(RowError::Nul { column }) => problems.push(ImportError::input(
                file,
                at,
                Some(&schema.columns[column].name),
                load::NUL_MESSAGE,
            ))?,
            Err(RowError::Sql(e)) => return Err(loader_failed(file, line, e)),
        }
    }
    problems.finish(file)
}

/// A record's cells, converted to the column types with the file's formats (the key as it
/// is), and whether any value did not fit (counted and listed in `outcome`, left empty).
fn row_cells<'v>(
    line: u64,
    fields: &[&'v str],
    plan: &Plan,
    outcome: &mut Outcome,
) -> (Vec<Cell<'v>>, bool) {
    let (schema, dialect) = (&plan.schema, &plan.dialect);
    let mut cells = Vec::with_capacity(fields.len());
    let mut bad_row = false;
    for (i, (value, column)) in fields.iter().zip(&schema.columns).enumerate() {
        if i == schema.key {
            cells.push(Cell::Text(Cow::Borrowed(*value)));
            continue;
        }
        let cell = typing::cell(
            value,
            column.kind,
            dialect.decimal_comma,
            dialect.date_format,
        );
        cells.push(cell.unwrap_or_else(|| {
            outcome.bad(line, column, value, dialect);
            bad_row = true;
            Cell::Null
        }));
    }
    (cells, bad_row)
}

/// Rows that cannot be imported (wrong field counts, empty or duplicate keys, ...), found
/// while reading on: all are reported at once, the first [`MAX_BAD_VALUES_LISTED`] listed.
#[derive(Default)]
struct RowProblems {
    listed: Vec<InputError>,
    count: u64,
}

impl RowProblems {
    /// Notes a row's problem; any other error (the file cannot be read on) is returned.
    fn push(&mut self, e: ImportError) -> Result<(), ImportError> {
        let ImportError::Input(e) = e else {
            return Err(e);
        };
        self.count += 1;
        if self.listed.len() < MAX_BAD_VALUES_LISTED {
            self.listed.push(e);
        }
        Ok(())
    }

    /// The error of the rows found wrong: a single one as it is, several together.
    fn finish(mut self, file: &Path) -> Result<(), ImportError> {
        match self.count {
            0 => Ok(()),
            1 => Err(ImportError::Input(self.listed.remove(0))),
            count => Err(ImportError::Rows {
                file: file.to_path_buf(),
                count,
                errors: self.listed,
            }),
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
    delimiter: u8,
    reader: csv::Reader<Guarded>,
    /// Byte offset where the current record starts (for the record size guard).
    record_start: Rc<StdCell<u64>>,
    /// The last bytes read, to tell how the current record ended.
    tail: Rc<RefCell<Tail>>,
    record: ByteRecord,
    /// Number of fields of the header.
    width: usize,
    /// The header's column names, once read.
    names: Vec<String>,
}

impl<'f> Input<'f> {
    fn open(file: &'f Path, delimiter: u8) -> Result<Input<'f>, ImportError> {
        let f = File::open(file).map_err(|source| ImportError::Io {
            file: file.to_path_buf(),
            source,
        })?;
        let record_start = Rc::new(StdCell::new(0));
        let tail = Rc::new(RefCell::new(Tail::default()));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(Guarded {
                inner: f,
                read: 0,
                record_start: record_start.clone(),
                quotes: QuoteTracker::new(delimiter),
                tail: tail.clone(),
            });
        Ok(Input {
            file,
            delimiter,
            reader,
            record_start,
            tail,
            record: ByteRecord::new(),
            width: 0,
            names: Vec::new(),
        })
    }

    /// Reads the next record; returns the line it starts on.
    ///
    /// The csv reader's own record position is where its read began: before the blank lines
    /// it skipped, and on CRLF files before the `\n` of the previous record's end. The line is
    /// counted back from the record's end instead: the line reached, less the line breaks
    /// inside its fields, less one if its terminator was a `\n` (a `\r\n` leaves the `\n`
    /// for the next read; the last record may have none).
    fn next_record(&mut self) -> Result<Option<u64>, ImportError> {
        let starts_on = self.reader.position().line();
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {
                let end = self.reader.position();
                self.record_start.set(end.byte());
                let inside = memchr::memchr_iter(b'\n', self.record.as_slice()).count() as u64;
                let ended_by_newline = end
                    .byte()
                    .checked_sub(1)
                    .and_then(|at| self.tail.borrow().byte_at(at))
                    == Some(b'\n');
                let line = end
                    .line()
                    .saturating_sub(inside + u64::from(ended_by_newline));
                Ok(Some(line.max(1)))
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
            if let Some(d) = dialect::DELIMITERS
                .into_iter()
                .find(|&d| d != self.delimiter && only.contains(d as char))
            {
                return Err(ImportError::input(
                    self.file,
                    Some(Location::Line(line)),
                    None,
                    format!(
                        "the header is a single column holding {}: the file seems to use {} as its delimiter, not {} (give the delimiter {})",
                        quoted(&dialect::delimiter_name(d)),
                        quoted(&dialect::delimiter_name(d)),
                        quoted(&dialect::delimiter_name(self.delimiter)),
                        quoted(&dialect::delimiter_name(d)),
                    ),
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
                message.push_str(&format!(
                    " (the header has a single column: is the delimiter {}?)",
                    quoted(&dialect::delimiter_name(self.delimiter))
                ));
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

/// Follows the quoting of the bytes read, as the csv reader (`csv_core`, with the file's
/// delimiter, `"`, doubled quotes, CR/LF/CRLF terminators) sees them, to tell at the end of
/// the file whether a quoted field was left open.
#[derive(Debug, Default)]
struct QuoteTracker {
    delimiter: u8,
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
    fn new(delimiter: u8) -> QuoteTracker {
        QuoteTracker {
            delimiter,
            ..QuoteTracker::default()
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.at_line_end = last == b'\n';
        }
        let mut rest = bytes;
        while let Some((&b, after)) = rest.split_first() {
            rest = match self.state {
                // Inside a field only some bytes change the state: skip to the next one.
                QuoteState::Quoted => self.skip_quoted(rest),
                QuoteState::Unquoted => {
                    let d = self.delimiter;
                    match memchr::memchr3(d, b'\n', b'\r', rest) {
                        Some(at) => {
                            self.step(rest[at]);
                            &rest[at + 1..]
                        }
                        None => &[],
                    }
                }
                _ => {
                    self.step(b);
                    after
                }
            };
        }
    }

    /// `bytes` from inside a quoted field: past its next `"` (which it steps over), counting
    /// the line breaks on the way.
    fn skip_quoted<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        let end = memchr::memchr(b'"', bytes).unwrap_or(bytes.len());
        self.newlines += memchr::memchr_iter(b'\n', &bytes[..end]).count() as u64;
        match bytes.get(end) {
            Some(&b) => {
                self.step(b);
                &bytes[end + 1..]
            }
            None => &[],
        }
    }

    /// One byte, as the csv reader would take it.
    fn step(&mut self, b: u8) {
        use QuoteState::*;
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
            (_, d) if d == self.delimiter => {
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
    tail: Rc<RefCell<Tail>>,
}

/// The last [`Tail::SIZE`] bytes read from the file (the csv reader reads ahead of the record
/// it returns by its buffer, 8 KiB), by their offset in the file.
struct Tail {
    ring: Vec<u8>,
    /// Bytes read so far.
    end: u64,
}

impl Default for Tail {
    fn default() -> Tail {
        Tail {
            ring: vec![0; Tail::SIZE],
            end: 0,
        }
    }
}

impl Tail {
    const SIZE: usize = 64 * 1024;

    fn push(&mut self, bytes: &[u8]) {
        let skipped = bytes.len().saturating_sub(Tail::SIZE);
        self.end += skipped as u64;
        let mut rest = &bytes[skipped..];
        while !rest.is_empty() {
            let at = (self.end % Tail::SIZE as u64) as usize;
            let n = rest.len().min(Tail::SIZE - at);
            self.ring[at..at + n].copy_from_slice(&rest[..n]);
            self.end += n as u64;
            rest = &rest[n..];
        }
    }

    /// The byte at `offset`, if it is among the last ones read.
    fn byte_at(&self, offset: u64) -> Option<u8> {
        (offset < self.end && self.end - offset <= Tail::SIZE as u64)
            .then(|| self.ring[(offset % Tail::SIZE as u64) as usize])
    }
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
        self.tail.borrow_mut().push(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unclosed(bytes: &[u8]) -> Option<(u64, usize, u64)> {
        let mut t = QuoteTracker::new(b',');
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

    #[test]
    fn quote_tracker_skips_ahead_as_it_would_step() {
        // Bytes drawn from those that matter (and one that does not), fed in pieces of
        // varied sizes, against the same bytes stepped one by one.
        let alphabet = b"\",;\n\rx";
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut stepped = QuoteTracker::new(b',');
            for &b in &bytes {
                stepped.step(b);
            }
            let mut fed = QuoteTracker::new(b',');
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = 1 + (next() % 7) as usize;
                let (piece, after) = rest.split_at(n.min(rest.len()));
                fed.feed(piece);
                rest = after;
            }
            let view = |t: &QuoteTracker| (t.state, t.newlines, t.field, t.open_line, t.open_field);
            assert_eq!(
                view(&fed),
                view(&stepped),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn records_start_on_their_lines_whatever_the_line_ends() {
        let dir = tempfile::tempdir().unwrap();
        for (text, lines) in [
            (&b"h,x\na,1\n\nb,\"2\n3\"\nc,4"[..], [1, 2, 4, 6]),
            (
                b"\xEF\xBB\xBFh,x\r\na,1\r\n\r\nb,\"2\r\n3\"\r\nc,4\r\n",
                [1, 2, 4, 6],
            ),
            (b"h,x\r\na,1\r\n\r\nb,\"2\r\n3\"\r\nc,\"4\n\"", [1, 2, 4, 6]),
            (b"h,x\ra,1\r\rb,\"2\r3\"\rc,4\r", [1, 1, 1, 1]),
        ] {
            let file = dir.path().join("f.csv");
            std::fs::write(&file, text).unwrap();
            let mut input = Input::open(&file, b',').unwrap();
            let mut found = Vec::new();
            while let Some(line) = input.next_record().unwrap() {
                found.push(line);
            }
            assert_eq!(found, lines, "{:?}", String::from_utf8_lossy(text));
        }
    }
}
