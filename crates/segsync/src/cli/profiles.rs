//! `segsync profiles ...`: importing and showing the profile store, and the PostgreSQL and
//! MySQL / MariaDB profile sources (`profiles source ...`) whose profiles stay in their
//! database.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Subcommand;
use secrecy::SecretString;

use super::{op_failure, store, usage, Failure, EXIT_OK};
use crate::app::App;
use crate::ops::{self, Actor};

#[derive(Subcommand, Debug)]
pub enum ProfilesCmd {
    /// Load a CSV, NDJSON or Parquet file into the profile store, replacing what was there
    /// (atomically: a failed import changes nothing).
    Import {
        path: PathBuf,
        /// The column that identifies a profile.
        #[arg(long)]
        key: String,
        /// csv, ndjson or parquet (default: from the file's extension).
        #[arg(long)]
        format: Option<String>,
        #[command(flatten)]
        csv: CsvArgs,
    },
    /// The columns and their types, and the number of profiles.
    Show,
    /// Profiles that stay in a PostgreSQL or MySQL / MariaDB database: segments over them are
    /// evaluated there.
    #[command(subcommand)]
    Source(SourceCmd),
}

/// How a CSV file is written, when detection should not decide; what to do with bad values.
#[derive(clap::Args, Debug)]
pub struct CsvArgs {
    /// The CSV delimiter: , ; | or tab (default: detected among these).
    #[arg(long, value_name = "CHAR", value_parser = crate::profiles::parse_delimiter)]
    delimiter: Option<u8>,
    /// Numbers use a decimal comma: 1.234,50 (default: detected from the values).
    #[arg(long, conflicts_with = "decimal_point")]
    decimal_comma: bool,
    /// Numbers use a decimal point: 1,234.50 (default: detected from the values).
    #[arg(long)]
    decimal_point: bool,
    /// How dates that are not ISO are written: dd/mm/yyyy, mm/dd/yyyy or yyyy-mm-dd (default:
    /// detected; `.` or `-` may stand for `/`, and a time HH:MM[:SS] may follow).
    #[arg(long, value_name = "FORMAT")]
    date_format: Option<crate::profiles::DateFormat>,
    /// A value that does not fit its column's type (an "x" among numbers): `empty` keeps the
    /// profile with that value empty, `skip` leaves the profile out, `refuse` imports
    /// nothing. Every such value is listed, with its line, whatever the choice.
    #[arg(long, value_name = "CHOICE", default_value = "empty")]
    on_bad_value: crate::profiles::OnBadValue,
    /// A column to keep as text whatever it holds (repeatable).
    #[arg(long = "text", value_name = "COLUMN")]
    text_columns: Vec<String>,
}

impl Default for CsvArgs {
    /// Everything detected; bad values left empty.
    fn default() -> CsvArgs {
        CsvArgs {
            delimiter: None,
            decimal_comma: false,
            decimal_point: false,
            date_format: None,
            on_bad_value: crate::profiles::OnBadValue::Empty,
            text_columns: Vec::new(),
        }
    }
}

impl CsvArgs {
    fn options(self) -> crate::profiles::ImportOptions {
        crate::profiles::ImportOptions {
            delimiter: self.delimiter,
            decimal_comma: match (self.decimal_comma, self.decimal_point) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            date_format: self.date_format,
            on_bad_value: self.on_bad_value,
            text_columns: self.text_columns,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum SourceCmd {
    /// Add a PostgreSQL or MySQL / MariaDB table or query as a profile source (admin). The
    /// URL's password comes from PGPASSWORD (MYSQL_PWD) or, with `--postgres env:VAR`
    /// (`--mysql env:VAR`), the whole URL from VAR: never from the command line. Segments then
    /// name it: `segments add NAME --where P --source NAME`.
    #[command(group(clap::ArgGroup::new("database").required(true)))]
    Add {
        name: String,
        /// postgres://USER@HOST:PORT/DB[?sslmode=MODE&sslrootcert=FILE], or env:VAR for a URL
        /// held in VAR.
        #[arg(long, value_name = "URL", group = "database")]
        postgres: Option<String>,
        /// mysql://USER@HOST:PORT/DB[?ssl-mode=MODE&ssl-ca=FILE] (MySQL or MariaDB), or
        /// env:VAR for a URL held in VAR.
        #[arg(long, value_name = "URL", group = "database")]
        mysql: Option<String>,
        /// A table or view (schema.table allowed).
        #[arg(long, group = "relation")]
        table: Option<String>,
        /// A SELECT whose rows are the profiles.
        #[arg(long, group = "relation")]
        query: Option<String>,
        /// The column that identifies a profile.
        #[arg(long)]
        key: String,
        /// A column the database sets whenever a row is written (a timestamp such as
        /// updated_at, or a version number): re-runs then read only the rows past the last
        /// run's value of it, and the keys (to find removed rows), instead of every row.
        #[arg(long, value_name = "COLUMN")]
        cursor: Option<String>,
        /// Add it even when the URL's role is a PostgreSQL superuser, or its MySQL user has
        /// global privileges (refused otherwise: segment predicates run with its rights).
        #[arg(long)]
        allow_superuser: bool,
    },
    List,
    Remove {
        name: String,
    },
}

pub(super) fn profiles(app: &App, cmd: ProfilesCmd) -> Result<i32, Failure> {
    if let ProfilesCmd::Source(cmd) = cmd {
        return source(app, cmd);
    }
    let store = app.profiles()?;
    match cmd {
        ProfilesCmd::Source(_) => unreachable!("handled above"),
        ProfilesCmd::Import {
            path,
            key,
            format,
            csv,
        } => {
            let format = match format.as_deref() {
                None => None,
                Some(f) => Some(match f.to_ascii_lowercase().as_str() {
                    "csv" => crate::profiles::Format::Csv,
                    "ndjson" | "jsonl" => crate::profiles::Format::Ndjson,
                    "parquet" => crate::profiles::Format::Parquet,
                    _ => {
                        return Err(usage(anyhow!(
                            "--format must be csv, ndjson or parquet, not {f}"
                        )))
                    }
                }),
            };
            let report = store
                .import_with(&path, format, &key, &csv.options())
                .map_err(usage)?;
            print_import(&report);
        }
        ProfilesCmd::Show => {
            let columns = store.columns()?;
            if columns.is_empty() {
                println!("no profiles yet: `segsync profiles import FILE --key COLUMN`");
                return Ok(EXIT_OK);
            }
            println!(
                "{} profiles, key column {}",
                store.row_count()?,
                store.key_column()?.unwrap_or_default()
            );
            for c in &columns {
                println!("  {:<24} {}", c.name, c.kind.as_str());
            }
        }
    }
    Ok(EXIT_OK)
}

/// What an import did: the profiles and columns, how the file was read, the bad values.
fn print_import(report: &crate::profiles::ImportReport) {
    println!(
        "imported {} profiles from {} in {:.1}s",
        report.rows,
        report.file.display(),
        report.duration.as_secs_f64()
    );
    if let Some(d) = &report.dialect {
        println!(
            "  read as: delimiter {}{}, {}, dates {}{}{}",
            d.delimiter,
            if d.delimiter_detected {
                " (detected)"
            } else {
                ""
            },
            if d.decimal_comma {
                "decimal comma (1.234,50)"
            } else {
                "decimal point (1,234.50)"
            },
            d.date_format,
            if d.bom { ", UTF-8 byte order mark" } else { "" },
            if d.line_ending == "crlf" {
                ", CRLF line ends"
            } else {
                ""
            },
        );
    }
    for c in &report.columns {
        println!("  {:<24} {}", c.name, c.kind.as_str());
    }
    super::print_warnings(&report.notes);
    if report.bad_value_count > 0 {
        let done = match report.on_bad_value {
            crate::profiles::OnBadValue::Skip => match report.skipped_rows {
                1 => "1 profile was left out".to_string(),
                n => format!("{n} profiles were left out"),
            },
            _ => "they were left empty".to_string(),
        };
        eprintln!(
            "warning: {} value{} did not fit {} column's type; {done}:",
            report.bad_value_count,
            if report.bad_value_count == 1 { "" } else { "s" },
            if report.bad_value_count == 1 {
                "its"
            } else {
                "their"
            },
        );
        for v in &report.bad_values {
            eprintln!("  {}", super::printable(&v.to_string()));
        }
        let unlisted = report.bad_value_count - report.bad_values.len() as u64;
        if unlisted > 0 {
            eprintln!("  … and {unlisted} more");
        }
    }
}

/// `, cursor updated_at` when re-runs read only the rows past a cursor column.
fn cursor_note(view: &crate::sources::SourceView) -> String {
    view.cursor_column
        .as_ref()
        .map(|c| format!(", cursor {c}"))
        .unwrap_or_default()
}

fn source(app: &App, cmd: SourceCmd) -> Result<i32, Failure> {
    match cmd {
        SourceCmd::Add {
            name,
            postgres,
            mysql,
            table,
            query,
            key,
            cursor,
            allow_superuser,
        } => {
            let (kind, url) = match (postgres, mysql) {
                (Some(p), _) => (ops::SourceKind::Postgres, store::postgres_flag(&p)),
                (None, Some(m)) => (ops::SourceKind::MySql, store::mysql_flag(&m)),
                (None, None) => return Err(usage(anyhow!("give --postgres URL or --mysql URL"))),
            };
            let url = url.map_err(usage)?;
            let relation = match (table, query) {
                (Some(t), None) => crate::profiles::PgRelation::Table(t),
                (None, Some(q)) => crate::profiles::PgRelation::Query(q),
                _ => {
                    return Err(usage(anyhow!(
                        "give the profiles as --table T or --query SQL"
                    )))
                }
            };
            let added = ops::add_source(
                app,
                &Actor::cli(),
                ops::SourceInput {
                    name: name.clone(),
                    kind,
                    url: SecretString::from(url),
                    relation,
                    key_column: key,
                    cursor_column: cursor,
                    allow_superuser,
                },
            )
            .map_err(op_failure)?;
            let view = &added.view;
            println!(
                "profile source \"{name}\" added: {} {} at {}, key column {}{}",
                view.relation_kind,
                view.relation,
                view.url,
                view.key_column,
                cursor_note(view)
            );
            for c in &added.columns {
                println!("  {:<24} {}", c.name, c.kind.as_str());
            }
            super::print_warnings(&added.warnings);
        }
        SourceCmd::List => {
            for s in ops::list_sources(app, &Actor::cli()).map_err(op_failure)? {
                println!(
                    "{:<24} {:<8} {} {} at {} (key {}{})",
                    s.name,
                    s.kind,
                    s.relation_kind,
                    s.relation,
                    s.url,
                    s.key_column,
                    cursor_note(&s)
                );
            }
        }
        SourceCmd::Remove { name } => {
            ops::remove_source(app, &Actor::cli(), &name).map_err(op_failure)?;
            println!("profile source \"{name}\" removed");
        }
    }
    Ok(EXIT_OK)
}
