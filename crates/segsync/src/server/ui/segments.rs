//! Data > Segments: the segments with their member counts, a segment's preview (a sample of
//! its profiles for contributors and admins; the count only for viewers), adding, changing
//! and removing one (contributors), with the predicate's error shown by the form.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, csrf, Nav, Page};
use super::{num, redirect_notice, seg, state_of, when, FormData, OrPage, PageResult, User};
use crate::ops;
use crate::server::auth::Authed;
pub use crate::server::predicates::counted;
use crate::server::{ApiError, AppState};
use crate::state::Role;

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// Rows shown in a segment's preview.
const SAMPLE_ROWS: usize = 10;

/// The profile columns (empty before the first import).
pub async fn columns(app: &AppState) -> Result<Vec<crate::profiles::Column>, ApiError> {
    let app = app.app.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<_> { Ok(app.profiles()?.columns()?) })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// ` Warning: …` for each warning, to follow a notice.
fn warned(warnings: &[String]) -> String {
    warnings.iter().map(|w| format!(" Warning: {w}.")).collect()
}

fn count_cell(c: &Result<u64, String>) -> Markup {
    match c {
        Ok(n) => html! { (num(*n)) },
        Err(e) => html! { span class="badge badge-error" title=(e) { "cannot count" } },
    }
}

/// What the add form holds.
#[derive(Default)]
struct AddForm {
    name: String,
    predicate: String,
    /// The builder's rule (JSON), empty when the condition is SQL.
    rule: String,
    /// The database profile source it reads; empty: the imported profiles.
    source: String,
}

/// The "Profiles from" selector: the imported profiles or a database source.
fn source_field(sources: &[crate::sources::SourceView], chosen: &str) -> Markup {
    html! {
        div class="field" {
            label for="seg-source" { "Profiles from" }
            select id="seg-source" name="source" {
                option value="" selected[chosen.is_empty()] { "Imported profiles" }
                @for s in sources {
                    option value=(s.name) selected[chosen == s.name] {
                        (s.name) " (" (if s.kind == "mysql" { "MySQL / MariaDB" } else { "PostgreSQL" }) ")"
                    }
                }
            }
            span class="hint" { "Where the segment's profiles are: its condition is checked and counted there. A segment keeps its source." }
        }
    }
}

/// What a segment form defines: the builder's rule when it has one, else the SQL.
fn definition(rule: &str, predicate: &str) -> Result<ops::Definition, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
    match (rule.trim().is_empty(), predicate.trim().is_empty()) {
        (false, false) => Err(invalid(
            "give the condition either with the builder or as SQL, not both".into(),
        )),
        (false, true) => crate::rules::parse(rule)
            .map(ops::Definition::Rule)
            .map_err(invalid),
        (true, _) => Ok(ops::Definition::Sql(predicate.to_string())),
    }
}

/// The condition fields of a segment form: the builder (rule in the hidden `rule` field; for
/// `segment`, the one being changed) and, under "SQL", the predicate for data teams (the
/// only field without JavaScript).
fn condition_fields(
    who: &Authed,
    rule: &str,
    predicate: &str,
    segment: Option<&str>,
    source: Option<&str>,
) -> Markup {
    let sql_only = rule.is_empty() && !predicate.trim().is_empty();
    html! {
        div class="field" {
            span class="label" { "Condition" }
            div id="builder" data-rule=[(!rule.is_empty()).then_some(rule)] data-segment=[segment]
                data-source=[source] data-sample=[(who.actor.role >= Role::Contributor).then_some("1")]
                data-sqlonly=[sql_only.then_some("1")] {}
            input type="hidden" name="rule" id="rule-json" value=(rule);
        }
        details id="sql-mode" open {
            summary { "Write the whole condition in SQL (data teams)" }
            div class="field" {
                label for="seg-predicate" { "SQL condition" }
                textarea id="seg-predicate" name="predicate" placeholder="lifetime_value > 500 AND country = 'RO'" { (predicate) }
                span class="hint" { "A SQL boolean expression over the profile columns; leave it empty when you use the builder. It is checked and counted before it is saved." }
            }
        }
    }
}

async fn list_page(
    app: &AppState,
    who: &Authed,
    add: &AddForm,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> PageResult {
    let segments = state_of(app).and_then(|s| Ok(s.segments()?)).or_page(who)?;
    let rows = counted(app, segments).await.or_page(who)?;
    let can_change = who.actor.role >= Role::Contributor;
    let cols = if can_change && add.source.is_empty() {
        columns(app).await.or_page(who)?
    } else {
        vec![]
    };
    let sources = if can_change {
        ops::list_sources(&app.app, &who.actor).or_page(who)?
    } else {
        vec![]
    };
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let body = html! {
        div class="toolbar" {
            p class="muted" { "Segments are conditions over the customer profiles, built from the columns' values or written in SQL. Exports send their members to Mailchimp, each segment as a tag." }
        }
        @if rows.is_empty() {
            div class="card empty" { p { "No segment yet." } }
        } @else {
            div class="card table-wrap" {
                table class="stack" id="segments" {
                    thead { tr { th { "Segment" } th { "Condition" } th { "Profiles from" } th class="num" { "Members" } th { "Added" } } }
                    tbody {
                        @for (s, c) in &rows {
                            tr data-segment=(s.name) {
                                td data-label="Segment" { a href=(format!("/segments/{}", seg(&s.name))) { strong { (s.name) } } }
                                td data-label="Condition" { code { (s.predicate) } }
                                td data-label="Profiles from" {
                                    @match &s.source {
                                        Some(src) => a href=(format!("/sources/{}", seg(src))) { (src) },
                                        None => span class="muted" { "imported" },
                                    }
                                }
                                td data-label="Members" class="num" { (count_cell(c)) }
                                td data-label="Added" class="muted small" { (when(&s.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        @if can_change {
            div class="card" id="add-segment" {
                h2 { "Add segment" }
                @if let Some((_, e)) = &error {
                    div class="flash flash-error" role="alert" id="segment-error" { (e) }
                }
                form method="post" action="/segments" id="segment-form" {
                    (csrf(who))
                    div class="field" {
                        label for="seg-name" { "Name" }
                        input id="seg-name" name="name" type="text" value=(add.name) required placeholder="high_value";
                    }
                    @if !sources.is_empty() {
                        (source_field(&sources, &add.source))
                    }
                    (condition_fields(who, &add.rule, &add.predicate, None, (!add.source.is_empty()).then_some(add.source.as_str())))
                    @if !cols.is_empty() {
                        p class="small muted" {
                            "Columns: "
                            @for (i, c) in cols.iter().enumerate() {
                                @if i > 0 { " " }
                                code title=(c.kind.as_str()) { (c.name) }
                            }
                        }
                    }
                    button type="submit" class="btn btn-primary" id="segment-submit" { "Add segment" }
                }
            }
        }
    };
    let page = Page::new(Some(who), Nav::Segments, "Segments")
        .notice(notice)
        .with_builder_script()
        .render(body);
    Ok((status, page).into_response())
}

pub async fn list(
    State(app): State<AppState>,
    User(who): User,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    list_page(&app, &who, &AddForm::default(), q.notice, None).await
}

pub async fn add(State(app): State<AppState>, User(who): User, form: FormData) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let add = AddForm {
        name: form.text("name"),
        predicate: form.text("predicate"),
        rule: form.text("rule"),
        source: form.text("source"),
    };
    let (installation, actor, name) = (app.app.clone(), who.actor.clone(), add.name.clone());
    let source = form.opt("source");
    let result = match definition(&add.rule, &add.predicate) {
        Ok(def) => app
            .predicates
            .run(move || {
                ops::add_segment_defined(&installation, &actor, &name, &def, source.as_deref())
            })
            .await
            .or_page(&who)?
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(counted) => Ok(redirect_notice(
            &format!("/segments/{}", seg(&add.name)),
            &format!(
                "Segment \"{}\" added: {} profiles match.{}",
                add.name,
                num(counted.count),
                warned(&counted.warnings)
            ),
        )),
        Err(e) => {
            if e.status == StatusCode::FORBIDDEN {
                return Err(super::error_page(Some(&who), &e));
            }
            Err(
                match list_page(&app, &who, &add, None, Some((e.status, e.message))).await {
                    Ok(r) | Err(r) => r,
                },
            )
        }
    }
}

async fn show_page(
    app: &AppState,
    who: &Authed,
    name: &str,
    notice: Option<String>,
    edit: Option<(Edit, StatusCode, String)>,
) -> PageResult {
    let state = state_of(app).or_page(who)?;
    let s = state.segment(name).or_page(who)?;
    let used: Vec<String> = state
        .exports()
        .or_page(who)?
        .into_iter()
        .filter(|e| e.segments.iter().any(|x| x.segment == s.name))
        .map(|e| e.name)
        .collect();
    drop(state);
    let can_change = who.actor.role >= Role::Contributor;
    // The sample holds personal data: contributors and admins only.
    let sample = if can_change { SAMPLE_ROWS } else { 0 };
    let (installation, predicate, source) =
        (app.app.clone(), s.predicate.clone(), s.source.clone());
    let preview = app
        .predicates
        .run(move || -> Result<_, String> {
            installation
                .profiles_of(source.as_deref())
                .map_err(|e| format!("{e:#}"))?
                .preview(&predicate, sample)
                .map_err(|e| e.to_string())
        })
        .await
        .or_page(who)?;
    let base = format!("/segments/{}", seg(&s.name));
    let status = edit.as_ref().map_or(StatusCode::OK, |(_, st, _)| *st);
    let body = html! {
        div class="card" {
            div class="card-head" {
                h2 { "Condition" }
                @if can_change {
                    a class="btn btn-secondary btn-small" href=(format!("{base}/remove")) { "Remove" }
                }
            }
            @if s.rule.is_some() {
                p class="small muted" { "Built with the segment builder." }
                details id="segment-sql" { summary { "View SQL" } pre { code id="predicate" { (s.predicate) } } }
            } @else {
                p { code id="predicate" { (s.predicate) } }
            }
            div class="stats" {
                div class="stat" {
                    div class="v" id="member-count" {
                        @match &preview { Ok(p) => (num(p.count)), Err(_) => "—" }
                    }
                    div class="k" { "profiles match" }
                }
                div class="stat" {
                    div class="v" { (used.len()) }
                    div class="k" { "exports use it" }
                }
            }
            @if let Err(e) = &preview {
                div class="flash flash-error" role="alert" { "This segment cannot be counted now: " (e) }
            }
            @if !used.is_empty() {
                p class="small muted" {
                    "Used by "
                    @for (i, e) in used.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href=(format!("/exports/{}", seg(e))) { (e) }
                    }
                }
            }
        }
        @if let Ok(p) = &preview {
            @if can_change {
                div class="card" {
                    h2 { "Sample" }
                    @if p.sample.is_empty() {
                        p class="muted" { "No profile matches." }
                    } @else {
                        p class="muted small" { "The first " (p.sample.len()) " of " (num(p.count)) " profiles." }
                        div class="table-wrap" {
                            table id="sample" {
                                thead { tr { @for c in &p.columns { th { (c) } } } }
                                tbody {
                                    @for row in &p.sample {
                                        tr { @for c in &p.columns { td { (cell(row.get(c))) } } }
                                    }
                                }
                            }
                        }
                    }
                }
            } @else {
                p class="muted small" { "Viewers see the count only: the profiles hold personal data." }
            }
        }
        @if can_change {
            div class="card" {
                h2 { "Change the condition" }
                @if let Some((_, _, e)) = &edit {
                    div class="flash flash-error" role="alert" id="segment-error" { (e) }
                }
                @if !used.is_empty() {
                    p class="small muted" { "While you edit, the members that would gain or lose this segment's tag in each export that uses it are shown below the count." }
                }
                form method="post" action=(base) id="segment-form" {
                    (csrf(who))
                    @match &edit {
                        Some((e, _, _)) => (condition_fields(who, &e.rule, &e.predicate, Some(&s.name), s.source.as_deref())),
                        None => (condition_fields(who, s.rule.as_deref().unwrap_or(""), if s.rule.is_some() { "" } else { &s.predicate }, Some(&s.name), s.source.as_deref())),
                    }
                    button type="submit" class="btn btn-primary" id="segment-submit" { "Save condition" }
                }
            }
        }
    };
    let mut page =
        Page::new(Some(who), Nav::Segments, format!("Segment {}", s.name)).notice(notice);
    if can_change {
        page = page.with_builder_script();
    }
    let page = page.render(body);
    Ok((status, page).into_response())
}

/// What the change form held when it was refused.
struct Edit {
    predicate: String,
    rule: String,
}

fn cell(v: Option<&serde_json::Value>) -> Markup {
    match v {
        None | Some(serde_json::Value::Null) => html! { span class="muted" { "—" } },
        Some(serde_json::Value::String(s)) => html! { (s) },
        Some(other) => html! { (other.to_string()) },
    }
}

pub async fn show(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    show_page(&app, &who, &name, q.notice, None).await
}

/// Changes the predicate (checked and counted first).
pub async fn change(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let edit = Edit {
        predicate: form.text("predicate"),
        rule: form.text("rule"),
    };
    let (installation, actor, n) = (app.app.clone(), who.actor.clone(), name.clone());
    let result = match definition(&edit.rule, &edit.predicate) {
        Ok(def) => app
            .predicates
            .run(move || ops::update_segment_defined(&installation, &actor, &n, &def))
            .await
            .or_page(&who)?
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(counted) => Ok(redirect_notice(
            &format!("/segments/{}", seg(&name)),
            &format!(
                "Condition saved: {} profiles match.{}",
                num(counted.count),
                warned(&counted.warnings)
            ),
        )),
        Err(e) => {
            if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND {
                return Err(super::error_page(Some(&who), &e));
            }
            Err(
                match show_page(&app, &who, &name, None, Some((edit, e.status, e.message))).await {
                    Ok(r) | Err(r) => r,
                },
            )
        }
    }
}

pub async fn remove_confirm(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
) -> PageResult {
    who.require(Role::Contributor, "removing a segment")
        .or_page(&who)?;
    let s = state_of(&app)
        .and_then(|st| Ok(st.segment(&name)?))
        .or_page(&who)?;
    Ok(layout::removal_page(
        &who,
        layout::Removal {
            nav: Nav::Segments,
            what: "segment",
            object: html! { strong { (s.name) } },
            consequences: "Its condition is forgotten. A segment that an export sends cannot be removed: take it out of the export first.",
            warning: None,
            action: format!("/segments/{}/remove", seg(&s.name)),
            back: format!("/segments/{}", seg(&s.name)),
        },
    )
    .into_response())
}

pub async fn remove(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    if let Err(e) = form.check_csrf(&who) {
        return super::error_page(Some(&who), &e);
    }
    match ops::remove_segment(&app.app, &who.actor, &name) {
        Ok(()) => redirect_notice("/segments", &format!("Segment \"{name}\" removed.")),
        Err(e) => super::error_page(Some(&who), &e.into()),
    }
}
