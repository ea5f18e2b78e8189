//! Mailchimp connections: `/api/connections`, their credential check and their audiences.
//! Secrets go in (API keys) and never come out.

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{state_of, ApiResult};
use crate::mailchimp::CredentialKind;
use crate::ops::{self, ConnectionView};
use crate::server::auth::Authed;
use crate::server::extract::{Json, Path};
use crate::server::{AppState, ErrorBody};
use crate::state::Role;

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
    #[schema(schema_with = crate::server::openapi::name)]
    pub name: String,
    #[schema(schema_with = crate::server::openapi::optional_name)]
    pub display_name: Option<String>,
    /// The Mailchimp API key (or use "Authenticate with Mailchimp": POST /api/oauth/mailchimp).
    #[schema(format = Password)]
    pub api_key: String,
    /// The API root; by default from the key's data center.
    pub base_url: Option<String>,
    /// Agreement to the data privacy statement (GET /api/privacy-statement); required.
    #[schema(schema_with = crate::server::openapi::consent)]
    pub accept_privacy_terms: bool,
    #[serde(default)]
    pub share_with_contributors: bool,
    /// Who exports run as (by default the admin adding it).
    #[schema(schema_with = crate::server::openapi::optional_name)]
    pub export_user: Option<String>,
    /// Requests in flight at once over every run on the account, all its connections
    /// together (default 8, leaving room for the account's other apps).
    #[schema(minimum = 1, maximum = 10)]
    pub slot_budget: Option<u32>,
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
        &app.app,
        &who.actor,
        ops::NewConnection {
            name: c.name,
            display_name: c.display_name,
            credential: ops::CredentialInput {
                secret: SecretString::from(c.api_key),
                kind: CredentialKind::ApiKey,
            },
            base_url: c.base_url,
            accept_privacy_terms: c.accept_privacy_terms,
            share_with_contributors: c.share_with_contributors,
            export_user: c.export_user,
            slot_budget: c.slot_budget,
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
    #[schema(schema_with = crate::server::openapi::optional_name)]
    pub display_name: Option<String>,
    pub share_with_contributors: Option<bool>,
    #[schema(schema_with = crate::server::openapi::optional_name)]
    pub export_user: Option<String>,
    /// A new API key (checked with Mailchimp first).
    #[schema(format = Password)]
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    /// Requests in flight at once over every run on the account.
    #[schema(minimum = 1, maximum = 10)]
    pub slot_budget: Option<u32>,
}

/// Changes a connection (admins).
#[utoipa::path(patch, path = "/api/connections/{name}", tag = "connections", params(("name" = String, Path)), request_body = ConnectionChange,
    responses((status = 200, body = ConnectionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn change_connection(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
    Json(c): Json<ConnectionChange>,
) -> ApiResult<Json<ConnectionView>> {
    let view = ops::update_connection(
        &app.app,
        &who.actor,
        &name,
        ops::ConnectionChange {
            display_name: c.display_name,
            share_with_contributors: c.share_with_contributors,
            export_user: c.export_user,
            credential: c.api_key.map(|k| ops::CredentialInput {
                secret: SecretString::from(k),
                kind: CredentialKind::ApiKey,
            }),
            base_url: c.base_url,
            slot_budget: c.slot_budget,
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
    let stopped = ops::remove_connection(&app.app, &who.actor, name)?;
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
    responses((status = 200, body = Ok_), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn test_connection(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Ok_>> {
    who.require(Role::Contributor, "testing a connection")?;
    ops::test_connection(&app.app, &who.actor, &name).await?;
    Ok(Json(Ok_ {
        ok: true,
        message: format!("connection \"{name}\": Mailchimp accepts the credential"),
    }))
}

/// Checks a connection now and records its health: its account's name, and whether
/// Mailchimp accepts the credential (`ok`), refuses it (`revoked`: invalid or revoked), cannot
/// be reached (`unreachable`) or is busy (`rate_limited`). A failed check is an answer (200).
#[utoipa::path(post, path = "/api/connections/{name}/check", tag = "connections", params(("name" = String, Path)),
    responses((status = 200, body = crate::state::ConnectionHealth), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn check_connection(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<crate::state::ConnectionHealth>> {
    who.require(Role::Contributor, "checking a connection")?;
    Ok(Json(
        ops::health::check_connection(&app.app, &who.actor, &name).await?,
    ))
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
    responses((status = 200, body = [Audience]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn audiences(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Audience>>> {
    who.require(Role::Contributor, "listing a connection's audiences")?;
    let lists = ops::audiences(&app.app, &who.actor, &name).await?;
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
