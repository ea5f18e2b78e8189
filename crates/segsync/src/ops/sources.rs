//! Database profile sources, PostgreSQL or MySQL / MariaDB (admins only): checked against
//! the database before they are saved, their URL sealed at rest and shown without its
//! password.

use secrecy::SecretString;

use super::{audit, check_name, require, Actor, OpError, OpResult};
use crate::app::App;
use crate::state::Role;

/// Which database a source reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Postgres,
    MySql,
}

impl SourceKind {
    /// As stored (`profile_sources.kind`) and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Postgres => "postgres",
            SourceKind::MySql => "mysql",
        }
    }

    /// The kind a URL names (`postgres://`, `postgresql://`, `mysql://`, `mariadb://`).
    pub fn of_url(url: &str) -> Option<SourceKind> {
        if crate::pg::is_postgres_url(url) {
            Some(SourceKind::Postgres)
        } else if crate::profiles::is_mysql_url(url) {
            Some(SourceKind::MySql)
        } else {
            None
        }
    }
}

/// A database profile source as an admin describes it.
#[derive(Clone)]
pub struct SourceInput {
    pub name: String,
    pub kind: SourceKind,
    /// `postgres://...` or `mysql://...`; it may hold a password (sealed at rest, never
    /// shown).
    pub url: SecretString,
    pub relation: crate::profiles::PgRelation,
    pub key_column: String,
    /// A column the database sets whenever a row is written (an `updated_at` timestamp, a
    /// version number): re-runs then read only the rows past the last run's value of it,
    /// instead of the whole relation.
    pub cursor_column: Option<String>,
    /// Add it even when its role is a PostgreSQL superuser, or its MySQL user has global
    /// privileges (refused otherwise).
    pub allow_superuser: bool,
}

/// A profile source as added: how people see it, its columns, and what they should know
/// (its role can read more than the profiles).
pub struct AddedSource {
    pub view: crate::sources::SourceView,
    pub columns: Vec<crate::profiles::Column>,
    pub warnings: Vec<String>,
}

/// What a source's role or user can read besides the profiles: whether like a superuser,
/// its name, and the warnings to give.
struct Reach {
    superuser: bool,
    who: String,
    warnings: Vec<String>,
}

/// Adds a database profile source (admin): connects, checks that the table or query can be
/// read and has the key column, and what else its role (user) can read (a superuser, or a
/// MySQL user with global privileges, is refused unless `allow_superuser`; one that can read
/// other tables is accepted with a warning), then saves it with its URL sealed.
pub fn add_source(app: &App, actor: &Actor, input: SourceInput) -> OpResult<AddedSource> {
    use secrecy::ExposeSecret;
    require(actor, Role::Admin, "adding a profile source")?;
    check_name("profile source", &input.name)?;
    let url = input.url.expose_secret();
    if SourceKind::of_url(url) != Some(input.kind) {
        let form = match input.kind {
            SourceKind::Postgres => "a PostgreSQL URL (postgres://USER@HOST:PORT/DB)",
            SourceKind::MySql => "a MySQL URL (mysql://USER@HOST:PORT/DB)",
        };
        return Err(OpError::Invalid(format!(
            "profile source \"{}\": {} is not {form}",
            input.name,
            crate::pg::redact(url)
        )));
    }
    if input.cursor_column.is_some() && input.kind == SourceKind::MySql {
        return Err(OpError::Invalid(format!(
            "profile source \"{}\": a cursor column is for PostgreSQL sources (MySQL sources are read whole on every run): add it without --cursor",
            input.name
        )));
    }
    let (relation_kind, relation) = match &input.relation {
        crate::profiles::PgRelation::Table(t) => ("table", t.clone()),
        crate::profiles::PgRelation::Query(q) => ("query", q.clone()),
    };
    let invalid = |e: &dyn std::fmt::Display| {
        OpError::Invalid(format!("profile source \"{}\": {e}", input.name))
    };
    let (columns, reach) = match input.kind {
        SourceKind::Postgres => {
            let (columns, r) =
                crate::profiles::check_source(url, input.relation.clone(), &input.key_column)
                    .map_err(|e| invalid(&e))?;
            let reach = Reach {
                superuser: r.superuser,
                who: format!("its role \"{}\" is a PostgreSQL superuser", r.role),
                warnings: r.warnings(),
            };
            (columns, reach)
        }
        SourceKind::MySql => {
            let (columns, r) =
                crate::profiles::check_mysql_source(url, input.relation.clone(), &input.key_column)
                    .map_err(|e| invalid(&e))?;
            let reach = Reach {
                superuser: r.superuser(),
                who: format!(
                    "its user \"{}\" has global privileges ({})",
                    r.user,
                    r.global.join(", ")
                ),
                warnings: r.warnings(),
            };
            (columns, reach)
        }
    };
    if let Some(cursor) = &input.cursor_column {
        check_cursor(&input.name, cursor, &input.key_column, &columns)?;
    }
    if reach.superuser && !input.allow_superuser {
        let (login, example) = match input.kind {
            SourceKind::Postgres => (
                "role",
                "CREATE ROLE segsync_reader LOGIN; GRANT SELECT ON <table> TO segsync_reader",
            ),
            SourceKind::MySql => (
                "user",
                "CREATE USER segsync_reader IDENTIFIED BY '…'; \
                 GRANT SELECT ON <db>.<table> TO segsync_reader",
            ),
        };
        return Err(OpError::Invalid(format!(
            "profile source \"{}\" refused: {}, and segment predicates (which contributors \
             write) would run with its rights, able to read every table. Give the source a \
             {login} that can read only the profiles ({example}), or add it anyway with \
             --allow-superuser",
            input.name, reach.who
        )));
    }
    let state = app.state()?;
    let record = crate::state::ProfileSourceRecord {
        name: input.name.clone(),
        kind: input.kind.as_str().into(),
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
        cursor_column: input.cursor_column.clone(),
    };
    state.add_profile_source(&record)?;
    let view = crate::sources::view(app, &record);
    let warnings = reach.warnings;
    audit(
        &state,
        actor,
        "profile_source.add",
        &input.name,
        &format!(
            "{} {} {}{}",
            view.url,
            relation_kind,
            record.relation,
            if warnings.is_empty() {
                String::new()
            } else {
                format!("; warned: {}", warnings.join("; "))
            }
        ),
    )?;
    Ok(AddedSource {
        view,
        columns,
        warnings,
    })
}

/// A cursor column must be one of the relation's columns (exactly as named), other than the
/// key, of a type whose order follows the writes: a timestamp, a date or a number.
fn check_cursor(
    source: &str,
    cursor: &str,
    key: &str,
    columns: &[crate::profiles::Column],
) -> OpResult<()> {
    use crate::profiles::ColumnType;
    let invalid = |m: String| {
        Err(OpError::Invalid(format!(
            "profile source \"{source}\": {m}"
        )))
    };
    let Some(c) = columns.iter().find(|c| c.name == cursor) else {
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        return invalid(format!(
            "no column \"{cursor}\" to use as the cursor (columns: {})",
            names.join(", ")
        ));
    };
    if cursor == key {
        return invalid(format!(
            "the cursor column \"{cursor}\" is the key column: give a column the database sets whenever a row is written, such as updated_at"
        ));
    }
    match c.kind {
        ColumnType::Timestamp | ColumnType::Date | ColumnType::Integer | ColumnType::Real => Ok(()),
        other => invalid(format!(
            "the cursor column \"{cursor}\" is of type {}: give a timestamp, date or number column that the database sets whenever a row is written",
            other.as_str()
        )),
    }
}

/// The database profile sources, URLs without their password.
pub fn list_sources(app: &App, actor: &Actor) -> OpResult<Vec<crate::sources::SourceView>> {
    require(actor, Role::Viewer, "listing profile sources")?;
    let state = app.state()?;
    Ok(state
        .profile_sources()?
        .iter()
        .map(|r| crate::sources::view(app, r))
        .collect())
}

/// Removes a profile source no segment reads.
pub fn remove_source(app: &App, actor: &Actor, name: &str) -> OpResult<()> {
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

/// How a source answers now: reachable with its row count and columns, or why not, in
/// clear words.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SourceStatus {
    pub reachable: bool,
    /// Why the source cannot be read now (absent when it can).
    pub error: Option<String>,
    /// Profiles in the table or query (absent when unreachable).
    pub count: Option<u64>,
    /// Its columns and their types (empty when unreachable).
    pub columns: Vec<crate::profiles::Column>,
}

/// Connects to `name` and reads its row count and columns (viewers and up). Blocking: it
/// may wait on a slow database (the server runs it in a predicate slot).
pub fn source_status(app: &App, actor: &Actor, name: &str) -> OpResult<SourceStatus> {
    require(actor, Role::Viewer, "reading a profile source")?;
    app.state()?.profile_source(name)?;
    Ok(status_of(app, Some(name)))
}

/// The status of a source (`None`: the imported profiles), the error as people read it.
pub fn status_of(app: &App, source: Option<&str>) -> SourceStatus {
    let read = || -> anyhow::Result<(u64, Vec<crate::profiles::Column>)> {
        let profiles = app.profiles_of(source)?;
        let columns = profiles.columns()?;
        let count = if columns.is_empty() {
            0
        } else {
            profiles.row_count()?
        };
        Ok((count, columns))
    };
    match read() {
        Ok((count, columns)) => SourceStatus {
            reachable: true,
            error: None,
            count: Some(count),
            columns,
        },
        Err(e) => SourceStatus {
            reachable: false,
            error: Some(format!("{e:#}")),
            count: None,
            columns: Vec::new(),
        },
    }
}
