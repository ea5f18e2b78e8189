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
    },
    /// The columns and their types, and the number of profiles.
    Show,
    /// Profiles that stay in a PostgreSQL or MySQL / MariaDB database: segments over them are
    /// evaluated there.
    #[command(subcommand)]
    Source(SourceCmd),
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
        ProfilesCmd::Import { path, key, format } => {
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
            let report = store.import(&path, format, &key).map_err(usage)?;
            println!(
                "imported {} profiles from {} in {:.1}s",
                report.rows,
                path.display(),
                report.duration.as_secs_f64()
            );
            for c in &report.columns {
                println!("  {:<24} {}", c.name, c.kind.as_str());
            }
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

fn source(app: &App, cmd: SourceCmd) -> Result<i32, Failure> {
    match cmd {
        SourceCmd::Add {
            name,
            postgres,
            mysql,
            table,
            query,
            key,
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
                    allow_superuser,
                },
            )
            .map_err(op_failure)?;
            let view = &added.view;
            println!(
                "profile source \"{name}\" added: {} {} at {}, key column {}",
                view.relation_kind, view.relation, view.url, view.key_column
            );
            for c in &added.columns {
                println!("  {:<24} {}", c.name, c.kind.as_str());
            }
            super::print_warnings(&added.warnings);
        }
        SourceCmd::List => {
            for s in ops::list_sources(app, &Actor::cli()).map_err(op_failure)? {
                println!(
                    "{:<24} {:<8} {} {} at {} (key {})",
                    s.name, s.kind, s.relation_kind, s.relation, s.url, s.key_column
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
