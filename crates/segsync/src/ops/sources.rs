//! PostgreSQL profile sources (admins only): checked against the database before they are
//! saved, their URL sealed at rest and shown without its password.

use secrecy::SecretString;

use super::{audit, check_name, require, Actor, OpError, OpResult};
use crate::app::App;
use crate::state::Role;

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
    app: &App,
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
    let state = app.state()?;
    let record = crate::state::ProfileSourceRecord {
        name: input.name.clone(),
        kind: "postgres".into(),
        sealed_url: app
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
    let view = crate::sources::view(app, &record);
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
pub fn pg_sources(app: &App, actor: &Actor) -> OpResult<Vec<crate::sources::SourceView>> {
    require(actor, Role::Viewer, "listing profile sources")?;
    let state = app.state()?;
    Ok(state
        .profile_sources()?
        .iter()
        .map(|r| crate::sources::view(app, r))
        .collect())
}

/// Removes a profile source no segment reads.
pub fn remove_pg_source(app: &App, actor: &Actor, name: &str) -> OpResult<()> {
    require(actor, Role::Admin, "removing a profile source")?;
    let state = app.state()?;
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
