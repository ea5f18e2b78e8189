//! A run's page: what triggered it, its outcome and every count, live progress while it
//! runs, and the first records it could not send (all of them as CSV).

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use maud::html;

use super::layout::{outcome_badge, Nav, Page};
use super::{num, seg, state_of, took, when, OrPage, PageResult, User};
use crate::server::AppState;

/// Records not sent shown on the page (the CSV has them all).
const ERROR_ROWS: usize = 100;

pub async fn show(
    State(app): State<AppState>,
    User(who): User,
    Path(id): Path<String>,
) -> PageResult {
    let id: i64 = id.parse().map_err(|_| {
        super::error_page(
            Some(&who),
            &crate::server::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                format!("no run \"{id}\": run numbers are whole numbers"),
            ),
        )
    })?;
    let state = state_of(&app).or_page(&who)?;
    let run = state.run(id).or_page(&who)?;
    let total_errors = state.run_error_count(id).or_page(&who)?;
    let errors = state.run_errors_head(id, ERROR_ROWS).or_page(&who)?;
    let live = app.runs.progress(id);
    let c = &run.counts;
    let mut counts: Vec<(&str, u64)> = vec![
        ("profiles read", c.profiles),
        ("members", c.members),
        ("duplicates merged", c.duplicates),
        ("refused", c.refused),
        ("created", c.created),
        ("updated", c.updated),
        ("moved", c.moved),
        ("unchanged", c.unchanged),
        ("tagged", c.tagged),
        ("untagged", c.untagged),
        ("archived", c.archived),
        ("unsubscribed", c.unsubscribed),
        ("skipped", c.skipped),
        ("failed", c.failed),
        ("requests", c.requests),
        ("retries", c.retries),
    ];
    if c.deferred > 0 {
        // Refused by Mailchimp for now only: not failed, sent again by the next run.
        let after_failed = counts
            .iter()
            .position(|(n, _)| *n == "failed")
            .map_or(0, |i| i + 1);
        counts.insert(
            after_failed,
            ("deferred (sent by the next run)", c.deferred),
        );
    }
    let export_url = format!("/exports/{}", seg(&run.export));
    let body = html! {
        div class="toolbar" {
            p { "Export " a href=(export_url) { strong { (run.export) } } " · " (outcome_badge(run.outcome)) }
            a class="btn btn-secondary" href=(export_url) { "Back to the export" }
        }
        @if let Some(p) = &live {
            div class="card" id="progress" {
                div class="progress-line" {
                    span id="phase" { @if p.phase.is_empty() { "starting" } @else { (p.phase) } }
                    span { @if p.total > 0 { (num(p.done)) " of " (num(p.total)) } }
                }
                @if p.total > 0 {
                    progress value=(p.done) max=(p.total) aria-label="progress of this phase" {}
                } @else {
                    progress aria-label="working" {}
                }
                p class="muted small" { (num(p.requests)) " requests sent, " (p.in_flight) " in flight. This page refreshes itself." }
            }
        }
        div class="card" {
            h2 { "Run" }
            dl class="summary" {
                dt { "Trigger" } dd { (run.trigger) }
                dt { "Started" } dd { (when(&run.started_at)) }
                dt { "Finished" } dd { (run.finished_at.as_deref().map(when).unwrap_or_else(|| "—".into())) }
                dt { "Took" } dd { (took(&run.started_at, run.finished_at.as_deref())) }
                dt { "Outcome" } dd { (outcome_badge(run.outcome)) }
                dt { "Connection slots" } dd id="slots" {
                    (format!("{:.1}", run.counts.slots_held())) " held on average; "
                    (num(run.counts.throttled)) " refused for too many connections (429)"
                }
                @if let Some(e) = &run.error {
                    dt { "Error" } dd { (e) }
                }
            }
        }
        div class="card" {
            h2 { "Counts" }
            div class="stats" id="counts" {
                @for (k, v) in counts {
                    div class="stat" { div class="v" { (num(v)) } div class="k" { (k) } }
                }
            }
        }
        div class="card" {
            div class="card-head" {
                h2 { "Records not sent" }
                @if total_errors > 0 {
                    a class="btn btn-secondary btn-small" href=(format!("/api/runs/{id}/errors")) download=(format!("run-{id}-errors.csv")) { "Download all as CSV" }
                }
            }
            @if errors.is_empty() {
                p class="muted" { "None: every record was delivered or left unchanged." }
            } @else {
                @if total_errors > errors.len() as u64 {
                    p class="muted small" { "The first " (errors.len()) " of " (num(total_errors)) "." }
                }
                div class="table-wrap" {
                    table id="run-errors" {
                        thead { tr { th { "Profile" } th { "Email" } th { "Reason" } } }
                        tbody {
                            @for e in &errors {
                                tr { td { code { (e.profile_key) } } td { (e.email) } td { (e.reason) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::new(Some(&who), Nav::Exports, format!("Run {id}"))
        .refresh(live.map(|_| (2, format!("/runs/{id}"))))
        .render(body)
        .into_response())
}
