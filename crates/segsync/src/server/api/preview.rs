//! A run's plan before running it: `POST /api/exports/{name}/plan` and the export page's
//! "Preview run" show what `segsync plan` shows (members to create, update and move, tags
//! to add and remove, removals, records refused and members skipped with their reasons, and
//! the Mailchimp requests the run will make). Nothing is sent: the plan reads the audience
//! and the profiles, as a run does before its first write.
//!
//! Planning evaluates every segment of the export over every profile, so it takes one of
//! the server's predicate slots (`--predicate-slots`), off the async workers.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{state_of, ApiResult};
use crate::engine::{self, PlanReport};
use crate::ops::{self, OpError};
use crate::server::auth::Authed;
use crate::server::extract::{Json, Path};
use crate::server::{ApiError, AppState, ErrorBody};
use crate::state::Role;

/// At most this many refused and skipped records are listed in a plan's answer; the
/// totals count them all.
pub const LISTED: usize = 1000;

/// What a run of the export would do now.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    pub export: String,
    /// The audience's name and id, as "Name (id)".
    pub audience: String,
    /// Profile rows the export's segments select.
    pub profiles: u64,
    /// Distinct members they give, after merging profiles that share an address.
    pub members: u64,
    /// Profiles merged into another one's member (same address).
    pub duplicates: u64,
    /// Members whose content and tags are already in Mailchimp.
    pub unchanged: u64,
    /// Members on a suppression list: not sent, left as they are in Mailchimp.
    pub suppressed: u64,
    /// Members Mailchimp refused for good before, unchanged since: not sent.
    pub remembered_refusals: u64,
    pub creates: usize,
    pub updates: usize,
    /// Members moved to their profile's new address.
    pub moves: usize,
    pub tag_adds: usize,
    pub tag_removes: usize,
    /// Members to archive (removal policy "archive").
    pub archives: usize,
    /// Members to unsubscribe (removal policy "unsubscribe").
    pub unsubscribes: usize,
    /// Mailchimp requests the run will make, in all and per endpoint.
    pub requests: usize,
    pub requests_by_endpoint: Vec<EndpointCount>,
    /// Merge fields the run will create in the audience first.
    pub merge_fields_to_create: Vec<String>,
    /// Tags the run will create in the audience first (those it gives that the audience
    /// lacks).
    pub tags_to_create: Vec<String>,
    /// Records that will not be sent (an invalid address, a value Mailchimp refuses).
    pub refused_total: usize,
    /// The first [`LISTED`] of them.
    pub refused: Vec<PlannedRecord>,
    /// Members left alone on purpose (an address of a cleaned or archived member).
    pub skipped_total: usize,
    /// The first [`LISTED`] of them.
    pub skipped: Vec<PlannedRecord>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointCount {
    /// Method and path, as `POST /lists/{list_id}`.
    pub endpoint: String,
    pub requests: usize,
}

/// One record a run will not send, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlannedRecord {
    /// The profile's key (empty when the record stands for a member, not a profile).
    pub profile_key: String,
    pub email: String,
    pub reason: String,
}

impl From<PlanReport> for PlanView {
    fn from(r: PlanReport) -> PlanView {
        let listed = |records: Vec<segsync_core::RecordError>| -> Vec<PlannedRecord> {
            records
                .into_iter()
                .take(LISTED)
                .map(|e| PlannedRecord {
                    profile_key: e.profile_key,
                    email: e.email,
                    reason: e.reason,
                })
                .collect()
        };
        let s = r.summary;
        PlanView {
            export: r.export,
            audience: r.audience,
            profiles: r.profiles,
            members: r.members,
            duplicates: r.duplicates,
            unchanged: r.unchanged,
            suppressed: r.suppressed,
            remembered_refusals: r.remembered_refusals,
            creates: s.creates,
            updates: s.updates,
            moves: s.moves,
            tag_adds: s.tag_adds,
            tag_removes: s.tag_removes,
            archives: s.archives,
            unsubscribes: s.unsubscribes,
            requests: s.requests,
            requests_by_endpoint: s
                .requests_by_endpoint
                .into_iter()
                .map(|(endpoint, requests)| EndpointCount { endpoint, requests })
                .collect(),
            merge_fields_to_create: r.merge_fields_to_create,
            tags_to_create: r.tags_to_create,
            refused_total: r.refused.len(),
            refused: listed(r.refused),
            skipped_total: r.skipped.len(),
            skipped: listed(r.skipped),
        }
    }
}

/// What a run of the export would do now (contributors with access; the plan names the
/// records it would refuse). Sends nothing to Mailchimp but the reads a run starts with.
/// 409 while the export is running.
#[utoipa::path(post, path = "/api/exports/{name}/plan", tag = "exports", params(("name" = String, Path)),
    responses((status = 200, body = PlanView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn plan_export(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<PlanView>> {
    Ok(Json(plan(&app, &who, &name).await?))
}

/// Checks that `who` may preview `export` and plans a run of it; shared with the web UI.
pub async fn plan(app: &AppState, who: &Authed, export: &str) -> ApiResult<PlanView> {
    who.require(Role::Contributor, "previewing a run")?;
    {
        let state = state_of(app)?;
        ops::check_export_access(&state, &who.actor, &state.export(export)?)?;
    }
    if let Some(r) = app.runs.running(export) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "export \"{export}\" is running (run {}): preview it once that run has ended",
                r.run_id
            ),
        ));
    }
    let core = app.app.clone();
    let settings = app.config.run_settings.clone();
    let name = export.to_string();
    let runtime = tokio::runtime::Handle::current();
    let planned = app
        .predicates
        .run(move || {
            runtime.block_on(async move {
                let mut state = core.state()?;
                let mut prepared = engine::prepare(&core, &mut state, &name, &settings).await?;
                prepared.plan_report().await
            })
        })
        .await?;
    let report = planned.map_err(|e| ApiError::from(OpError::from(e)))?;
    Ok(report.into())
}
