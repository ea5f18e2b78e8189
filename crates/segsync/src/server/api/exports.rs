//! Exports: `/api/exports`, their configuration, state and schedule (pause, resume).
//! Starting and cancelling their runs is in [`super::runs`].

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{state_of, ApiResult};
use crate::ops::{self, ExportInput, SaveMode};
use crate::server::auth::Authed;
use crate::server::extract::{Json, Path};
use crate::server::runs::ActiveRun;
use crate::server::{ApiError, AppState, ErrorBody};
use crate::state::{ExportConfig, Role, RunRecord};

#[derive(Serialize, ToSchema)]
pub struct ExportView {
    pub config: ExportConfig,
    /// The run in progress, if any.
    pub running: Option<ActiveRun>,
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
        next_run_at: crate::server::scheduler::next_tick(&e)
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
#[utoipa::path(post, path = "/api/exports", tag = "exports", request_body = ExportInput,
    responses((status = 201, body = ExportView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_export(
    State(app): State<AppState>,
    who: Authed,
    Json(input): Json<ExportInput>,
) -> ApiResult<(StatusCode, Json<ExportView>)> {
    let config = ops::save_export(&app.app, &who.actor, input, SaveMode::Create).await?;
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
#[utoipa::path(put, path = "/api/exports/{name}", tag = "exports", params(("name" = String, Path)), request_body(content = ExportInput, description = "as for POST /api/exports; `name` is the path's (or empty)"),
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
    let config = ops::save_export(&app.app, &who.actor, input, SaveMode::Replace).await?;
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
    ops::remove_export(&app.app, &who.actor, name)?;
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
    let e = ops::set_paused(&app.app, &who.actor, &name, true)?;
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
    let e = ops::set_paused(&app.app, &who.actor, &name, false)?;
    Ok(Json(export_view(&app, &state_of(&app)?, &who, e)?))
}
