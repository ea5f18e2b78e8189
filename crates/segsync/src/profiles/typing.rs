//! The types of CSV columns, with the file's number and date formats: what each cell could
//! be, counted per column in the first pass, then one decision per column.
//!
//! A column whose values are mostly numbers (or dates) is a number (date) column, even with a
//! few values that are not: those are reported as bad values, never a reason to make the
//! column text (text compares as text: `'87,14' > 500` holds). A column stays text when
//! fewer than half its values fit a type, or when its numbers look like codes (`01234`,
//! which a number would turn into `1234`); the import's notes then say why.

use super::dialect::DateFormat;
use super::infer::{self, ColumnType};
use super::load::Cell;
use std::borrow::Cow;

/// A number read with a number format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Real(f64),
}

/// Reads `s` as a number: with a decimal point (`-1234.5`, `1,234.5`, `1'234.5`, `1e3`) or
/// a decimal comma (`-1234,5`, `1.234,5`, `1 234,5`), with or without a currency sign
/// (`€ 1.234,50`, `1.234,50 €`, `$1,234.50`). Thousands separators must group by three;
/// integers with a leading zero (`01234`) are not numbers.
pub(crate) fn parse_number(s: &str, decimal_comma: bool) -> Option<Num> {
    let s = without_currency(s);
    if !decimal_comma {
        if let Some(i) = infer::parse_int(s) {
            return Some(Num::Int(i));
        }
        if let Some(r) = infer::parse_real(s) {
            return Some(Num::Real(r));
        }
    }
    let (decimal, groups): (char, &[char]) = if decimal_comma {
        (',', &['.', ' ', '\u{a0}', '\u{202f}', '\'', '’'])
    } else {
        ('.', &[',', ' ', '\u{a0}', '\u{202f}', '\'', '’'])
    };
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int_part, frac) = match body.split_once(decimal) {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = grouped_digits(int_part, groups)?;
    let mut plain = String::with_capacity(s.len());
    if negative {
        plain.push('-');
    }
    plain.push_str(&digits);
    match frac {
        None => infer::parse_int(&plain).map(Num::Int),
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            plain.push('.');
            plain.push_str(f);
            let v: f64 = plain.parse().ok()?;
            v.is_finite().then_some(Num::Real(v))
        }
        Some(_) => None,
    }
}

/// `s` without one currency sign before or after it (and the space beside the sign).
fn without_currency(s: &str) -> &str {
    const SIGNS: [char; 4] = ['€', '$', '£', '¥'];
    let spaces: &[char] = &[' ', '\u{a0}', '\u{202f}'];
    if let Some(rest) = s.strip_prefix(SIGNS) {
        return rest.trim_start_matches(spaces);
    }
    if let Some(rest) = s.strip_suffix(SIGNS) {
        return rest.trim_end_matches(spaces);
    }
    s
}

/// The digits of `1234` or of `1.234.567` (one separator of `seps`, the same throughout, every
/// group but the first of three digits); `None` for anything else or a leading zero.
fn grouped_digits(s: &str, seps: &[char]) -> Option<String> {
    let valid = |d: &str| {
        !d.is_empty()
            && d.bytes().all(|b| b.is_ascii_digit())
            && (!d.starts_with('0') || d.len() == 1)
    };
    let Some(sep) = s.chars().find(|c| seps.contains(c)) else {
        return valid(s).then(|| s.to_string());
    };
    let mut parts = s.split(sep);
    let first = parts.next()?;
    if !valid(first) || first.len() > 3 || first == "0" {
        return None;
    }
    let mut out = first.to_string();
    for group in parts {
        if group.len() != 3 || !group.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        out.push_str(group);
    }
    Some(out)
}

/// A date (or date and time) read with a date format, as stored: ISO values as they are,
/// others as `yyyy-mm-dd` or `yyyy-mm-dd HH:MM:SS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DateValue<'a> {
    pub text: Cow<'a, str>,
    pub time: bool,
}

/// Reads `s` as an ISO date or timestamp, or (unless `format` is ISO) as a day/month/year or
/// month/day/year date, with `/`, `.` or `-`, optionally followed by ` HH:MM[:SS]`.
pub(crate) fn parse_date(s: &str, format: DateFormat) -> Option<DateValue<'_>> {
    let b = s.as_bytes();
    if infer::is_date(b) {
        return Some(DateValue {
            text: Cow::Borrowed(s),
            time: false,
        });
    }
    if infer::is_timestamp(b) {
        return Some(DateValue {
            text: Cow::Borrowed(s),
            time: true,
        });
    }
    let (a, m, y, time) = local_parts(s)?;
    let (day, month) = match format {
        DateFormat::DayMonthYear => (a, m),
        DateFormat::MonthDayYear => (m, a),
        DateFormat::Iso => return None,
    };
    chrono::NaiveDate::from_ymd_opt(y as i32, month, day)?;
    let mut text = format!("{y:04}-{month:02}-{day:02}");
    if let Some((h, min, sec)) = time {
        text.push_str(&format!(" {h:02}:{min:02}:{sec:02}"));
    }
    Some(DateValue {
        text: Cow::Owned(text),
        time: time.is_some(),
    })
}

/// `A/B/YYYY[ HH:MM[:SS]]` (A and B of one or two digits, the same separator twice): A, B,
/// the year and the time.
type LocalParts = (u32, u32, u32, Option<(u32, u32, u32)>);

fn local_parts(s: &str) -> Option<LocalParts> {
    let (date, time) = match s.split_once(' ') {
        Some((d, t)) => (d, Some(t.trim_start())),
        None => (s, None),
    };
    let sep = date.chars().find(|c| matches!(c, '/' | '.' | '-'))?;
    let mut parts = date.split(sep);
    let (a, b, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || a.len() > 2 || b.len() > 2 || y.len() != 4 {
        return None;
    }
    let time = match time {
        None => None,
        Some(t) => Some(clock(t)?),
    };
    Some((small(a)?, small(b)?, number(y)?, time))
}

/// `HH:MM[:SS]`, or `H:MM[:SS] AM|PM` (as US spreadsheets write times).
fn clock(t: &str) -> Option<(u32, u32, u32)> {
    let upper = t.to_ascii_uppercase();
    let (t, half) = match upper
        .strip_suffix("AM")
        .or_else(|| upper.strip_suffix("PM"))
    {
        Some(rest) => (rest.trim_end().to_string(), Some(upper.ends_with("PM"))),
        None => (upper.clone(), None),
    };
    let mut hms = t.split(':');
    let (mut h, m) = (small(hms.next()?)?, small(hms.next()?)?);
    let sec = match hms.next() {
        Some(sec) => small(sec)?,
        None => 0,
    };
    if hms.next().is_some() || m > 59 || sec > 59 {
        return None;
    }
    if let Some(pm) = half {
        if !(1..=12).contains(&h) {
            return None;
        }
        h = h % 12 + if pm { 12 } else { 0 };
    }
    (h <= 23).then_some((h, m, sec))
}

/// One or two digits.
fn small(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 2 {
        return None;
    }
    number(s)
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What the values of one column could be, counted over the file.
#[derive(Clone, Debug, Default)]
pub(crate) struct ColumnStats {
    pub nonempty: u64,
    booleans: u64,
    /// Numbers with a decimal point (any) and those that are not integers.
    point: u64,
    point_real: u64,
    comma: u64,
    comma_real: u64,
    /// Numbers read only one way: evidence of the file's number format.
    pub point_only: u64,
    pub comma_only: u64,
    iso: u64,
    iso_time: u64,
    dmy: u64,
    dmy_time: u64,
    mdy: u64,
    mdy_time: u64,
    /// Dates read only one way: evidence of the file's date format.
    pub dmy_only: u64,
    pub mdy_only: u64,
    /// Digit strings with a leading zero: codes, not numbers (`01234`).
    coded: u64,
    first_coded: Option<(u64, String)>,
}

impl ColumnStats {
    /// Counts one non-empty value, found on `line`.
    pub fn add(&mut self, value: &str, line: u64) {
        self.nonempty += 1;
        // Text at first sight (a name, an address): no number, date or boolean starts so.
        let maybe_typed = value.starts_with(|c: char| {
            c.is_ascii_digit() || matches!(c, '-' | '€' | '$' | '£' | '¥' | 't' | 'T' | 'f' | 'F')
        });
        if !maybe_typed {
            return;
        }
        if infer::parse_bool(value).is_some() {
            self.booleans += 1;
            return;
        }
        let point = parse_number(value, false);
        let comma = parse_number(value, true);
        if let Some(n) = point {
            self.point += 1;
            self.point_real += u64::from(matches!(n, Num::Real(_)));
        }
        if let Some(n) = comma {
            self.comma += 1;
            self.comma_real += u64::from(matches!(n, Num::Real(_)));
        }
        match (point, comma) {
            (Some(_), None) => self.point_only += 1,
            (None, Some(_)) => self.comma_only += 1,
            (None, None) => self.add_other(value, line),
            (Some(_), Some(_)) => {}
        }
    }

    fn add_other(&mut self, value: &str, line: u64) {
        let b = value.as_bytes();
        if infer::is_date(b) {
            self.iso += 1;
        } else if infer::is_timestamp(b) {
            self.iso += 1;
            self.iso_time += 1;
        } else if let Some(v) = parse_date(value, DateFormat::DayMonthYear) {
            self.dmy += 1;
            self.dmy_time += u64::from(v.time);
            if parse_date(value, DateFormat::MonthDayYear).is_none() {
                self.dmy_only += 1;
            }
        }
        if let Some(v) = parse_date(value, DateFormat::MonthDayYear) {
            if !infer::is_date(b) && !infer::is_timestamp(b) {
                self.mdy += 1;
                self.mdy_time += u64::from(v.time);
                if parse_date(value, DateFormat::DayMonthYear).is_none() {
                    self.mdy_only += 1;
                }
            }
        }
        let digits = value.strip_prefix('-').unwrap_or(value);
        if digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|c| c.is_ascii_digit())
        {
            self.coded += 1;
            if self.first_coded.is_none() {
                self.first_coded = Some((line, value.to_string()));
            }
        }
    }

    /// The column's type with the file's formats, and a note when it stays text although
    /// most of its values are numbers or dates.
    pub fn decide(&self, decimal_comma: bool, dates: DateFormat) -> (ColumnType, Option<String>) {
        if self.nonempty == 0 {
            return (ColumnType::Text, None);
        }
        if self.booleans == self.nonempty {
            return (ColumnType::Boolean, None);
        }
        let (numbers, reals) = if decimal_comma {
            (self.comma, self.comma_real)
        } else {
            (self.point, self.point_real)
        };
        let (local, local_time) = match dates {
            DateFormat::DayMonthYear => (self.dmy, self.dmy_time),
            DateFormat::MonthDayYear => (self.mdy, self.mdy_time),
            DateFormat::Iso => (0, 0),
        };
        let (date_count, times) = (self.iso + local, self.iso_time + local_time);
        let (fits, kind) = if numbers >= date_count {
            let kind = if reals > 0 {
                ColumnType::Real
            } else {
                ColumnType::Integer
            };
            (numbers, kind)
        } else {
            let kind = if times > 0 {
                ColumnType::Timestamp
            } else {
                ColumnType::Date
            };
            (date_count, kind)
        };
        if fits * 2 <= self.nonempty {
            return (ColumnType::Text, None);
        }
        if let Some((line, code)) = self.first_coded.as_ref().filter(|_| numbers == fits) {
            let note = format!(
                "kept as text: {fits} of its {} values are numbers, but {} (line {line}) and {} more start with 0, like codes",
                self.nonempty,
                super::error::quoted(code),
                self.coded - 1
            );
            return (ColumnType::Text, Some(note));
        }
        (kind, None)
    }
}

/// The cell of `value` in a column of type `kind`, with the file's formats; `None` when the
/// value does not fit the type (a bad value).
pub(crate) fn cell<'v>(
    value: &'v str,
    kind: ColumnType,
    decimal_comma: bool,
    dates: DateFormat,
) -> Option<Cell<'v>> {
    if value.is_empty() {
        return Some(Cell::Null);
    }
    match kind {
        ColumnType::Integer => match parse_number(value, decimal_comma)? {
            Num::Int(i) => Some(Cell::Int(i)),
            Num::Real(_) => None,
        },
        ColumnType::Real => match parse_number(value, decimal_comma)? {
            Num::Int(i) => Some(Cell::Real(i as f64)),
            Num::Real(r) => Some(Cell::Real(r)),
        },
        ColumnType::Boolean => infer::parse_bool(value).map(|b| Cell::Int(i64::from(b))),
        ColumnType::Date => parse_date(value, dates)
            .filter(|d| !d.time)
            .map(|d| Cell::Text(d.text)),
        ColumnType::Timestamp => parse_date(value, dates).map(|d| Cell::Text(d.text)),
        ColumnType::Text | ColumnType::Json => Some(Cell::Text(Cow::Borrowed(value))),
    }
}

/// What "a number", "a date" means in a bad-value message.
pub(crate) fn expected(kind: ColumnType, decimal_comma: bool, dates: DateFormat) -> String {
    let numbers = if decimal_comma {
        "with a decimal comma, as 1.234,50"
    } else {
        "with a decimal point, as 1,234.50"
    };
    match kind {
        ColumnType::Integer => format!("not a whole number ({numbers})"),
        ColumnType::Real => format!("not a number ({numbers})"),
        ColumnType::Date => format!("not a date ({} or yyyy-mm-dd)", dates),
        ColumnType::Timestamp => format!("not a date or time ({} [HH:MM[:SS]] or ISO 8601)", dates),
        ColumnType::Boolean => "not true or false".to_string(),
        ColumnType::Text | ColumnType::Json => "not text".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::Num::*;
    use super::*;

    #[test]
    fn reads_numbers_in_both_formats() {
        for (s, point, comma) in [
            ("1234", Some(Int(1234)), Some(Int(1234))),
            ("-7", Some(Int(-7)), Some(Int(-7))),
            ("1.234,50", None, Some(Real(1234.5))),
            ("69,34", None, Some(Real(69.34))),
            ("1,234.50", Some(Real(1234.5)), None),
            ("1.5", Some(Real(1.5)), None),
            ("1e3", Some(Real(1000.0)), None),
            ("1,234", Some(Int(1234)), Some(Real(1.234))),
            ("1.234", Some(Real(1.234)), Some(Int(1234))),
            ("1.234.567", None, Some(Int(1234567))),
            ("1 234,5", None, Some(Real(1234.5))),
            ("1\u{a0}234", Some(Int(1234)), Some(Int(1234))),
            ("0,5", None, Some(Real(0.5))),
            ("-1.234,5", None, Some(Real(-1234.5))),
            ("01234", None, None),
            ("1,23,456", None, None),
            ("12,34.5", None, None),
            ("1.234,", None, None),
            ("x", None, None),
            ("1.234.5", None, None),
            ("1'234.50", Some(Real(1234.5)), None),
            ("€ 1.234,50", None, Some(Real(1234.5))),
            ("1.234,50 €", None, Some(Real(1234.5))),
            ("$1,234.50", Some(Real(1234.5)), None),
            ("£5", Some(Int(5)), Some(Int(5))),
            ("€", None, None),
            ("5 €€", None, None),
        ] {
            assert_eq!(parse_number(s, false), point, "{s:?} with a point");
            assert_eq!(parse_number(s, true), comma, "{s:?} with a comma");
        }
    }

    #[test]
    fn reads_dates_in_each_format() {
        let d = |s, f| parse_date(s, f).map(|v| (v.text.into_owned(), v.time));
        use DateFormat::*;
        assert_eq!(
            d("31/12/2024", DayMonthYear),
            Some(("2024-12-31".into(), false))
        );
        assert_eq!(d("31/12/2024", MonthDayYear), None);
        assert_eq!(
            d("12/31/2024 9:05", MonthDayYear),
            Some(("2024-12-31 09:05:00".into(), true))
        );
        assert_eq!(
            d("5.4.2024 23:59:59", DayMonthYear),
            Some(("2024-04-05 23:59:59".into(), true))
        );
        assert_eq!(d("2024-12-31", Iso), Some(("2024-12-31".into(), false)));
        assert_eq!(d("31/12/2024", Iso), None);
        assert_eq!(d("30/02/2024", DayMonthYear), None);
        assert_eq!(d("31/12/24", DayMonthYear), None);
        assert_eq!(d("31/12-2024", DayMonthYear), None);
        assert_eq!(d("31/12/2024 25:00", DayMonthYear), None);
        assert_eq!(
            d("12/31/2024 2:30 PM", MonthDayYear),
            Some(("2024-12-31 14:30:00".into(), true))
        );
        assert_eq!(
            d("12/31/2024 12:05:09 am", MonthDayYear),
            Some(("2024-12-31 00:05:09".into(), true))
        );
        assert_eq!(d("12/31/2024 13:00 PM", MonthDayYear), None);
    }

    #[test]
    fn types_mostly_numeric_columns_as_numbers() {
        let stats = |values: &[&str]| {
            let mut s = ColumnStats::default();
            for (i, v) in values.iter().enumerate() {
                s.add(v, i as u64 + 2);
            }
            s
        };
        let ltv = stats(&["1.234,50", "69,34", "x", "87,14", "600"]);
        assert_eq!(
            ltv.decide(true, DateFormat::DayMonthYear).0,
            ColumnType::Real
        );
        assert!(ltv.comma_only > ltv.point_only);
        let joined = stats(&["31/12/2024", "01/02/2023", "unknown"]);
        assert_eq!(
            joined.decide(true, DateFormat::DayMonthYear).0,
            ColumnType::Date
        );
        assert_eq!(joined.dmy_only, 1);
        let names = stats(&["Ana", "Ion", "5"]);
        assert_eq!(names.decide(false, DateFormat::Iso).0, ColumnType::Text);
        let zips = stats(&["012345", "400123", "500100"]);
        let (kind, note) = zips.decide(false, DateFormat::Iso);
        assert_eq!(kind, ColumnType::Text);
        assert!(note.unwrap().contains("\"012345\" (line 2)"));
        let flags = stats(&["true", "FALSE"]);
        assert_eq!(flags.decide(false, DateFormat::Iso).0, ColumnType::Boolean);
    }
}
