//! The operations people perform on an installation, checked and audited in one place, so
//! that the command line, the REST API, the web UI and `segsync apply` behave the same way:
//! the same validation, the same messages, the same role rules, the same audit entries.
//!
//! Role rules: admins do everything and are the only ones who manage connections and users;
//! contributors manage segments and exports, on connections shared with contributors only;
//! viewers read. No operation ever returns a secret.

use std::time::Duration;

use secrecy::SecretString;
use segsync_core::{NewStatus, RemovalPolicy};
use serde::{Deserialize, Serialize};

use crate::engine::{self, RunError, RunSettings};
use crate::home::Home;
use crate::mailchimp::{self, Client, ClientConfig, Credential};
use crate::state::{
    ConnectionRecord, ExportConfig, FieldMap, Role, Schedule, SegmentTag, StateError, StateStore,
    UserRecord,
};
use crate::PRIVACY_STATEMENT;

/// Who performs an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

impl Actor {
    /// Whoever runs the command line on the installation's home folder: they hold the master
    /// key, so they are an admin. Named after the system user, for the audit log.
    pub fn cli() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Actor {
            name: format!("cli:{user}"),
            role: Role::Admin,
        }
    }

    /// The user name without the `cli:` prefix (for consent and export user).
    pub fn user_name(&self) -> &str {
        self.name.strip_prefix("cli:").unwrap_or(&self.name)
    }
}

/// Why an operation was refused or failed. Each maps to an exit code and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The input is wrong; the message says what and where.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The actor's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// Mailchimp refused or could not be reached.
    #[error("{0}")]
    Mailchimp(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StateError> for OpError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::NotFound(m) => OpError::NotFound(m),
            StateError::Conflict(m) => OpError::Conflict(m),
            other => OpError::Internal(other.into()),
        }
    }
}

impl From<RunError> for OpError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Config(m) | RunError::Limit(m) => OpError::Invalid(m),
            RunError::Busy(_) | RunError::NothingToResume(_) => OpError::Conflict(e.to_string()),
            RunError::Mailchimp(m) => OpError::Mailchimp(m.to_string()),
            RunError::Other(e) => OpError::Internal(e),
        }
    }
}

pub type OpResult<T> = Result<T, OpError>;

/// Refuses unless `actor` has at least `role`.
pub fn require(actor: &Actor, role: Role, what: &str) -> OpResult<()> {
    if actor.role >= role {
        Ok(())
    } else {
        Err(OpError::Forbidden(format!(
            "{what} needs the {} role; {} is a {}",
            role.as_str(),
            actor.name,
            actor.role.as_str()
        )))
    }
}

/// Refuses a name (of a segment, export, connection, user or tag) that is empty, longer than
/// 100 characters, padded with spaces, or holds a control character (a newline, an escape
/// sequence that would play tricks on a terminal): such names are mistakes or attacks.
pub fn check_name(what: &str, name: &str) -> OpResult<()> {
    let bad = |why: String| {
        Err(OpError::Invalid(format!(
            "{what} name {name:?} refused: {why}"
        )))
    };
    if name.trim().is_empty() {
        return Err(OpError::Invalid(format!("a {what} name cannot be empty")));
    }
    if let Some((i, c)) = name.chars().enumerate().find(|(_, c)| c.is_control()) {
        return bad(format!(
            "it holds a control character (U+{:04X} at character {})",
            c as u32,
            i + 1
        ));
    }
    if name.trim() != name {
        return bad("it starts or ends with a space".into());
    }
    let n = name.chars().count();
    if n > 100 {
        return bad(format!("it is {n} characters long (at most 100)"));
    }
    Ok(())
}

fn audit(
    state: &StateStore,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: &str,
) -> OpResult<()> {
    state.audit(&actor.name, action, target, detail)?;
    Ok(())
}

// --- connections ---

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
}

impl From<&ConnectionRecord> for ConnectionView {
    fn from(c: &ConnectionRecord) -> Self {
        ConnectionView {
            name: c.name.clone(),
            display_name: c.display_name.clone(),
            base_url: c.base_url.clone(),
            credential_kind: c.credential_kind.clone(),
            consent_by: c.consent_by.clone(),
            consent_at: c.consent_at.clone(),
            shared_with_contributors: c.shared_with_contributors,
            export_user: c.export_user.clone(),
            created_at: c.created_at.clone(),
        }
    }
}

/// The connections `actor` may see: all for admins, the shared ones for the others.
pub fn connections(state: &StateStore, actor: &Actor) -> OpResult<Vec<ConnectionView>> {
    Ok(state
        .connections()?
        .iter()
        .filter(|c| actor.role == Role::Admin || c.shared_with_contributors)
        .map(ConnectionView::from)
        .collect())
}

pub fn connection(state: &StateStore, actor: &Actor, name: &str) -> OpResult<ConnectionView> {
    let c = state.connection(name)?;
    if actor.role != Role::Admin && !c.shared_with_contributors {
        return Err(OpError::Forbidden(format!(
            "connection \"{name}\" is for admins only"
        )));
    }
    Ok(ConnectionView::from(&c))
}

/// A credential as given by its owner.
pub struct CredentialInput {
    pub secret: SecretString,
    /// `api_key` or `oauth`.
    pub kind: &'static str,
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
}

/// Builds a client for a credential and checks it with `GET /ping`.
async fn checked_client(
    credential: &CredentialInput,
    base_url: Option<&str>,
) -> OpResult<url::Url> {
    let c = if credential.kind == "oauth" {
        Credential::oauth_token(credential.secret.clone())
    } else {
        Credential::api_key(credential.secret.clone())
    }
    .map_err(|e| OpError::Invalid(e.to_string()))?;
    let base_url = match base_url {
        Some(u) => {
            url::Url::parse(u).map_err(|e| OpError::Invalid(format!("API root {u}: {e}")))?
        }
        None => mailchimp::default_base_url(&c),
    };
    let mut config = ClientConfig::new(c);
    config.base_url = base_url.clone();
    config.timeout = Duration::from_secs(30);
    let client = Client::new(config).map_err(|e| OpError::Invalid(e.to_string()))?;
    client
        .ping()
        .await
        .map_err(|e| OpError::Mailchimp(format!("Mailchimp refused the connection: {e}")))?;
    Ok(base_url)
}

/// Adds a connection: consent recorded, credential checked with Mailchimp, sealed, audited.
pub async fn add_connection(
    home: &Home,
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
    let state = home.state()?;
    if state.connection(&input.name).is_ok() {
        return Err(OpError::Conflict(format!(
            "a connection named \"{}\" exists already",
            input.name
        )));
    }
    let base_url = checked_client(&input.credential, input.base_url.as_deref()).await?;
    let sealed = home
        .master_key()?
        .seal(&input.name, &input.credential.secret);
    let at = crate::state::now();
    let record = ConnectionRecord {
        name: input.name.clone(),
        display_name: input.display_name.unwrap_or_else(|| input.name.clone()),
        base_url: base_url.to_string(),
        credential_kind: input.credential.kind.to_string(),
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
    };
    state.add_connection(&record)?;
    audit(
        &state,
        actor,
        "connection.add",
        &record.name,
        &format!(
            "{} credential, {}; consent to the data privacy statement recorded; used by {}",
            record.credential_kind,
            record.base_url,
            if record.shared_with_contributors {
                "admins and contributors"
            } else {
                "admins"
            }
        ),
    )?;
    Ok(ConnectionView::from(&record))
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
}

pub async fn update_connection(
    home: &Home,
    actor: &Actor,
    name: &str,
    change: ConnectionChange,
) -> OpResult<ConnectionView> {
    require(actor, Role::Admin, "changing a connection")?;
    let state = home.state()?;
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
    if let Some(cred) = change.credential {
        let base = checked_client(&cred, change.base_url.as_deref().or(Some(&c.base_url))).await?;
        c.sealed_secret = home.master_key()?.seal(name, &cred.secret);
        c.credential_kind = cred.kind.to_string();
        c.base_url = base.to_string();
        what.push(format!("new {} credential", cred.kind));
    } else if let Some(b) = change.base_url.filter(|b| *b != c.base_url) {
        return Err(OpError::Invalid(format!(
            "the API root ({b}) changes only with a new credential"
        )));
    }
    if what.is_empty() {
        return Ok(ConnectionView::from(&c));
    }
    state.update_connection(&c)?;
    audit(&state, actor, "connection.update", name, &what.join("; "))?;
    Ok(ConnectionView::from(&c))
}

/// Removes a connection and wipes its secret; returns the exports that used it (they stop).
pub fn remove_connection(home: &Home, actor: &Actor, name: &str) -> OpResult<Vec<String>> {
    require(actor, Role::Admin, "removing a connection")?;
    let state = home.state()?;
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
pub async fn test_connection(home: &Home, actor: &Actor, name: &str) -> OpResult<()> {
    let state = home.state()?;
    let c = state.connection(name)?;
    if !can_use(actor, &c) {
        return Err(OpError::Forbidden(format!(
            "connection \"{name}\" is for admins only"
        )));
    }
    let client = engine::client_for(&state, home, name, &RunSettings::default())?;
    drop(state);
    client
        .ping()
        .await
        .map_err(|e| OpError::Mailchimp(format!("connection \"{name}\": {e}")))?;
    Ok(())
}

/// The audiences a connection can see: (id, name, member count).
pub async fn audiences(
    home: &Home,
    actor: &Actor,
    connection: &str,
) -> OpResult<Vec<mailchimp::ListInfo>> {
    let state = home.state()?;
    let c = state.connection(connection)?;
    if !can_use(actor, &c) {
        return Err(OpError::Forbidden(format!(
            "connection \"{connection}\" is for admins only"
        )));
    }
    let client = engine::client_for(&state, home, connection, &RunSettings::default())?;
    client
        .lists()
        .await
        .map_err(|e| OpError::Mailchimp(e.to_string()))
}

// --- segments ---

/// Adds a segment over the imported profiles (`source` None) or a PostgreSQL profile source:
/// checked where the profiles are (PostgreSQL's own message when it refuses the predicate),
/// then counted, and only then saved (a predicate that fails or runs out of time while
/// counting is refused and leaves nothing behind). Returns its count.
pub fn add_segment(
    home: &Home,
    actor: &Actor,
    name: &str,
    predicate: &str,
    source: Option<&str>,
) -> OpResult<u64> {
    require(actor, Role::Contributor, "adding a segment")?;
    check_name("segment", name)?;
    let count = count_segment(home, name, predicate, source)?;
    let state = home.state()?;
    state.add_segment_from(name, predicate, source)?;
    let detail = match source {
        Some(src) => format!("{predicate} (profile source {src})"),
        None => predicate.to_string(),
    };
    audit(&state, actor, "segment.add", name, &detail)?;
    Ok(count)
}

/// Checks `predicate` where the profiles of `source` are, and counts its members.
fn count_segment(home: &Home, name: &str, predicate: &str, source: Option<&str>) -> OpResult<u64> {
    if let Some(src) = source {
        home.state()?.profile_source(src).map_err(|_| {
            OpError::Invalid(format!(
                "segment \"{name}\": no profile source named \"{src}\" (see `segsync profiles source list`)"
            ))
        })?;
    }
    let store = home
        .profiles_of(source)
        .map_err(|e| OpError::Invalid(format!("segment \"{name}\": {e:#}")))?;
    let refused = |e: crate::profiles::PredicateError| {
        OpError::Invalid(format!("segment \"{name}\" refused: {e}"))
    };
    store.check_predicate(predicate).map_err(refused)?;
    Ok(store.preview(predicate, 0).map_err(refused)?.count)
}

/// Changes a segment's predicate (checked and counted first). Returns its new count.
pub fn update_segment(home: &Home, actor: &Actor, name: &str, predicate: &str) -> OpResult<u64> {
    require(actor, Role::Contributor, "changing a segment")?;
    let state = home.state()?;
    let old = state.segment(name)?;
    let count = count_segment(home, name, predicate, old.source.as_deref())?;
    if old.predicate != predicate {
        state.set_segment_predicate(name, predicate)?;
        audit(&state, actor, "segment.update", name, predicate)?;
    }
    Ok(count)
}

pub fn remove_segment(home: &Home, actor: &Actor, name: &str) -> OpResult<()> {
    require(actor, Role::Contributor, "removing a segment")?;
    let state = home.state()?;
    state.remove_segment(name)?;
    audit(&state, actor, "segment.remove", name, "")?;
    Ok(())
}

// --- PostgreSQL profile sources ---

/// A PostgreSQL profile source as an admin describes it.
#[derive(Clone)]
pub struct PgSourceInput {
    pub name: String,
    /// `postgres://...`; it may hold a password (sealed at rest, never shown).
    pub url: SecretString,
    pub relation: crate::profiles::PgRelation,
    pub key_column: String,
}

/// Adds a PostgreSQL profile source (admin): connects, checks that the table or query can be
/// read and has the key column, then saves it with its URL sealed. Returns its columns.
pub fn add_pg_source(
    home: &Home,
    actor: &Actor,
    input: PgSourceInput,
) -> OpResult<(crate::sources::SourceView, Vec<crate::profiles::Column>)> {
    use secrecy::ExposeSecret;
    require(actor, Role::Admin, "adding a profile source")?;
    check_name("profile source", &input.name)?;
    let url = input.url.expose_secret();
    if !crate::pg::is_postgres_url(url) {
        return Err(OpError::Invalid(format!(
            "profile source \"{}\": {} is not a PostgreSQL URL (postgres://USER@HOST:PORT/DB)",
            input.name,
            crate::pg::redact(url)
        )));
    }
    let (relation_kind, relation) = match &input.relation {
        crate::profiles::PgRelation::Table(t) => ("table", t.clone()),
        crate::profiles::PgRelation::Query(q) => ("query", q.clone()),
    };
    let columns = crate::profiles::check_source(url, input.relation.clone(), &input.key_column)
        .map_err(|e| OpError::Invalid(format!("profile source \"{}\": {e}", input.name)))?;
    let state = home.state()?;
    let record = crate::state::ProfileSourceRecord {
        name: input.name.clone(),
        kind: "postgres".into(),
        sealed_url: home
            .master_key()?
            .seal(&crate::sources::seal_name(&input.name), &input.url),
        relation_kind: relation_kind.into(),
        relation,
        key_column: input.key_column.clone(),
        email_hint: columns
            .iter()
            .find(|c| c.name.to_ascii_lowercase().contains("email"))
            .map(|c| c.name.clone()),
        created_at: crate::state::now(),
    };
    state.add_profile_source(&record)?;
    let view = crate::sources::view(home, &record);
    audit(
        &state,
        actor,
        "profile_source.add",
        &input.name,
        &format!("{} {} {}", view.url, relation_kind, record.relation),
    )?;
    Ok((view, columns))
}

/// The PostgreSQL profile sources, URLs without their password.
pub fn pg_sources(home: &Home, actor: &Actor) -> OpResult<Vec<crate::sources::SourceView>> {
    require(actor, Role::Viewer, "listing profile sources")?;
    let state = home.state()?;
    Ok(state
        .profile_sources()?
        .iter()
        .map(|r| crate::sources::view(home, r))
        .collect())
}

/// Removes a profile source no segment reads.
pub fn remove_pg_source(home: &Home, actor: &Actor, name: &str) -> OpResult<()> {
    require(actor, Role::Admin, "removing a profile source")?;
    let state = home.state()?;
    state.profile_source(name)?;
    let users: Vec<String> = state
        .segments()?
        .into_iter()
        .filter(|s| s.source.as_deref() == Some(name))
        .map(|s| s.name)
        .collect();
    if !users.is_empty() {
        return Err(OpError::Conflict(format!(
            "profile source \"{name}\" is read by segments {}: remove them first",
            users.join(", ")
        )));
    }
    state.remove_profile_source(name)?;
    audit(&state, actor, "profile_source.remove", name, "")?;
    Ok(())
}

// --- exports ---

/// An export as a person or a file describes it; [`save_export`] checks it and turns it into
/// an [`ExportConfig`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportInput {
    pub name: String,
    pub connection: String,
    /// The Mailchimp audience (list) id.
    pub audience: String,
    pub email_field: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// Further merge fields: tag and column.
    #[serde(default)]
    pub merge: Vec<FieldMap>,
    /// The segments to send, each with the tag its members get (by default its name).
    pub segments: Vec<SegmentChoice>,
    #[serde(default = "default_status")]
    pub status_if_new: NewStatus,
    #[serde(default = "default_removal")]
    pub removal: RemovalPolicy,
    #[serde(default = "default_max")]
    pub max_profiles: u64,
    #[serde(default)]
    pub create_merge_fields: bool,
    #[serde(default)]
    pub updated_at_field: Option<String>,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub paused: bool,
}

fn default_status() -> NewStatus {
    NewStatus::Subscribed
}
fn default_removal() -> RemovalPolicy {
    RemovalPolicy::Untag
}
fn default_max() -> u64 {
    1_000_000
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentChoice {
    pub segment: String,
    #[serde(default)]
    pub tag: Option<String>,
}

impl ExportInput {
    /// The input that describes an existing configuration (for editing and `segsync dump`).
    pub fn from_config(e: &ExportConfig) -> ExportInput {
        let field = |tag: &str| {
            e.fields
                .iter()
                .find(|f| f.tag == tag)
                .map(|f| f.column.clone())
        };
        ExportInput {
            name: e.name.clone(),
            connection: e.connection.clone(),
            audience: e.audience_id.clone(),
            email_field: e.email_field.clone(),
            first_name: field("FNAME"),
            last_name: field("LNAME"),
            merge: e
                .fields
                .iter()
                .filter(|f| f.tag != "FNAME" && f.tag != "LNAME")
                .cloned()
                .collect(),
            segments: e
                .segments
                .iter()
                .map(|s| SegmentChoice {
                    segment: s.segment.clone(),
                    tag: (s.tag != s.segment).then(|| s.tag.clone()),
                })
                .collect(),
            status_if_new: e.status_if_new,
            removal: e.removal,
            max_profiles: e.max_profiles,
            create_merge_fields: e.create_merge_fields,
            updated_at_field: e.updated_at_field.clone(),
            schedule: e.schedule.clone(),
            paused: e.paused,
        }
    }
}

/// Whether [`save_export`] creates a new export or replaces an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveMode {
    Create,
    Replace,
}

/// Checks a schedule: a cron expression that parses, in a time zone that exists.
pub fn check_schedule(s: &Schedule) -> OpResult<()> {
    if let Schedule::Cron { cron, timezone } = s {
        crate::schedule::CronSchedule::parse(cron, timezone).map_err(OpError::Invalid)?;
    }
    Ok(())
}

/// Checks an export against the segments, the profiles and the audience in Mailchimp, then
/// saves it. Contributors may only use connections shared with contributors.
pub async fn save_export(
    home: &Home,
    actor: &Actor,
    input: ExportInput,
    mode: SaveMode,
) -> OpResult<ExportConfig> {
    require(actor, Role::Contributor, "configuring an export")?;
    check_name("export", &input.name)?;
    let mut state = home.state()?;
    let existing = state.export(&input.name).ok();
    match (mode, &existing) {
        (SaveMode::Create, Some(_)) => {
            return Err(OpError::Conflict(format!(
                "an export named \"{}\" exists already",
                input.name
            )))
        }
        (SaveMode::Replace, None) => {
            return Err(OpError::NotFound(format!(
                "no export named \"{}\"",
                input.name
            )))
        }
        _ => {}
    }
    check_schedule(&input.schedule)?;

    let mut fields = Vec::new();
    if let Some(c) = &input.first_name {
        fields.push(FieldMap {
            tag: "FNAME".into(),
            column: c.clone(),
        });
    }
    if let Some(c) = &input.last_name {
        fields.push(FieldMap {
            tag: "LNAME".into(),
            column: c.clone(),
        });
    }
    for m in &input.merge {
        let tag = m.tag.trim().to_uppercase();
        if tag.is_empty()
            || tag.len() > 10
            || !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(OpError::Invalid(format!(
                "merge field {:?}: a merge tag is 1 to 10 letters, digits or underscores",
                m.tag
            )));
        }
        if fields.iter().any(|f: &FieldMap| f.tag == tag) {
            return Err(OpError::Invalid(format!(
                "merge field {tag} is mapped twice"
            )));
        }
        fields.push(FieldMap {
            tag,
            column: m.column.trim().to_string(),
        });
    }
    if input.segments.is_empty() {
        return Err(OpError::Invalid(
            "an export sends at least one segment".into(),
        ));
    }
    let mut segments: Vec<SegmentTag> = Vec::new();
    // Where the profiles come from: the one source of all the chosen segments.
    let mut source: Option<(String, Option<String>)> = None;
    for s in &input.segments {
        let record = state
            .segment(&s.segment)
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        match &source {
            None => source = Some((record.name.clone(), record.source.clone())),
            Some((first, src)) if *src != record.source => {
                let from = |s: &Option<String>| match s {
                    Some(name) => format!("profile source \"{name}\""),
                    None => "the imported profiles".to_string(),
                };
                return Err(OpError::Invalid(format!(
                    "segments \"{first}\" and \"{}\" read different profiles ({} and {}): an export's segments all come from one source",
                    record.name,
                    from(src),
                    from(&record.source)
                )));
            }
            Some(_) => {}
        }
        let tag = s.tag.clone().unwrap_or_else(|| s.segment.clone());
        check_name("tag", &tag)?;
        if segments.iter().any(|x| x.segment == s.segment) {
            return Err(OpError::Invalid(format!(
                "segment \"{}\" is chosen twice",
                s.segment
            )));
        }
        segments.push(SegmentTag {
            segment: s.segment.clone(),
            tag,
        });
    }
    // The connection must exist, and be one the actor may use.
    let conn = state.connection(&input.connection).map_err(|_| {
        OpError::Invalid(format!(
            "no connection named \"{}\" (an admin adds connections; see `segsync connection list`)",
            input.connection
        ))
    })?;
    if !can_use(actor, &conn) {
        return Err(OpError::Forbidden(format!(
            "connection \"{}\" is for admins only: an admin can share it with contributors",
            input.connection
        )));
    }
    if let Some(old) = &existing {
        if old.connection != input.connection {
            let old_conn = state.connection(&old.connection);
            if let Ok(c) = old_conn {
                if !can_use(actor, &c) {
                    return Err(OpError::Forbidden(format!(
                        "export \"{}\" runs on connection \"{}\", which is for admins only",
                        old.name, old.connection
                    )));
                }
            }
        }
    }
    // Every mapped column must exist in the profiles.
    let source = source.and_then(|(_, src)| src);
    let columns = home
        .profiles_of(source.as_deref())
        .and_then(|p| p.columns())
        .map_err(|e| OpError::Invalid(format!("{e:#}")))?;
    let known = |c: &str| columns.iter().any(|x| x.name == c);
    for c in std::iter::once(&input.email_field)
        .chain(fields.iter().map(|f| &f.column))
        .chain(input.updated_at_field.iter())
    {
        if !known(c) {
            let names: Vec<&str> = columns.iter().map(|x| x.name.as_str()).collect();
            return Err(OpError::Invalid(format!(
                "no profile column \"{c}\" (columns: {})",
                names.join(", ")
            )));
        }
    }
    let config = ExportConfig {
        name: input.name.clone(),
        connection: input.connection.clone(),
        audience_id: input.audience.trim().to_string(),
        email_field: input.email_field.clone(),
        fields,
        segments,
        status_if_new: input.status_if_new,
        removal: input.removal,
        max_profiles: input.max_profiles,
        create_merge_fields: input.create_merge_fields,
        updated_at_field: input.updated_at_field.clone(),
        schedule: input.schedule.clone(),
        paused: input.paused,
    };
    // The audience must exist and the mapping fit it.
    let client = engine::client_for(&state, home, &config.connection, &RunSettings::default())?;
    let list = client
        .list(&config.audience_id)
        .await
        .map_err(|e| OpError::Invalid(e.to_string()))?;
    let merge_fields = client
        .merge_fields(&config.audience_id)
        .await
        .map_err(|e| OpError::Invalid(e.to_string()))?;
    let tags: Vec<&str> = config.fields.iter().map(|f| f.tag.as_str()).collect();
    if let Some(problem) =
        engine::mapping_problems(&list.name, &tags, config.create_merge_fields, &merge_fields)
            .into_iter()
            .next()
    {
        return Err(OpError::Invalid(problem));
    }
    match existing {
        None => {
            state.add_export(&config)?;
            audit(
                &state,
                actor,
                "export.add",
                &config.name,
                &format!(
                    "connection {}, audience {} ({}), segments {}",
                    config.connection,
                    list.name,
                    config.audience_id,
                    segment_names(&config)
                ),
            )?;
        }
        Some(old) if old == config => {}
        Some(old) => {
            state.replace_export(&config)?;
            audit(
                &state,
                actor,
                "export.update",
                &config.name,
                &describe_change(&old, &config),
            )?;
        }
    }
    Ok(config)
}

fn segment_names(e: &ExportConfig) -> String {
    e.segments
        .iter()
        .map(|s| s.segment.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A short description of what changed between two configurations, for the audit log.
pub fn describe_change(old: &ExportConfig, new: &ExportConfig) -> String {
    let mut what = Vec::new();
    if old.connection != new.connection {
        what.push(format!(
            "connection {} -> {}",
            old.connection, new.connection
        ));
    }
    if old.audience_id != new.audience_id {
        what.push(format!(
            "audience {} -> {}",
            old.audience_id, new.audience_id
        ));
    }
    if old.email_field != new.email_field || old.fields != new.fields {
        what.push("field mapping".into());
    }
    if old.segments != new.segments {
        what.push(format!("segments {}", segment_names(new)));
    }
    if old.schedule != new.schedule {
        what.push(format!(
            "schedule {}",
            crate::schedule::describe(&new.schedule)
        ));
    }
    if old.paused != new.paused {
        what.push(if new.paused { "paused" } else { "resumed" }.into());
    }
    if old.status_if_new != new.status_if_new
        || old.removal != new.removal
        || old.max_profiles != new.max_profiles
        || old.create_merge_fields != new.create_merge_fields
        || old.updated_at_field != new.updated_at_field
    {
        what.push("options".into());
    }
    what.join("; ")
}

/// Pauses or resumes an export's schedule.
pub fn set_paused(home: &Home, actor: &Actor, name: &str, paused: bool) -> OpResult<ExportConfig> {
    require(actor, Role::Contributor, "pausing an export")?;
    let mut state = home.state()?;
    let mut e = state.export(name)?;
    check_export_access(&state, actor, &e)?;
    if e.paused != paused {
        e.paused = paused;
        state.replace_export(&e)?;
        audit(
            &state,
            actor,
            if paused {
                "export.pause"
            } else {
                "export.resume"
            },
            name,
            "",
        )?;
    }
    Ok(e)
}

/// Refuses a contributor an export on a connection kept for admins.
pub fn check_export_access(state: &StateStore, actor: &Actor, e: &ExportConfig) -> OpResult<()> {
    if actor.role == Role::Admin {
        return Ok(());
    }
    match state.connection(&e.connection) {
        Ok(c) if can_use(actor, &c) => Ok(()),
        Ok(_) => Err(OpError::Forbidden(format!(
            "export \"{}\" runs on connection \"{}\", which is for admins only",
            e.name, e.connection
        ))),
        // Its connection is gone: anyone allowed to manage exports may fix or remove it.
        Err(_) => Ok(()),
    }
}

pub fn remove_export(home: &Home, actor: &Actor, name: &str) -> OpResult<()> {
    require(actor, Role::Contributor, "removing an export")?;
    let mut state = home.state()?;
    let e = state.export(name)?;
    check_export_access(&state, actor, &e)?;
    state.remove_export(name)?;
    audit(
        &state,
        actor,
        "export.remove",
        name,
        "snapshot dropped; run history kept",
    )?;
    Ok(())
}

// --- users ---

/// Hashes a password with argon2id (a PHC string with its own salt).
pub fn hash_password(password: &SecretString) -> OpResult<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    use secrecy::ExposeSecret;
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| OpError::Internal(anyhow::anyhow!("hashing the password: {e}")))
}

/// Whether `password` matches the stored PHC hash.
pub fn verify_password(hash: &str, password: &SecretString) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    use secrecy::ExposeSecret;
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn check_password(password: &SecretString) -> OpResult<()> {
    use secrecy::ExposeSecret;
    let n = password.expose_secret().chars().count();
    if n < 8 {
        return Err(OpError::Invalid(format!(
            "a password has at least 8 characters (this one has {n})"
        )));
    }
    Ok(())
}

/// Adds a user. The very first user of an installation must be an admin.
pub fn add_user(
    home: &Home,
    actor: &Actor,
    name: &str,
    role: Role,
    password: &SecretString,
) -> OpResult<UserRecord> {
    require(actor, Role::Admin, "adding a user")?;
    check_name("user", name)?;
    if name.starts_with("cli:") {
        return Err(OpError::Invalid(
            "user names starting with \"cli:\" are kept for the command line".into(),
        ));
    }
    check_password(password)?;
    let state = home.state()?;
    if role != Role::Admin && state.count_admins()? == 0 {
        return Err(OpError::Invalid(
            "the first user must be an admin (--role admin): only admins can add the others".into(),
        ));
    }
    state.add_user(name, role, &hash_password(password)?)?;
    audit(
        &state,
        actor,
        "user.add",
        name,
        &format!("role {}", role.as_str()),
    )?;
    Ok(state.user(name)?)
}

pub fn set_role(home: &Home, actor: &Actor, name: &str, role: Role) -> OpResult<UserRecord> {
    require(actor, Role::Admin, "changing a user's role")?;
    let state = home.state()?;
    let u = state.user(name)?;
    if u.role == Role::Admin && role != Role::Admin && state.count_admins()? == 1 {
        return Err(OpError::Conflict(format!(
            "{name} is the last admin: make another user admin first"
        )));
    }
    state.set_role(name, role)?;
    audit(
        &state,
        actor,
        "user.role",
        name,
        &format!("{} -> {}", u.role.as_str(), role.as_str()),
    )?;
    Ok(state.user(name)?)
}

/// Sets a password: admins for anyone, everyone for themselves.
pub fn set_password(
    home: &Home,
    actor: &Actor,
    name: &str,
    password: &SecretString,
) -> OpResult<()> {
    if actor.name != name {
        require(actor, Role::Admin, "setting another user's password")?;
    }
    check_password(password)?;
    let state = home.state()?;
    state.set_password_hash(name, &hash_password(password)?)?;
    audit(
        &state,
        actor,
        "user.password",
        name,
        "password changed; sessions ended",
    )?;
    Ok(())
}

pub fn remove_user(home: &Home, actor: &Actor, name: &str) -> OpResult<()> {
    require(actor, Role::Admin, "removing a user")?;
    let state = home.state()?;
    let u = state.user(name)?;
    if u.role == Role::Admin && state.count_admins()? == 1 {
        return Err(OpError::Conflict(format!(
            "{name} is the last admin and cannot be removed"
        )));
    }
    state.remove_user(name)?;
    audit(
        &state,
        actor,
        "user.remove",
        name,
        "sessions and API tokens revoked",
    )?;
    Ok(())
}

/// SHA-256 of a token or session id: what the store keeps instead of the value.
pub fn token_hash(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// A new random token (`sst_` + 43 characters of base64url: 256 bits).
pub fn new_token_value(prefix: &str) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Creates an API token for `user` (admins for anyone, everyone for themselves). The value
/// is returned once; only its hash is stored.
pub fn create_token(
    home: &Home,
    actor: &Actor,
    user: &str,
    label: &str,
) -> OpResult<(i64, SecretString)> {
    if actor.name != user {
        require(actor, Role::Admin, "creating a token for another user")?;
    }
    check_name("token label", label)?;
    let state = home.state()?;
    state.user(user)?;
    let value = new_token_value("sst_");
    let id = state.add_token(user, label, &token_hash(&value))?;
    audit(
        &state,
        actor,
        "token.create",
        user,
        &format!("token {id} \"{label}\""),
    )?;
    Ok((id, SecretString::from(value)))
}

pub fn revoke_token(home: &Home, actor: &Actor, id: i64) -> OpResult<()> {
    let state = home.state()?;
    let t = state
        .tokens(None)?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| OpError::NotFound(format!("no API token {id}")))?;
    if t.user != actor.name {
        require(actor, Role::Admin, "revoking another user's token")?;
    }
    state.revoke_token(id)?;
    audit(
        &state,
        actor,
        "token.revoke",
        &t.user,
        &format!("token {id} \"{}\"", t.label),
    )?;
    Ok(())
}

// --- profiles ---

/// Where the profiles were last imported from, for "refresh".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ProfileSource {
    pub path: String,
    /// csv, ndjson or parquet (by default from the extension).
    pub format: Option<String>,
    pub key: String,
}

const PROFILE_SOURCE: &str = "profiles.source";

fn parse_format(f: Option<&str>) -> OpResult<Option<crate::profiles::Format>> {
    f.map(|f| f.parse().map_err(OpError::Invalid)).transpose()
}

/// Imports the profiles from a file the server can read, replacing what was there
/// (atomically), and remembers it as the source that "refresh" reads again.
pub fn import_profiles(
    home: &Home,
    actor: &Actor,
    source: &ProfileSource,
) -> OpResult<crate::profiles::ImportReport> {
    require(actor, Role::Admin, "importing profiles from a file")?;
    let report = import_quietly(home, source)?;
    let state = home.state()?;
    state.set_setting(
        PROFILE_SOURCE,
        Some(&serde_json::to_string(source).expect("source serialises")),
    )?;
    audit(
        &state,
        actor,
        "profiles.import",
        &source.path,
        &format!("{} profiles, key {}", report.rows, source.key),
    )?;
    Ok(report)
}

fn import_quietly(home: &Home, source: &ProfileSource) -> OpResult<crate::profiles::ImportReport> {
    let format = parse_format(source.format.as_deref())?;
    home.profiles()?
        .import(std::path::Path::new(&source.path), format, &source.key)
        .map_err(|e| OpError::Invalid(e.to_string()))
}

/// Imports an uploaded file (already saved at `path`); it is not remembered as a source.
pub fn import_upload(
    home: &Home,
    actor: &Actor,
    path: &std::path::Path,
    format: Option<&str>,
    key: &str,
    label: &str,
) -> OpResult<crate::profiles::ImportReport> {
    require(actor, Role::Admin, "importing profiles")?;
    let report = home
        .profiles()?
        .import(path, parse_format(format)?, key)
        .map_err(|e| OpError::Invalid(e.to_string().replace(&path.display().to_string(), label)))?;
    let state = home.state()?;
    audit(
        &state,
        actor,
        "profiles.import",
        label,
        &format!("{} profiles, key {key}", report.rows),
    )?;
    Ok(report)
}

/// The remembered profile source, if any.
pub fn profile_source(home: &Home) -> OpResult<Option<ProfileSource>> {
    let state = home.state()?;
    Ok(state
        .setting(PROFILE_SOURCE)?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

/// Imports the remembered source again ("refresh").
pub fn refresh_profiles(home: &Home, actor: &Actor) -> OpResult<crate::profiles::ImportReport> {
    require(actor, Role::Contributor, "refreshing the profiles")?;
    let source = profile_source(home)?.ok_or_else(|| {
        OpError::Invalid("no profile source to refresh: an admin imports a file first".into())
    })?;
    let report = import_quietly(home, &source)?;
    let state = home.state()?;
    audit(
        &state,
        actor,
        "profiles.refresh",
        &source.path,
        &format!("{} profiles", report.rows),
    )?;
    Ok(report)
}
