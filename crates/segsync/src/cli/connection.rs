//! `segsync connection ...`: Mailchimp connections. The credential is read from the
//! environment or a file, never from the command line, where the process list shows it.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use secrecy::SecretString;

use super::{op_failure, usage, Failure, EXIT_OK};
use crate::app::App;
use crate::mailchimp::CredentialKind;
use crate::ops::{self, Actor};
use crate::PRIVACY_STATEMENT;

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
            ops::test_connection(app, &Actor::cli(), &name)
                .await
                .map_err(op_failure)?;
            println!("connection \"{name}\": Mailchimp accepts the credential");
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
