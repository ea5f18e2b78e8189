//! Segments: `/api/segments`, with their member counts and, for contributors, a sample of
//! their profiles.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{state_of, ApiResult};
use crate::ops;
use crate::server::auth::Authed;
use crate::server::extract::{Json, Path, Query};
use crate::server::{ApiError, AppState, ErrorBody};
use crate::state::Role;

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
    /// What to know about the segment's profile source, in the answers of adding or changing
    /// a segment (e.g. its PostgreSQL role can read tables other than the profiles, which
    /// predicates can then read too); absent when there is nothing to say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn segment_view(s: crate::state::SegmentRecord, counted: Result<u64, String>) -> SegmentView {
    let (count, error) = match counted {
        Ok(n) => (Some(n), None),
        Err(e) => (None, Some(e)),
    };
    SegmentView {
        name: s.name,
        predicate: s.predicate,
        source: s.source,
        created_at: s.created_at,
        count,
        error,
        warnings: Vec::new(),
    }
}

/// Segments with their member counts (counted in one of the server's predicate slots).
#[utoipa::path(get, path = "/api/segments", tag = "segments",
    responses((status = 200, body = [SegmentView]), (status = 503, body = ErrorBody)))]
pub async fn list_segments(
    State(app): State<AppState>,
    _who: Authed,
) -> ApiResult<Json<Vec<SegmentView>>> {
    let segs = state_of(&app)?.segments()?;
    let counted = crate::server::predicates::counted(&app, segs).await?;
    Ok(Json(
        counted
            .into_iter()
            .map(|(s, c)| segment_view(s, c))
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct NewSegment {
    #[schema(schema_with = crate::server::openapi::name)]
    pub name: String,
    /// A SQL boolean expression over the profile columns.
    #[schema(min_length = 1)]
    pub predicate: String,
    /// A PostgreSQL profile source to read instead of the imported profiles (the predicate
    /// is then checked by PostgreSQL).
    #[serde(default)]
    pub source: Option<String>,
}

/// Adds a segment (contributors); the predicate is checked and counted first.
#[utoipa::path(post, path = "/api/segments", tag = "segments", request_body = NewSegment,
    responses((status = 201, body = SegmentView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn add_segment(
    State(app): State<AppState>,
    who: Authed,
    Json(s): Json<NewSegment>,
) -> ApiResult<(StatusCode, Json<SegmentView>)> {
    let (installation, actor, name) = (app.app.clone(), who.actor.clone(), s.name.clone());
    let counted = app
        .predicates
        .run(move || {
            ops::add_segment(
                &installation,
                &actor,
                &s.name,
                &s.predicate,
                s.source.as_deref(),
            )
        })
        .await??;
    let rec = state_of(&app)?.segment(&name)?;
    Ok((StatusCode::CREATED, Json(counted_view(rec, counted))))
}

/// A segment just added or changed, with its count and warnings.
fn counted_view(rec: crate::state::SegmentRecord, counted: ops::Counted) -> SegmentView {
    SegmentView {
        name: rec.name,
        predicate: rec.predicate,
        source: rec.source,
        created_at: rec.created_at,
        count: Some(counted.count),
        error: None,
        warnings: counted.warnings,
    }
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
    responses((status = 200, body = SegmentPreview), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
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
    let (installation, source, predicate) =
        (app.app.clone(), s.source.clone(), s.predicate.clone());
    let p = app
        .predicates
        .run(move || {
            installation
                .profiles_of(source.as_deref())
                .map_err(ApiError::internal)?
                .preview(&predicate, sample)
                .map_err(|e| {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
                })
        })
        .await??;
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
    #[schema(min_length = 1)]
    pub predicate: String,
}

/// Changes a segment's predicate (contributors; admins only when an export on a connection
/// kept for admins uses it: the 403 names those exports).
#[utoipa::path(put, path = "/api/segments/{name}", tag = "segments", params(("name" = String, Path)), request_body = SegmentChange,
    responses((status = 200, body = SegmentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn change_segment(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
    Json(c): Json<SegmentChange>,
) -> ApiResult<Json<SegmentView>> {
    let (installation, actor, n) = (app.app.clone(), who.actor.clone(), name.clone());
    let counted = app
        .predicates
        .run(move || ops::update_segment(&installation, &actor, &n, &c.predicate))
        .await??;
    let rec = state_of(&app)?.segment(&name)?;
    Ok(Json(counted_view(rec, counted)))
}

/// Removes a segment no export uses (contributors; admins only when an export on a
/// connection kept for admins uses it: the 403 names those exports, before the 409).
#[utoipa::path(delete, path = "/api/segments/{name}", tag = "segments", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_segment(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::remove_segment(&app.app, &who.actor, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
