//! The `segsync` command line: one module per subcommand, human output by default, `--json`
//! for scripts, and exit codes scripts can trust. This module holds the top level (the
//! subcommands, dispatch), the failures and their exit codes, and the output helpers the
//! subcommands share.
//!
//! | exit | meaning |
//! | --- | --- |
//! | 0 | done; every record delivered |
//! | 1 | failed (Mailchimp unreachable, credential rejected, limit exceeded, another run active) |
//! | 2 | bad usage or configuration (nothing was done) |
//! | 3 | done, with records that could not be sent (see `segsync runs errors RUN`) |

mod admin;
mod config;
mod connection;
mod demo;
mod export;
mod plan;
mod profiles;
pub mod progress;
mod run;
mod runs;
mod segments;
mod store;
mod suppressions;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::engine::RunError;
use crate::ops;

// Each subcommand's arguments live with it; these keep their `cli::` paths.
pub use connection::{ConnectionAdd, ConnectionCmd};
pub use demo::DemoArgs;
pub use export::{ExportAdd, ExportCmd};
pub use plan::PlanArgs;
pub use profiles::{ProfilesCmd, SourceCmd};
pub use run::RunArgs;
pub use runs::RunsArgs;
pub use segments::SegmentsCmd;

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
    /// Let Mailchimp base URLs and alert webhooks be loopback, private or link-local
    /// addresses (a local simulator, a test server); refused otherwise. Also
    /// SEGSYNC_ALLOW_PRIVATE_TARGETS=1.
    #[arg(
        long,
        global = true,
        env = crate::app::PRIVATE_TARGETS_ENV,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_private_targets: bool,
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
    /// Addresses and profile keys never sent: `suppressions list|add|remove|import
    /// [--export NAME]` (the installation's list without --export).
    #[command(subcommand)]
    Suppressions(suppressions::SuppressionsCmd),
    /// Addresses Mailchimp refused for good, held back until their profile changes:
    /// `refusals list|forget|suppress`.
    #[command(subcommand)]
    Refusals(suppressions::RefusalsCmd),
    /// Serve the REST API, the web UI, the scheduler and metrics.
    #[command(after_help = "Environment:\n  \
        SEGSYNC_OAUTH_CLIENT_SECRET  the Mailchimp OAuth app's client secret (see --oauth-client-secret-env)\n  \
        SEGSYNC_SMTP_PASSWORD        the SMTP relay's password for alert e-mails, used when none was given\n                               \
        as smtp.password in PUT /api/settings/alerts (which stores it sealed)")]
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
        return demo::run(args, cli.home.as_deref()).await;
    }
    // The installation, chosen once here and handed down: its home folder and its state store.
    let state_url = match &cli.state {
        Some(url) => Some(store::state_flag(url).map_err(usage)?),
        None => None,
    };
    let app = App::resolve(cli.home.clone(), state_url)
        .map_err(usage)?
        .with_private_targets(cli.allow_private_targets);
    match cli.command {
        Command::Demo(_) => unreachable!("handled above"),
        Command::Profiles(cmd) => profiles::profiles(&app, cmd),
        Command::Segments(cmd) => segments::segments(&app, cmd),
        Command::Connection(cmd) => connection::connection(&app, cmd).await,
        Command::Export(cmd) => export::export(&app, cmd).await,
        Command::Plan(args) => plan::plan(&app, args).await,
        Command::Run(args) => run::run(&app, args).await,
        Command::Runs(args) => runs::runs(&app, args),
        Command::Suppressions(cmd) => suppressions::suppressions(&app, cmd),
        Command::Refusals(cmd) => suppressions::refusals(&app, cmd),
        Command::Serve(args) => admin::serve(&app, args).await,
        Command::User(cmd) => admin::user(&app, cmd),
        Command::Apply(args) => config::apply(&app, args).await,
        Command::Dump(args) => config::dump(&app, args),
        Command::Migrate(args) => store::migrate(&app, args),
        Command::State(cmd) => store::state(&app, cmd),
    }
}

/// A value from the data (an address, a key, a reason) as one printable line for a terminal:
/// control characters escaped (`\n`, `\u{1b}`), cut after 200 characters. `--json` gives
/// the values as they are; `--csv` too, but for a `'` before a cell that starts like a
/// spreadsheet formula ([`crate::csv_out`]).
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

/// `warning: …` on standard error, one line each: what a person should know about
/// something that was done anyway.
fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

fn print_counts(c: &crate::state::RunCounts) {
    let moved = if c.moved > 0 {
        format!(", moved {} (to their profile's new address)", c.moved)
    } else {
        String::new()
    };
    println!(
        "  created {}, updated {}, unchanged {}, tagged {}, untagged {}, archived {}, unsubscribed {}{moved}",
        c.created, c.updated, c.unchanged, c.tagged, c.untagged, c.archived, c.unsubscribed
    );
    let deferred = if c.deferred > 0 {
        format!(", deferred {} (sent again by the next run)", c.deferred)
    } else {
        String::new()
    };
    println!(
        "  profiles {}, members {}, duplicates merged {}, refused {}, skipped {}, failed {}{deferred}; {} requests, {} retries",
        c.profiles, c.members, c.duplicates, c.refused, c.skipped, c.failed, c.requests, c.retries
    );
    if c.suppressed + c.remembered_refusals > 0 {
        println!(
            "  held back (not sent, left as they are in Mailchimp): suppressed {}, remembered refusals {}",
            c.suppressed, c.remembered_refusals
        );
    }
    if let Some(e) = &c.evaluation {
        println!("  {}", e.describe());
    }
    // Where the retries happened: "sending: 3 retries after 429 (too many requests)".
    for p in &c.retries_by_phase {
        println!("  {}", p.in_words());
    }
}
