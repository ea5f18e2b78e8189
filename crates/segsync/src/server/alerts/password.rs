//! The SMTP relay's password. It comes from one of two places, never from an environment
//! variable named in a request:
//!
//! - given once as `smtp.password` in `PUT /api/settings/alerts`: sealed with the master key
//!   (like a connection's API key) and stored apart from the settings, bound to the relay it
//!   was given for (`username@host:port`), so that pointing the settings at another host
//!   does not send it there; never shown again;
//! - else [`ENV`] in the environment the operator started `segsync serve` with.

use anyhow::Context;
use base64::Engine;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::SmtpSettings;
use crate::app::App;

/// The variable the operator may start `segsync serve` with to give the relay's password.
pub const ENV: &str = "SEGSYNC_SMTP_PASSWORD";

/// The name of the sealed password in the state store's settings table.
const SETTING: &str = "alerts.smtp_password";

/// Where the relay's login takes its password from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PasswordSource {
    /// Given as `smtp.password`, stored sealed.
    Settings,
    /// `SEGSYNC_SMTP_PASSWORD` in the server's environment at start-up.
    Environment,
}

/// The sealed password and the relay it was given for.
#[derive(Serialize, Deserialize)]
struct Stored {
    relay: String,
    /// Base64 of the nonce and ciphertext.
    sealed: String,
}

/// `username@host:port`: the relay a password belongs to (none without a login).
pub fn relay_of(smtp: &SmtpSettings) -> Option<String> {
    let user = smtp.username.as_deref()?;
    Some(format!(
        "{user}@{}:{}",
        smtp.host,
        smtp.port.unwrap_or(if smtp.starttls { 587 } else { 25 })
    ))
}

fn seal_name(relay: &str) -> String {
    format!("{SETTING}:{relay}")
}

fn read(app: &App) -> anyhow::Result<Option<Stored>> {
    let Some(text) = app.state()?.setting(SETTING)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .context("the stored SMTP password does not parse")
}

/// The relay the stored password was given for, if one is stored.
pub fn stored_relay(app: &App) -> anyhow::Result<Option<String>> {
    Ok(read(app)?.map(|s| s.relay))
}

/// Seals and stores `password` for `relay`, replacing any stored one.
pub fn store(app: &App, relay: &str, password: &SecretString) -> anyhow::Result<()> {
    let sealed = app.master_key()?.seal(&seal_name(relay), password);
    let stored = Stored {
        relay: relay.to_string(),
        sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
    };
    app.state()?
        .set_setting(SETTING, Some(&serde_json::to_string(&stored)?))?;
    Ok(())
}

/// Forgets the stored password.
pub fn forget(app: &App) -> anyhow::Result<()> {
    app.state()?.set_setting(SETTING, None)?;
    Ok(())
}

/// The stored password, if it was given for `relay`.
fn stored_for(app: &App, relay: &str) -> anyhow::Result<Option<SecretString>> {
    let Some(stored) = read(app)?.filter(|s| s.relay == relay) else {
        return Ok(None);
    };
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&stored.sealed)
        .context("the stored SMTP password is not base64")?;
    let password = app
        .master_key()?
        .open(&seal_name(relay), &sealed)
        .context("the stored SMTP password")?;
    Ok(Some(password))
}

/// Where the login of `smtp` takes its password from, if anywhere.
pub fn source(
    app: &App,
    smtp: Option<&SmtpSettings>,
    operator: Option<&SecretString>,
) -> anyhow::Result<Option<PasswordSource>> {
    let Some(relay) = smtp.and_then(relay_of) else {
        return Ok(None);
    };
    if stored_relay(app)?.as_deref() == Some(relay.as_str()) {
        Ok(Some(PasswordSource::Settings))
    } else {
        Ok(operator.map(|_| PasswordSource::Environment))
    }
}

/// The password the login of `smtp` uses: the stored one given for this relay, else the
/// operator's.
pub fn resolve(
    app: &App,
    smtp: &SmtpSettings,
    operator: Option<&SecretString>,
) -> anyhow::Result<Option<SecretString>> {
    let Some(relay) = relay_of(smtp) else {
        return Ok(None);
    };
    match stored_for(app, &relay)? {
        Some(p) => Ok(Some(p)),
        None => Ok(operator.cloned()),
    }
}
