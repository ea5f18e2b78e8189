//! `segsync connection ...`: Mailchimp connections. The credential is read from the
//! environment or a file, never from the command line, where the process list shows it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use secrecy::SecretString;

use super::{op_failure, run_failure, usage, Failure, EXIT_FAILED, EXIT_OK};
use crate::app::App;
use crate::engine::{self, RunSettings};
use crate::mailchimp::probe::{self, Report};
use crate::mailchimp::CredentialKind;
use crate::ops::{self, Actor};
use crate::PRIVACY_STATEMENT;

#[derive(Subcommand, Debug)]
pub enum ConnectionCmd {
    /// Add a Mailchimp connection. The credential is read from an environment variable or a
    /// file (never from the command line), checked with Mailchimp, and stored encrypted.
    Add(ConnectionAdd),
    /// Change a connection's display name or slot budget.
    Edit(ConnectionEdit),
    List,
    /// Check a connection's credential with Mailchimp.
    Test {
        name: String,
    },
    /// Check a connection now and record its health (its account's name; ok, revoked,
    /// unreachable or rate-limited), as the web UI's "Check now"; exits 1 unless ok.
    Check {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a connection and wipe its secret; exports on it stop running.
    Remove {
        name: String,
    },
    /// Check, on a small test audience, each reading of Mailchimp's behaviour the simulator
    /// assumes: a few fresh contacts at your domain (segsync-probe-<hex>@DOMAIN, never
    /// emailed), a tag and a date merge field are made, and all of it permanently deleted.
    Probe(ConnectionProbe),
}

#[derive(Args, Debug)]
pub struct ConnectionProbe {
    pub name: String,
    /// The test audience's id (Audience > Settings in Mailchimp).
    #[arg(long)]
    pub audience: String,
    /// A domain whose mail you receive: the test addresses are segsync-probe-<hex>@DOMAIN.
    #[arg(long)]
    pub domain: String,
    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Refuse an audience holding more contacts than this: the probe is for test audiences.
    #[arg(long, default_value_t = 50)]
    pub max_members: u64,
    /// Also send 11 requests at once, to see how Mailchimp refuses the one over its limit of
    /// 10 (other tools on the same Mailchimp user may see refusals meanwhile).
    #[arg(long)]
    pub load: bool,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
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
    /// Requests in flight at once over every run on the connection's Mailchimp account, all
    /// its connections together (1 to 10; default 8, leaving room for the account's other
    /// apps). Connections to one account share one budget: the smallest of theirs.
    #[arg(long, value_name = "SLOTS")]
    pub slot_budget: Option<u32>,
}

#[derive(Args, Debug)]
pub struct ConnectionEdit {
    pub name: String,
    #[arg(long)]
    pub display_name: Option<String>,
    /// Requests in flight at once over every run on the connection's Mailchimp account
    /// (1 to 10).
    #[arg(long, value_name = "SLOTS")]
    pub slot_budget: Option<u32>,
}

/// Reads a credential from where the flags say; never from the command line itself.
fn read_secret(args: &ConnectionAdd) -> Result<(SecretString, CredentialKind), Failure> {
    if let Some(var) = &args.api_key_env {
        let v = std::env::var(var)
            .map_err(|_| usage(anyhow!("--api-key-env {var}: the variable is not set")))?;
        return Ok((
            SecretString::from(v.trim().to_string()),
            CredentialKind::ApiKey,
        ));
    }
    if let Some(path) = &args.api_key_file {
        let v = std::fs::read_to_string(path)
            .map_err(|e| usage(anyhow!("--api-key-file {}: {e}", path.display())))?;
        return Ok((
            SecretString::from(v.trim().to_string()),
            CredentialKind::ApiKey,
        ));
    }
    if let Some(var) = &args.oauth_token_env {
        let v = std::env::var(var)
            .map_err(|_| usage(anyhow!("--oauth-token-env {var}: the variable is not set")))?;
        return Ok((
            SecretString::from(v.trim().to_string()),
            CredentialKind::OAuth,
        ));
    }
    Err(usage(anyhow!("give the credential with --api-key-env VAR, --api-key-file PATH or --oauth-token-env VAR (never on the command line)")))
}

pub(super) async fn connection(app: &App, cmd: ConnectionCmd) -> Result<i32, Failure> {
    let state = app.state()?;
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
                app,
                &Actor::cli(),
                ops::NewConnection {
                    name: args.name.clone(),
                    display_name: args.display_name.clone(),
                    credential: ops::CredentialInput { secret, kind },
                    base_url: args.base_url.clone(),
                    accept_privacy_terms: true,
                    share_with_contributors: args.share_with_contributors,
                    export_user: args.export_user.clone(),
                    slot_budget: args.slot_budget,
                },
            )
            .await
            .map_err(op_failure)?;
            println!(
                "connection \"{}\" added: the credential works and is stored encrypted",
                args.name
            );
        }
        ConnectionCmd::Edit(args) => {
            if args.display_name.is_none() && args.slot_budget.is_none() {
                return Err(usage(anyhow!(
                    "say what to change: --display-name NAME and/or --slot-budget SLOTS"
                )));
            }
            let v = ops::update_connection(
                app,
                &Actor::cli(),
                &args.name,
                ops::ConnectionChange {
                    display_name: args.display_name.clone(),
                    slot_budget: args.slot_budget,
                    ..Default::default()
                },
            )
            .await
            .map_err(op_failure)?;
            println!(
                "connection \"{}\": display name \"{}\", slot budget {}",
                v.name, v.display_name, v.slot_budget
            );
        }
        ConnectionCmd::List => {
            for c in state.connections()? {
                let health = state.connection_health(&c.name)?;
                let health = health.as_ref().map_or("never checked".into(), health_line);
                println!(
                    "{:<16} {:<24} {:<8} {}  (account: {}; slot budget: {}; consent: {} at {}; used by: {}; health: {health})",
                    c.name,
                    c.display_name,
                    c.credential_kind,
                    c.base_url,
                    c.account_id.as_deref().unwrap_or("not known yet"),
                    c.budget(),
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
            ops::test_connection(app, &Actor::cli(), &name)
                .await
                .map_err(op_failure)?;
            println!("connection \"{name}\": Mailchimp accepts the credential");
        }
        ConnectionCmd::Check { name, json } => {
            drop(state);
            let h = ops::health::check_connection(app, &Actor::cli(), &name)
                .await
                .map_err(op_failure)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&h).expect("health serialises")
                );
            } else {
                println!("connection \"{name}\": {}", health_line(&h));
            }
            return Ok(if h.status == "ok" {
                EXIT_OK
            } else {
                super::EXIT_FAILED
            });
        }
        ConnectionCmd::Probe(args) => {
            let client = engine::client_for(&state, app, &args.name, &RunSettings::default())
                .map_err(run_failure)?;
            drop(state);
            return probe_connection(&client, &args).await;
        }
        ConnectionCmd::Remove { name } => {
            let users = ops::remove_connection(app, &Actor::cli(), &name).map_err(op_failure)?;
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

/// Asks on the terminal whether to go on; `false` unless the answer is yes.
/// A connection's health in words: "ok (account \"Acme\"), checked 2026-...".
fn health_line(h: &crate::state::ConnectionHealth) -> String {
    let account = h
        .account_name
        .as_deref()
        .map(|n| format!(" (account \"{n}\")"))
        .unwrap_or_default();
    let status = match h.status.as_str() {
        "rate_limited" => "rate-limited",
        s => s,
    };
    match &h.detail {
        Some(d) => format!("{status}{account}: {d}; checked {}", h.checked_at),
        None => format!("{status}{account}, checked {}", h.checked_at),
    }
}

fn confirmed(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

async fn probe_connection(
    client: &crate::mailchimp::Client,
    args: &ConnectionProbe,
) -> Result<i32, Failure> {
    let info = client.list(&args.audience).await.map_err(Failure::from)?;
    let contacts = info
        .total_contacts
        .unwrap_or(0)
        .max(info.member_count + info.unsubscribe_count + info.cleaned_count);
    if contacts > args.max_members {
        return Err(usage(anyhow!(
            "audience \"{}\" ({}) holds {contacts} contacts: the probe runs only on a test audience of at most {} (--max-members); nothing was done",
            info.name,
            info.id,
            args.max_members
        )));
    }
    if !args.yes {
        let question = format!(
            "The probe adds a few contacts segsync-probe-<hex>@{} (unsubscribed, never emailed), a tag and a date merge field to audience \"{}\" ({}, {contacts} contacts), then permanently deletes them. Go on?",
            args.domain, info.name, info.id
        );
        if !std::io::stdin().is_terminal() {
            return Err(usage(anyhow!(
                "the probe writes to audience \"{}\" ({}): confirm with --yes (there is no terminal to ask on); nothing was done",
                info.name,
                info.id
            )));
        }
        if !confirmed(&question) {
            return Err(usage(anyhow!("not confirmed: nothing was done")));
        }
    }
    let report = probe::run(
        client,
        &args.audience,
        &args.domain,
        probe::Options { load: args.load },
    )
    .await
    .map_err(|e| match e {
        crate::mailchimp::Error::InvalidConfig(_) => usage(e),
        e => Failure::from(e),
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serialises")
        );
    } else {
        print!("{}", probe_table(&report));
    }
    if report.cleanup.left_over.is_empty() {
        Ok(EXIT_OK)
    } else {
        eprintln!(
            "segsync: the probe could not delete everything it created; remove these in Mailchimp:"
        );
        for l in &report.cleanup.left_over {
            eprintln!("  {l}");
        }
        Ok(EXIT_FAILED)
    }
}

/// The report as a table, with what was seen under it.
fn probe_table(report: &Report) -> String {
    let mut rows = vec![[
        "assumption".to_string(),
        "Mailchimp answered".to_string(),
        "simulator assumes".to_string(),
        "verdict".to_string(),
    ]];
    for r in &report.rows {
        rows.push([
            r.assumption.to_string(),
            r.mailchimp.clone().unwrap_or_else(|| "-".into()),
            r.simulator.to_string(),
            r.verdict.as_str().to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push('\n');
    for r in &report.rows {
        out.push_str(&format!(
            "{} ({}): {}\n",
            r.assumption, r.question, r.detail
        ));
    }
    let c = &report.cleanup;
    out.push_str(&format!(
        "\nremoved: {} contact(s) permanently deleted, {} tag(s), {} merge field(s)\n",
        c.members_deleted.len(),
        c.tags_deleted.len(),
        c.merge_fields_deleted.len()
    ));
    out
}
