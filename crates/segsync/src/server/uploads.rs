//! Profile files uploaded for a preview before they are imported (the API's
//! `/api/profiles/uploads` and the web UI's Data > Sources > Imported profiles).
//!
//! An upload is streamed to `<home>/uploads/<id>/` (never held in memory), read the way the
//! import reads it into a scratch store (the profile store is not touched), and kept with its
//! preview in `upload.json` until it is imported ("commit", the code path of `segsync profiles
//! import`), discarded, or [`UPLOAD_TTL`] passes.

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use super::{ApiError, AppState};
use crate::ops::{self, Actor, UploadFile};
use crate::profiles::{BadValue, Column, Dialect, Format, ImportOptions, ImportReport};

/// The largest upload taken, as for `POST /api/profiles/import`.
pub const UPLOAD_LIMIT: usize = 4 << 30;

/// How long an upload waits for its import before it is removed.
pub const UPLOAD_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(2);

/// A file uploaded for import, and what importing it would do.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ProfileUpload {
    /// The upload's id, for its import (commit) and discard.
    pub id: String,
    /// The file's name as uploaded.
    pub file_name: String,
    pub format: Format,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The column that identifies a profile.
    pub key: String,
    /// How the file is read (CSV): what was given; anything not given is detected.
    pub options: ImportOptions,
    pub uploaded_by: String,
    /// RFC 3339.
    pub uploaded_at: String,
    /// When the upload is removed if it is not imported (RFC 3339).
    pub expires_at: String,
    /// What the import would do; absent when the file cannot be imported as given.
    pub preview: Option<UploadPreview>,
    /// Why the file cannot be imported as given (a missing key column, a duplicate key, a
    /// file that is not of its format), where.
    pub problem: Option<String>,
}

/// What importing an upload would do, read the way the import reads it.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadPreview {
    /// Profiles the import would store.
    pub rows: u64,
    /// The columns in file order, with the types detected.
    pub columns: Vec<Column>,
    /// How a CSV file is read (delimiter, number and date formats): given or detected.
    pub dialect: Option<Dialect>,
    /// The first values that do not fit their column's type (at most 100), in file order.
    pub bad_values: Vec<BadValue>,
    pub bad_value_count: u64,
    /// Profiles the import would leave out for their bad values (`on_bad_value=skip`).
    pub skipped_rows: u64,
    /// Whether the import would be refused for its bad values (`on_bad_value=refuse`).
    pub refused: bool,
    /// What people should know about the column types chosen.
    pub notes: Vec<String>,
    /// The first profiles, one value per column (in `columns` order) as text; null for empty.
    pub first_rows: Vec<Vec<Option<String>>>,
}

impl UploadPreview {
    fn new(report: ImportReport, first: crate::profiles::Preview, refuse: bool) -> UploadPreview {
        let first_rows = first
            .sample
            .iter()
            .map(|row| {
                report
                    .columns
                    .iter()
                    .map(|c| row.get(&c.name).and_then(as_text))
                    .collect()
            })
            .collect();
        UploadPreview {
            rows: report.rows,
            columns: report.columns,
            dialect: report.dialect,
            refused: refuse && report.bad_value_count > 0,
            bad_values: report.bad_values,
            bad_value_count: report.bad_value_count,
            skipped_rows: report.skipped_rows,
            notes: report.notes,
            first_rows,
        }
    }
}

fn as_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// What the person uploading says: the file's name, format and key, and how to read it.
pub struct Described {
    pub file_name: String,
    pub format: Option<String>,
    pub key: String,
    pub options: ImportOptions,
}

impl Described {
    /// The format given, else the one of the file name's extension.
    fn format(&self) -> Result<Format, ApiError> {
        let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
        match self.format.as_deref().filter(|f| !f.is_empty()) {
            Some(f) => f.parse().map_err(invalid),
            None => Format::from_path(Path::new(&self.file_name)).ok_or_else(|| {
                invalid(format!(
                    "say the format of {:?} (csv, ndjson or parquet): its name does not end in .csv, .ndjson, .jsonl or .parquet",
                    self.file_name
                ))
            }),
        }
    }
}

fn uploads_dir(app: &AppState) -> PathBuf {
    app.app.root().join("uploads")
}

/// An upload's folder, if `id` is one the server could have made (no path tricks).
fn upload_dir(app: &AppState, id: &str) -> Result<PathBuf, ApiError> {
    let plausible = id.len() == 43
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let dir = uploads_dir(app).join(id);
    if plausible && dir.join(META).is_file() {
        Ok(dir)
    } else {
        Err(not_found())
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such upload: it was imported, discarded, or it expired; upload the file again",
    )
}

const META: &str = "upload.json";
const DATA: &str = "data";

/// Saves an upload's bytes as they arrive, then previews it. An upload that fails to arrive
/// leaves nothing behind.
pub async fn receive<S, E>(
    app: &AppState,
    actor: &Actor,
    described: Described,
    body: S,
) -> Result<ProfileUpload, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let format = described.format()?;
    if described.key.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "give the key column (the column that identifies a profile)",
        ));
    }
    sweep(app).await;
    let id = ops::new_token_value("");
    let dir = uploads_dir(app).join(&id);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    let bytes = match save(&dir.join(DATA), body).await {
        Ok(n) => n,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e);
        }
    };
    let now = chrono::Utc::now();
    let upload = ProfileUpload {
        id,
        file_name: described.file_name,
        format,
        bytes,
        key: described.key.trim().to_string(),
        options: described.options,
        uploaded_by: actor.name.clone(),
        uploaded_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        expires_at: (now + UPLOAD_TTL).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        preview: None,
        problem: None,
    };
    let detail = format!("{bytes} bytes, key {}", upload.key);
    let audited = {
        let (a, who, label) = (app.app.clone(), actor.clone(), upload.file_name.clone());
        tokio::task::spawn_blocking(move || {
            ops::audit_upload(&a, &who, "profiles.upload", &label, &detail)
        })
        .await
        .map_err(ApiError::internal)?
    };
    if let Err(e) = audited {
        let _ = tokio::fs::remove_dir_all(&dir).await;
        return Err(e.into());
    }
    preview(app, actor, upload).await
}

async fn save<S, E>(file: &Path, mut body: S) -> Result<u64, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut out = tokio::fs::File::create(file)
        .await
        .map_err(ApiError::internal)?;
    let mut bytes = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("reading the upload: {e}"),
            )
        })?;
        bytes += chunk.len() as u64;
        out.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    out.flush().await.map_err(ApiError::internal)?;
    Ok(bytes)
}

/// Reads the upload as its import would (with its current key and options) and keeps what
/// that found with it.
pub async fn preview(
    app: &AppState,
    actor: &Actor,
    mut upload: ProfileUpload,
) -> Result<ProfileUpload, ApiError> {
    let dir = uploads_dir(app).join(&upload.id);
    let (who, u) = (actor.clone(), upload.clone());
    let result = tokio::task::spawn_blocking(move || {
        let format = u.format.as_str();
        let file = UploadFile {
            path: &dir.join(DATA),
            format: Some(format),
            key: &u.key,
            options: &u.options,
            label: &u.file_name,
        };
        ops::preview_upload(&who, &file, &dir.join("preview.sqlite"))
    })
    .await
    .map_err(ApiError::internal)?;
    let refuse = upload.options.on_bad_value == crate::profiles::OnBadValue::Refuse;
    match result {
        Ok((report, first)) => {
            upload.preview = Some(UploadPreview::new(report, first, refuse));
            upload.problem = None;
        }
        Err(ops::OpError::Invalid(m)) => {
            upload.preview = None;
            upload.problem = Some(m);
        }
        Err(e) => return Err(e.into()),
    }
    store(app, &upload).await?;
    Ok(upload)
}

async fn store(app: &AppState, upload: &ProfileUpload) -> Result<(), ApiError> {
    let dir = uploads_dir(app).join(&upload.id);
    let json = serde_json::to_vec(upload).map_err(ApiError::internal)?;
    tokio::fs::write(dir.join(META), json)
        .await
        .map_err(ApiError::internal)
}

/// An upload that has not expired.
pub async fn load(app: &AppState, id: &str) -> Result<ProfileUpload, ApiError> {
    let dir = upload_dir(app, id)?;
    let json = tokio::fs::read(dir.join(META))
        .await
        .map_err(|_| not_found())?;
    let upload: ProfileUpload = serde_json::from_slice(&json).map_err(ApiError::internal)?;
    if expired(&upload.expires_at) {
        let _ = tokio::fs::remove_dir_all(&dir).await;
        return Err(not_found());
    }
    Ok(upload)
}

fn expired(expires_at: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(expires_at).map_or(true, |t| t < chrono::Utc::now())
}

/// Imports the upload (atomic, as `segsync profiles import`: a refused file changes nothing)
/// and removes it.
pub async fn commit(app: &AppState, actor: &Actor, id: &str) -> Result<ImportReport, ApiError> {
    let upload = load(app, id).await?;
    let dir = uploads_dir(app).join(&upload.id);
    let (a, who, data) = (app.app.clone(), actor.clone(), dir.join(DATA));
    let report = tokio::task::spawn_blocking(move || {
        ops::import_upload(
            &a,
            &who,
            &data,
            Some(upload.format.as_str()),
            &upload.key,
            &upload.options,
            &upload.file_name,
        )
    })
    .await
    .map_err(ApiError::internal)??;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    Ok(report)
}

/// Removes an upload without importing it.
pub async fn discard(app: &AppState, actor: &Actor, id: &str) -> Result<(), ApiError> {
    let upload = load(app, id).await?;
    let (a, who, label) = (app.app.clone(), actor.clone(), upload.file_name.clone());
    tokio::task::spawn_blocking(move || {
        ops::audit_upload(&a, &who, "profiles.upload.discard", &label, "not imported")
    })
    .await
    .map_err(ApiError::internal)??;
    tokio::fs::remove_dir_all(uploads_dir(app).join(&upload.id))
        .await
        .map_err(ApiError::internal)
}

/// Removes the uploads that expired (and the folders of uploads that never arrived whole).
async fn sweep(app: &AppState) {
    let Ok(mut entries) = tokio::fs::read_dir(uploads_dir(app)).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let dir = entry.path();
        if !entry.file_type().await.is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let stale = match tokio::fs::read(dir.join(META)).await {
            Ok(json) => serde_json::from_slice::<ProfileUpload>(&json)
                .map_or(true, |u| expired(&u.expires_at)),
            Err(_) => older_than_ttl(&dir).await,
        };
        if stale {
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
    }
}

async fn older_than_ttl(dir: &Path) -> bool {
    let Ok(modified) = tokio::fs::metadata(dir).await.and_then(|m| m.modified()) else {
        return false;
    };
    modified
        .elapsed()
        .is_ok_and(|age| age > UPLOAD_TTL.to_std().unwrap_or_default())
}
