//! Suppressions: the card on an export's page (its suppression list and the refusals it
//! remembers, with Remove, Retry and Suppress) and Admin > Suppressions (the installation's
//! list). Everything goes through [`crate::ops`]; viewers see counts only, never an address
//! or a key.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{csrf, Nav, Page};
use super::{redirect_notice, seg, when, Admin, FormData, OrPage, PageResult, User};
use crate::ops::{self, SuppressionInput};
use crate::server::auth::Authed;
use crate::server::{ApiError, AppState};
use crate::state::{RefusalRecord, Suppression, SuppressionKind};

const HELD_BACK: &str = "Addresses and profile keys on a suppression list are never sent: not created, updated, tagged or removed. A member already in the audience is left exactly as it is in Mailchimp (segsync stops touching it). Runs count them as \"suppressed\", not as errors.";

const REMEMBERED: &str = "Addresses Mailchimp refused for good (invalid or fake, unsubscribed or in a compliance state, a value it refuses) are not sent again until the profile's content changes; runs count them as \"remembered refusals\", not as errors. Retry sends one again on the next run; Suppress never sends it again.";

/// The card on an export's page: the entries for those who may manage the export, the
/// counts for everyone else (viewers, contributors on a connection kept for admins).
pub fn export_card(
    app: &AppState,
    who: &Authed,
    export: &str,
    may_edit: bool,
) -> Result<Markup, ApiError> {
    if !may_edit {
        let lists = ops::suppression_count(&app.app, Some(export))?;
        let refusals = ops::refusal_count(&app.app, export)?;
        return Ok(html! {
            div class="card" id="suppressions" {
                h2 { "Suppressions" }
                p class="muted" { (HELD_BACK) }
                p id="suppression-counts" { (lists) " suppressed addresses or keys; " (refusals) " remembered refusals." }
            }
        });
    }
    let entries = ops::suppressions(&app.app, &who.actor, Some(export))?;
    let refusals = ops::refusals(&app.app, &who.actor, export)?;
    let base = format!("/exports/{}", seg(export));
    Ok(html! {
        div class="card" id="suppressions" {
            h2 { "Suppressions" }
            p class="muted" { (HELD_BACK) " The installation's list (Admin > Suppressions) applies too." }
            (entries_table(who, &entries, &base, may_edit))
            @if may_edit { (add_form(who, &format!("{base}/suppressions"))) }
            h3 { "Remembered refusals" }
            p class="muted" { (REMEMBERED) }
            (refusals_table(who, &refusals, &base, may_edit))
        }
    })
}

fn entries_table(who: &Authed, entries: &[Suppression], base: &str, may_edit: bool) -> Markup {
    html! {
        @if entries.is_empty() {
            p class="muted" id="no-suppressions" { "Nothing is suppressed." }
        } @else {
            table class="stack" id="suppression-list" {
                thead { tr { th { "Kind" } th { "Address or key" } th { "Note" } th { "Added" } @if may_edit { th { } } } }
                tbody {
                    @for s in entries {
                        tr {
                            td data-label="Kind" { (kind_label(s.kind)) }
                            td data-label="Address or key" { code { (s.value) } }
                            td data-label="Note" { (s.note) }
                            td data-label="Added" { (s.added_by) " " (when(&s.added_at)) }
                            @if may_edit {
                                td {
                                    form method="post" action=(format!("{base}/suppressions/remove")) class="inline" {
                                        (csrf(who))
                                        input type="hidden" name="kind" value=(s.kind.as_str());
                                        input type="hidden" name="value" value=(s.value);
                                        button type="submit" class="btn btn-secondary" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn refusals_table(who: &Authed, refusals: &[RefusalRecord], base: &str, may_edit: bool) -> Markup {
    html! {
        @if refusals.is_empty() {
            p class="muted" id="no-refusals" { "None." }
        } @else {
            table class="stack" id="refusal-list" {
                thead { tr { th { "Email" } th { "Profile" } th { "Mailchimp's reason" } th { "Refused" } @if may_edit { th { } } } }
                tbody {
                    @for r in refusals {
                        tr {
                            td data-label="Email" { (r.email) }
                            td data-label="Profile" { code { (r.profile_key) } }
                            td data-label="Reason" { (r.reason) }
                            td data-label="Refused" { (when(&r.refused_at)) " (run " (r.run_id) ")" }
                            @if may_edit {
                                td {
                                    @for (action, label) in [("forget", "Retry"), ("suppress", "Suppress")] {
                                        form method="post" action=(format!("{base}/refusals/{action}")) class="inline" {
                                            (csrf(who))
                                            input type="hidden" name="email" value=(r.email);
                                            button type="submit" class="btn btn-secondary" { (label) }
                                        }
                                        " "
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn kind_label(k: SuppressionKind) -> &'static str {
    match k {
        SuppressionKind::Email => "address",
        SuppressionKind::Key => "profile key",
    }
}

fn add_form(who: &Authed, action: &str) -> Markup {
    html! {
        form method="post" action=(action) class="suppression-add" {
            (csrf(who))
            div class="grid2" {
                div class="field" {
                    label for="suppress-kind" { "Kind" }
                    select id="suppress-kind" name="kind" {
                        option value="email" { "Email address" }
                        option value="key" { "Profile key" }
                    }
                }
                div class="field" {
                    label for="suppress-value" { "Address or profile key" }
                    input type="text" id="suppress-value" name="value" required;
                }
                div class="field" {
                    label for="suppress-note" { "Note" }
                    input type="text" id="suppress-note" name="note" maxlength="500";
                }
            }
            div class="actions" { button type="submit" class="btn btn-primary" { "Suppress" } }
        }
    }
}

fn input_of(form: &FormData) -> SuppressionInput {
    let kind = match form.text("kind").as_str() {
        "key" => SuppressionKind::Key,
        _ => SuppressionKind::Email,
    };
    SuppressionInput {
        kind,
        value: form.text("value"),
        note: form.text("note"),
    }
}

/// After an action on an export's list: back to the export's page with a notice, or the
/// page that says why not.
fn back(who: &Authed, path: &str, r: Result<String, ApiError>) -> Response {
    match r {
        Ok(notice) => redirect_notice(path, &notice),
        Err(e) => super::error_page(Some(who), &e),
    }
}

pub async fn export_add(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let r = form.check_csrf(&who).and_then(|()| {
        let s = ops::add_suppression(&app.app, &who.actor, Some(&name), &input_of(&form))?;
        Ok(format!("{} suppressed.", s.value))
    });
    back(&who, &format!("/exports/{}", seg(&name)), r)
}

pub async fn export_remove(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let r = form.check_csrf(&who).and_then(|()| {
        let i = input_of(&form);
        ops::remove_suppression(&app.app, &who.actor, Some(&name), i.kind, &i.value)?;
        Ok(format!("{} is no longer suppressed.", i.value))
    });
    back(&who, &format!("/exports/{}", seg(&name)), r)
}

pub async fn refusal_forget(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let r = form.check_csrf(&who).and_then(|()| {
        let email = form.text("email");
        ops::forget_refusal(&app.app, &who.actor, &name, &email)?;
        Ok(format!("{email} is sent again by the next run."))
    });
    back(&who, &format!("/exports/{}", seg(&name)), r)
}

pub async fn refusal_suppress(
    State(app): State<AppState>,
    User(who): User,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let r = form.check_csrf(&who).and_then(|()| {
        let s = ops::suppress_refusal(&app.app, &who.actor, &name, &form.text("email"), "")?;
        Ok(format!("{} moved to the suppression list.", s.value))
    });
    back(&who, &format!("/exports/{}", seg(&name)), r)
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// Admin > Suppressions: the installation's list.
pub async fn installation_page(
    State(app): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let entries = ops::suppressions(&app.app, &who.actor, None).or_page(&who)?;
    let body = html! {
        p class="muted" { (HELD_BACK) " This list applies to every export; each export has its own list too, on its page." }
        div class="card" id="suppressions" {
            (entries_table(&who, &entries, "/admin", true))
            (add_form(&who, "/admin/suppressions"))
        }
    };
    let page = Page::new(Some(&who), Nav::Suppressions, "Suppressions")
        .notice(q.notice)
        .render(body);
    Ok(page.into_response())
}

pub async fn installation_add(
    State(app): State<AppState>,
    Admin(who): Admin,
    form: FormData,
) -> Response {
    let r = form.check_csrf(&who).and_then(|()| {
        let s = ops::add_suppression(&app.app, &who.actor, None, &input_of(&form))?;
        Ok(format!("{} suppressed for every export.", s.value))
    });
    back(&who, "/admin/suppressions", r)
}

pub async fn installation_remove(
    State(app): State<AppState>,
    Admin(who): Admin,
    form: FormData,
) -> Response {
    let r = form.check_csrf(&who).and_then(|()| {
        let i = input_of(&form);
        ops::remove_suppression(&app.app, &who.actor, None, i.kind, &i.value)?;
        Ok(format!("{} is no longer suppressed.", i.value))
    });
    back(&who, "/admin/suppressions", r)
}
