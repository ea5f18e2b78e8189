//! The `segsync` command line: one function per subcommand, human output by default, `--json`
//! for scripts, and exit codes scripts can trust.
//!
//! | exit | meaning |
//! | --- | --- |
//! | 0 | done; every record delivered |
//! | 1 | failed (Mailchimp unreachable, credential rejected, limit exceeded, another run active) |
//! | 2 | bad usage or configuration (nothing was done) |
//! | 3 | done, with records that could not be sent (see `segsync runs errors RUN`) |

mod admin;
mod config;
mod demo;
pub mod progress;
mod store;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use segsync_core::{NewStatus, RemovalPolicy};

use crate::engine::{self, RunError, RunSettings};
use crate::home::Home;
use crate::ops::{self, Actor};
use crate::state::{FieldMap, Outcome, Schedule};
use crate::PRIVACY_STATEMENT;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_RECORD_ERRORS: i32 = 3;

/// Export segments of customer profiles to Mailchimp audiences.
#[derive(Parser, Debug)]
#[command(name = "segsync", version)]
pub struct Cli {
    /// Folder holding profiles, state and the master key (else SEGSYNC_HOME, else the
    /// platform's data folder).
    #[arg(long, global = true)]
    pub home: Option<PathBuf>,
    /// Where the state store is, if not HOME/state.sqlite: `sqlite:PATH` or
    /// `postgres://USER@HOST:PORT/DB` (else SEGSYNC_STATE). A password belongs in
    /// SEGSYNC_STATE or PGPASSWORD, not on the command line, where the process list shows it.
    #[arg(long, global = true, value_name = "URL")]
    pub state: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole flow against a built-in Mailchimp simulator, offline.
    Demo(DemoArgs),
    /// Import and inspect customer profiles.
    #[command(subcommand)]
    Profiles(ProfilesCmd),
    /// Define segments: SQL predicates over the profiles.
    #[command(subcommand)]
    Segments(SegmentsCmd),
    /// Mailchimp connections (admin).
    #[command(subcommand)]
    Connection(ConnectionCmd),
    /// Exports: a connection, an audience, a field mapping and segments.
    #[command(subcommand)]
    Export(ExportCmd),
    /// Show what a run of EXPORT would do, without sending anything.
    Plan(PlanArgs),
    /// Run EXPORT now.
    Run(RunArgs),
    /// The history of runs: `runs [EXPORT]`, `runs show RUN`, `runs errors RUN --csv`.
    Runs(RunsArgs),
    /// Serve the REST API, the web UI, the scheduler and metrics.
    Serve(admin::ServeArgs),
    /// Users of `segsync serve` and their API tokens.
    #[command(subcommand)]
    User(admin::UserCmd),
    /// Create or update connections, segments and exports from a TOML file (config as code).
    Apply(config::ApplyArgs),
    /// Write the current configuration in the format of `apply`, without secrets.
    Dump(config::DumpArgs),
    /// Bring the state store's schema up to date (opening it does too), and say what it did.
    Migrate(store::MigrateArgs),
    /// The state store itself: `state copy --from URL --to URL` moves an installation.
    #[command(subcommand)]
    State(store::StateCmd),
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the demo's home folder here instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Per-request latency of the built-in simulator, in milliseconds.
    #[arg(long, default_value_t = 40.0)]
    pub latency_ms: f64,
}

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
    /// Profiles that stay in a PostgreSQL database: segments over them are evaluated there.
    #[command(subcommand)]
    Source(SourceCmd),
}

#[derive(Subcommand, Debug)]
pub enum SourceCmd {
    /// Add a PostgreSQL table or query as a profile source (admin). The URL's password comes
    /// from PGPASSWORD or, with `--postgres env:VAR`, the whole URL from VAR: never from the
    /// command line. Segments then name it: `segments add NAME --where P --source NAME`.
    Add {
        name: String,
        /// postgres://USER@HOST:PORT/DB, or env:VAR for a URL held in VAR.
        #[arg(long, value_name = "URL")]
        postgres: String,
        /// A table or view (schema.table allowed).
        #[arg(long, group = "relation")]
        table: Option<String>,
        /// A SELECT whose rows are the profiles.
        #[arg(long, group = "relation")]
        query: Option<String>,
        /// The column that identifies a profile.
        #[arg(long)]
        key: String,
    },
    List,
    Remove {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SegmentsCmd {
    /// Add a segment; the predicate is checked against the profiles.
    Add {
        name: String,
        /// A SQL boolean expression over the profile columns, e.g. "lifetime_value > 500 AND country = 'RO'".
        #[arg(long = "where")]
        predicate: String,
        /// A PostgreSQL profile source (`profiles source add`) instead of the imported
        /// profiles: the predicate is then PostgreSQL SQL, checked by PostgreSQL.
        #[arg(long)]
        source: Option<String>,
    },
    List,
    Show {
        name: String,
    },
    /// How many profiles a segment holds, and a few of them.
    Preview {
        name: String,
        #[arg(long, default_value_t = 5)]
        sample: usize,
    },
    Remove {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConnectionCmd {
    /// Add a Mailchimp connection. The credential is read from an environment variable or a
    /// file (never from the command line), checked with Mailchimp, and stored encrypted.
    Add(ConnectionAdd),
    List,
    /// Check a connection's credential with Mailchimp.
    Test {
        name: String,
    },
    /// Remove a connection and wipe its secret; exports on it stop running.
    Remove {
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct ConnectionAdd {
    pub name: String,
    /// Environment variable holding the API key.
    #[arg(long, group = "credential")]
    pub api_key_env: Option<String>,
    /// File holding the API key.
    #[arg(long, group = "credential")]
    pub api_key_file: Option<PathBuf>,
    /// Environment variable holding an OAuth access token.
    #[arg(long, group = "credential")]
    pub oauth_token_env: Option<String>,
    #[arg(long)]
    pub display_name: Option<String>,
    /// API root (default: https://<dc>.api.mailchimp.com/3.0 from the key).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Agree to the data privacy and compliance statement (required).
    #[arg(long)]
    pub accept_privacy_terms: bool,
    /// Let contributors use this connection for exports (default: admins only).
    #[arg(long)]
    pub share_with_contributors: bool,
    /// The user exports on this connection run as (default: the current user).
    #[arg(long)]
    pub export_user: Option<String>,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum ExportCmd {
    /// Configure an export; the audience and the mapping are checked with Mailchimp.
    Add(ExportAdd),
    List,
    Show {
        name: String,
    },
    /// Remove an export and its snapshot (its run history stays).
    Remove {
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct ExportAdd {
    pub name: String,
    #[arg(long)]
    pub connection: String,
    /// The Mailchimp audience (list) id.
    #[arg(long)]
    pub audience: String,
    /// The profile column holding the email address.
    #[arg(long)]
    pub email_field: String,
    #[arg(long)]
    pub first_name: Option<String>,
    #[arg(long)]
    pub last_name: Option<String>,
    /// Another merge field: TAG=COLUMN (repeatable).
    #[arg(long = "merge", value_name = "TAG=COLUMN")]
    pub merge: Vec<String>,
    /// A segment to send (repeatable); its members get a tag named after it.
    #[arg(long = "segment", required = true)]
    pub segments: Vec<String>,
    /// Tag name for a segment: SEGMENT=TAGNAME (repeatable).
    #[arg(long = "tag", value_name = "SEGMENT=TAGNAME")]
    pub tags: Vec<String>,
    #[arg(long, default_value = "subscribed", value_parser = ["subscribed", "pending", "transactional"])]
    pub status_if_new: String,
    #[arg(long, default_value = "untag", value_parser = ["untag", "archive", "unsubscribe"])]
    pub removal: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub max_profiles: u64,
    /// Create mapped merge fields the audience lacks (as text fields).
    #[arg(long)]
    pub create_merge_fields: bool,
    /// A column with each profile's last update, to choose among duplicate addresses.
    #[arg(long)]
    pub updated_at_field: Option<String>,
    /// Run on this cron schedule under `segsync serve` ("0 6 * * *": every day at 06:00).
    #[arg(long, conflicts_with = "after_refresh")]
    pub cron: Option<String>,
    /// The time zone of --cron (an IANA name).
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// Run after every profile import under `segsync serve`.
    #[arg(long)]
    pub after_refresh: bool,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    pub export: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    pub export: String,
    /// Print the run summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Requests in flight (Mailchimp allows 10 per user).
    #[arg(long, default_value_t = 10)]
    pub max_in_flight: usize,
    /// Seconds before a Mailchimp request times out (fractions allowed: 0.5).
    #[arg(long, default_value_t = 120.0, value_parser = positive_seconds)]
    pub timeout: f64,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct RunsArgs {
    /// `show RUN`, `errors RUN`, or an export name (or nothing) for the history.
    pub args: Vec<String>,
    /// With `errors`: every refused record as CSV (profile_key,email,reason).
    #[arg(long)]
    pub csv: bool,
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// A number of seconds above zero (`120`, `0.5`), no more than a day.
fn positive_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a number of seconds"))?;
    if (0.001..=86_400.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{s} seconds: give at least 0.001 and at most 86400"
        ))
    }
}

/// A failure with its exit code.
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: EXIT_FAILED,
            error: e.into(),
        }
    }
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: EXIT_USAGE,
        error: e.into(),
    }
}

fn op_failure(e: ops::OpError) -> Failure {
    let code = match e {
        ops::OpError::Mailchimp(_) | ops::OpError::Internal(_) => EXIT_FAILED,
        _ => EXIT_USAGE,
    };
    Failure {
        code,
        error: e.into(),
    }
}

fn run_failure(e: RunError) -> Failure {
    let code = match e {
        RunError::Config(_) => EXIT_USAGE,
        _ => EXIT_FAILED,
    };
    Failure {
        code,
        error: e.into(),
    }
}

/// Runs the parsed command line; returns the exit code.
pub async fn main(cli: Cli) -> Result<i32, Failure> {
    if let Command::Demo(args) = &cli.command {
        return demo::run(args).await;
    }
    let mut home = Home::resolve(cli.home.clone()).map_err(usage)?;
    if let Some(url) = &cli.state {
        home = home.with_state_url(Some(store::state_flag(url).map_err(usage)?));
    }
    match cli.command {
        Command::Demo(_) => unreachable!("handled above"),
        Command::Profiles(cmd) => profiles(&home, cmd),
        Command::Segments(cmd) => segments(&home, cmd),
        Command::Connection(cmd) => connection(&home, cmd).await,
        Command::Export(cmd) => export(&home, cmd).await,
        Command::Plan(args) => plan(&home, args).await,
        Command::Run(args) => run(&home, args).await,
        Command::Runs(args) => runs(&home, args),
        Command::Serve(args) => admin::serve(&home, args).await,
        Command::User(cmd) => admin::user(&home, cmd),
        Command::Apply(args) => config::apply(&home, args).await,
        Command::Dump(args) => config::dump(&home, args),
        Command::Migrate(args) => store::migrate(&home, args),
        Command::State(cmd) => store::state(&home, cmd),
    }
}

fn profiles(home: &Home, cmd: ProfilesCmd) -> Result<i32, Failure> {
    if let ProfilesCmd::Source(cmd) = cmd {
        return source(home, cmd);
    }
    let store = home.profiles()?;
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

fn source(home: &Home, cmd: SourceCmd) -> Result<i32, Failure> {
    match cmd {
        SourceCmd::Add {
            name,
            postgres,
            table,
            query,
            key,
        } => {
            let url = store::postgres_flag(&postgres).map_err(usage)?;
            let relation = match (table, query) {
                (Some(t), None) => crate::profiles::PgRelation::Table(t),
                (None, Some(q)) => crate::profiles::PgRelation::Query(q),
                _ => {
                    return Err(usage(anyhow!(
                        "give the profiles as --table T or --query SQL"
                    )))
                }
            };
            let (view, columns) = ops::add_pg_source(
                home,
                &Actor::cli(),
                ops::PgSourceInput {
                    name: name.clone(),
                    url: SecretString::from(url),
                    relation,
                    key_column: key,
                },
            )
            .map_err(op_failure)?;
            println!(
                "profile source \"{name}\" added: {} {} at {}, key column {}",
                view.relation_kind, view.relation, view.url, view.key_column
            );
            for c in &columns {
                println!("  {:<24} {}", c.name, c.kind.as_str());
            }
        }
        SourceCmd::List => {
            for s in ops::pg_sources(home, &Actor::cli()).map_err(op_failure)? {
                println!(
                    "{:<24} {} {} at {} (key {})",
                    s.name, s.relation_kind, s.relation, s.url, s.key_column
                );
            }
        }
        SourceCmd::Remove { name } => {
            ops::remove_pg_source(home, &Actor::cli(), &name).map_err(op_failure)?;
            println!("profile source \"{name}\" removed");
        }
    }
    Ok(EXIT_OK)
}

fn segments(home: &Home, cmd: SegmentsCmd) -> Result<i32, Failure> {
    let state = home.state()?;
    match cmd {
        SegmentsCmd::Add {
            name,
            predicate,
            source,
        } => {
            let count = ops::add_segment(home, &Actor::cli(), &name, &predicate, source.as_deref())
                .map_err(op_failure)?;
            println!("segment \"{name}\" added: {count} profiles match");
        }
        SegmentsCmd::List => {
            for s in state.segments()? {
                match &s.source {
                    Some(src) => println!("{:<24} {} (source {src})", s.name, s.predicate),
                    None => println!("{:<24} {}", s.name, s.predicate),
                }
            }
        }
        SegmentsCmd::Show { name } => {
            let s = state.segment(&name).map_err(usage)?;
            println!(
                "name:      {}\npredicate: {}\nsource:    {}\ncreated:   {}",
                s.name,
                s.predicate,
                s.source.as_deref().unwrap_or("imported profiles"),
                s.created_at
            );
        }
        SegmentsCmd::Preview { name, sample } => {
            let s = state.segment(&name).map_err(usage)?;
            let p = home
                .profiles_of(s.source.as_deref())?
                .preview(&s.predicate, sample)
                .map_err(usage)?;
            println!("segment \"{name}\": {} profiles", p.count);
            for row in &p.sample {
                println!("  {}", serde_json::to_string(row).unwrap_or_default());
            }
        }
        SegmentsCmd::Remove { name } => {
            ops::remove_segment(home, &Actor::cli(), &name).map_err(op_failure)?;
            println!("segment \"{name}\" removed");
        }
    }
    Ok(EXIT_OK)
}

/// Reads a credential from where the flags say; never from the command line itself.
fn read_secret(args: &ConnectionAdd) -> Result<(SecretString, &'static str), Failure> {
    if let Some(var) = &args.api_key_env {
        let v = std::env::var(var)
            .map_err(|_| usage(anyhow!("--api-key-env {var}: the variable is not set")))?;
        return Ok((SecretString::from(v.trim().to_string()), "api_key"));
    }
    if let Some(path) = &args.api_key_file {
        let v = std::fs::read_to_string(path)
            .map_err(|e| usage(anyhow!("--api-key-file {}: {e}", path.display())))?;
        return Ok((SecretString::from(v.trim().to_string()), "api_key"));
    }
    if let Some(var) = &args.oauth_token_env {
        let v = std::env::var(var)
            .map_err(|_| usage(anyhow!("--oauth-token-env {var}: the variable is not set")))?;
        return Ok((SecretString::from(v.trim().to_string()), "oauth"));
    }
    Err(usage(anyhow!("give the credential with --api-key-env VAR, --api-key-file PATH or --oauth-token-env VAR (never on the command line)")))
}

async fn connection(home: &Home, cmd: ConnectionCmd) -> Result<i32, Failure> {
    let state = home.state()?;
    match cmd {
        ConnectionCmd::Add(args) => {
            // Names first: a bad name is refused before the statement is shown.
            ops::check_name("connection", &args.name).map_err(op_failure)?;
            if let Some(d) = &args.display_name {
                ops::check_name("display", d).map_err(op_failure)?;
            }
            if !args.accept_privacy_terms {
                return Err(usage(anyhow!("{PRIVACY_STATEMENT}\n\nTo agree, add the connection again with --accept-privacy-terms.")));
            }
            let (secret, kind) = read_secret(&args)?;
            ops::add_connection(
                home,
                &Actor::cli(),
                ops::NewConnection {
                    name: args.name.clone(),
                    display_name: args.display_name.clone(),
                    credential: ops::CredentialInput { secret, kind },
                    base_url: args.base_url.clone(),
                    accept_privacy_terms: true,
                    share_with_contributors: args.share_with_contributors,
                    export_user: args.export_user.clone(),
                },
            )
            .await
            .map_err(op_failure)?;
            println!(
                "connection \"{}\" added: the credential works and is stored encrypted",
                args.name
            );
        }
        ConnectionCmd::List => {
            for c in state.connections()? {
                println!(
                    "{:<16} {:<24} {:<8} {}  (consent: {} at {}; used by: {})",
                    c.name,
                    c.display_name,
                    c.credential_kind,
                    c.base_url,
                    c.consent_by,
                    c.consent_at,
                    if c.shared_with_contributors {
                        "admins and contributors"
                    } else {
                        "admins"
                    }
                );
            }
        }
        ConnectionCmd::Test { name } => {
            ops::test_connection(home, &Actor::cli(), &name)
                .await
                .map_err(op_failure)?;
            println!("connection \"{name}\": Mailchimp accepts the credential");
        }
        ConnectionCmd::Remove { name } => {
            let users = ops::remove_connection(home, &Actor::cli(), &name).map_err(op_failure)?;
            println!("connection \"{name}\" removed and its secret wiped");
            if !users.is_empty() {
                println!(
                    "these exports will not run until they get a connection again: {}",
                    users.join(", ")
                );
            }
        }
    }
    Ok(EXIT_OK)
}

/// A value from the data (an address, a key, a reason) as one printable line for a terminal:
/// control characters escaped (`\n`, `\u{1b}`), cut after 200 characters. `--csv` and
/// `--json` give the values as they are.
fn printable(s: &str) -> String {
    const MAX: usize = 200;
    let mut out = String::with_capacity(s.len().min(MAX + 8));
    let mut chars = s.chars();
    for c in chars.by_ref().take(MAX) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

fn pair(s: &str, what: &str) -> Result<(String, String), Failure> {
    s.split_once('=')
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| usage(anyhow!("{what} takes NAME=VALUE, got \"{s}\"")))
}

/// The export the flags of `segsync export add` describe.
fn export_input(a: ExportAdd) -> Result<ops::ExportInput, Failure> {
    let mut merge = Vec::new();
    for m in &a.merge {
        let (tag, column) = pair(m, "--merge")?;
        merge.push(FieldMap { tag, column });
    }
    let mut tags: Vec<(String, String)> = Vec::new();
    for t in &a.tags {
        tags.push(pair(t, "--tag")?);
    }
    if let Some((seg, _)) = tags.iter().find(|(seg, _)| !a.segments.contains(seg)) {
        return Err(usage(anyhow!(
            "--tag {seg}=...: {seg} is not one of the export's --segment"
        )));
    }
    let segments = a
        .segments
        .iter()
        .map(|s| ops::SegmentChoice {
            segment: s.clone(),
            tag: tags
                .iter()
                .find(|(seg, _)| seg == s)
                .map(|(_, t)| t.clone()),
        })
        .collect();
    let schedule = match (&a.cron, a.after_refresh) {
        (Some(cron), _) => Schedule::Cron {
            cron: cron.clone(),
            timezone: a.timezone.clone(),
        },
        (None, true) => Schedule::AfterRefresh,
        (None, false) => Schedule::Manual,
    };
    Ok(ops::ExportInput {
        name: a.name,
        connection: a.connection,
        audience: a.audience,
        email_field: a.email_field,
        first_name: a.first_name,
        last_name: a.last_name,
        merge,
        segments,
        status_if_new: match a.status_if_new.as_str() {
            "pending" => NewStatus::Pending,
            "transactional" => NewStatus::Transactional,
            _ => NewStatus::Subscribed,
        },
        removal: match a.removal.as_str() {
            "archive" => RemovalPolicy::Archive,
            "unsubscribe" => RemovalPolicy::Unsubscribe,
            _ => RemovalPolicy::Untag,
        },
        max_profiles: a.max_profiles,
        create_merge_fields: a.create_merge_fields,
        updated_at_field: a.updated_at_field,
        schedule,
        paused: false,
    })
}

async fn export(home: &Home, cmd: ExportCmd) -> Result<i32, Failure> {
    let state = home.state()?;
    match cmd {
        ExportCmd::Add(a) => {
            let input = export_input(a)?;
            let config = ops::save_export(home, &Actor::cli(), input, ops::SaveMode::Create)
                .await
                .map_err(op_failure)?;
            let list =
                engine::client_for(&state, home, &config.connection, &RunSettings::default())
                    .map_err(run_failure)?
                    .list(&config.audience_id)
                    .await
                    .map_err(|e| usage(anyhow!("{e}")))?;
            println!(
                "export \"{}\" added: audience \"{}\" ({}), {} segment(s)",
                config.name,
                list.name,
                config.audience_id,
                config.segments.len()
            );
            if list.double_optin && config.status_if_new == NewStatus::Subscribed {
                println!("note: the audience uses double opt-in; consider --status-if-new pending");
            }
        }
        ExportCmd::List => {
            for e in state.exports()? {
                let segs: Vec<&str> = e.segments.iter().map(|s| s.segment.as_str()).collect();
                println!(
                    "{:<20} connection {:<12} audience {:<12} segments {}",
                    e.name,
                    e.connection,
                    e.audience_id,
                    segs.join(", ")
                );
            }
        }
        ExportCmd::Show { name } => {
            let e = state.export(&name).map_err(usage)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&e).expect("config serialises")
            );
        }
        ExportCmd::Remove { name } => {
            ops::remove_export(home, &Actor::cli(), &name).map_err(op_failure)?;
            println!("export \"{name}\" removed");
        }
    }
    Ok(EXIT_OK)
}

async fn plan(home: &Home, args: PlanArgs) -> Result<i32, Failure> {
    let mut state = home.state()?;
    let prepared = engine::prepare(home, &mut state, &args.export, &RunSettings::default())
        .await
        .map_err(run_failure)?;
    let report = prepared.report();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
        return Ok(EXIT_OK);
    }
    let s = &report.summary;
    println!(
        "plan for export \"{}\" to audience {}",
        report.export, report.audience
    );
    println!(
        "  profiles read        {:>9}  ({} members, {} duplicate addresses merged)",
        report.profiles, report.members, report.duplicates
    );
    println!("  members to create    {:>9}", s.creates);
    println!("  members to update    {:>9}", s.updates);
    println!("  members unchanged    {:>9}", report.unchanged);
    println!("  tags to add          {:>9}", s.tag_adds);
    println!("  tags to remove       {:>9}", s.tag_removes);
    println!("  members to archive   {:>9}", s.archives);
    println!("  to unsubscribe       {:>9}", s.unsubscribes);
    println!("  records refused      {:>9}", report.refused.len());
    println!("  members skipped      {:>9}", report.skipped.len());
    println!("  Mailchimp requests   {:>9}", s.requests);
    for (endpoint, n) in &s.requests_by_endpoint {
        println!("    {n:>6}  {endpoint}");
    }
    if !report.merge_fields_to_create.is_empty() {
        println!(
            "  merge fields to create: {}",
            report.merge_fields_to_create.join(", ")
        );
    }
    for e in report.refused.iter().take(20) {
        println!(
            "  refused {} ({}): {}",
            printable(&e.email),
            printable(&e.profile_key),
            printable(&e.reason)
        );
    }
    if report.refused.len() > 20 {
        println!("  ... and {} more refused", report.refused.len() - 20);
    }
    for e in report.skipped.iter().take(10) {
        println!(
            "  skipped {}: {}",
            printable(&e.email),
            printable(&e.reason)
        );
    }
    Ok(EXIT_OK)
}

fn print_counts(c: &crate::state::RunCounts) {
    println!(
        "  created {}, updated {}, unchanged {}, tagged {}, untagged {}, archived {}, unsubscribed {}",
        c.created, c.updated, c.unchanged, c.tagged, c.untagged, c.archived, c.unsubscribed
    );
    println!(
        "  profiles {}, members {}, duplicates merged {}, refused {}, skipped {}, failed {}; {} requests, {} retries",
        c.profiles, c.members, c.duplicates, c.refused, c.skipped, c.failed, c.requests, c.retries
    );
}

fn exit_for(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Succeeded => EXIT_OK,
        Outcome::SucceededWithErrors => EXIT_RECORD_ERRORS,
        _ => EXIT_FAILED,
    }
}

async fn run(home: &Home, args: RunArgs) -> Result<i32, Failure> {
    let settings = RunSettings {
        trigger: "manual".into(),
        max_in_flight: args.max_in_flight.max(1),
        timeout: Duration::from_secs_f64(args.timeout),
        ..Default::default()
    };
    let progress = progress::for_terminal(args.quiet || args.json);
    let report = engine::run(home, &args.export, &settings, progress)
        .await
        .map_err(run_failure)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        println!(
            "run {} of export \"{}\": {} in {:.1}s",
            report.run_id,
            report.export,
            report.outcome.as_str(),
            report.seconds
        );
        print_counts(&report.counts);
        if let Some(e) = &report.error {
            println!("  error: {e}");
        }
        for e in &report.errors_sample {
            println!(
                "  not sent {}: {}",
                printable(if e.email.is_empty() {
                    &e.profile_key
                } else {
                    &e.email
                }),
                printable(&e.reason)
            );
        }
        if report.counts.refused + report.counts.failed > report.errors_sample.len() as u64 {
            println!(
                "  every record not sent: segsync runs errors {} --csv",
                report.run_id
            );
        }
    }
    Ok(exit_for(report.outcome))
}

fn runs(home: &Home, args: RunsArgs) -> Result<i32, Failure> {
    let state = home.state()?;
    // A run whose process died (kill -9, a crash, a power cut) is still marked running;
    // when nobody holds its export's lock, it is over: show it as interrupted.
    for export in state.exports_with_running_runs()? {
        if let Some(_lock) = home.lock_export(&export)? {
            state.interrupt_stale_runs(&export)?;
        }
    }
    let run_id = |s: Option<&String>| -> Result<i64, Failure> {
        let s = s.ok_or_else(|| usage(anyhow!("which run? `segsync runs` lists them")))?;
        s.parse()
            .map_err(|_| usage(anyhow!("a run is a number, not \"{s}\"")))
    };
    match args.args.first().map(String::as_str) {
        Some("show") => {
            let r = state.run(run_id(args.args.get(1))?).map_err(usage)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r).expect("run serialises")
                );
                return Ok(EXIT_OK);
            }
            println!(
                "run {} of export \"{}\" ({}): {}",
                r.id,
                r.export,
                r.trigger,
                r.outcome.as_str()
            );
            println!(
                "  started {}, finished {}",
                r.started_at,
                r.finished_at.as_deref().unwrap_or("-")
            );
            print_counts(&r.counts);
            if let Some(e) = &r.error {
                println!("  error: {e}");
            }
            let errors = state.run_errors(r.id)?;
            for e in errors.iter().take(20) {
                println!(
                    "  not sent {} ({}): {}",
                    printable(&e.email),
                    printable(&e.profile_key),
                    printable(&e.reason)
                );
            }
            if errors.len() > 20 {
                println!(
                    "  ... {} in all: segsync runs errors {} --csv",
                    errors.len(),
                    r.id
                );
            }
        }
        Some("errors") => {
            let id = run_id(args.args.get(1))?;
            state.run(id).map_err(usage)?;
            let errors = state.run_errors(id)?;
            if args.csv {
                let mut w = csv::Writer::from_writer(std::io::stdout());
                w.write_record(["profile_key", "email", "reason"])
                    .context("writing CSV")?;
                for e in &errors {
                    w.write_record([&e.profile_key, &e.email, &e.reason])
                        .context("writing CSV")?;
                }
                w.flush().context("writing CSV")?;
            } else if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&errors).expect("errors serialise")
                );
            } else {
                for e in &errors {
                    println!(
                        "{}\t{}\t{}",
                        printable(&e.profile_key),
                        printable(&e.email),
                        printable(&e.reason)
                    );
                }
            }
        }
        other => {
            if args.args.len() > 1 {
                return Err(usage(anyhow!(
                    "usage: segsync runs [EXPORT] | runs show RUN | runs errors RUN [--csv]"
                )));
            }
            let list = state.runs(other, args.limit)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).expect("runs serialise")
                );
                return Ok(EXIT_OK);
            }
            println!(
                "{:>5}  {:<20} {:<22} {:<22} {:>8} {:>8} {:>8}",
                "run", "export", "started", "outcome", "created", "updated", "errors"
            );
            for r in list {
                println!(
                    "{:>5}  {:<20} {:<22} {:<22} {:>8} {:>8} {:>8}",
                    r.id,
                    r.export,
                    r.started_at,
                    r.outcome.as_str(),
                    r.counts.created,
                    r.counts.updated,
                    r.counts.refused + r.counts.failed
                );
            }
        }
    }
    Ok(EXIT_OK)
}
