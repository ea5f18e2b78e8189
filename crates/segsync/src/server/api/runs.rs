//! Runs: starting and cancelling an export's run (`/api/exports/{name}/runs`, `.../cancel`),
//! the run history (`/api/runs`), one run's progress and the records it could not send.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{state_of, ApiResult};
use crate::ops;
use crate::server::auth::Authed;
use crate::server::extract::{Json, Path, Query};
use crate::server::runs::ActiveRun;
use crate::server::{ApiError, AppState, ErrorBody};
use crate::state::{Role, RunRecord};

#[derive(Serialize, ToSchema)]
pub struct StartedRun {
    pub run_id: i64,
    pub export: String,
    /// Where to follow it.
    pub url: String,
}

impl StartedRun {
    /// The 202 answer for run `run_id` of `export`, with where to follow it.
    fn accepted(run_id: i64, export: String) -> (StatusCode, Json<StartedRun>) {
        let url = format!("/api/runs/{run_id}");
        (
            StatusCode::ACCEPTED,
            Json(StartedRun {
                run_id,
                export,
                url,
            }),
        )
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RunParams {
    /// Evaluate every profile (a full pass), even when only some changed since the last
    /// run (`segsync run --full`).
    pub full: Option<bool>,
}

/// Starts a run now ("Run now"; contributors with access). 409 when it is running already.
#[utoipa::path(post, path = "/api/exports/{name}/runs", tag = "runs", params(("name" = String, Path), RunParams),
    responses((status = 202, body = StartedRun), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn run_export(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
    Query(q): Query<RunParams>,
) -> ApiResult<(StatusCode, Json<StartedRun>)> {
    let run_id = start_run_with(&app, &who, &name, q.full.unwrap_or(false)).await?;
    Ok(StartedRun::accepted(run_id, name))
}

/// Checks that `who` may run `export` and starts it; shared with the web UI.
pub async fn start_run(app: &AppState, who: &Authed, export: &str) -> ApiResult<i64> {
    start_run_with(app, who, export, false).await
}

/// [`start_run`], evaluating every profile when `full`.
pub async fn start_run_with(
    app: &AppState,
    who: &Authed,
    export: &str,
    full: bool,
) -> ApiResult<i64> {
    who.require(Role::Contributor, "running an export")?;
    {
        let state = state_of(app)?;
        let e = state.export(export)?;
        ops::check_export_access(&state, &who.actor, &e)?;
        let detail = if full {
            "run now, full pass"
        } else {
            "run now"
        };
        state.audit(&who.actor.name, "export.run", export, detail)?;
    }
    Ok(app
        .runs
        .start_full(export, &format!("manual:{}", who.actor.name), full)
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
    Ok(StartedRun::accepted(run_id, name))
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
#[utoipa::path(get, path = "/api/runs", tag = "runs", params(RunsParams), responses((status = 200, body = [RunRecord])))]
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

/// Every record a run could not send and why, as CSV (`profile_key,email,reason`;
/// contributors and admins: the records name people, viewers see their count in the run); a cell
/// that starts like a spreadsheet formula (`=`, `+`, `-`, `@`, tab, carriage return) has a
/// `'` in front, so that a spreadsheet shows it as text.
#[utoipa::path(get, path = "/api/runs/{id}/errors", tag = "runs", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv", body = String, headers(
        ("Content-Disposition" = String, description = "attachment; filename=\"run-{id}-errors.csv\""),
        ("X-Content-Type-Options" = String, description = "nosniff"),
        ("Cache-Control" = String, description = "no-store"),
    )), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn run_errors(
    State(app): State<AppState>,
    who: Authed,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    who.require(
        Role::Contributor,
        "reading the records a run could not send",
    )?;
    let state = state_of(&app)?;
    state.run(id)?;
    let errors = state.run_errors(id)?;
    let body = crate::csv_out::write_run_errors(Vec::new(), &errors).map_err(ApiError::internal)?;
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

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ChangesParams {
    /// `csv` (the default) or `jsonl`.
    #[param(inline)]
    pub format: Option<crate::change_log::Format>,
}

/// The run's change log: one line per member per action (created, updated, moved, tagged,
/// untagged, unsubscribed, archived, forgotten, refused), as CSV
/// (`action,email,detail,profile_key`, cells that start like a formula with a `'` in front)
/// or JSON lines; streamed in pages. Contributors and admins: it names people.
#[utoipa::path(get, path = "/api/runs/{id}/changes", tag = "runs", params(("id" = i64, Path), ChangesParams),
    responses((status = 200, content((String = "text/csv"), (String = "application/x-ndjson")), headers(
        ("Content-Disposition" = String, description = "attachment; filename=\"run-{id}-changes.csv\" (or .jsonl)"),
        ("X-Content-Type-Options" = String, description = "nosniff"),
        ("Cache-Control" = String, description = "no-store"),
    )), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn run_changes(
    State(app): State<AppState>,
    who: Authed,
    Path(id): Path<i64>,
    Query(q): Query<ChangesParams>,
) -> ApiResult<Response> {
    who.require(Role::Contributor, "reading a run's change log")?;
    let format = q.format.unwrap_or(crate::change_log::Format::Csv);
    let state = state_of(&app)?;
    state.run(id)?;
    let pages = crate::change_log::Pages::new(id, format);
    let body = futures_util::stream::unfold(Some((state, pages)), |next| async move {
        let (state, mut pages) = next?;
        let chunk = tokio::task::spawn_blocking(move || {
            let chunk = pages.next(&state);
            (chunk, state, pages)
        })
        .await;
        match chunk {
            Ok((Ok(Some(bytes)), state, pages)) => {
                Some((Ok::<_, std::io::Error>(bytes), Some((state, pages))))
            }
            Ok((Ok(None), _, _)) => None,
            Ok((Err(e), _, _)) => Some((Err(std::io::Error::other(e.to_string())), None)),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"run-{id}-changes.{}\"",
                    format.extension()
                ),
            ),
        ],
        axum::body::Body::from_stream(body),
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
    Ok(StartedRun::accepted(run_id, run.export))
}
