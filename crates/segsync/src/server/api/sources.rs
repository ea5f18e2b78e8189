//! Database profile sources: `/api/sources`, PostgreSQL or MySQL / MariaDB tables or queries
//! that segments read instead of the imported profiles. Viewers see them (their URL without
//! its password) and their status; admins add and remove them. A source's URL goes in once,
//! in the body, and is sealed like a credential: never logged, never echoed.

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiResult;
use crate::ops::{self, SourceStatus};
use crate::profiles::PgRelation;
use crate::server::auth::Authed;
use crate::server::extract::{Json, Path};
use crate::server::{ApiError, AppState, ErrorBody};
use crate::sources::SourceView;

/// The database profile sources (viewers and up), URLs without their password.
#[utoipa::path(get, path = "/api/sources", tag = "sources",
    responses((status = 200, body = [SourceView]), (status = 403, body = ErrorBody)))]
pub async fn list_sources(
    State(app): State<AppState>,
    who: Authed,
) -> ApiResult<Json<Vec<SourceView>>> {
    Ok(Json(ops::list_sources(&app.app, &who.actor)?))
}

/// A source with its status now.
#[derive(Serialize, ToSchema)]
pub struct SourceDetail {
    #[serde(flatten)]
    pub source: SourceView,
    pub status: SourceStatus,
    /// The segments that read it.
    pub segments: Vec<String>,
}

/// One source with its live status: reachable or the error in clear words, its row count,
/// columns and types (checked in one of the server's predicate slots), and the segments that
/// read it.
#[utoipa::path(get, path = "/api/sources/{name}", tag = "sources", params(("name" = String, Path)),
    responses((status = 200, body = SourceDetail), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_source(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<SourceDetail>> {
    let (installation, actor, n) = (app.app.clone(), who.actor.clone(), name.clone());
    let status = app
        .predicates
        .run(move || ops::source_status(&installation, &actor, &n))
        .await??;
    let state = app.app.state().map_err(ApiError::internal)?;
    let source = crate::sources::view(&app.app, &state.profile_source(&name)?);
    let segments = state
        .segments()?
        .into_iter()
        .filter(|s| s.source.as_deref() == Some(name.as_str()))
        .map(|s| s.name)
        .collect();
    Ok(Json(SourceDetail {
        source,
        status,
        segments,
    }))
}

/// `postgres` or `mysql` (MySQL and MariaDB).
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    Postgres,
    Mysql,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSource {
    #[schema(schema_with = crate::server::openapi::name)]
    pub name: String,
    pub kind: DatabaseKind,
    /// `postgres://USER:PASSWORD@HOST:PORT/DB` or `mysql://...`: sealed at rest, never shown
    /// again (answers show it without its password).
    #[schema(format = Password)]
    pub url: String,
    /// The table (or view) holding the profiles; give it or `query`.
    pub table: Option<String>,
    /// A SELECT giving the profiles; give it or `table`.
    pub query: Option<String>,
    /// The column that identifies a profile.
    pub key: String,
    /// A column the database sets whenever a row is written (a timestamp such as
    /// `updated_at`, or a version number): re-runs then read only the rows past the last
    /// run's value of it, instead of every row.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Add it even when its role is a PostgreSQL superuser, or its MySQL user has global
    /// privileges (refused otherwise: segment predicates would run with its rights).
    #[serde(default)]
    pub allow_superuser: bool,
}

/// A source just added: how people see it, its columns, and what to know about it.
#[derive(Serialize, ToSchema)]
pub struct AddedSource {
    #[serde(flatten)]
    pub source: SourceView,
    pub columns: Vec<crate::profiles::Column>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Adds a source (admins): the database is reached and the table or query checked (the key
/// column present, what else its user can read) before the source is saved, its URL sealed.
#[utoipa::path(post, path = "/api/sources", tag = "sources", request_body = NewSource,
    responses((status = 201, body = AddedSource), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn add_source(
    State(app): State<AppState>,
    who: Authed,
    Json(s): Json<NewSource>,
) -> ApiResult<(StatusCode, Json<AddedSource>)> {
    who.require(crate::state::Role::Admin, "adding a profile source")?;
    let relation = match (s.table, s.query) {
        (Some(t), None) => PgRelation::Table(t),
        (None, Some(q)) => PgRelation::Query(q),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "give the source's \"table\" or its \"query\" (one of them)",
            ))
        }
    };
    let input = ops::SourceInput {
        name: s.name,
        kind: match s.kind {
            DatabaseKind::Postgres => ops::SourceKind::Postgres,
            DatabaseKind::Mysql => ops::SourceKind::MySql,
        },
        url: SecretString::from(s.url),
        relation,
        key_column: s.key,
        cursor_column: s.cursor.filter(|c| !c.is_empty()),
        allow_superuser: s.allow_superuser,
    };
    let (installation, actor) = (app.app.clone(), who.actor.clone());
    let added = app
        .predicates
        .run(move || ops::add_source(&installation, &actor, input))
        .await??;
    Ok((
        StatusCode::CREATED,
        Json(AddedSource {
            source: added.view,
            columns: added.columns,
            warnings: added.warnings,
        }),
    ))
}

/// Removes a source (admins); refused (409) while segments read it.
#[utoipa::path(delete, path = "/api/sources/{name}", tag = "sources", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_source(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::remove_source(&app.app, &who.actor, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
