//! The JSON REST API under `/api`. Every change goes through [`crate::ops`] (checks, roles,
//! audit); reads filter by role here. No answer ever holds a secret.
//!
//! | role | may |
//! | --- | --- |
//! | viewer | read exports, runs (and their errors), segments, the connections shared with contributors |
//! | contributor | also: segments; exports on shared connections (add, edit, run, cancel, pause, remove); profile refresh |
//! | admin | everything: connections, users, tokens of others, profile imports, alert settings, the audit log |

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use super::auth::{self, Authed};
use super::runs::{ActiveRun, Event};
use super::{ApiError, AppState, ErrorBody};
use crate::ops::{self, ConnectionView, ExportInput, ProfileSource, SaveMode};
use crate::state::{ExportConfig, Role, RunRecord, UserRecord};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(auth::api_login))
        .route("/api/logout", post(auth::api_logout))
        .route("/api/me", get(auth::api_me))
        .route("/api/users", get(list_users).post(add_user))
        .route(
            "/api/users/{name}",
            axum::routing::patch(change_user).delete(remove_user),
        )
        .route("/api/tokens", get(list_tokens).post(create_token))
        .route("/api/tokens/{id}", axum::routing::delete(revoke_token))
        .route(
            "/api/connections",
            get(list_connections).post(add_connection),
        )
        .route(
            "/api/connections/{name}",
            get(get_connection)
                .patch(change_connection)
                .delete(remove_connection),
        )
        .route("/api/connections/{name}/test", post(test_connection))
        .route("/api/connections/{name}/audiences", get(audiences))
        .route("/api/segments", get(list_segments).post(add_segment))
        .route(
            "/api/segments/{name}",
            get(get_segment).put(change_segment).delete(remove_segment),
        )
        .route("/api/profiles", get(profiles))
        .route(
            "/api/profiles/import",
            post(import_profiles).layer(DefaultBodyLimit::max(4 << 30)),
        )
        .route("/api/profiles/refresh", post(refresh_profiles))
        .route("/api/exports", get(list_exports).post(add_export))
        .route(
            "/api/exports/{name}",
            get(get_export).put(change_export).delete(remove_export),
        )
        .route("/api/exports/{name}/pause", post(pause_export))
        .route("/api/exports/{name}/resume", post(resume_export))
        .route("/api/exports/{name}/runs", post(run_export))
        .route("/api/exports/{name}/cancel", post(cancel_export))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(get_run))
        .route("/api/runs/{id}/errors", get(run_errors))
        .route("/api/runs/{id}/cancel", post(cancel_run))
        .route("/api/audit", get(audit_log))
}

fn state_of(app: &AppState) -> ApiResult<crate::state::StateStore> {
    app.home.state().map_err(ApiError::internal)
}

// --- users and tokens ---

/// Every user (admins).
#[utoipa::path(get, path = "/api/users", tag = "users",
    responses((status = 200, body = [UserRecord]), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(app): State<AppState>,
    who: Authed,
) -> ApiResult<Json<Vec<UserRecord>>> {
    who.require(Role::Admin, "listing users")?;
    Ok(Json(state_of(&app)?.users()?))
}

#[derive(Deserialize, ToSchema)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    /// At least 8 characters; stored as an argon2id hash.
    #[schema(format = Password)]
    pub password: String,
}

/// Adds a user (admins).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserRecord), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_user(
    State(app): State<AppState>,
    who: Authed,
    Json(u): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<UserRecord>)> {
    let user = ops::add_user(
        &app.home,
        &who.actor,
        &u.name,
        u.role,
        &SecretString::from(u.password),
    )?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize, ToSchema)]
pub struct UserChange {
    pub role: Option<Role>,
    #[schema(format = Password)]
    pub password: Option<String>,
}

/// Changes a user's role (admins) or password (admins, or the user themselves).
#[utoipa::path(patch, path = "/api/users/{name}", tag = "users", request_body = UserChange,
    params(("name" = String, Path)),
    responses((status = 200, body = UserRecord), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn change_user(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
    Json(c): Json<UserChange>,
) -> ApiResult<Json<UserRecord>> {
    if c.role.is_none() && c.password.is_none() {
        who.require(Role::Admin, "changing a user")?;
    }
    if let Some(role) = c.role {
        ops::set_role(&app.home, &who.actor, &name, role)?;
    }
    if let Some(p) = c.password {
        ops::set_password(&app.home, &who.actor, &name, &SecretString::from(p))?;
    }
    Ok(Json(state_of(&app)?.user(&name)?))
}

/// Removes a user, their sessions and tokens (admins).
#[utoipa::path(delete, path = "/api/users/{name}", tag = "users", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_user(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::remove_user(&app.home, &who.actor, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// API tokens: the caller's own (admins: everyone's). Values are never shown again.
#[utoipa::path(get, path = "/api/tokens", tag = "users",
    responses((status = 200, body = [crate::state::TokenRecord])))]
pub async fn list_tokens(
    State(app): State<AppState>,
    who: Authed,
) -> ApiResult<Json<Vec<crate::state::TokenRecord>>> {
    let user = (who.actor.role != Role::Admin).then_some(who.actor.name.as_str());
    Ok(Json(state_of(&app)?.tokens(user)?))
}

#[derive(Deserialize, ToSchema)]
pub struct NewToken {
    pub label: String,
    /// Whose token (admins only; by default the caller's).
    pub user: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub user: String,
    pub label: String,
    /// Shown this once: send it as `Authorization: Bearer <token>`.
    pub token: String,
}

/// Creates an API token.
#[utoipa::path(post, path = "/api/tokens", tag = "users", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody)))]
pub async fn create_token(
    State(app): State<AppState>,
    who: Authed,
    Json(t): Json<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    use secrecy::ExposeSecret;
    let user = t.user.unwrap_or_else(|| who.actor.name.clone());
    let (id, token) = ops::create_token(&app.home, &who.actor, &user, &t.label)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id,
            user,
            label: t.label,
            token: token.expose_secret().to_string(),
        }),
    ))
}

/// Revokes an API token (one's own; admins: anyone's).
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(app): State<AppState>,
    who: Authed,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    ops::revoke_token(&app.home, &who.actor, id)?;
    Ok(StatusCode::NO_CONTENT)
}

// --- connections ---

/// The connections the caller may see (admins: all; others: those shared with contributors).
#[utoipa::path(get, path = "/api/connections", tag = "connections",
    responses((status = 200, body = [ConnectionView])))]
pub async fn list_connections(
    State(app): State<AppState>,
    who: Authed,
) -> ApiResult<Json<Vec<ConnectionView>>> {
    Ok(Json(ops::connections(&state_of(&app)?, &who.actor)?))
}

#[derive(Deserialize, ToSchema)]
pub struct NewConnection {
    pub name: String,
    pub display_name: Option<String>,
    /// The Mailchimp API key (or use "Authenticate with Mailchimp": POST /api/oauth/mailchimp).
    #[schema(format = Password)]
    pub api_key: String,
    /// The API root; by default from the key's data center.
    pub base_url: Option<String>,
    /// Agreement to the data privacy statement (GET /api/privacy-statement); required.
    pub accept_privacy_terms: bool,
    #[serde(default)]
    pub share_with_contributors: bool,
    /// Who exports run as (by default the admin adding it).
    pub export_user: Option<String>,
}

/// Adds a connection with an API key (admins). The key is checked with Mailchimp and stored
/// encrypted; it is never shown again.
#[utoipa::path(post, path = "/api/connections", tag = "connections", request_body = NewConnection,
    responses((status = 201, body = ConnectionView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn add_connection(
    State(app): State<AppState>,
    who: Authed,
    Json(c): Json<NewConnection>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let view = ops::add_connection(
        &app.home,
        &who.actor,
        ops::NewConnection {
            name: c.name,
            display_name: c.display_name,
            credential: ops::CredentialInput {
                secret: SecretString::from(c.api_key),
                kind: "api_key",
            },
            base_url: c.base_url,
            accept_privacy_terms: c.accept_privacy_terms,
            share_with_contributors: c.share_with_contributors,
            export_user: c.export_user,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One connection (admins; others only a shared one).
#[utoipa::path(get, path = "/api/connections/{name}", tag = "connections", params(("name" = String, Path)),
    responses((status = 200, body = ConnectionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_connection(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    Ok(Json(ops::connection(&state_of(&app)?, &who.actor, &name)?))
}

#[derive(Deserialize, ToSchema)]
pub struct ConnectionChange {
    pub display_name: Option<String>,
    pub share_with_contributors: Option<bool>,
    pub export_user: Option<String>,
    /// A new API key (checked with Mailchimp first).
    #[schema(format = Password)]
    pub api_key: Option<String>,
    pub base_url: Option<String>,
}

/// Changes a connection (admins).
#[utoipa::path(patch, path = "/api/connections/{name}", tag = "connections", params(("name" = String, Path)), request_body = ConnectionChange,
    responses((status = 200, body = ConnectionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_connection(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
    Json(c): Json<ConnectionChange>,
) -> ApiResult<Json<ConnectionView>> {
    let view = ops::update_connection(
        &app.home,
        &who.actor,
        &name,
        ops::ConnectionChange {
            display_name: c.display_name,
            share_with_contributors: c.share_with_contributors,
            export_user: c.export_user,
            credential: c.api_key.map(|k| ops::CredentialInput {
                secret: SecretString::from(k),
                kind: "api_key",
            }),
            base_url: c.base_url,
        },
    )
    .await?;
    Ok(Json(view))
}

#[derive(Serialize, ToSchema)]
pub struct Removed {
    /// Exports that used it: they stop running until they get a connection again.
    pub stopped_exports: Vec<String>,
}

/// Removes a connection and wipes its secret (admins); its exports stop at once.
#[utoipa::path(delete, path = "/api/connections/{name}", tag = "connections", params(("name" = String, Path)),
    responses((status = 200, body = Removed), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_connection(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Removed>> {
    Ok(Json(Removed {
        stopped_exports: remove_connection_now(&app, &who, &name)?,
    }))
}

/// Removes a connection (its secret wiped) and cancels the runs of the exports that used it,
/// which stop at once; those exports. Shared with the web UI.
pub fn remove_connection_now(app: &AppState, who: &Authed, name: &str) -> ApiResult<Vec<String>> {
    let stopped = ops::remove_connection(&app.home, &who.actor, name)?;
    for e in &stopped {
        app.runs.cancel(e);
    }
    Ok(stopped)
}

#[derive(Serialize, ToSchema)]
pub struct Ok_ {
    pub ok: bool,
    pub message: String,
}

/// Checks a connection's credential with Mailchimp.
#[utoipa::path(post, path = "/api/connections/{name}/test", tag = "connections", params(("name" = String, Path)),
    responses((status = 200, body = Ok_), (status = 403, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn test_connection(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Ok_>> {
    who.require(Role::Contributor, "testing a connection")?;
    ops::test_connection(&app.home, &who.actor, &name).await?;
    Ok(Json(Ok_ {
        ok: true,
        message: format!("connection \"{name}\": Mailchimp accepts the credential"),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Audience {
    pub id: String,
    pub name: String,
    pub double_optin: bool,
    pub member_count: u64,
}

/// The audiences a connection can see (to choose an export's audience).
#[utoipa::path(get, path = "/api/connections/{name}/audiences", tag = "connections", params(("name" = String, Path)),
    responses((status = 200, body = [Audience]), (status = 403, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn audiences(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Audience>>> {
    who.require(Role::Contributor, "listing a connection's audiences")?;
    let lists = ops::audiences(&app.home, &who.actor, &name).await?;
    Ok(Json(
        lists
            .into_iter()
            .map(|l| Audience {
                id: l.id,
                name: l.name,
                double_optin: l.double_optin,
                member_count: l.member_count,
            })
            .collect(),
    ))
}

// --- segments and profiles ---

#[derive(Serialize, ToSchema)]
pub struct SegmentView {
    pub name: String,
    pub predicate: String,
    /// The PostgreSQL profile source it reads (absent: the imported profiles).
    pub source: Option<String>,
    pub created_at: String,
    /// Profiles in the segment now (absent when it cannot be counted, with `error`).
    pub count: Option<u64>,
    pub error: Option<String>,
}

fn segment_view(app: &AppState, s: crate::state::SegmentRecord) -> SegmentView {
    let counted = app
        .home
        .profiles_of(s.source.as_deref())
        .map_err(|e| format!("{e:#}"))
        .and_then(|p| p.preview(&s.predicate, 0).map_err(|e| e.to_string()));
    let (count, error) = match counted {
        Ok(p) => (Some(p.count), None),
        Err(e) => (None, Some(e)),
    };
    SegmentView {
        name: s.name,
        predicate: s.predicate,
        source: s.source,
        created_at: s.created_at,
        count,
        error,
    }
}

/// Segments with their member counts.
#[utoipa::path(get, path = "/api/segments", tag = "segments", responses((status = 200, body = [SegmentView])))]
pub async fn list_segments(
    State(app): State<AppState>,
    _who: Authed,
) -> ApiResult<Json<Vec<SegmentView>>> {
    let segs = state_of(&app)?.segments()?;
    Ok(Json(
        segs.into_iter().map(|s| segment_view(&app, s)).collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct NewSegment {
    pub name: String,
    /// A SQL boolean expression over the profile columns.
    pub predicate: String,
    /// A PostgreSQL profile source to read instead of the imported profiles (the predicate
    /// is then checked by PostgreSQL).
    #[serde(default)]
    pub source: Option<String>,
}

/// Adds a segment (contributors); the predicate is checked and counted first.
#[utoipa::path(post, path = "/api/segments", tag = "segments", request_body = NewSegment,
    responses((status = 201, body = SegmentView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_segment(
    State(app): State<AppState>,
    who: Authed,
    Json(s): Json<NewSegment>,
) -> ApiResult<(StatusCode, Json<SegmentView>)> {
    let count = ops::add_segment(
        &app.home,
        &who.actor,
        &s.name,
        &s.predicate,
        s.source.as_deref(),
    )?;
    let rec = state_of(&app)?.segment(&s.name)?;
    Ok((
        StatusCode::CREATED,
        Json(SegmentView {
            name: rec.name,
            predicate: rec.predicate,
            source: rec.source,
            created_at: rec.created_at,
            count: Some(count),
            error: None,
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PreviewParams {
    /// How many matching profiles to show (at most 100).
    pub sample: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct SegmentPreview {
    pub name: String,
    pub predicate: String,
    pub count: u64,
    pub columns: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub sample: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// A segment with its count and a sample of its profiles (contributors: the sample holds
/// personal data; viewers get the count only).
#[utoipa::path(get, path = "/api/segments/{name}", tag = "segments", params(("name" = String, Path), PreviewParams),
    responses((status = 200, body = SegmentPreview), (status = 404, body = ErrorBody)))]
pub async fn get_segment(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
    Query(q): Query<PreviewParams>,
) -> ApiResult<Json<SegmentPreview>> {
    let s = state_of(&app)?.segment(&name)?;
    let sample = if who.actor.role >= Role::Contributor {
        q.sample.unwrap_or(5).min(100)
    } else {
        0
    };
    let p = app
        .home
        .profiles_of(s.source.as_deref())
        .map_err(ApiError::internal)?
        .preview(&s.predicate, sample)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()))?;
    Ok(Json(SegmentPreview {
        name: s.name,
        predicate: s.predicate,
        count: p.count,
        columns: p.columns,
        sample: p.sample,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct SegmentChange {
    pub predicate: String,
}

/// Changes a segment's predicate (contributors).
#[utoipa::path(put, path = "/api/segments/{name}", tag = "segments", params(("name" = String, Path)), request_body = SegmentChange,
    responses((status = 200, body = SegmentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_segment(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
    Json(c): Json<SegmentChange>,
) -> ApiResult<Json<SegmentView>> {
    let count = ops::update_segment(&app.home, &who.actor, &name, &c.predicate)?;
    let rec = state_of(&app)?.segment(&name)?;
    Ok(Json(SegmentView {
        name: rec.name,
        predicate: rec.predicate,
        source: rec.source,
        created_at: rec.created_at,
        count: Some(count),
        error: None,
    }))
}

/// Removes a segment no export uses (contributors).
#[utoipa::path(delete, path = "/api/segments/{name}", tag = "segments", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_segment(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::remove_segment(&app.home, &who.actor, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct ProfilesInfo {
    pub count: u64,
    pub key_column: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<crate::profiles::Column>,
    /// Where "refresh" reads from.
    pub source: Option<ProfileSource>,
}

/// The profile store: count, columns and types, refresh source (contributors).
#[utoipa::path(get, path = "/api/profiles", tag = "profiles", responses((status = 200, body = ProfilesInfo), (status = 403, body = ErrorBody)))]
pub async fn profiles(State(app): State<AppState>, who: Authed) -> ApiResult<Json<ProfilesInfo>> {
    who.require(Role::Contributor, "reading the profile columns")?;
    let store = app.home.profiles().map_err(ApiError::internal)?;
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
        source: ops::profile_source(&app.home)?,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ImportParams {
    /// The column that identifies a profile.
    pub key: Option<String>,
    /// csv, ndjson or parquet (with an uploaded body: required).
    pub format: Option<String>,
    /// A file the server reads (instead of a body); remembered for "refresh".
    pub path: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportAnswer {
    pub rows: u64,
    pub key_column: String,
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<crate::profiles::Column>,
    pub seconds: f64,
    /// Exports that run after every refresh and were started.
    pub started: Vec<String>,
}

/// Imports profiles (admins): the request body (with `format` and `key`), or a file on the
/// server (`path`, remembered as the source of "refresh"). Atomic: a refused file changes
/// nothing. Exports scheduled "after every refresh" start afterwards.
#[utoipa::path(post, path = "/api/profiles/import", tag = "profiles", params(ImportParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
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
    let report = if let Some(path) = q.path.clone() {
        let source = ProfileSource {
            path,
            format: q.format.clone(),
            key,
        };
        let (home, actor) = (app.home.clone(), who.actor.clone());
        tokio::task::spawn_blocking(move || ops::import_profiles(&home, &actor, &source))
            .await
            .map_err(ApiError::internal)??
    } else {
        let format: crate::profiles::Format = q
            .format
            .as_deref()
            .ok_or_else(|| "an uploaded file needs ?format=csv|ndjson|parquet".to_string())
            .and_then(|f| f.parse())
            .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m))?;
        let dir = app.home.root().join("uploads");
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
            let (home, actor, f) = (app.home.clone(), who.actor.clone(), file.clone());
            tokio::task::spawn_blocking(move || {
                ops::import_upload(
                    &home,
                    &actor,
                    &f,
                    Some(format.as_str()),
                    &key,
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
    Ok(Json(ImportAnswer {
        rows: report.rows,
        key_column: report.key_column,
        columns: report.columns,
        seconds: report.duration.as_secs_f64(),
        started,
    }))
}

/// Tells the scheduler the profiles changed; the exports it starts.
async fn after_refresh(app: &AppState) -> Vec<String> {
    app.runs.publish(Event::ProfilesRefreshed);
    super::scheduler::run_after_refresh(app).await
}

/// Imports the remembered profile source again (contributors); exports scheduled "after
/// every refresh" start afterwards.
#[utoipa::path(post, path = "/api/profiles/refresh", tag = "profiles",
    responses((status = 200, body = ImportAnswer), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn refresh_profiles(
    State(app): State<AppState>,
    who: Authed,
) -> ApiResult<Json<ImportAnswer>> {
    let (home, actor) = (app.home.clone(), who.actor.clone());
    let report = tokio::task::spawn_blocking(move || ops::refresh_profiles(&home, &actor))
        .await
        .map_err(ApiError::internal)??;
    let started = after_refresh(&app).await;
    Ok(Json(ImportAnswer {
        rows: report.rows,
        key_column: report.key_column,
        columns: report.columns,
        seconds: report.duration.as_secs_f64(),
        started,
    }))
}

// --- exports and runs ---

#[derive(Serialize, ToSchema)]
pub struct ExportView {
    #[schema(value_type = Object)]
    pub config: ExportConfig,
    /// The run in progress, if any.
    pub running: Option<ActiveRun>,
    #[schema(value_type = Option<Object>)]
    pub last_run: Option<RunRecord>,
    /// The next scheduled tick (cron schedules that are not paused).
    pub next_run_at: Option<String>,
    /// Whether the caller may change and run it.
    pub can_edit: bool,
}

fn export_view(
    app: &AppState,
    state: &crate::state::StateStore,
    who: &Authed,
    e: ExportConfig,
) -> ApiResult<ExportView> {
    let last_run = state.runs(Some(&e.name), 1)?.into_iter().next();
    let can_edit = who.actor.role >= Role::Contributor
        && ops::check_export_access(state, &who.actor, &e).is_ok();
    Ok(ExportView {
        running: app.runs.running(&e.name),
        next_run_at: super::scheduler::next_tick(&e)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        last_run,
        can_edit,
        config: e,
    })
}

/// Every export with its state.
#[utoipa::path(get, path = "/api/exports", tag = "exports", responses((status = 200, body = [ExportView])))]
pub async fn list_exports(
    State(app): State<AppState>,
    who: Authed,
) -> ApiResult<Json<Vec<ExportView>>> {
    let state = state_of(&app)?;
    let list = state
        .exports()?
        .into_iter()
        .map(|e| export_view(&app, &state, &who, e))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(list))
}

/// Adds an export (contributors, on a connection they may use); the audience and mapping
/// are checked with Mailchimp.
#[utoipa::path(post, path = "/api/exports", tag = "exports", request_body(content = Object, description = "the export: name, connection, audience, email_field, first_name, last_name, merge [{tag, column}], segments [{segment, tag}], status_if_new, removal, max_profiles, create_merge_fields, updated_at_field, schedule {kind: manual|cron|after_refresh, cron, timezone}, paused"),
    responses((status = 201, body = ExportView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_export(
    State(app): State<AppState>,
    who: Authed,
    Json(input): Json<ExportInput>,
) -> ApiResult<(StatusCode, Json<ExportView>)> {
    let config = ops::save_export(&app.home, &who.actor, input, SaveMode::Create).await?;
    let state = state_of(&app)?;
    Ok((
        StatusCode::CREATED,
        Json(export_view(&app, &state, &who, config)?),
    ))
}

/// One export.
#[utoipa::path(get, path = "/api/exports/{name}", tag = "exports", params(("name" = String, Path)),
    responses((status = 200, body = ExportView), (status = 404, body = ErrorBody)))]
pub async fn get_export(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<ExportView>> {
    let state = state_of(&app)?;
    let e = state.export(&name)?;
    Ok(Json(export_view(&app, &state, &who, e)?))
}

/// Replaces an export's configuration (contributors with access). Another audience or
/// connection starts it afresh there.
#[utoipa::path(put, path = "/api/exports/{name}", tag = "exports", params(("name" = String, Path)), request_body(content = Object, description = "as for POST /api/exports"),
    responses((status = 200, body = ExportView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_export(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
    Json(mut input): Json<ExportInput>,
) -> ApiResult<Json<ExportView>> {
    if input.name != name {
        if input.name.is_empty() {
            input.name = name.clone();
        } else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("the body names export \"{}\", the path \"{name}\": an export cannot be renamed", input.name),
            ));
        }
    }
    let state = state_of(&app)?;
    ops::check_export_access(&state, &who.actor, &state.export(&name)?)?;
    let config = ops::save_export(&app.home, &who.actor, input, SaveMode::Replace).await?;
    Ok(Json(export_view(&app, &state, &who, config)?))
}

/// Removes an export (contributors with access): its schedule stops at once, a running run
/// is cancelled, its snapshot is dropped; its run history stays.
#[utoipa::path(delete, path = "/api/exports/{name}", tag = "exports", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_export(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    remove_export_now(&app, &who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes an export once its run (if any) has stopped, keeping the scheduler from starting
/// one meanwhile, so that nothing writes for an export that is gone; shared with the web UI.
pub async fn remove_export_now(app: &AppState, who: &Authed, name: &str) -> ApiResult<()> {
    who.require(Role::Contributor, "removing an export")?;
    {
        let state = state_of(app)?;
        ops::check_export_access(&state, &who.actor, &state.export(name)?)?;
    }
    let _held = app
        .runs
        .hold_and_stop(name, std::time::Duration::from_secs(30))
        .await;
    ops::remove_export(&app.home, &who.actor, name)?;
    Ok(())
}

/// Pauses an export's schedule.
#[utoipa::path(post, path = "/api/exports/{name}/pause", tag = "exports", params(("name" = String, Path)),
    responses((status = 200, body = ExportView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pause_export(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<ExportView>> {
    let e = ops::set_paused(&app.home, &who.actor, &name, true)?;
    Ok(Json(export_view(&app, &state_of(&app)?, &who, e)?))
}

/// Resumes an export's schedule.
#[utoipa::path(post, path = "/api/exports/{name}/resume", tag = "exports", params(("name" = String, Path)),
    responses((status = 200, body = ExportView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn resume_export(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<ExportView>> {
    let e = ops::set_paused(&app.home, &who.actor, &name, false)?;
    Ok(Json(export_view(&app, &state_of(&app)?, &who, e)?))
}

#[derive(Serialize, ToSchema)]
pub struct StartedRun {
    pub run_id: i64,
    pub export: String,
    /// Where to follow it.
    pub url: String,
}

/// Starts a run now ("Run now"; contributors with access). 409 when it is running already.
#[utoipa::path(post, path = "/api/exports/{name}/runs", tag = "runs", params(("name" = String, Path)),
    responses((status = 202, body = StartedRun), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn run_export(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<StartedRun>)> {
    let run_id = start_run(&app, &who, &name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(StartedRun {
            run_id,
            export: name,
            url: format!("/api/runs/{run_id}"),
        }),
    ))
}

/// Checks that `who` may run `export` and starts it; shared with the web UI.
pub async fn start_run(app: &AppState, who: &Authed, export: &str) -> ApiResult<i64> {
    who.require(Role::Contributor, "running an export")?;
    {
        let state = state_of(app)?;
        let e = state.export(export)?;
        ops::check_export_access(&state, &who.actor, &e)?;
        state.audit(&who.actor.name, "export.run", export, "run now")?;
    }
    Ok(app
        .runs
        .start(export, &format!("manual:{}", who.actor.name))
        .await?)
}

/// Asks the running run of an export to stop at its next checkpoint.
#[utoipa::path(post, path = "/api/exports/{name}/cancel", tag = "runs", params(("name" = String, Path)),
    responses((status = 202, body = StartedRun), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_export(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<StartedRun>)> {
    let run_id = cancel(&app, &who, &name)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(StartedRun {
            run_id,
            export: name,
            url: format!("/api/runs/{run_id}"),
        }),
    ))
}

/// Checks that `who` may cancel `export`'s run and asks it to stop; shared with the web UI.
pub fn cancel(app: &AppState, who: &Authed, export: &str) -> ApiResult<i64> {
    who.require(Role::Contributor, "cancelling a run")?;
    let state = state_of(app)?;
    let e = state.export(export)?;
    ops::check_export_access(&state, &who.actor, &e)?;
    let run_id = app.runs.cancel(export).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("export \"{export}\" is not running"),
        )
    })?;
    state.audit(
        &who.actor.name,
        "run.cancel",
        export,
        &format!("run {run_id}"),
    )?;
    Ok(run_id)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RunsParams {
    pub export: Option<String>,
    /// At most this many, newest first (default 50, at most 1000).
    pub limit: Option<usize>,
}

/// The history of runs, newest first.
#[utoipa::path(get, path = "/api/runs", tag = "runs", params(RunsParams), responses((status = 200, body = [Object])))]
pub async fn list_runs(
    State(app): State<AppState>,
    _who: Authed,
    Query(q): Query<RunsParams>,
) -> ApiResult<Json<Vec<RunRecord>>> {
    let limit = q.limit.unwrap_or(50).min(1000);
    Ok(Json(state_of(&app)?.runs(q.export.as_deref(), limit)?))
}

#[derive(Serialize, ToSchema)]
pub struct RunView {
    #[schema(value_type = Object)]
    pub run: RunRecord,
    /// Live progress while it runs.
    pub progress: Option<ActiveRun>,
    /// Records not sent (refused or failed), as recorded so far.
    pub errors: u64,
}

/// One run, with its live progress while it runs.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", params(("id" = i64, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
pub async fn get_run(
    State(app): State<AppState>,
    _who: Authed,
    Path(id): Path<i64>,
) -> ApiResult<Json<RunView>> {
    let state = state_of(&app)?;
    let run = state.run(id)?;
    let errors = state.run_errors(id)?.len() as u64;
    Ok(Json(RunView {
        progress: app.runs.progress(id),
        run,
        errors,
    }))
}

/// Every record a run could not send and why, as CSV (`profile_key,email,reason`).
#[utoipa::path(get, path = "/api/runs/{id}/errors", tag = "runs", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
pub async fn run_errors(
    State(app): State<AppState>,
    _who: Authed,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let state = state_of(&app)?;
    state.run(id)?;
    let errors = state.run_errors(id)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["profile_key", "email", "reason"])
        .map_err(ApiError::internal)?;
    for e in &errors {
        w.write_record([&e.profile_key, &e.email, &e.reason])
            .map_err(ApiError::internal)?;
    }
    let body = w.into_inner().map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"run-{id}-errors.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Asks a running run to stop at its next checkpoint.
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs", params(("id" = i64, Path)),
    responses((status = 202, body = StartedRun), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_run(
    State(app): State<AppState>,
    who: Authed,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<StartedRun>)> {
    who.require(Role::Contributor, "cancelling a run")?;
    let run = state_of(&app)?.run(id)?;
    if app.runs.progress(id).is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("run {id} is not running"),
        ));
    }
    let run_id = cancel(&app, &who, &run.export)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(StartedRun {
            run_id,
            export: run.export,
            url: format!("/api/runs/{run_id}"),
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditParams {
    pub limit: Option<usize>,
    /// Entries older than this id (paging).
    pub before: Option<i64>,
}

/// The audit log, newest first (admins): who changed what, when. Never a secret.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = [crate::state::AuditEntry]), (status = 403, body = ErrorBody)))]
pub async fn audit_log(
    State(app): State<AppState>,
    who: Authed,
    Query(q): Query<AuditParams>,
) -> ApiResult<Json<Vec<crate::state::AuditEntry>>> {
    who.require(Role::Admin, "reading the audit log")?;
    Ok(Json(
        state_of(&app)?.audit_log(q.limit.unwrap_or(100).min(1000), q.before)?,
    ))
}
