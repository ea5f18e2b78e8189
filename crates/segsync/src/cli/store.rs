//! `segsync migrate` and `segsync state copy`: the state store itself.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};

use super::{usage, Failure, EXIT_OK};
use crate::app::App;
use crate::state::{self, StateStore};

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum StateCmd {
    /// Copy a whole installation (connections, segments, exports, snapshots, runs, users,
    /// audit...) into an empty state store, e.g. from SQLite to PostgreSQL. All or nothing.
    Copy(CopyArgs),
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The store to copy: `sqlite:PATH`, `postgres://...`, or `env:VAR` for a URL held in
    /// the environment variable VAR (for URLs with a password).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The store to fill (it must hold no installation yet); same forms as --from.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Print what was copied as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A state store URL from the command line (`sqlite:PATH`, `postgres://...` or `env:VAR`).
pub(crate) fn state_flag(value: &str) -> anyhow::Result<String> {
    url_flag(value, "a state store", true)
}

/// A PostgreSQL URL from the command line (`postgres://...` or `env:VAR`).
pub(crate) fn postgres_flag(value: &str) -> anyhow::Result<String> {
    url_flag(value, "a PostgreSQL database", false)
}

/// A MySQL / MariaDB URL from the command line (`mysql://...`, `mariadb://...` or `env:VAR`).
/// A password in it is refused (use `MYSQL_PWD`, or the whole URL in VAR).
pub(crate) fn mysql_flag(value: &str) -> anyhow::Result<String> {
    if let Some(var) = value.strip_prefix("env:") {
        return std::env::var(var).map_err(|_| {
            anyhow!("environment variable {var} (named by \"env:{var}\") is not set")
        });
    }
    if !crate::profiles::is_mysql_url(value) {
        bail!(
            "\"{}\" is not the URL of a MySQL database: use mysql://USER@HOST/DB or env:VAR",
            crate::pg::redact(value)
        );
    }
    let shown = crate::pg::redact(value);
    if shown != value {
        bail!(
            "{shown} carries a password on the command line, where the process list shows it: \
             put the password in MYSQL_PWD, or the whole URL in an environment variable and \
             pass env:VAR"
        );
    }
    Ok(value.to_string())
}

/// A URL from the command line: `env:VAR` reads it from VAR; a password written on the
/// command line is refused, because the process list shows it to every user of the machine.
fn url_flag(value: &str, what: &str, sqlite: bool) -> anyhow::Result<String> {
    if let Some(var) = value.strip_prefix("env:") {
        return std::env::var(var).map_err(|_| {
            anyhow!("environment variable {var} (named by \"env:{var}\") is not set")
        });
    }
    if crate::pg::is_postgres_url(value) {
        if let Ok(u) = url::Url::parse(value) {
            if u.password().is_some() {
                bail!(
                    "{} carries a password on the command line, where the process list shows it: \
                     put the password in PGPASSWORD, or the whole URL in an environment variable \
                     and pass env:VAR",
                    crate::pg::redact(value)
                );
            }
        }
    } else if !(sqlite && value.starts_with("sqlite:")) {
        let forms = if sqlite {
            "sqlite:PATH, postgres://USER@HOST/DB or env:VAR"
        } else {
            "postgres://USER@HOST/DB or env:VAR"
        };
        bail!(
            "\"{}\" is not the URL of {what}: use {forms}",
            crate::pg::redact(value)
        );
    }
    Ok(value.to_string())
}

pub(crate) fn migrate(app: &App, args: MigrateArgs) -> Result<i32, Failure> {
    let report = state::migrate(&app.state_location())?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "state": app.state_url(),
                "from_version": report.from_version,
                "to_version": report.to_version,
                "applied": report.applied.iter().map(|(v, name)| serde_json::json!({"version": v, "name": name})).collect::<Vec<_>>(),
            })
        );
    } else if report.applied.is_empty() {
        println!(
            "{}: up to date (schema version {})",
            app.state_url(),
            report.to_version
        );
    } else {
        println!(
            "{}: schema version {} -> {}",
            app.state_url(),
            report.from_version,
            report.to_version
        );
        for (v, name) in &report.applied {
            println!("  applied {v}: {name}");
        }
    }
    Ok(EXIT_OK)
}

pub(crate) fn state(_home: &App, cmd: StateCmd) -> Result<i32, Failure> {
    match cmd {
        StateCmd::Copy(args) => copy(args),
    }
}

fn copy(args: CopyArgs) -> Result<i32, Failure> {
    let from = state_flag(&args.from).map_err(usage)?;
    let to = state_flag(&args.to).map_err(usage)?;
    if let Some(path) = from.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if !std::path::Path::new(path).is_file() {
            return Err(usage(anyhow!(
                "--from {from}: no such file (copying needs an existing installation)"
            )));
        }
    }
    if from == to {
        return Err(usage(anyhow!("--from and --to are the same store")));
    }
    let source = StateStore::open_url(&from)?;
    let mut target = StateStore::open_url(&to)?;
    let report = state::copy_state(&source, &mut target)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "from": crate::pg::redact(&from),
                "to": crate::pg::redact(&to),
                "tables": report.rows.iter().map(|(t, n)| serde_json::json!({"table": t, "rows": n})).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "copied {} to {}:",
            crate::pg::redact(&from),
            crate::pg::redact(&to)
        );
        for (table, rows) in &report.rows {
            println!("  {table}: {rows}");
        }
    }
    Ok(EXIT_OK)
}
