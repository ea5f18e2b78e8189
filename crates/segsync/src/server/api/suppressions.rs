//! Suppression lists and remembered refusals: `/api/suppressions` (the installation's list:
//! admins edit it) and `/api/exports/{name}/suppressions` and `.../refusals` (whoever may
//! manage the export). Entries name people: viewers get the counts only.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiResult;
use crate::ops::{self, OpError, SuppressionInput};
use crate::server::auth::Authed;
use crate::server::extract::{Json, Path};
use crate::server::{AppState, ErrorBody};
use crate::state::{RefusalRecord, Suppression, SuppressionKind};

/// A suppression list: how many entries, and the entries themselves for those who may
/// manage it (viewers never see addresses or keys).
#[derive(Serialize, ToSchema)]
pub struct SuppressionList {
    pub count: u64,
    /// Whether `entries` holds them (false for viewers: counts only).
    pub shown: bool,
    pub entries: Vec<Suppression>,
}

/// The refusals an export remembers, as [`SuppressionList`].
#[derive(Serialize, ToSchema)]
pub struct RefusalList {
    pub count: u64,
    pub shown: bool,
    pub entries: Vec<RefusalRecord>,
}

/// An entry to add.
#[derive(Deserialize, ToSchema)]
pub struct NewSuppression {
    pub kind: SuppressionKind,
    /// The address (normalised when kept) or the profile key.
    pub value: String,
    #[serde(default)]
    pub note: String,
}

/// A note for a refusal moved to the suppression list.
#[derive(Deserialize, ToSchema, Default)]
pub struct SuppressNote {
    /// Why; by default, Mailchimp's reason for the refusal.
    #[serde(default)]
    pub note: String,
}

/// The entries for those who may read them (who may manage the export, for its list), the
/// count for everyone else.
fn list(app: &AppState, who: &Authed, export: Option<&str>) -> ApiResult<SuppressionList> {
    let count = ops::suppression_count(&app.app, export)? as u64;
    match ops::suppressions(&app.app, &who.actor, export) {
        Ok(entries) => Ok(SuppressionList {
            count: entries.len() as u64,
            shown: true,
            entries,
        }),
        Err(OpError::Forbidden(_)) => Ok(SuppressionList {
            count,
            shown: false,
            entries: Vec::new(),
        }),
        Err(e) => Err(e.into()),
    }
}

fn add(
    app: &AppState,
    who: &Authed,
    export: Option<&str>,
    body: NewSuppression,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    let input = SuppressionInput {
        kind: body.kind,
        value: body.value,
        note: body.note,
    };
    let s = ops::add_suppression(&app.app, &who.actor, export, &input)?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// The installation's suppression list (every export): entries for contributors and admins,
/// the count for viewers.
#[utoipa::path(get, path = "/api/suppressions", tag = "suppressions",
    responses((status = 200, body = SuppressionList)))]
pub async fn installation_list(
    State(app): State<AppState>,
    who: Authed,
) -> ApiResult<Json<SuppressionList>> {
    Ok(Json(list(&app, &who, None)?))
}

/// Adds an address or a profile key to the installation's list (admins): never sent by any
/// export from the next run on.
#[utoipa::path(post, path = "/api/suppressions", tag = "suppressions", request_body = NewSuppression,
    responses((status = 201, body = Suppression), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn installation_add(
    State(app): State<AppState>,
    who: Authed,
    Json(body): Json<NewSuppression>,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    add(&app, &who, None, body)
}

/// Takes an entry off the installation's list (admins).
#[utoipa::path(delete, path = "/api/suppressions/{kind}/{value}", tag = "suppressions",
    params(("kind" = SuppressionKind, Path), ("value" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn installation_remove(
    State(app): State<AppState>,
    who: Authed,
    Path((kind, value)): Path<(SuppressionKind, String)>,
) -> ApiResult<StatusCode> {
    ops::remove_suppression(&app.app, &who.actor, None, kind, &value)?;
    Ok(StatusCode::NO_CONTENT)
}

/// An export's suppression list: entries for contributors and admins, the count for viewers.
#[utoipa::path(get, path = "/api/exports/{name}/suppressions", tag = "suppressions",
    params(("name" = String, Path)),
    responses((status = 200, body = SuppressionList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn export_list(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<SuppressionList>> {
    Ok(Json(list(&app, &who, Some(&name))?))
}

/// Adds an address or a profile key to an export's list (contributors with access to the
/// export).
#[utoipa::path(post, path = "/api/exports/{name}/suppressions", tag = "suppressions",
    request_body = NewSuppression, params(("name" = String, Path)),
    responses((status = 201, body = Suppression), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_add(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
    Json(body): Json<NewSuppression>,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    add(&app, &who, Some(&name), body)
}

/// Takes an entry off an export's list.
#[utoipa::path(delete, path = "/api/exports/{name}/suppressions/{kind}/{value}", tag = "suppressions",
    params(("name" = String, Path), ("kind" = SuppressionKind, Path), ("value" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_remove(
    State(app): State<AppState>,
    who: Authed,
    Path((name, kind, value)): Path<(String, SuppressionKind, String)>,
) -> ApiResult<StatusCode> {
    ops::remove_suppression(&app.app, &who.actor, Some(&name), kind, &value)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The addresses Mailchimp refused for good that the export holds back until their
/// profile's content changes: entries for contributors and admins, the count for viewers.
#[utoipa::path(get, path = "/api/exports/{name}/refusals", tag = "suppressions",
    params(("name" = String, Path)),
    responses((status = 200, body = RefusalList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn refusals(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<RefusalList>> {
    let count = ops::refusal_count(&app.app, &name)? as u64;
    match ops::refusals(&app.app, &who.actor, &name) {
        Ok(entries) => Ok(Json(RefusalList {
            count: entries.len() as u64,
            shown: true,
            entries,
        })),
        Err(OpError::Forbidden(_)) => Ok(Json(RefusalList {
            count,
            shown: false,
            entries: Vec::new(),
        })),
        Err(e) => Err(e.into()),
    }
}

/// Forgets a remembered refusal: the next run sends the address again ("retry").
#[utoipa::path(delete, path = "/api/exports/{name}/refusals/{email}", tag = "suppressions",
    params(("name" = String, Path), ("email" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn forget_refusal(
    State(app): State<AppState>,
    who: Authed,
    Path((name, email)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ops::forget_refusal(&app.app, &who.actor, &name, &email)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves a remembered refusal to the export's suppression list: never sent again.
#[utoipa::path(post, path = "/api/exports/{name}/refusals/{email}/suppress", tag = "suppressions",
    request_body = SuppressNote, params(("name" = String, Path), ("email" = String, Path)),
    responses((status = 201, body = Suppression), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn suppress_refusal(
    State(app): State<AppState>,
    who: Authed,
    Path((name, email)): Path<(String, String)>,
    Json(body): Json<SuppressNote>,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    let s = ops::suppress_refusal(&app.app, &who.actor, &name, &email, &body.note)?;
    Ok((StatusCode::CREATED, Json(s)))
}
