//! The audit log: `/api/audit`, who changed what and when (admins).

use axum::extract::State;
use serde::Deserialize;

use super::{state_of, ApiResult};
use crate::server::auth::Authed;
use crate::server::extract::{Json, Query};
use crate::server::{AppState, ErrorBody};
use crate::state::Role;

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
