//! Segments: `/api/segments`, with their member counts and, for contributors, a sample of
//! their profiles.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{state_of, ApiResult};
use crate::ops;
use crate::rules::Rule;
use crate::server::auth::Authed;
use crate::server::extract::{Json, Path, Query};
use crate::server::{ApiError, AppState, ErrorBody};
use crate::state::Role;

/// The stored rule of a segment (JSON text), read back.
fn rule_of(s: &crate::state::SegmentRecord) -> Option<Rule> {
    s.rule.as_deref().and_then(|r| crate::rules::parse(r).ok())
}

/// A segment's definition as sent: exactly one of a SQL predicate and a rule.
fn definition(predicate: Option<String>, rule: Option<Rule>) -> Result<ops::Definition, ApiError> {
    let invalid = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
    match (predicate, rule) {
        (Some(p), None) if p.trim().is_empty() => Err(invalid("the predicate is empty")),
        (Some(p), None) => Ok(ops::Definition::Sql(p)),
        (None, Some(r)) => Ok(ops::Definition::Rule(r)),
        (Some(_), Some(_)) => Err(invalid("give either a predicate (SQL) or a rule, not both")),
        (None, None) => Err(invalid("give a predicate (SQL) or a rule")),
    }
}

#[derive(Serialize, ToSchema)]
pub struct SegmentView {
    pub name: String,
    /// The SQL predicate the engine runs (compiled from `rule` when there is one).
    pub predicate: String,
    /// The structured rule the predicate was compiled from (absent: written as SQL).
    pub rule: Option<Rule>,
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
        rule: rule_of(&s),
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
    /// A SQL boolean expression over the profile columns (or give `rule`).
    #[serde(default)]
    #[schema(min_length = 1)]
    pub predicate: Option<String>,
    /// The condition as a structured rule, compiled to the predicate (or give `predicate`).
    #[serde(default)]
    pub rule: Option<Rule>,
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
    let def = definition(s.predicate, s.rule)?;
    let counted = app
        .predicates
        .run(move || {
            ops::add_segment_defined(&installation, &actor, &s.name, &def, s.source.as_deref())
        })
        .await??;
    let rec = state_of(&app)?.segment(&name)?;
    Ok((StatusCode::CREATED, Json(counted_view(rec, counted))))
}

/// A segment just added or changed, with its count and warnings.
fn counted_view(rec: crate::state::SegmentRecord, counted: ops::Counted) -> SegmentView {
    SegmentView {
        rule: rule_of(&rec),
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
    pub rule: Option<Rule>,
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
        rule: rule_of(&s),
        name: s.name,
        predicate: s.predicate,
        count: p.count,
        columns: p.columns,
        sample: p.sample,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct SegmentChange {
    /// The new SQL predicate (or give `rule`).
    #[serde(default)]
    #[schema(min_length = 1)]
    pub predicate: Option<String>,
    /// The new condition as a structured rule (or give `predicate`).
    #[serde(default)]
    pub rule: Option<Rule>,
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
    let def = definition(c.predicate, c.rule)?;
    let counted = app
        .predicates
        .run(move || ops::update_segment_defined(&installation, &actor, &n, &def))
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

#[derive(Deserialize, ToSchema)]
pub struct SegmentDraft {
    /// A SQL predicate (or give `rule`).
    #[serde(default)]
    pub predicate: Option<String>,
    /// A structured rule (or give `predicate`).
    #[serde(default)]
    pub rule: Option<Rule>,
    /// The PostgreSQL profile source it would read (absent: the imported profiles; for
    /// `segment`, that segment's source).
    #[serde(default)]
    pub source: Option<String>,
    /// The segment being edited: the answer then says, per export using it, how many members
    /// would gain or lose its tag.
    #[serde(default)]
    pub segment: Option<String>,
    /// How many matching profiles to show (at most 100; contributors only, viewers get none).
    #[serde(default)]
    pub sample: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct DraftPreview {
    /// The SQL the draft compiles to.
    pub predicate: String,
    /// Profiles for which it holds.
    pub count: u64,
    pub columns: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub sample: Vec<serde_json::Map<String, serde_json::Value>>,
    /// For the segment being edited: per export that uses it, the members that would gain or
    /// lose its tag.
    pub tag_changes: Vec<TagChangeView>,
}

#[derive(Serialize, ToSchema)]
pub struct TagChangeView {
    pub export: String,
    pub tag: String,
    pub gain: u64,
    pub lose: u64,
}

/// Counts a draft segment without saving it (anyone signed in; the sample of profiles for
/// contributors only): the live count of the segment builder. A rule or predicate with a
/// mistake is answered 422 with what and where.
#[utoipa::path(post, path = "/api/segment-preview", tag = "segments", request_body = SegmentDraft,
    responses((status = 200, body = DraftPreview), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn preview_draft(
    State(app): State<AppState>,
    who: Authed,
    Json(d): Json<SegmentDraft>,
) -> ApiResult<Json<DraftPreview>> {
    let sample = if who.actor.role >= Role::Contributor {
        d.sample.unwrap_or(5).min(100)
    } else {
        0
    };
    let def = definition(d.predicate, d.rule)?;
    let mut source = d.source;
    if let Some(seg) = &d.segment {
        source = state_of(&app)?.segment(seg)?.source;
    }
    let installation = app.app.clone();
    let segment = d.segment;
    let (predicate, p, changes) = app
        .predicates
        .run(move || -> Result<_, ApiError> {
            let (predicate, p) =
                ops::builder::preview_draft(&installation, &def, source.as_deref(), sample)?;
            let changes = match &segment {
                Some(s) => ops::builder::tag_changes(&installation, s, &predicate)?,
                None => Vec::new(),
            };
            Ok((predicate, p, changes))
        })
        .await??;
    Ok(Json(DraftPreview {
        predicate,
        count: p.count,
        columns: p.columns,
        sample: p.sample,
        tag_changes: changes
            .into_iter()
            .map(|c| TagChangeView {
                export: c.export,
                tag: c.tag,
                gain: c.gain,
                lose: c.lose,
            })
            .collect(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct StatsParams {
    /// A PostgreSQL profile source (absent: the imported profiles).
    pub source: Option<String>,
}

/// The profile columns with their statistics, for the segment builder's pickers
/// (contributors: the most frequent values can be personal data).
#[utoipa::path(get, path = "/api/profiles/columns", tag = "profiles", params(StatsParams),
    responses((status = 200, body = [crate::rules::stats::ColumnStats]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn column_stats(
    State(app): State<AppState>,
    who: Authed,
    Query(q): Query<StatsParams>,
) -> ApiResult<Json<Vec<crate::rules::stats::ColumnStats>>> {
    who.require(Role::Contributor, "reading the profile columns' values")?;
    if let Some(src) = &q.source {
        state_of(&app)?.profile_source(src)?;
    }
    let installation = app.app.clone();
    let stats = app
        .predicates
        .run(move || ops::builder::column_stats(&installation, q.source.as_deref()))
        .await??;
    Ok(Json(stats))
}

#[derive(Deserialize, ToSchema)]
pub struct SizesRequest {
    /// The chosen segments.
    pub segments: Vec<String>,
    /// The profile column holding the email address.
    pub email_field: String,
    /// The export's limit (0 or absent: none).
    #[serde(default)]
    pub max_profiles: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct SizesView {
    /// Distinct members (addresses, after merging profiles that share one).
    pub members: u64,
    /// Profiles in at least one segment (before merging).
    pub profiles: u64,
    /// Profiles whose address is missing or invalid (not sent).
    pub refused: u64,
    pub segments: Vec<SegmentSize>,
    /// Members in both of each pair of segments.
    pub overlaps: Vec<Overlap>,
    pub max_profiles: Option<u64>,
    /// Whether `members` is over `max_profiles` (a run would be refused).
    pub over_limit: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SegmentSize {
    pub segment: String,
    pub profiles: u64,
    pub members: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Overlap {
    pub a: String,
    pub b: String,
    pub members: u64,
}

/// The distinct members chosen segments give together, as a run counts them (addresses
/// checked and merged), their pairwise overlaps, and the limit check against that number.
#[utoipa::path(post, path = "/api/export-sizes", tag = "exports", request_body = SizesRequest,
    responses((status = 200, body = SizesView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn export_sizes(
    State(app): State<AppState>,
    _who: Authed,
    Json(r): Json<SizesRequest>,
) -> ApiResult<Json<SizesView>> {
    let installation = app.app.clone();
    let names = r.segments.clone();
    let email = r.email_field.clone();
    let c = app
        .predicates
        .run(move || ops::builder::segment_sizes(&installation, &names, &email))
        .await??;
    Ok(Json(sizes_view(&r.segments, c, r.max_profiles)))
}

/// The sizes of `names` as the API and the export form show them.
pub fn sizes_view(
    names: &[String],
    c: crate::rules::sizes::Counted,
    max_profiles: Option<u64>,
) -> SizesView {
    let mut overlaps = Vec::new();
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            overlaps.push(Overlap {
                a: names[i].clone(),
                b: names[j].clone(),
                members: c.overlap[i][j],
            });
        }
    }
    let max = max_profiles.filter(|m| *m > 0);
    SizesView {
        members: c.members,
        profiles: c.profiles,
        refused: c.refused,
        segments: names
            .iter()
            .zip(&c.per_predicate)
            .map(|(n, (profiles, members))| SegmentSize {
                segment: n.clone(),
                profiles: *profiles,
                members: *members,
            })
            .collect(),
        overlaps,
        over_limit: max.is_some_and(|m| c.members > m),
        max_profiles: max,
    }
}
