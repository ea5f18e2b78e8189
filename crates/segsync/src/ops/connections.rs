//! Mailchimp connections: adding one (consent to the privacy statement, the credential checked
//! with Mailchimp, then sealed), changing, testing and removing it, and the audiences it sees.
//! Only admins manage connections; contributors use the ones shared with them.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{audit, check_name, require, Actor, OpError, OpResult};
use crate::app::App;
use crate::engine::{self, RunSettings};
use crate::mailchimp::{self, Client, ClientConfig, CredentialKind};
use crate::state::{ConnectionRecord, Role, StateStore};
use crate::PRIVACY_STATEMENT;

/// Whether `actor` may run exports on connection `c`.
pub fn can_use(actor: &Actor, c: &ConnectionRecord) -> bool {
    actor.role == Role::Admin || (actor.role >= Role::Contributor && c.shared_with_contributors)
}

/// A connection as anyone may see it: never its secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ConnectionView {
    pub name: String,
    pub display_name: String,
    pub base_url: String,
    /// `api_key` or `oauth`.
    pub credential_kind: String,
    pub consent_by: String,
    pub consent_at: String,
    pub shared_with_contributors: bool,
    pub export_user: Option<String>,
    pub created_at: String,
    /// The Mailchimp account the credential belongs to; connections of one account share
    /// its slot budget. `null` until learned (at the first run of an older connection).
    pub account_id: Option<String>,
    /// Requests in flight at once over every run on the account (1 to 10; default 8). The
    /// account's connections share one budget: the smallest of theirs.
    #[schema(minimum = 1, maximum = 10)]
    pub slot_budget: u32,
    /// What the last check found (at `connection add`, at each run, or asked for), with the
    /// account's name; `null` if it was never checked.
    pub health: Option<crate::state::ConnectionHealth>,
}

impl From<&ConnectionRecord> for ConnectionView {
    fn from(c: &ConnectionRecord) -> Self {
        ConnectionView {
            name: c.name.clone(),
            display_name: c.display_name.clone(),
            base_url: c.base_url.clone(),
            credential_kind: c.credential_kind.to_string(),
            consent_by: c.consent_by.clone(),
            consent_at: c.consent_at.clone(),
            shared_with_contributors: c.shared_with_contributors,
            export_user: c.export_user.clone(),
            created_at: c.created_at.clone(),
            account_id: c.account_id.clone(),
            slot_budget: c.budget() as u32,
            health: None,
        }
    }
}

/// A connection's view with its last check.
fn with_health(state: &StateStore, c: &ConnectionRecord) -> OpResult<ConnectionView> {
    let mut v = ConnectionView::from(c);
    v.health = state.connection_health(&c.name)?;
    Ok(v)
}

/// The connections `actor` may see: all for admins, the shared ones for the others.
pub fn connections(state: &StateStore, actor: &Actor) -> OpResult<Vec<ConnectionView>> {
    state
        .connections()?
        .iter()
        .filter(|c| actor.role == Role::Admin || c.shared_with_contributors)
        .map(|c| with_health(state, c))
        .collect()
}

pub fn connection(state: &StateStore, actor: &Actor, name: &str) -> OpResult<ConnectionView> {
    let c = state.connection(name)?;
    if actor.role != Role::Admin && !c.shared_with_contributors {
        return Err(OpError::Forbidden(format!(
            "connection \"{name}\" is for admins only"
        )));
    }
    with_health(state, &c)
}

/// A credential as given by its owner.
pub struct CredentialInput {
    pub secret: SecretString,
    pub kind: CredentialKind,
}

/// What it takes to add a connection.
pub struct NewConnection {
    pub name: String,
    pub display_name: Option<String>,
    pub credential: CredentialInput,
    /// The API root; by default from the key's data center (or the OAuth metadata).
    pub base_url: Option<String>,
    /// The admin agreed to [`PRIVACY_STATEMENT`].
    pub accept_privacy_terms: bool,
    pub share_with_contributors: bool,
    /// Who exports run as; by default the admin who adds it ("Add yourself as export user").
    pub export_user: Option<String>,
    /// Requests in flight at once over every run on the account; `None`: the default (8).
    pub slot_budget: Option<u32>,
}

/// Builds a client for a credential and checks it with `GET /ping`, then learns its account
/// (`GET /`); a base URL that is (or resolves to) a non-public address is refused first,
/// unless the installation allows them. Gives the base URL and the account id.
async fn checked_client(
    app: &App,
    credential: &CredentialInput,
    base_url: Option<&str>,
) -> OpResult<(url::Url, String, String)> {
    let mut config =
        ClientConfig::for_credential(credential.kind, credential.secret.clone(), base_url)
            .map_err(|e| OpError::Invalid(e.to_string()))?;
    config.timeout = Duration::from_secs(30);
    // A first check answers quickly: one retry, not a minute of them.
    config.retry.max_attempts = 2;
    config.allow_private_targets = app.private_targets();
    let base_url = config.base_url.clone();
    crate::mailchimp::targets::check_resolved(&base_url, config.allow_private_targets)
        .await
        .map_err(|e| OpError::Invalid(format!("the Mailchimp base URL {base_url}: {e}")))?;
    let client = Client::new(config).map_err(|e| OpError::Invalid(e.to_string()))?;
    client
        .ping()
        .await
        .map_err(|e| OpError::Mailchimp(first_check_failed(credential.kind, &base_url, &e)))?;
    let (account, name) = client.account_info().await.map_err(|e| {
        OpError::Mailchimp(format!(
            "Mailchimp did not say which account the credential belongs to: {e}"
        ))
    })?;
    if account.trim().is_empty() {
        return Err(OpError::Mailchimp(
            "Mailchimp did not say which account the credential belongs to".into(),
        ));
    }
    Ok((base_url, account, name))
}

/// Why a credential that is not a connection yet failed its first check, in a user's
/// words: the key (or token) refused, or Mailchimp not reached at the address given; no
/// request names or attempt counts (those are in the logs).
fn first_check_failed(kind: CredentialKind, base_url: &url::Url, e: &mailchimp::Error) -> String {
    use mailchimp::Error as E;
    tracing::debug!(error = ?e, "checking a new connection's credential");
    match (e, kind) {
        (E::CredentialRejected, CredentialKind::ApiKey) => "Mailchimp refused the API key: copy it again from Account > Extras > API keys in Mailchimp (it may have been revoked)".into(),
        (E::CredentialRejected, CredentialKind::OAuth) => "Mailchimp refused the access token: authenticate with Mailchimp again".into(),
        (E::Connection { .. } | E::Timeout { .. }, _) => format!(
            "could not reach Mailchimp at {}: check the network and the base URL",
            base_url.as_str().trim_end_matches('/')
        ),
        _ => format!("Mailchimp refused the connection: {e}"),
    }
}

fn checked_budget(budget: Option<u32>) -> OpResult<Option<u32>> {
    budget
        .map(crate::budget::check_slot_budget)
        .transpose()
        .map_err(OpError::Invalid)
}

/// Adds a connection: consent recorded, credential checked with Mailchimp, sealed, audited.
pub async fn add_connection(
    app: &App,
    actor: &Actor,
    input: NewConnection,
) -> OpResult<ConnectionView> {
    require(actor, Role::Admin, "adding a connection")?;
    check_name("connection", &input.name)?;
    if let Some(d) = &input.display_name {
        check_name("display", d)?;
    }
    if let Some(u) = &input.export_user {
        check_name("export user", u)?;
    }
    if !input.accept_privacy_terms {
        return Err(OpError::Invalid(format!(
            "{PRIVACY_STATEMENT}\n\nThe connection is added only once you agree to this statement."
        )));
    }
    let slot_budget = checked_budget(input.slot_budget)?;
    let state = app.state()?;
    if state.connection(&input.name).is_ok() {
        return Err(OpError::Conflict(format!(
            "a connection named \"{}\" exists already",
            input.name
        )));
    }
    let (base_url, account_id, account_name) =
        checked_client(app, &input.credential, input.base_url.as_deref()).await?;
    let sealed = app
        .master_key()?
        .seal(&input.name, &input.credential.secret);
    let at = crate::state::now();
    let record = ConnectionRecord {
        name: input.name.clone(),
        display_name: input.display_name.unwrap_or_else(|| input.name.clone()),
        base_url: base_url.to_string(),
        credential_kind: input.credential.kind,
        sealed_secret: sealed,
        consent_by: actor.user_name().to_string(),
        consent_at: at.clone(),
        shared_with_contributors: input.share_with_contributors,
        export_user: Some(
            input
                .export_user
                .unwrap_or_else(|| actor.user_name().to_string()),
        ),
        created_at: at,
        account_id: Some(account_id),
        slot_budget,
    };
    state.add_connection(&record)?;
    audit(
        &state,
        actor,
        "connection.add",
        &record.name,
        &format!(
            "{} credential, {}; account {}, slot budget {}; consent to the data privacy statement recorded; used by {}",
            record.credential_kind,
            record.base_url,
            record.account_id.as_deref().unwrap_or_default(),
            record.budget(),
            if record.shared_with_contributors {
                "admins and contributors"
            } else {
                "admins"
            }
        ),
    )?;
    let checked = super::health::health_of(Ok(Some(account_name)));
    state.set_connection_health(&record.name, &checked)?;
    with_health(&state, &record)
}

/// What may change on an existing connection. `None` leaves a field as it is.
#[derive(Default)]
pub struct ConnectionChange {
    pub display_name: Option<String>,
    pub share_with_contributors: Option<bool>,
    pub export_user: Option<String>,
    /// A new credential (re-authentication), checked with Mailchimp before it replaces the old.
    pub credential: Option<CredentialInput>,
    pub base_url: Option<String>,
    /// A new slot budget for the account's runs (1 to 10).
    pub slot_budget: Option<u32>,
}

pub async fn update_connection(
    app: &App,
    actor: &Actor,
    name: &str,
    change: ConnectionChange,
) -> OpResult<ConnectionView> {
    require(actor, Role::Admin, "changing a connection")?;
    let state = app.state()?;
    let mut c = state.connection(name)?;
    let mut what = Vec::new();
    if let Some(d) = change.display_name.filter(|d| *d != c.display_name) {
        check_name("display", &d)?;
        what.push(format!("display name \"{d}\""));
        c.display_name = d;
    }
    if let Some(s) = change
        .share_with_contributors
        .filter(|s| *s != c.shared_with_contributors)
    {
        what.push(format!(
            "used by {}",
            if s {
                "admins and contributors"
            } else {
                "admins"
            }
        ));
        c.shared_with_contributors = s;
    }
    if let Some(u) = change
        .export_user
        .filter(|u| Some(u) != c.export_user.as_ref())
    {
        check_name("export user", &u)?;
        what.push(format!("export user {u}"));
        c.export_user = Some(u);
    }
    if let Some(b) = checked_budget(change.slot_budget)?.filter(|b| Some(*b) != c.slot_budget) {
        what.push(format!("slot budget {b}"));
        c.slot_budget = Some(b);
    }
    let mut replaced = None;
    if let Some(cred) = change.credential {
        let (base, account, account_name) =
            checked_client(app, &cred, change.base_url.as_deref().or(Some(&c.base_url))).await?;
        replaced = Some(account_name);
        c.sealed_secret = app.master_key()?.seal(name, &cred.secret);
        c.credential_kind = cred.kind;
        c.base_url = base.to_string();
        c.account_id = Some(account);
        what.push(format!("new {} credential", cred.kind));
    } else if let Some(b) = change.base_url.filter(|b| *b != c.base_url) {
        return Err(OpError::Invalid(format!(
            "the API root ({b}) changes only with a new credential"
        )));
    }
    if what.is_empty() {
        return with_health(&state, &c);
    }
    state.update_connection(&c)?;
    if let Some(account_name) = replaced {
        // A new credential Mailchimp accepted: the connection is healthy again.
        let checked = super::health::health_of(Ok(Some(account_name)));
        state.set_connection_health(name, &checked)?;
    }
    audit(&state, actor, "connection.update", name, &what.join("; "))?;
    with_health(&state, &c)
}

/// Removes a connection and wipes its secret; returns the exports that used it (they stop).
pub fn remove_connection(app: &App, actor: &Actor, name: &str) -> OpResult<Vec<String>> {
    require(actor, Role::Admin, "removing a connection")?;
    let state = app.state()?;
    state.remove_connection(name)?;
    let users: Vec<String> = state
        .exports()?
        .into_iter()
        .filter(|e| e.connection == name)
        .map(|e| e.name)
        .collect();
    audit(
        &state,
        actor,
        "connection.remove",
        name,
        &if users.is_empty() {
            "secret wiped".to_string()
        } else {
            format!("secret wiped; exports stopped: {}", users.join(", "))
        },
    )?;
    Ok(users)
}

/// Checks a connection's credential with Mailchimp.
pub async fn test_connection(app: &App, actor: &Actor, name: &str) -> OpResult<()> {
    let state = app.state()?;
    let c = state.connection(name)?;
    if !can_use(actor, &c) {
        return Err(OpError::Forbidden(format!(
            "connection \"{name}\" is for admins only"
        )));
    }
    let client = engine::client_for(&state, app, name, &RunSettings::default())?;
    drop(state);
    client
        .ping()
        .await
        .map_err(|e| OpError::Mailchimp(format!("connection \"{name}\": {e}")))?;
    Ok(())
}

/// The audiences a connection can see: (id, name, member count).
pub async fn audiences(
    app: &App,
    actor: &Actor,
    connection: &str,
) -> OpResult<Vec<mailchimp::ListInfo>> {
    let state = app.state()?;
    let c = state.connection(connection)?;
    if !can_use(actor, &c) {
        return Err(OpError::Forbidden(format!(
            "connection \"{connection}\" is for admins only"
        )));
    }
    let client = engine::client_for(&state, app, connection, &RunSettings::default())?;
    client
        .lists()
        .await
        .map_err(|e| OpError::Mailchimp(e.to_string()))
}
