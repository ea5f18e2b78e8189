//! Each connection's health: its Mailchimp account's name and what the last check found
//! (ok, a revoked or invalid credential, Mailchimp unreachable, rate-limited), checked when
//! the connection is added, at each run, and when someone asks (`connection check`, "Check
//! now", `POST /api/connections/{name}/check`).

use super::{audit, can_use, Actor, OpError, OpResult};
use crate::app::App;
use crate::engine::{self, RunSettings};
use crate::mailchimp;
use crate::state::{ConnectionHealth, StateStore};

/// The health a check's outcome means: `Ok(account name)` or Mailchimp's error.
pub fn health_of(result: Result<Option<String>, &mailchimp::Error>) -> ConnectionHealth {
    use mailchimp::Error as E;
    let (status, detail) = match result {
        Ok(_) => ("ok", None),
        Err(E::CredentialRejected) => (
            "revoked",
            Some("Mailchimp refuses the credential: it is invalid or was revoked; re-authenticate or replace the key".to_string()),
        ),
        Err(e @ (E::Connection { .. } | E::Timeout { .. })) => ("unreachable", Some(e.to_string())),
        Err(e @ E::RateLimited { .. }) => ("rate_limited", Some(e.to_string())),
        Err(e) => ("error", Some(e.to_string())),
    };
    ConnectionHealth {
        account_name: result.ok().flatten(),
        status: status.to_string(),
        detail,
        checked_at: crate::state::now(),
    }
}

/// Records what a run learned of its connection: a run that got through says it works; one
/// refused for its credential, or that could not reach Mailchimp, says so. Other failures
/// (an audience, the data) say nothing of the connection.
pub fn record_run(state: &StateStore, connection: &str, error: Option<&mailchimp::Error>) {
    use mailchimp::Error as E;
    let h = match error {
        None => health_of(Ok(None)),
        Some(
            e @ (E::CredentialRejected
            | E::Connection { .. }
            | E::Timeout { .. }
            | E::RateLimited { .. }),
        ) => health_of(Err(e)),
        Some(_) => return,
    };
    if let Err(e) = state.set_connection_health(connection, &h) {
        tracing::warn!(error = %e, connection, "recording a connection's health");
    }
}

/// Checks connection `name` now: asks Mailchimp for its account (`GET /`), records and
/// gives what it found. A failed check is an answer, not an error.
pub async fn check_connection(app: &App, actor: &Actor, name: &str) -> OpResult<ConnectionHealth> {
    let state = app.state()?;
    let c = state.connection(name)?;
    if !can_use(actor, &c) {
        return Err(OpError::Forbidden(format!(
            "connection \"{name}\" is for admins only"
        )));
    }
    let mut settings = RunSettings::default();
    settings.retry.max_attempts = 2;
    let client = engine::client_for(&state, app, name, &settings)?;
    let answer = client.account_info().await;
    tracing::debug!(connection = name, answer = ?answer, "checked a connection");
    let h = health_of(answer.as_ref().map(|(_, n)| Some(n.clone())));
    state.set_connection_health(name, &h)?;
    audit(&state, actor, "connection.check", name, &h.status)?;
    // As stored: with the account's name learned before, when this check could not.
    Ok(state.connection_health(name)?.unwrap_or(h))
}
