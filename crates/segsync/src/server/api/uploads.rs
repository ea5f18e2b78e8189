//! `/api/profiles/uploads`: a profile file uploaded, previewed (its dialect, column types,
//! first rows and bad values, without changing the profile store), then imported or
//! discarded (admins). See [`crate::server::uploads`].

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::profiles::{after_refresh, ImportAnswer, ImportParams};
use super::ApiResult;
use crate::server::auth::Authed;
use crate::server::extract::{Json, Query};
use crate::server::uploads::{self, Described, ProfileUpload};
use crate::server::{ApiError, AppState, ErrorBody};
use crate::state::Role;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UploadParams {
    /// The file's name (shown, and its extension gives the format when `format` is not given).
    pub name: Option<String>,
    /// The column that identifies a profile.
    #[param(value_type = String, required = true)]
    pub key: Option<String>,
    /// csv, ndjson or parquet (default: from the name's extension).
    #[param(value_type = Option<crate::profiles::Format>, inline)]
    pub format: Option<String>,
    /// CSV: the delimiter, `,` `;` `|` or `tab` (default: detected among these).
    pub delimiter: Option<String>,
    /// CSV: `true` when numbers use a decimal comma (`1.234,50`), `false` for a decimal point
    /// (default: detected from the values).
    pub decimal_comma: Option<bool>,
    /// CSV: how dates that are not ISO are written (default: detected).
    #[param(value_type = Option<crate::profiles::DateFormat>, inline)]
    pub date_format: Option<String>,
    /// CSV: what the import does with a value that does not fit its column's type: `empty`
    /// (default), `skip` (leave the profile out) or `refuse` (import nothing).
    #[param(value_type = Option<crate::profiles::OnBadValue>, inline)]
    pub on_bad_value: Option<String>,
    /// CSV: columns to keep as text whatever they hold, separated by commas.
    pub text: Option<String>,
}

impl UploadParams {
    fn options(&self) -> Result<crate::profiles::ImportOptions, ApiError> {
        ImportParams {
            key: None,
            format: None,
            path: None,
            delimiter: self.delimiter.clone(),
            decimal_comma: self.decimal_comma,
            date_format: self.date_format.clone(),
            on_bad_value: self.on_bad_value.clone(),
            text: self.text.clone(),
        }
        .options()
    }

    /// What the request says about the file.
    pub fn described(&self) -> Result<Described, ApiError> {
        Ok(Described {
            file_name: self
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "uploaded file".into()),
            format: self.format.clone(),
            key: self.key.clone().unwrap_or_default(),
            options: self.options()?,
        })
    }
}

/// Uploads a profile file (admins) and previews its import: the detected dialect and column
/// types, the first rows and the values that do not fit their column (with their line
/// numbers). The profile store is not changed; the upload waits for its commit or discard and
/// expires after 2 hours. A file that cannot be imported as given is kept, with the problem
/// said (`problem`), so that it can be previewed again with other options.
#[utoipa::path(post, path = "/api/profiles/uploads", tag = "profiles", params(UploadParams),
    request_body(content = crate::server::openapi::Upload, content_type = "application/octet-stream",
        description = "The file, as it is"),
    responses((status = 201, body = ProfileUpload), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload(
    State(app): State<AppState>,
    who: Authed,
    Query(q): Query<UploadParams>,
    body: Body,
) -> ApiResult<(StatusCode, Json<ProfileUpload>)> {
    who.require(Role::Admin, "uploading profiles")?;
    let described = q.described()?;
    let upload = uploads::receive(&app, &who.actor, described, body.into_data_stream()).await?;
    Ok((StatusCode::CREATED, Json(upload)))
}

/// An upload and its preview (admins).
#[utoipa::path(get, path = "/api/profiles/uploads/{id}", tag = "profiles",
    params(("id" = String, Path, description = "The upload's id")),
    responses((status = 200, body = ProfileUpload), (status = 403, body = ErrorBody)))]
pub async fn get_upload(
    State(app): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<ProfileUpload>> {
    who.require(Role::Admin, "reading uploads")?;
    Ok(Json(uploads::load(&app, &id).await?))
}

/// Previews the upload again with another key column or other options (admins; those not
/// given are no longer set).
#[utoipa::path(post, path = "/api/profiles/uploads/{id}/preview", tag = "profiles",
    params(("id" = String, Path, description = "The upload's id"), UploadParams),
    responses((status = 200, body = ProfileUpload), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn repreview(
    State(app): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
    Query(q): Query<UploadParams>,
) -> ApiResult<Json<ProfileUpload>> {
    who.require(Role::Admin, "previewing an import")?;
    let mut upload = uploads::load(&app, &id).await?;
    let described = q.described()?;
    upload.options = described.options;
    if !described.key.trim().is_empty() {
        upload.key = described.key.trim().to_string();
    }
    Ok(Json(uploads::preview(&app, &who.actor, upload).await?))
}

/// Imports the upload (admins), as `segsync profiles import` does: atomic (a refused file
/// changes nothing, and the upload stays for another try), audited; the upload is removed
/// afterwards. Exports scheduled "after every refresh" start.
#[utoipa::path(post, path = "/api/profiles/uploads/{id}/commit", tag = "profiles",
    params(("id" = String, Path, description = "The upload's id")),
    responses((status = 200, body = ImportAnswer), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn commit(
    State(app): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<ImportAnswer>> {
    who.require(Role::Admin, "importing profiles")?;
    let report = uploads::commit(&app, &who.actor, &id).await?;
    let started = after_refresh(&app).await;
    Ok(Json(ImportAnswer::new(report, started)))
}

/// Discards the upload without importing it (admins).
#[utoipa::path(delete, path = "/api/profiles/uploads/{id}", tag = "profiles",
    params(("id" = String, Path, description = "The upload's id")),
    responses((status = 204, description = "Discarded"), (status = 403, body = ErrorBody)))]
pub async fn discard(
    State(app): State<AppState>,
    who: Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin, "discarding uploads")?;
    uploads::discard(&app, &who.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
