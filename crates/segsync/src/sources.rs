//! Where a segment's profiles come from: the embedded profile store (files imported into
//! `HOME/profiles.sqlite`), or a PostgreSQL or MySQL / MariaDB table or query the team
//! already has (`segsync profiles source add NAME --postgres URL | --mysql URL --table T |
//! --query SQL --key COL`).
//!
//! A segment belongs to one source, and an export's segments all come from the same one: a
//! run reads them in one pass, evaluated where the profiles are (SQLite for the embedded
//! store, the database server itself for a PostgreSQL or MySQL source). A source's URL is
//! sealed with the master key like a connection's credential; it is opened only to read.

use anyhow::Context;
use serde::Serialize;

use crate::app::App;
use crate::profiles::{
    Column, MySqlSource, PgRelation, PgSource, PredicateError, Preview, ProfileRow, ProfileStore,
    SelectError, SelectStats,
};
use crate::state::ProfileSourceRecord;

/// The profiles a segment reads.
pub enum Profiles {
    Embedded(ProfileStore),
    Postgres(PgSource),
    MySql(MySqlSource),
}

impl Profiles {
    /// The SQL dialect their predicates are written in.
    pub fn dialect(&self) -> crate::rules::Dialect {
        match self {
            Profiles::Embedded(_) => crate::rules::Dialect::Sqlite,
            Profiles::Postgres(_) => crate::rules::Dialect::Postgres,
            Profiles::MySql(_) => crate::rules::Dialect::MySql,
        }
    }

    pub fn columns(&self) -> anyhow::Result<Vec<Column>> {
        Ok(match self {
            Profiles::Embedded(s) => s.columns()?,
            Profiles::Postgres(s) => s.columns()?,
            Profiles::MySql(s) => s.columns()?,
        })
    }

    pub fn row_count(&self) -> anyhow::Result<u64> {
        Ok(match self {
            Profiles::Embedded(s) => s.row_count()?,
            Profiles::Postgres(s) => s.row_count()?,
            Profiles::MySql(s) => s.row_count()?,
        })
    }

    pub fn check_predicate(&self, predicate: &str) -> Result<(), PredicateError> {
        match self {
            Profiles::Embedded(s) => s.check_predicate(predicate),
            Profiles::Postgres(s) => s.check_predicate(predicate),
            Profiles::MySql(s) => s.check_predicate(predicate),
        }
    }

    /// What people should know before trusting segments over these profiles: a database
    /// source whose role or user can read more than the profiles (see
    /// [`crate::profiles::Reach`], [`crate::profiles::MyReach`]).
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Profiles::Embedded(_) => Vec::new(),
            Profiles::Postgres(s) => s.reach().map(|r| r.warnings()).unwrap_or_else(|e| {
                vec![format!(
                    "what the source's role can read besides the profiles could not be checked: {e}"
                )]
            }),
            Profiles::MySql(s) => s.reach().map(|r| r.warnings()).unwrap_or_else(|e| {
                vec![format!(
                    "what the source's user can read besides the profiles could not be checked: {e}"
                )]
            }),
        }
    }

    pub fn preview(&self, predicate: &str, sample: usize) -> Result<Preview, PredicateError> {
        match self {
            Profiles::Embedded(s) => s.preview(predicate, sample),
            Profiles::Postgres(s) => s.preview(predicate, sample),
            Profiles::MySql(s) => s.preview(predicate, sample),
        }
    }

    /// One pass over the profiles (see [`ProfileStore::select`]), evaluated where they are.
    pub fn select<E, F>(
        &self,
        columns: &[String],
        predicates: &[String],
        each: F,
    ) -> Result<SelectStats, SelectError<E>>
    where
        F: FnMut(ProfileRow) -> Result<(), E>,
    {
        match self {
            Profiles::Embedded(s) => s.select(columns, predicates, each),
            Profiles::Postgres(s) => s.select(columns, predicates, each),
            Profiles::MySql(s) => s.select(columns, predicates, each),
        }
    }
}

impl Profiles {
    /// [`Profiles::select`] over the profiles keyed `keys` only (those that exist); the
    /// embedded store's must still be at `generation`.
    pub fn select_keys<E, F>(
        &self,
        columns: &[String],
        predicates: &[String],
        keys: &[String],
        generation: Option<u64>,
        each: F,
    ) -> Result<SelectStats, SelectError<E>>
    where
        F: FnMut(ProfileRow) -> Result<(), E>,
    {
        match self {
            Profiles::Embedded(s) => {
                s.select_keys(columns, predicates, keys, generation.unwrap_or(0), each)
            }
            Profiles::Postgres(s) => s.select_keys(columns, predicates, keys, each),
            Profiles::MySql(_) => Err(SelectError::Failed(
                "MySQL sources are read whole".to_string(),
            )),
        }
    }
}

/// A source as people see it: never its URL's password.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    pub name: String,
    pub kind: String,
    /// The URL without its password.
    pub url: String,
    /// `table` or `query`.
    pub relation_kind: String,
    pub relation: String,
    pub key_column: String,
    /// The column re-runs read past (only the rows written since the last run), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor_column: Option<String>,
    pub created_at: String,
}

/// The relation of a stored source.
pub fn relation_of(r: &ProfileSourceRecord) -> anyhow::Result<PgRelation> {
    match r.relation_kind.as_str() {
        "table" => Ok(PgRelation::Table(r.relation.clone())),
        "query" => Ok(PgRelation::Query(r.relation.clone())),
        other => anyhow::bail!(
            "profile source \"{}\": unknown relation kind \"{other}\"",
            r.name
        ),
    }
}

/// The name under which a source's URL is sealed (binds the ciphertext to the source).
pub fn seal_name(source: &str) -> String {
    format!("profile-source:{source}")
}

/// The URL of a stored source, unsealed (it may hold a password: never show it).
pub fn url_of(app: &App, r: &ProfileSourceRecord) -> anyhow::Result<String> {
    use secrecy::ExposeSecret;
    let url = app
        .master_key()?
        .open(&seal_name(&r.name), &r.sealed_url)
        .with_context(|| format!("profile source \"{}\"", r.name))?;
    Ok(url.expose_secret().to_string())
}

/// How people see a stored source.
pub fn view(app: &App, r: &ProfileSourceRecord) -> SourceView {
    SourceView {
        name: r.name.clone(),
        kind: r.kind.clone(),
        url: url_of(app, r)
            .map(|u| crate::pg::redact(&u))
            .unwrap_or_else(|e| format!("(cannot be opened: {e})")),
        relation_kind: r.relation_kind.clone(),
        relation: r.relation.clone(),
        key_column: r.key_column.clone(),
        cursor_column: r.cursor_column.clone(),
        created_at: r.created_at.clone(),
    }
}

impl App {
    /// The profiles of `source` (`None`: the embedded store).
    pub fn profiles_of(&self, source: Option<&str>) -> anyhow::Result<Profiles> {
        let Some(name) = source else {
            return Ok(Profiles::Embedded(self.profiles()?));
        };
        let record = self.state()?.profile_source(name)?;
        let url = url_of(self, &record)?;
        let relation = relation_of(&record)?;
        Ok(match record.kind.as_str() {
            "mysql" => Profiles::MySql(MySqlSource::connect(&url, relation, &record.key_column)?),
            _ => Profiles::Postgres(
                PgSource::connect(&url, relation, &record.key_column)?
                    .with_cursor(record.cursor_column.clone()),
            ),
        })
    }
}
