//! How a CSV file is written: its delimiter, its number format and its date format, detected
//! from the file or given by the person importing it (`--delimiter`, `--decimal-comma`,
//! `--date-format`), and what to do with values that do not fit their column's type
//! (`--on-bad-value`).
//!
//! A spreadsheet saved as CSV in a European locale uses `;`, decimal commas (`1.234,50`) and
//! `dd/mm/yyyy` dates; one saved in the US uses `,`, decimal points (`1,234.50`) and
//! `mm/dd/yyyy`. Detection reads the whole file in the first pass of the import (see
//! [`super::typing`]); only the delimiter is sniffed from the file's start.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use super::error::ImportError;

/// The delimiters detected: `,` `;` tab `|`.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// How much of the file's start the delimiter is sniffed from.
const SNIFF_BYTES: usize = 64 * 1024;
/// How many records of that start are compared.
const SNIFF_RECORDS: usize = 100;

/// The order of day, month and year in dates such as `05/04/2024`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum DateFormat {
    /// `dd/mm/yyyy` (also with `.` or `-`), optionally followed by ` HH:MM[:SS]`.
    #[serde(rename = "dd/mm/yyyy")]
    DayMonthYear,
    /// `mm/dd/yyyy` (also with `.` or `-`), optionally followed by ` HH:MM[:SS]`.
    #[serde(rename = "mm/dd/yyyy")]
    MonthDayYear,
    /// ISO 8601 only: `yyyy-mm-dd`, optionally with a time.
    #[serde(rename = "yyyy-mm-dd")]
    Iso,
}

impl DateFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DateFormat::DayMonthYear => "dd/mm/yyyy",
            DateFormat::MonthDayYear => "mm/dd/yyyy",
            DateFormat::Iso => "yyyy-mm-dd",
        }
    }
}

impl fmt::Display for DateFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DateFormat {
    type Err = String;

    /// `dd/mm/yyyy`, `mm/dd/yyyy` or `yyyy-mm-dd` (any separator, any case; also `dmy`,
    /// `mdy`, `iso`).
    fn from_str(s: &str) -> Result<DateFormat, String> {
        let norm: String = s
            .to_ascii_lowercase()
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect();
        match norm.as_str() {
            "ddmmyyyy" | "dmy" => Ok(DateFormat::DayMonthYear),
            "mmddyyyy" | "mdy" => Ok(DateFormat::MonthDayYear),
            "yyyymmdd" | "ymd" | "iso" => Ok(DateFormat::Iso),
            _ => Err(format!(
                "unknown date format \"{s}\": expected dd/mm/yyyy, mm/dd/yyyy or yyyy-mm-dd"
            )),
        }
    }
}

/// What an import does with a value that does not fit its column's type (an `x` in a column
/// of numbers): every such value is reported, with its line and column, whatever the choice.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OnBadValue {
    /// Keep the profile, with that value left empty (NULL): no segment condition on the
    /// column holds for it.
    #[default]
    Empty,
    /// Leave the whole profile out of the import.
    Skip,
    /// Refuse the import (nothing changes) and list the bad values.
    Refuse,
}

impl OnBadValue {
    pub fn as_str(self) -> &'static str {
        match self {
            OnBadValue::Empty => "empty",
            OnBadValue::Skip => "skip",
            OnBadValue::Refuse => "refuse",
        }
    }
}

impl fmt::Display for OnBadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OnBadValue {
    type Err = String;

    fn from_str(s: &str) -> Result<OnBadValue, String> {
        match s.to_ascii_lowercase().as_str() {
            "empty" => Ok(OnBadValue::Empty),
            "skip" => Ok(OnBadValue::Skip),
            "refuse" => Ok(OnBadValue::Refuse),
            _ => Err(format!(
                "unknown choice \"{s}\" for bad values: expected empty, skip or refuse"
            )),
        }
    }
}

/// What the person importing a CSV file says about it; anything not given is detected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ImportOptions {
    /// The CSV delimiter (a single character; `\t` or `tab` for a tab). Detected among
    /// `,` `;` tab `|` when not given.
    #[serde(
        serialize_with = "ser_delimiter",
        deserialize_with = "de_delimiter",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, example = ";")]
    pub delimiter: Option<u8>,
    /// Whether numbers use a decimal comma (`1.234,50`) rather than a decimal point
    /// (`1,234.50`). Detected when not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decimal_comma: Option<bool>,
    /// The order of dates that are not ISO (`05/04/2024`). Detected when not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_format: Option<DateFormat>,
    /// What to do with values that do not fit their column's type.
    pub on_bad_value: OnBadValue,
    /// Columns kept as text whatever they hold (codes that look like numbers, or a column
    /// typed as numbers whose other values matter).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub text_columns: Vec<String>,
}

impl ImportOptions {
    /// Whether an option is set (they apply to CSV files only: NDJSON and Parquet values
    /// carry their types).
    pub(crate) fn has_csv_options(&self) -> bool {
        *self != ImportOptions::default()
    }
}

fn ser_delimiter<S: serde::Serializer>(d: &Option<u8>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&delimiter_name(*d)),
        None => s.serialize_none(),
    }
}

fn de_delimiter<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_delimiter(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// A delimiter as given: one ASCII character other than a quote, a letter, a digit or a line
/// break; `tab` or `\t` for a tab (also `comma`, `semicolon`, `pipe`).
pub fn parse_delimiter(s: &str) -> Result<u8, String> {
    let b = match s.to_ascii_lowercase().as_str() {
        "tab" | "\\t" | "\t" => b'\t',
        "comma" => b',',
        "semicolon" => b';',
        "pipe" => b'|',
        _ if s.len() == 1 => s.as_bytes()[0],
        _ => {
            return Err(format!(
                "the delimiter must be one character (, ; | or tab), not \"{s}\""
            ))
        }
    };
    if !b.is_ascii() || b.is_ascii_alphanumeric() || matches!(b, b'"' | b'\n' | b'\r' | b'.') {
        return Err(format!("\"{s}\" cannot be a delimiter: use , ; | or tab"));
    }
    Ok(b)
}

/// `,` `;` `|`, or `tab`.
pub fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".to_string(),
        d => (d as char).to_string(),
    }
}

/// How a CSV file was read: given or detected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dialect {
    /// `,` `;` `|` or `tab`.
    pub delimiter: String,
    /// Whether the delimiter was detected (rather than given).
    pub delimiter_detected: bool,
    /// Whether the file starts with a UTF-8 byte order mark (as Excel writes them).
    pub bom: bool,
    /// `crlf` or `lf`.
    pub line_ending: String,
    /// Whether numbers were read with a decimal comma (`1.234,50`).
    pub decimal_comma: bool,
    /// How dates that are not ISO were read (when the file has any).
    pub date_format: DateFormat,
}

/// What the start of a file says: its delimiter (unless given), BOM and line ending.
pub(crate) struct Sniffed {
    pub delimiter: u8,
    pub delimiter_detected: bool,
    pub bom: bool,
    pub crlf: bool,
}

/// Reads the file's start and detects its delimiter: among `,` `;` tab `|`, the one that
/// splits the header into the most columns with the following records splitting the same
/// way (quotes respected); `,` when none splits the header.
pub(crate) fn sniff(file: &Path, given: Option<u8>) -> Result<Sniffed, ImportError> {
    let mut start = Vec::with_capacity(SNIFF_BYTES);
    File::open(file)
        .and_then(|f| f.take(SNIFF_BYTES as u64).read_to_end(&mut start))
        .map_err(|source| ImportError::Io {
            file: file.to_path_buf(),
            source,
        })?;
    let bom = start.starts_with(b"\xEF\xBB\xBF");
    let body = if bom { &start[3..] } else { &start[..] };
    let crlf = match body.iter().position(|&b| b == b'\n') {
        Some(i) => i > 0 && body[i - 1] == b'\r',
        None => false,
    };
    // The last record of a cut sample may be cut too: it is not compared.
    let truncated = start.len() == SNIFF_BYTES;
    let delimiter = given.unwrap_or_else(|| detect(body, truncated));
    Ok(Sniffed {
        delimiter,
        delimiter_detected: given.is_none(),
        bom,
        crlf,
    })
}

fn detect(sample: &[u8], truncated: bool) -> u8 {
    let mut best: Option<(usize, usize, u8)> = None;
    for d in DELIMITERS {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(d)
            .from_reader(sample);
        let mut widths: Vec<usize> = reader
            .byte_records()
            .take(SNIFF_RECORDS + 1)
            .map_while(Result::ok)
            .map(|r| r.len())
            .collect();
        if truncated && widths.len() > 1 {
            widths.pop();
        }
        let Some((&header, rest)) = widths.split_first() else {
            continue;
        };
        if header < 2 {
            continue;
        }
        let agreeing = rest.iter().filter(|&&w| w == header).count();
        let score = (agreeing, header, d);
        if best.is_none_or(|(a, h, _)| (agreeing, header) > (a, h)) {
            best = Some(score);
        }
    }
    best.map_or(b',', |(_, _, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_delimiter() {
        for (text, d) in [
            (&b"a,b,c\n1,2,3\n"[..], b','),
            (b"a;b;c\r\n1;2,5;3\r\n", b';'),
            (b"a\tb\n1\t\"x;y\"\n", b'\t'),
            (b"a|b\n1|2\n", b'|'),
            (b"\"name; with\";b\n\"x, y\";2\n", b';'),
            (b"id\n1\n", b','),
            (b"a,b;c\n1,2;3\n4,5\n", b','),
        ] {
            assert_eq!(detect(text, false) as char, d as char, "{text:?}");
        }
    }

    #[test]
    fn parses_options() {
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert_eq!(parse_delimiter("Semicolon"), Ok(b';'));
        assert_eq!(parse_delimiter("\\t"), Ok(b'\t'));
        assert!(parse_delimiter("ab").is_err());
        assert!(parse_delimiter("\"").is_err());
        assert_eq!("DD.MM.YYYY".parse(), Ok(DateFormat::DayMonthYear));
        assert_eq!("mm/dd/yyyy".parse(), Ok(DateFormat::MonthDayYear));
        assert_eq!("iso".parse(), Ok(DateFormat::Iso));
        assert!("yy/mm/dd".parse::<DateFormat>().is_err());
        assert_eq!("Refuse".parse(), Ok(OnBadValue::Refuse));
    }
}
