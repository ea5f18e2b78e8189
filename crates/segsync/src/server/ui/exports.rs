//! Data > Exports: the list, an export's page (configuration, Run now, Preview run, Cancel, Pause/Resume,
//! Edit, Remove, live progress, the chart of records sent and the run history), and the
//! actions behind its buttons. Running and cancelling go through the API's shared helpers,
//! the rest through [`crate::ops`].

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, badge, outcome_badge, Nav, Page};
use super::{
    chart, num, redirect_notice, seg, state_of, took, when, FormData, OrPage, PageResult, User,
};
use crate::ops;
use crate::server::auth::Authed;
use crate::server::runs::ActiveRun;
use crate::server::{api, scheduler, ApiError, AppState};
use crate::state::{ExportConfig, Role, RunRecord, StateStore};

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// Runs in the history table and bars in the chart.
const HISTORY_ROWS: usize = 50;
const CHART_RUNS: usize = 30;
/// How often a running export's page reloads itself.
const REFRESH_SECONDS: u32 = 2;

/// Whether `who` may change and run `e` (the same rule as the API's `can_edit`).
fn can_edit(state: &StateStore, who: &Authed, e: &ExportConfig) -> bool {
    who.actor.role >= Role::Contributor && ops::check_export_access(state, &who.actor, e).is_ok()
}

/// Display names of the connections `who` may see.
fn connection_names(state: &StateStore, who: &Authed) -> Result<HashMap<String, String>, ApiError> {
    Ok(ops::connections(state, &who.actor)?
        .into_iter()
        .map(|c| (c.name, c.display_name))
        .collect())
}

fn schedule_text(e: &ExportConfig) -> Markup {
    let next = scheduler::next_tick(e);
    html! {
        (crate::schedule::describe(&e.schedule))
        @if e.paused { " " (badge("badge-warn", "paused")) }
        @if let Some(t) = next {
            br; span class="muted small" { "next " (when(&t.to_rfc3339())) }
        }
    }
}

fn running_cell(r: &ActiveRun) -> Markup {
    html! {
        span class="badge badge-info" { "running" }
        " "
        span class="small muted" {
            (r.phase)
            @if r.total > 0 { " · " (num(r.done)) " / " (num(r.total)) }
        }
    }
}

pub async fn list(
    State(app): State<AppState>,
    User(who): User,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let state = state_of(&app).or_page(&who)?;
    let exports = state.exports().or_page(&who)?;
    let names = connection_names(&state, &who).or_page(&who)?;
    let mut rows = Vec::new();
    for e in exports {
        let last = state
            .runs(Some(&e.name), 1)
            .or_page(&who)?
            .into_iter()
            .next();
        let running = app.runs.running(&e.name);
        rows.push((e, last, running));
    }
    let may_add = who.actor.role >= Role::Contributor;
    let body = html! {
        div class="toolbar" {
            p class="muted" { "Each export sends chosen segments to one Mailchimp audience, on demand or on a schedule." }
            @if may_add {
                a class="btn btn-primary" href="/exports/new" { "Add destination" }
            }
        }
        @if rows.is_empty() {
            div class="card empty" {
                p { "No export yet." }
                @if may_add {
                    a class="btn btn-primary" href="/exports/new" { "Add destination" }
                }
            }
        } @else {
            div class="card table-wrap" {
                table class="stack" id="exports" {
                    thead { tr {
                        th { "Export" } th { "Connection" } th { "Audience" } th { "Segments" }
                        th { "Schedule" } th { "Last run" } th { "Now" }
                    } }
                    tbody {
                        @for (e, last, running) in &rows {
                            tr data-export=(e.name) {
                                td data-label="Export" { a href=(format!("/exports/{}", seg(&e.name))) { strong { (e.name) } } }
                                td data-label="Connection" { (names.get(&e.connection).unwrap_or(&e.connection)) }
                                td data-label="Audience" { (audience_label(e)) }
                                td data-label="Segments" {
                                    @for (i, s) in e.segments.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        (s.segment)
                                    }
                                }
                                td data-label="Schedule" { (schedule_text(e)) }
                                td data-label="Last run" {
                                    @if let Some(r) = last {
                                        (outcome_badge(r.outcome))
                                        br;
                                        span class="muted small" { (when(&r.started_at)) " · " (num(r.counts.created)) " created, " (num(r.counts.updated)) " updated" }
                                    } @else {
                                        span class="muted" { "never run" }
                                    }
                                }
                                td data-label="Now" {
                                    @if let Some(r) = running { (running_cell(r)) } @else { span class="muted" { "—" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let refresh = rows
        .iter()
        .any(|(_, _, r)| r.is_some())
        .then(|| (REFRESH_SECONDS * 2, "/exports".to_string()));
    Ok(Page::new(Some(&who), Nav::Exports, "Exports")
        .notice(q.notice)
        .refresh(refresh)
        .render(body)
        .into_response())
}

fn field_rows(e: &ExportConfig) -> Markup {
    html! {
        @if e.fields.is_empty() {
            span class="muted" { "email only" }
        } @else {
            @for (i, f) in e.fields.iter().enumerate() {
                @if i > 0 { ", " }
                code { (f.tag) } " ← " (f.column)
            }
        }
    }
}

/// `number`: the run's number among the export's runs, when the history has it already.
fn progress_card(
    who: &Authed,
    e: &ExportConfig,
    r: &ActiveRun,
    number: Option<i64>,
    may_edit: bool,
) -> Markup {
    html! {
        div class="card" id="progress" {
            div class="card-head" {
                h2 { "Running now: " a href=(format!("/runs/{}", r.run_id)) { "run " (number.unwrap_or(r.run_id)) } }
                @if may_edit && !r.stopping {
                    (layout::post_button(who, &format!("/exports/{}/cancel", seg(&e.name)), "Cancel run", "btn-secondary"))
                }
            }
            div class="progress-line" {
                span id="phase" {
                    @if r.phase.is_empty() { "starting" } @else { (r.phase) }
                    @if r.stopping { " " (badge("badge-warn", "stopping at the next checkpoint")) }
                }
                span id="done" {
                    @if r.total > 0 { (num(r.done)) " of " (num(r.total)) }
                }
            }
            @if r.total > 0 {
                progress value=(r.done) max=(r.total) aria-label="progress of this phase" {}
            } @else {
                progress aria-label="working" {}
            }
            div class="stats" {
                div class="stat" { div class="v" id="requests" { (num(r.requests)) } div class="k" { "requests sent" } }
                div class="stat" { div class="v" id="in-flight" { (r.in_flight) } div class="k" { "in flight" } }
                div class="stat" { div class="v small" { (r.trigger) } div class="k" { "started by" } }
            }
            p class="muted small" { "This page refreshes itself every " (REFRESH_SECONDS) " seconds while the run goes on." }
        }
    }
}

/// `may_see_records`: whether the reader may download the records runs could not send
/// (they name people: not viewers).
fn history_table(
    state: &StateStore,
    runs: &[RunRecord],
    may_see_records: bool,
) -> Result<Markup, ApiError> {
    let mut errors = Vec::with_capacity(runs.len());
    for r in runs {
        errors.push(state.run_error_count(r.id)?);
    }
    Ok(html! {
        div class="table-wrap" {
            table class="stack" id="history" {
                thead { tr {
                    th { "Run" } th { "Trigger" } th { "Started" } th { "Took" } th { "Outcome" }
                    th class="num" { "Created" } th class="num" { "Updated" } th class="num" { "Tagged" }
                    th class="num" title="archived or unsubscribed by the export's removal policy" { "Removed" }
                    th class="num" title=(super::runs::FAILED_MEANS) { "Failed" }
                    th title="records not sent (refused or failed), as CSV" { "Errors" }
                } }
                tbody {
                    @for (r, n) in runs.iter().zip(&errors) {
                        tr data-run=(r.id) data-outcome=(r.outcome.as_str()) {
                            td data-label="Run" { a href=(format!("/runs/{}", r.id)) { (r.number) } }
                            td data-label="Trigger" class="small" { (r.trigger) }
                            td data-label="Started" class="small" { (when(&r.started_at)) }
                            td data-label="Took" class="small" { (took(&r.started_at, r.finished_at.as_deref())) }
                            td data-label="Outcome" {
                                (outcome_badge(r.outcome))
                                @if let Some(err) = &r.error { br; span class="small muted" { (err) } }
                            }
                            td data-label="Created" class="num" data-count="created" { (num(r.counts.created)) }
                            td data-label="Updated" class="num" data-count="updated" { (num(r.counts.updated)) }
                            td data-label="Tagged" class="num" data-count="tagged" { (num(r.counts.tagged)) }
                            td data-label="Removed" class="num" data-count="removed" { (num(chart::removed(r))) }
                            td data-label="Failed" class="num" data-count="failed" { (num(r.counts.failed)) }
                            td data-label="Errors" {
                                @if *n > 0 && !may_see_records {
                                    (num(*n))
                                } @else if *n > 0 {
                                    a href=(format!("/api/runs/{}/errors", r.id)) download=(format!("run-{}-errors.csv", r.id)) { (num(*n)) " (CSV)" }
                                } @else {
                                    span class="muted" { "—" }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// An export's page, with a notice or the refusal of the last action.
async fn show_page(
    app: &AppState,
    who: &Authed,
    name: &str,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> PageResult {
    let state = state_of(app).or_page(who)?;
    let e = state.export(name).or_page(who)?;
    let names = connection_names(&state, who).or_page(who)?;
    let may_edit = can_edit(&state, who, &e);
    let running = app.runs.running(&e.name);
    let runs = state.runs(Some(&e.name), HISTORY_ROWS).or_page(who)?;
    let history = history_table(&state, &runs, who.actor.role >= Role::Contributor).or_page(who)?;
    let suppressions =
        super::suppressions::export_card(app, who, &e.name, may_edit).or_page(who)?;
    let chart_runs: Vec<&RunRecord> = runs.iter().take(CHART_RUNS).rev().collect();
    let base = format!("/exports/{}", seg(&e.name));
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let body = html! {
        div class="toolbar" {
            div {
                @if e.paused { (badge("badge-warn", "paused")) " " }
                @if running.is_some() { (badge("badge-info", "running")) " " }
                span class="muted" { "to audience " (audience_label(&e)) " through " (names.get(&e.connection).unwrap_or(&e.connection)) }
            }
            @if may_edit {
                div class="actions" id="export-actions" {
                    @if running.is_none() {
                        (layout::post_button(who, &format!("{base}/run"), "Run now", "btn-primary"))
                        a class="btn btn-secondary" id="preview-run" href=(format!("{base}/preview")) { "Preview run" }
                    }
                    @if e.paused {
                        (layout::post_button(who, &format!("{base}/resume"), "Resume", "btn-secondary"))
                    } @else {
                        (layout::post_button(who, &format!("{base}/pause"), "Pause", "btn-secondary"))
                    }
                    a class="btn btn-secondary" href=(format!("{base}/edit")) { "Edit" }
                    a class="btn btn-secondary" href=(format!("{base}/remove")) { "Remove" }
                }
            }
        }
        @if let Some(r) = &running {
            (progress_card(who, &e, r, runs.iter().find(|x| x.id == r.run_id).map(|x| x.number), may_edit))
        }
        div class="card" {
            h2 { "Records sent per run" }
            (chart::records_per_run(&chart_runs))
        }
        div class="card" {
            h2 { "History" }
            @if runs.is_empty() {
                p class="muted" { "This export has not run yet." @if may_edit { " Use Run now to send it." } }
            } @else {
                (history)
            }
        }
        (suppressions)
        div class="card" {
            h2 { "Configuration" }
            dl class="summary" id="configuration" {
                dt { "Connection" } dd { (names.get(&e.connection).unwrap_or(&e.connection)) " " code { (e.connection) } }
                dt { "Audience" } dd id="audience-name" { (audience_label(&e)) }
                dt { "Email" } dd { (e.email_field) }
                dt { "Attributes" } dd { (field_rows(&e)) }
                dt { "Segments" } dd {
                    @for (i, s) in e.segments.iter().enumerate() {
                        @if i > 0 { br; }
                        a href=(format!("/segments/{}", seg(&s.segment))) { (s.segment) }
                        " → tag " code { (s.tag) }
                    }
                }
                dt { "New members" } dd { (status_label(e.status_if_new)) }
                dt { "Members who leave" } dd { (removal_label(e.removal)) }
                dt { "Profile limit" } dd { (num(e.max_profiles)) }
                dt { "Missing merge fields" } dd { @if e.create_merge_fields { "created" } @else { "refused" } }
                dt { "Duplicates resolved by" } dd { (e.updated_at_field.as_deref().unwrap_or("first profile")) }
                dt { "Schedule" } dd { (schedule_text(&e)) }
            }
        }
    };
    let page = Page::new(Some(who), Nav::Exports, format!("Export {}", e.name))
        .notice(notice)
        .error(error.map(|(_, m)| m))
        .refresh(running.as_ref().map(|_| (REFRESH_SECONDS, base.clone())))
        .render(body);
    Ok((status, page).into_response())
}

pub fn status_label(s: segsync_core::NewStatus) -> &'static str {
    match s {
        segsync_core::NewStatus::Subscribed => "subscribed",
        segsync_core::NewStatus::Pending => "pending (Mailchimp sends a confirmation email)",
        segsync_core::NewStatus::Transactional => "transactional (no marketing consent)",
    }
}

pub fn removal_label(r: segsync_core::RemovalPolicy) -> &'static str {
    match r {
        segsync_core::RemovalPolicy::Untag => "untagged (they stay in the audience)",
        segsync_core::RemovalPolicy::Archive => "untagged and archived, if this export added them",
        segsync_core::RemovalPolicy::Unsubscribe => {
            "untagged and unsubscribed, if this export added them"
        }
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

/// The export's page after an action: a notice on success; the refusal on the page, or the
/// 403 / 404 page.
async fn after(app: &AppState, who: &Authed, name: &str, r: Result<String, ApiError>) -> Response {
    match r {
        Ok(notice) => redirect_notice(&format!("/exports/{}", seg(name)), &notice),
        Err(e) if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND => {
            super::error_page(Some(who), &e)
        }
        Err(e) => match show_page(app, who, name, None, Some((e.status, e.message))).await {
            Ok(r) | Err(r) => r,
        },
    }
}

pub async fn run_now(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let r = async {
        form.check_csrf(&who)?;
        let id = api::start_run(&app, &who, &name).await?;
        Ok(format!("Run {id} started."))
    }
    .await;
    after(&app, &who, &name, r).await
}

pub async fn cancel(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let r = async {
        form.check_csrf(&who)?;
        let id = api::cancel(&app, &who, &name)?;
        Ok(format!(
            "Run {id} stops at its next checkpoint: what Mailchimp acknowledged is kept."
        ))
    }
    .await;
    after(&app, &who, &name, r).await
}

async fn set_paused(
    app: AppState,
    who: Authed,
    name: String,
    form: FormData,
    paused: bool,
) -> Response {
    let r = (|| {
        form.check_csrf(&who)?;
        ops::set_paused(&app.app, &who.actor, &name, paused)?;
        Ok(if paused {
            "Paused: the schedule does not fire until you resume it (Run now still works).".into()
        } else {
            "Resumed: the schedule fires again.".into()
        })
    })();
    after(&app, &who, &name, r).await
}

pub async fn pause(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    set_paused(app, who, name, form, true).await
}

pub async fn resume(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    set_paused(app, who, name, form, false).await
}

pub async fn remove_confirm(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
) -> PageResult {
    let state = state_of(&app).or_page(&who)?;
    let e = state.export(&name).or_page(&who)?;
    if !can_edit(&state, &who, &e) {
        who.require(Role::Contributor, "removing an export")
            .or_page(&who)?;
        ops::check_export_access(&state, &who.actor, &e).or_page(&who)?;
    }
    Ok(layout::removal_page(
        &who,
        layout::Removal {
            nav: Nav::Exports,
            what: "export",
            object: html! { strong { (e.name) } },
            consequences: "Its schedule stops at once and a running run is cancelled. Mailchimp keeps the members it sent; the run history stays here.",
            warning: None,
            action: format!("/exports/{}/remove", seg(&e.name)),
            back: format!("/exports/{}", seg(&e.name)),
        },
    )
    .into_response())
}

pub async fn remove(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    api::remove_export_now(&app, &who, &name)
        .await
        .or_page(&who)?;
    Ok(redirect_notice(
        "/exports",
        &format!("Export \"{name}\" removed; its run history is kept."),
    ))
}

/// An export's audience by its name (as last read from Mailchimp), its id second.
pub fn audience_label(e: &crate::state::ExportConfig) -> maud::Markup {
    maud::html! {
        @if let Some(name) = &e.audience_name {
            strong class="audience-name" { (name) } " " span class="muted small" { "(" code { (e.audience_id) } ")" }
        } @else {
            code { (e.audience_id) }
        }
    }
}
