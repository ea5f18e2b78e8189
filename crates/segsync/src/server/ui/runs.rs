//! A run's page: what triggered it, its outcome and every count, live progress while it
//! runs, and the first records it could not send (all of them as CSV); viewers see how many
//! records were not sent, not whose.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use maud::html;

use super::layout::{outcome_badge, Nav, Page};
use super::{num, seg, state_of, took, when, OrPage, PageResult, User};
use crate::server::AppState;
use crate::state::{Outcome, Role, RunRecord};

/// The words of a run's counts that a reader may take for one another, defined where they
/// appear (the run page; the history's column titles).
pub const REFUSED_MEANS: &str =
    "not sent: segsync found the record unusable before sending (an invalid address, a value Mailchimp cannot take)";
pub const FAILED_MEANS: &str =
    "sent, but Mailchimp did not take it; its answer says why (see the records not sent)";
pub const SKIPPED_MEANS: &str =
    "left alone on purpose: the address is a member Mailchimp cleaned or that was archived, whom no run brings back";
pub const DEFERRED_MEANS: &str =
    "refused by Mailchimp for now only (too many recent sign-ups): not a failure, the next run sends it again";
const WORDS: [(&str, &str); 4] = [
    ("refused", REFUSED_MEANS),
    ("failed", FAILED_MEANS),
    ("skipped", SKIPPED_MEANS),
    ("deferred", DEFERRED_MEANS),
];

fn meaning(count: &str) -> Option<&'static str> {
    let word = count.split(' ').next().unwrap_or(count);
    WORDS.iter().find(|(w, _)| *w == word).map(|(_, m)| *m)
}

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
    // The records name people: viewers see how many there are, not who.
    let may_see_records = who.actor.role >= Role::Contributor;
    let errors = if may_see_records {
        state.run_errors_head(id, ERROR_ROWS).or_page(&who)?
    } else {
        Vec::new()
    };
    let audience = state
        .export(&run.export)
        .ok()
        .map(|e| super::exports::audience_label(&e));
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
    if c.suppressed + c.remembered_refusals > 0 {
        // Held back, not errors: left as they are in Mailchimp.
        counts.push(("suppressed (not sent)", c.suppressed));
        counts.push(("remembered refusals (not sent)", c.remembered_refusals));
    }
    let export_url = format!("/exports/{}", seg(&run.export));
    let body = html! {
        div class="toolbar" {
            p { "Export " a href=(export_url) { strong { (run.export) } } @if let Some(a) = &audience { " to audience " (a) } " · " (outcome_badge(run.outcome)) }
            div class="actions" {
                @if may_see_records {
                    a class="btn btn-secondary" id="download-changes" href=(format!("/api/runs/{id}/changes")) download=(format!("run-{id}-changes.csv")) title="Who was created, updated, moved, tagged, untagged, removed or refused, one line per member per action (CSV)" { "Download change log" }
                }
                a class="btn btn-secondary" href=(export_url) { "Back to the export" }
            }
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
                dt { "Number" } dd id="run-number" { (run.number) " of export " (run.export) " (run " (run.id) " of this installation)" }
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
                    div class="stat" title=[meaning(k)] { div class="v" { (num(v)) } div class="k" { (k) } }
                }
            }
            @if !c.retries_by_phase.is_empty() {
                ul class="small" id="retries-by-phase" {
                    @for p in &c.retries_by_phase {
                        li data-phase=(p.phase) { "Retries, " (p.in_words()) }
                    }
                }
            }
            dl class="summary small" id="words" {
                @for (word, means) in WORDS {
                    @if word != "deferred" || c.deferred > 0 {
                        dt { (word) } dd { (means) }
                    }
                }
            }
        }
        div class="card" {
            div class="card-head" {
                h2 { "Records not sent" }
                @if total_errors > 0 && may_see_records {
                    a class="btn btn-secondary btn-small" href=(format!("/api/runs/{id}/errors")) download=(format!("run-{id}-errors.csv")) { "Download all as CSV" }
                }
            }
            @if total_errors == 0 {
                p class="muted" id="no-errors" { (no_errors_text(&run)) }
            } @else if !may_see_records {
                p id="errors-count" {
                    (num(total_errors)) @if total_errors == 1 { " record was" } @else { " records were" } " not sent."
                }
                p class="muted small" { "Viewers see the count only: the records hold personal data." }
            } @else {
                @if total_errors > errors.len() as u64 {
                    p class="muted small" { "The first " (errors.len()) " of " (num(total_errors)) "." }
                }
                div class="table-wrap" {
                    table class="stack" id="run-errors" {
                        thead { tr { th { "Profile" } th { "Email" } th { "Reason" } } }
                        tbody {
                            @for e in &errors {
                                tr { td data-label="Profile" { code { (e.profile_key) } } td data-label="Email" { (e.email) } td data-label="Reason" { (e.reason) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::new(
        Some(&who),
        Nav::Exports,
        format!("Run {} of {}", run.number, run.export),
    )
    .refresh(live.map(|_| (2, format!("/runs/{id}"))))
    .render(body)
    .into_response())
}

/// What the page says of a run without a record it could not send: only a run that ended
/// well delivered everything.
fn no_errors_text(run: &RunRecord) -> &'static str {
    match (run.outcome, run.finished_at.is_some()) {
        (_, false) => "None so far.",
        (Outcome::Failed, true) => {
            "None was refused, but the run failed before it had sent everything (the error is above); the next run sends the rest."
        }
        (Outcome::Cancelled, true) => {
            "None was refused, but the run was cancelled before it had sent everything; the next run sends the rest."
        }
        (Outcome::Interrupted, true) => {
            "None was refused, but the run was interrupted before it had sent everything; the next run sends the rest."
        }
        _ => "None: every record was delivered or left unchanged.",
    }
}
