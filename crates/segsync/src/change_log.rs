//! A run's change log as a file: CSV (`action,email,detail,profile_key`, cells made
//! [`spreadsheet_safe`]) or JSON lines, one line per member per action. Read in pages of
//! [`CHANGES_PAGE`] rows (what Mailchimp acknowledged, then what the run refused), so that a
//! million-line log streams without sitting in memory, from the CLI and the API alike.

use std::io::Write;

use crate::csv_out::spreadsheet_safe;
use crate::state::{ChangeAction, Result, RunChange, StateStore, CHANGES_PAGE};

/// The file's format.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Where a download of run `run_id`'s change log is: each call of [`Pages::next`] gives the
/// next chunk of the file, `None` at its end.
pub struct Pages {
    run_id: i64,
    format: Format,
    header: bool,
    after: i64,
    refused: bool,
    done: bool,
}

impl Pages {
    pub fn new(run_id: i64, format: Format) -> Pages {
        Pages {
            run_id,
            format,
            header: format == Format::Csv,
            after: -1,
            refused: false,
            done: false,
        }
    }

    /// The next chunk: a page of the changes, then pages of the refused records.
    pub fn next(&mut self, state: &StateStore) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let mut out = Vec::new();
        if std::mem::take(&mut self.header) {
            out.extend_from_slice(b"action,email,detail,profile_key\n");
        }
        let page = self.page(state)?;
        match page.last() {
            Some((seq, _)) => self.after = *seq,
            None if !self.refused => {
                self.refused = true;
                self.after = -1;
            }
            None => self.done = true,
        }
        write_page(&mut out, self.format, &page);
        Ok(Some(out))
    }

    fn page(&self, state: &StateStore) -> Result<Vec<(i64, RunChange)>> {
        if !self.refused {
            return state.run_changes_page(self.run_id, self.after, CHANGES_PAGE);
        }
        let errors = state.run_errors_page(self.run_id, self.after, CHANGES_PAGE)?;
        Ok(errors
            .into_iter()
            .map(|(seq, e)| {
                let c = RunChange {
                    action: ChangeAction::Refused,
                    email: e.email,
                    detail: e.reason,
                    profile_key: e.profile_key,
                };
                (seq, c)
            })
            .collect())
    }
}

/// The lines of one page (writing into memory cannot fail).
fn write_page(out: &mut Vec<u8>, format: Format, page: &[(i64, RunChange)]) {
    match format {
        Format::Jsonl => {
            for (_, c) in page {
                serde_json::to_writer(&mut *out, c).expect("a change serialises");
                out.push(b'\n');
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            for (_, c) in page {
                let _ = w.write_record([
                    c.action.as_str(),
                    spreadsheet_safe(&c.email).as_ref(),
                    spreadsheet_safe(&c.detail).as_ref(),
                    spreadsheet_safe(&c.profile_key).as_ref(),
                ]);
            }
            let _ = w.flush();
        }
    }
}

/// Writes run `run_id`'s whole change log to `out`, page by page.
pub fn write_all(
    state: &StateStore,
    run_id: i64,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut pages = Pages::new(run_id, format);
    while let Some(chunk) = pages.next(state)? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(())
}
