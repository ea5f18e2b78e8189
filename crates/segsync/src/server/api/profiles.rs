//! The profile store: `/api/profiles`, its import (an upload or a file on the server) and
//! refresh, after which the exports scheduled "after every refresh" start.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use super::ApiResult;
use crate::ops::{self, ProfileSource};
use crate::server::auth::Authed;
use crate::server::extract::{Json, Query};
use crate::server::runs::Event;
use crate::server::{ApiError, AppState, ErrorBody};
use crate::state::Role;

#[derive(Serialize, ToSchema)]
pub struct ProfilesInfo {
    pub count: u64,
    pub key_column: Option<String>,
    pub columns: Vec<crate::profiles::Column>,
    /// Where "refresh" reads from.
    pub source: Option<ProfileSource>,
}

/// The profile store: count, columns and types, refresh source (contributors).
#[utoipa::path(get, path = "/api/profiles", tag = "profiles", responses((status = 200, body = ProfilesInfo), (status = 403, body = ErrorBody)))]
pub async fn profiles(State(app): State<AppState>, who: Authed) -> ApiResult<Json<ProfilesInfo>> {
    who.require(Role::Contributor, "reading the profile columns")?;
    let store = app.app.profiles().map_err(ApiError::internal)?;
    let columns = store.columns().map_err(ApiError::internal)?;
    let count = if columns.is_empty() {
        0
    } else {
        store.row_count().map_err(ApiError::internal)?
    };
    Ok(Json(ProfilesInfo {
        count,
        key_column: store.key_column().map_err(ApiError::internal)?,
        columns,
        source: ops::profile_source(&app.app)?,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ImportParams {
    /// The column that identifies a profile.
    #[param(value_type = String, required = true)]
    pub key: Option<String>,
    /// csv, ndjson or parquet (with an uploaded body: required; with `path`, by default
    /// from the file's extension).
    #[param(value_type = Option<crate::profiles::Format>, inline)]
    pub format: Option<String>,
    /// A file the server reads (instead of a body); remembered for "refresh".
    pub path: Option<String>,
    /// CSV: the delimiter, `,` `;` `|` or `tab` (default: detected among these).
    pub delimiter: Option<String>,
    /// CSV: `true` when numbers use a decimal comma (`1.234,50`), `false` for a decimal
    /// point (default: detected from the values).
    pub decimal_comma: Option<bool>,
    /// CSV: how dates that are not ISO are written (default: detected).
    #[param(value_type = Option<crate::profiles::DateFormat>, inline)]
    pub date_format: Option<String>,
    /// CSV: what to do with a value that does not fit its column's type: `empty` (default:
    /// keep the profile, that value empty), `skip` (leave the profile out) or `refuse`
    /// (import nothing). Every such value is listed in the answer, whatever the choice.
    #[param(value_type = Option<crate::profiles::OnBadValue>, inline)]
    pub on_bad_value: Option<String>,
    /// CSV: columns to keep as text whatever they hold, separated by commas.
    pub text: Option<String>,
}

impl ImportParams {
    /// The import options given, checked.
    pub(crate) fn options(&self) -> Result<crate::profiles::ImportOptions, ApiError> {
        let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
        Ok(crate::profiles::ImportOptions {
            delimiter: self
                .delimiter
                .as_deref()
                .map(crate::profiles::parse_delimiter)
                .transpose()
                .map_err(invalid)?,
            decimal_comma: self.decimal_comma,
            date_format: self
                .date_format
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(invalid)?,
            on_bad_value: self
                .on_bad_value
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(invalid)?
                .unwrap_or_default(),
            text_columns: self
                .text
                .as_deref()
                .map(|t| t.split(',').map(|c| c.trim().to_string()).collect())
                .unwrap_or_default(),
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct ImportAnswer {
    pub rows: u64,
    pub key_column: String,
    pub columns: Vec<crate::profiles::Column>,
    pub seconds: f64,
    /// Exports that run after every refresh and were started.
    pub started: Vec<String>,
    /// How a CSV file was read (delimiter, number and date formats): given or detected.
    pub dialect: Option<crate::profiles::Dialect>,
    /// The first values that did not fit their column's type (at most 100), in file order.
    pub bad_values: Vec<crate::profiles::BadValue>,
    /// All of them.
    pub bad_value_count: u64,
    /// Profiles left out for their bad values (`on_bad_value=skip`).
    pub skipped_rows: u64,
    /// What people should know about the column types chosen.
    pub notes: Vec<String>,
}

impl ImportAnswer {
    pub(crate) fn new(report: crate::profiles::ImportReport, started: Vec<String>) -> ImportAnswer {
        ImportAnswer {
            rows: report.rows,
            key_column: report.key_column,
            columns: report.columns,
            seconds: report.duration.as_secs_f64(),
            started,
            dialect: report.dialect,
            bad_values: report.bad_values,
            bad_value_count: report.bad_value_count,
            skipped_rows: report.skipped_rows,
            notes: report.notes,
        }
    }
}

/// Imports profiles (admins): the request body (with `format` and `key`), or a file on the
/// server (`path`, remembered as the source of "refresh"). Atomic: a refused file changes
/// nothing. Exports scheduled "after every refresh" start afterwards.
#[utoipa::path(post, path = "/api/profiles/import", tag = "profiles", params(ImportParams),
    request_body(content = Option<crate::server::openapi::Upload>, content_type = "application/octet-stream",
        description = "The file to import (not read when `path` is given)"),
    responses((status = 200, body = ImportAnswer), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import_profiles(
    State(app): State<AppState>,
    who: Authed,
    Query(q): Query<ImportParams>,
    body: Body,
) -> ApiResult<Json<ImportAnswer>> {
    who.require(Role::Admin, "importing profiles")?;
    let key = q.key.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "give the key column: ?key=COLUMN",
        )
    })?;
    let options = q.options()?;
    let report = if let Some(path) = q.path.clone() {
        let source = ProfileSource {
            path,
            format: q.format.clone(),
            key,
            options,
        };
        let (app, actor) = (app.app.clone(), who.actor.clone());
        tokio::task::spawn_blocking(move || ops::import_profiles(&app, &actor, &source))
            .await
            .map_err(ApiError::internal)??
    } else {
        let format: crate::profiles::Format = q
            .format
            .as_deref()
            .ok_or_else(|| "an uploaded file needs ?format=csv|ndjson|parquet".to_string())
            .and_then(|f| f.parse())
            .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m))?;
        let dir = app.app.root().join("uploads");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(ApiError::internal)?;
        let file = dir.join(format!(
            "upload-{}.{}",
            ops::new_token_value(""),
            format.as_str()
        ));
        // Saved, imported, and removed whatever happens (a broken upload leaves nothing).
        let result = async {
            let mut out = tokio::fs::File::create(&file)
                .await
                .map_err(ApiError::internal)?;
            let mut stream = body.into_data_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        format!("reading the upload: {e}"),
                    )
                })?;
                out.write_all(&chunk).await.map_err(ApiError::internal)?;
            }
            out.flush().await.map_err(ApiError::internal)?;
            drop(out);
            let (app, actor, f) = (app.app.clone(), who.actor.clone(), file.clone());
            tokio::task::spawn_blocking(move || {
                ops::import_upload(
                    &app,
                    &actor,
                    &f,
                    Some(format.as_str()),
                    &key,
                    &options,
                    "the uploaded file",
                )
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
        }
        .await;
        let _ = tokio::fs::remove_file(&file).await;
        result?
    };
    let started = after_refresh(&app).await;
    Ok(Json(ImportAnswer::new(report, started)))
}

/// Tells the scheduler the profiles changed; the exports it starts.
pub(crate) async fn after_refresh(app: &AppState) -> Vec<String> {
    app.runs.publish(Event::ProfilesRefreshed);
    crate::server::scheduler::run_after_refresh(app).await
}

/// Imports the remembered profile source again (contributors); exports scheduled "after
/// every refresh" start afterwards.
#[utoipa::path(post, path = "/api/profiles/refresh", tag = "profiles",
    responses((status = 200, body = ImportAnswer), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn refresh_profiles(
    State(app): State<AppState>,
    who: Authed,
) -> ApiResult<Json<ImportAnswer>> {
    let (installation, actor) = (app.app.clone(), who.actor.clone());
    let report = tokio::task::spawn_blocking(move || ops::refresh_profiles(&installation, &actor))
        .await
        .map_err(ApiError::internal)??;
    let started = after_refresh(&app).await;
    Ok(Json(ImportAnswer::new(report, started)))
}
