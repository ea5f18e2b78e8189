//! `segsync suppressions ...` (addresses and profile keys never sent: an export's list with
//! `--export`, else the installation's) and `segsync refusals ...` (addresses Mailchimp
//! refused for good, held back until their profile changes).

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};

use super::{op_failure, printable, usage, Failure, EXIT_OK};
use crate::app::App;
use crate::ops::{self, Actor, SuppressionInput};
use crate::state::{Suppression, SuppressionKind};

/// Which entry: an address or a profile key.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Entry {
    /// An e-mail address (normalised: trimmed, lower-cased).
    #[arg(long)]
    pub email: Option<String>,
    /// A profile key: the member its profile makes is never sent.
    #[arg(long)]
    pub key: Option<String>,
}

impl Entry {
    fn split(self) -> (SuppressionKind, String) {
        match (self.email, self.key) {
            (Some(e), _) => (SuppressionKind::Email, e),
            (None, Some(k)) => (SuppressionKind::Key, k),
            (None, None) => unreachable!("clap requires one of --email and --key"),
        }
    }
}

#[derive(Subcommand, Debug)]
#[command(
    after_help = "A suppressed address or profile key is never sent: not created, updated, \
tagged or removed. A member already in the audience is left as it is in Mailchimp. Runs count \
such members as \"suppressed\", not as errors."
)]
pub enum SuppressionsCmd {
    /// The entries of a list.
    List {
        /// The export's list; without it, the installation's (every export).
        #[arg(long)]
        export: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Add an address (--email) or a profile key (--key) to a list.
    Add {
        #[arg(long)]
        export: Option<String>,
        #[command(flatten)]
        entry: Entry,
        /// Why (shown with the entry).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Take an entry off a list.
    Remove {
        #[arg(long)]
        export: Option<String>,
        #[command(flatten)]
        entry: Entry,
    },
    /// Add many addresses: one per line, or a CSV file with an "email" column.
    Import {
        file: std::path::PathBuf,
        #[arg(long)]
        export: Option<String>,
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Subcommand, Debug)]
#[command(
    after_help = "When Mailchimp refuses an address for good (invalid or fake, in a \
compliance state, permanently deleted, a merge value it refuses), the export remembers it and \
does not send it again until the profile's content changes; runs count it as a \"remembered \
refusal\", not as an error. Addresses refused for now only are not remembered."
)]
pub enum RefusalsCmd {
    /// The refusals an export remembers (every export's without --export).
    List {
        #[arg(long)]
        export: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Forget a refusal: the next run sends the address again.
    Forget {
        #[arg(long)]
        export: String,
        #[arg(long)]
        email: String,
    },
    /// Move a refusal to the export's suppression list: never sent again.
    Suppress {
        #[arg(long)]
        export: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        note: String,
    },
}

pub(super) fn suppressions(app: &App, cmd: SuppressionsCmd) -> Result<i32, Failure> {
    let actor = Actor::cli();
    match cmd {
        SuppressionsCmd::List { export, json } => {
            let list = ops::suppressions(app, &actor, export.as_deref()).map_err(op_failure)?;
            print_list(&list, json);
        }
        SuppressionsCmd::Add {
            export,
            entry,
            note,
        } => {
            let (kind, value) = entry.split();
            let input = SuppressionInput { kind, value, note };
            let s =
                ops::add_suppression(app, &actor, export.as_deref(), &input).map_err(op_failure)?;
            println!(
                "{} {} suppressed ({})",
                kind.as_str(),
                printable(&s.value),
                scope(&s)
            );
        }
        SuppressionsCmd::Remove { export, entry } => {
            let (kind, value) = entry.split();
            ops::remove_suppression(app, &actor, export.as_deref(), kind, &value)
                .map_err(op_failure)?;
            println!(
                "{} {} no longer suppressed",
                kind.as_str(),
                printable(&value)
            );
        }
        SuppressionsCmd::Import { file, export, note } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))
                .map_err(usage)?;
            let r = ops::import_suppressions(app, &actor, export.as_deref(), &text, &note)
                .map_err(op_failure)?;
            println!("{} added, {} on the list already", r.added, r.already);
            for line in &r.refused {
                eprintln!("{}: {}", file.display(), printable(line));
            }
            if !r.refused.is_empty() {
                return Err(usage(anyhow!("{} lines refused", r.refused.len())));
            }
        }
    }
    Ok(EXIT_OK)
}

fn scope(s: &Suppression) -> String {
    match &s.export {
        Some(e) => format!("export \"{e}\""),
        None => "every export".into(),
    }
}

fn print_list(list: &[Suppression], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(list).expect("list serialises")
        );
        return;
    }
    for s in list {
        println!(
            "{}\t{}\t{}\t{} {}",
            s.kind.as_str(),
            printable(&s.value),
            printable(&s.note),
            printable(&s.added_by),
            s.added_at
        );
    }
}

pub(super) fn refusals(app: &App, cmd: RefusalsCmd) -> Result<i32, Failure> {
    let actor = Actor::cli();
    match cmd {
        RefusalsCmd::List { export, json } => {
            let exports = match export {
                Some(e) => vec![e],
                None => app
                    .state()?
                    .exports()?
                    .into_iter()
                    .map(|e| e.name)
                    .collect(),
            };
            let mut all = Vec::new();
            for e in &exports {
                all.extend(ops::refusals(app, &actor, e).map_err(op_failure)?);
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&all).expect("list serialises")
                );
                return Ok(EXIT_OK);
            }
            for r in &all {
                println!(
                    "{}\t{}\t{}\t{}\trun {} at {}",
                    r.export,
                    printable(&r.email),
                    printable(&r.profile_key),
                    printable(&r.reason),
                    r.run_id,
                    r.refused_at
                );
            }
        }
        RefusalsCmd::Forget { export, email } => {
            ops::forget_refusal(app, &actor, &export, &email).map_err(op_failure)?;
            println!(
                "refusal of {} forgotten: the next run sends it again",
                printable(&email)
            );
        }
        RefusalsCmd::Suppress {
            export,
            email,
            note,
        } => {
            ops::suppress_refusal(app, &actor, &export, &email, &note).map_err(op_failure)?;
            println!(
                "{} moved to the suppression list of export \"{export}\"",
                printable(&email)
            );
        }
    }
    Ok(EXIT_OK)
}
