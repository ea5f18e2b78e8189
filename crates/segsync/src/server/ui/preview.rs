//! Data > Exports > an export > Preview run: what "Run now" would do, before doing it (the
//! API's [`crate::server::api::preview`], which `segsync plan` prints too).

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use maud::{html, Markup};

use super::layout::{self, Nav, Page};
use super::{num, seg, OrPage, PageResult, User};
use crate::server::api::preview::{self, PlanView, PlannedRecord};
use crate::server::AppState;

/// Refused and skipped records shown on the page; the API lists more.
const SHOWN: usize = 100;

pub async fn show(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
) -> PageResult {
    let plan = preview::plan(&app, &who, &name).await.or_page(&who)?;
    let base = format!("/exports/{}", seg(&name));
    let body = html! {
        div class="toolbar" {
            p class="muted" { "Nothing has been sent: this is what a run would do now, to audience " strong { (plan.audience) } "." }
            div class="actions" {
                (layout::post_button(&who, &format!("{base}/run"), "Run now", "btn-primary"))
                a class="btn btn-secondary" href=(base) { "Back to the export" }
            }
        }
        div class="card" {
            h2 { "Members" }
            (counts(&plan))
        }
        div class="card" {
            h2 { "Mailchimp requests: " (num(plan.requests as u64)) }
            (requests(&plan))
        }
        @if plan.refused_total > 0 {
            div class="card" {
                h2 { "Refused: " (num(plan.refused_total as u64)) }
                p class="muted small" { "Records that will not be sent, and why (a run reports them in its errors)." }
                (records("refused", &plan.refused, plan.refused_total))
            }
        }
        @if plan.skipped_total > 0 {
            div class="card" {
                h2 { "Skipped: " (num(plan.skipped_total as u64)) }
                p class="muted small" { "Members left alone on purpose, so that nobody is subscribed against their will." }
                (records("skipped", &plan.skipped, plan.skipped_total))
            }
        }
    };
    let page = Page::new(Some(&who), Nav::Exports, format!("Preview run of {name}")).render(body);
    Ok(page.into_response())
}

fn counts(p: &PlanView) -> Markup {
    let rows: [(&str, &str, u64); 13] = [
        ("profiles", "profiles selected", p.profiles),
        (
            "members",
            "members (after merging shared addresses)",
            p.members,
        ),
        (
            "duplicates",
            "profiles merged into another's member",
            p.duplicates,
        ),
        ("creates", "members to create", p.creates as u64),
        ("updates", "members to update", p.updates as u64),
        (
            "moves",
            "members to move to their profile's new address",
            p.moves as u64,
        ),
        ("unchanged", "members unchanged", p.unchanged),
        (
            "suppressed",
            "members suppressed (never sent)",
            p.suppressed,
        ),
        (
            "remembered-refusals",
            "refused for good before, unchanged since (not sent)",
            p.remembered_refusals,
        ),
        ("tag-adds", "tags to add", p.tag_adds as u64),
        ("tag-removes", "tags to remove", p.tag_removes as u64),
        ("archives", "members to archive", p.archives as u64),
        (
            "unsubscribes",
            "members to unsubscribe",
            p.unsubscribes as u64,
        ),
    ];
    html! {
        div class="table-wrap" {
            table id="plan" {
                tbody {
                    @for (key, label, n) in rows {
                        tr data-count=(key) { td { (label) } td class="num" { (num(n)) } }
                    }
                }
            }
        }
        @if !p.merge_fields_to_create.is_empty() {
            p id="merge-fields" { "Merge fields to create first: " (p.merge_fields_to_create.join(", ")) }
        }
        @if !p.tags_to_create.is_empty() {
            p id="tags-to-create" { "Tags to create first: " (p.tags_to_create.join(", ")) }
        }
    }
}

fn requests(p: &PlanView) -> Markup {
    html! {
        @if p.requests_by_endpoint.is_empty() {
            p class="muted" { "None: the audience already holds what the segments give." }
        } @else {
            div class="table-wrap" {
                table id="requests" {
                    thead { tr { th { "Endpoint" } th class="num" { "Requests" } } }
                    tbody {
                        @for e in &p.requests_by_endpoint {
                            tr { td { code { (e.endpoint) } } td class="num" { (num(e.requests as u64)) } }
                        }
                    }
                }
            }
        }
    }
}

fn records(id: &str, listed: &[PlannedRecord], total: usize) -> Markup {
    html! {
        div class="table-wrap" {
            table class="stack" id=(id) {
                thead { tr { th { "Profile" } th { "Email" } th { "Reason" } } }
                tbody {
                    @for r in listed.iter().take(SHOWN) {
                        tr { td data-label="Profile" { (r.profile_key) } td data-label="Email" { (r.email) } td data-label="Reason" { (r.reason) } }
                    }
                }
            }
        }
        @if total > SHOWN {
            p class="muted small" { "… and " (num((total - SHOWN) as u64)) " more." }
        }
    }
}
