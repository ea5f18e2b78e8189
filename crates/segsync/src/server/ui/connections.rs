//! Admin > Connections: the list, "Add connection" (consent to the data privacy statement,
//! who may use it, the export user, then "Authenticate with Mailchimp" or an API key), and a
//! connection's page (test, change sharing, re-authenticate, replace the key, remove).
//! No page ever shows a secret: what the person typed as a key is never sent back either.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use secrecy::SecretString;
use serde::Deserialize;

use super::layout::{self, csrf, kind_label, sharing, Nav, Page};
use super::{
    redirect_notice, seg, state_of, when, with_login_csp, Admin, FormData, OrPage, PageResult,
};
use crate::mailchimp::CredentialKind;
use crate::ops::{self, ConnectionView};
use crate::server::auth::Authed;
use crate::server::oauth::{self, OAuthRequest};
use crate::server::{api, ApiError, AppState};
use crate::state::ConnectionHealth;
use crate::PRIVACY_STATEMENT;

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// The exports that use each connection.
fn exports_by_connection(app: &AppState) -> Result<Vec<(String, String)>, ApiError> {
    Ok(state_of(app)?
        .exports()?
        .into_iter()
        .map(|e| (e.connection, e.name))
        .collect())
}

pub async fn list(
    State(app): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let state = state_of(&app).or_page(&who)?;
    let conns = ops::connections(&state, &who.actor).or_page(&who)?;
    let used = exports_by_connection(&app).or_page(&who)?;
    let body = html! {
        div class="toolbar" {
            p class="muted" { "Connections to Mailchimp accounts. Exports send segments through them." }
            a class="btn btn-primary" href="/admin/connections/new" { "Add connection" }
        }
        @if conns.is_empty() {
            div class="card empty" {
                p { "No connection yet. Add one to start exporting segments to Mailchimp." }
                a class="btn btn-primary" href="/admin/connections/new" { "Add connection" }
            }
        } @else {
            div class="card table-wrap" {
                table class="stack" id="connections" {
                    thead { tr {
                        th { "Display name" } th { "Name" } th { "Kind" } th { "Who can use it" }
                        th { "Data privacy consent" } th { "Export user" } th { "Exports" } th { "Health" }
                    } }
                    tbody {
                        @for c in &conns {
                            @let n = used.iter().filter(|(conn, _)| *conn == c.name).count();
                            tr data-connection=(c.name) {
                                td data-label="Display name" { a href=(format!("/admin/connections/{}", seg(&c.name))) { strong { (c.display_name) } } }
                                td data-label="Name" { code { (c.name) } }
                                td data-label="Kind" { (kind_badge(&c.credential_kind)) }
                                td data-label="Who can use it" { (sharing(c.shared_with_contributors)) }
                                td data-label="Data privacy consent" { (c.consent_by) br; span class="muted small" { (when(&c.consent_at)) } }
                                td data-label="Export user" { (c.export_user.as_deref().unwrap_or("—")) }
                                td data-label="Exports" class="num" { (n) }
                                td data-label="Health" { (health_badge(c.health.as_ref())) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(with_login_csp(
        &app,
        Page::new(Some(&who), Nav::Connections, "Connections")
            .notice(q.notice)
            .render(body),
    ))
}

/// A connection's last check, as a badge ("revoked" in red).
fn health_badge(h: Option<&ConnectionHealth>) -> Markup {
    let Some(h) = h else {
        return layout::badge("badge-muted", "never checked");
    };
    let (class, label) = match h.status.as_str() {
        "ok" => ("badge-ok", "ok"),
        "revoked" => ("badge-error", "revoked"),
        "unreachable" => ("badge-warn", "unreachable"),
        "rate_limited" => ("badge-warn", "rate-limited"),
        _ => ("badge-error", "failing"),
    };
    html! { span class=(format!("badge {class}")) data-health=(h.status) title=(format!("checked {}", when(&h.checked_at))) { (label) } }
}

/// The health section of a connection's page: the account's name, the last check, "Check
/// now", and the way back for a revoked credential.
fn health_card(who: &Authed, c: &ConnectionView, base: &str, oauth: bool) -> Markup {
    let h = c.health.as_ref();
    let revoked = h.is_some_and(|h| h.status == "revoked");
    html! {
        div class="card" id="health" {
            div class="card-head" {
                h2 { "Health" }
                (layout::post_button(who, &format!("{base}/check"), "Check now", "btn-secondary btn-small"))
            }
            dl class="summary" {
                dt { "Mailchimp account" } dd id="account-name" { (h.and_then(|h| h.account_name.as_deref()).unwrap_or("not known yet")) }
                dt { "Last check" } dd id="last-check" {
                    (health_badge(h))
                    @if let Some(h) = h { " " (when(&h.checked_at)) }
                    @if let Some(d) = h.and_then(|h| h.detail.as_deref()) { br; span class="muted small" { (d) } }
                }
            }
            @if revoked {
                p id="reauthenticate" {
                    "Mailchimp no longer accepts this credential. "
                    @if oauth && c.credential_kind == "oauth" {
                        "Re-authenticate with Mailchimp below"
                    } @else {
                        a href="#credential" { "Re-authenticate: replace the API key" }
                    }
                    "; exports on this connection fail until then."
                }
            }
        }
    }
}

fn kind_badge(kind: &str) -> Markup {
    let class = if kind == "oauth" {
        "badge-info"
    } else {
        "badge-muted"
    };
    html! { span class=(format!("badge {class}")) data-kind=(kind) { (kind_label(kind)) } }
}

/// What the "Add connection" form holds (never the key: it is not sent back).
#[derive(Default)]
struct NewForm {
    name: String,
    display_name: String,
    shared: bool,
    agree: bool,
    add_self: bool,
    export_user: String,
    base_url: String,
}

impl NewForm {
    fn from(f: &FormData) -> NewForm {
        NewForm {
            name: f.text("name"),
            display_name: f.text("display_name"),
            shared: f.get("shared") == Some("contributors"),
            agree: f.has("agree"),
            add_self: f.has("add_self"),
            export_user: f.text("export_user"),
            base_url: f.text("base_url"),
        }
    }

    /// The connection's name: as typed, else made from the display name.
    fn name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        slug(&self.display_name)
    }

    fn export_user(&self, who: &Authed) -> Option<String> {
        if self.add_self {
            Some(who.actor.name.clone())
        } else {
            Some(self.export_user.clone()).filter(|u| !u.is_empty())
        }
    }
}

/// `Mailchimp (marketing)` -> `mailchimp-marketing`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(60).collect()
}

pub async fn new_form(State(app): State<AppState>, Admin(who): Admin) -> Response {
    let form = NewForm {
        add_self: true,
        ..Default::default()
    };
    new_page(&app, &who, &form, None, StatusCode::OK)
}

fn sharing_radios(shared: bool) -> Markup {
    html! {
        fieldset {
            legend { "Who can use this connection" }
            label class="check" {
                input type="radio" name="shared" value="admins" checked[!shared];
                span { "Admins only" span class="hint" { "Only admins can export with it." } }
            }
            label class="check" {
                input type="radio" name="shared" value="contributors" checked[shared];
                span { "Admins and contributors" span class="hint" { "Contributors can set up and run exports with it; they never see its credential." } }
            }
        }
    }
}

fn new_page(
    app: &AppState,
    who: &Authed,
    f: &NewForm,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let oauth_ready = app.config.oauth.is_some();
    // A refused form without consent marks the checkbox, instead of repeating the statement.
    let consent_missing = error.is_some() && !f.agree;
    let body = html! {
        form method="post" action="/admin/connections" id="connection-form" autocomplete="off" {
            (csrf(who))
            div class="card" {
                h2 { "Mailchimp" }
                p class="muted" { "A connection lets segsync send segments to the audiences of one Mailchimp account." }
                div class="grid2" {
                    div class="field" {
                        label for="display_name" { "Display name" }
                        input id="display_name" name="display_name" type="text" value=(f.display_name) placeholder="Mailchimp (marketing team)";
                        span class="hint" { "A name that tells people what this connection is for." }
                    }
                    div class="field" {
                        label for="name" { "Connection name" }
                        input id="name" name="name" type="text" value=(f.name) placeholder="made from the display name";
                        span class="hint" { "A short identifier used by exports, the API and the command line." }
                    }
                }
                (sharing_radios(f.shared))
            }
            div class=(if consent_missing { "card missing" } else { "card" }) id="privacy" {
                h2 { "Data privacy and compliance" }
                p class="statement" id="privacy-statement" { (PRIVACY_STATEMENT) }
                label class="check" {
                    input type="checkbox" name="agree" value="yes" checked[f.agree] aria-invalid=[consent_missing.then_some("true")] aria-describedby=[consent_missing.then_some("agree-missing")];
                    span { "I agree" }
                }
                @if consent_missing {
                    p class="field-error" id="agree-missing" { "Tick “I agree” to add the connection." }
                }
            }
            div class="card" {
                h2 { "Export user" }
                label class="check" {
                    input type="checkbox" name="add_self" value="yes" checked[f.add_self];
                    span { "Add yourself as export user" span class="hint" { "Exports on this connection run as " (who.actor.name) "." } }
                }
                div class="field" {
                    label for="export_user" { "Otherwise, export user" }
                    input id="export_user" name="export_user" type="text" value=(f.export_user) placeholder="a user name";
                }
            }
            div class="card" {
                h2 { "Connect" }
                @if oauth_ready {
                    p class="muted" { "Log in to Mailchimp and allow segsync to use your account. You come back here afterwards." }
                    button type="submit" name="connect" value="oauth" class="btn btn-mailchimp" id="authenticate" { "Authenticate with Mailchimp" }
                    div class="or" { "or use an API key" }
                } @else {
                    p class="muted" {
                        "\"Authenticate with Mailchimp\" is not set up on this server (it needs an OAuth app: "
                        code { "segsync serve --oauth-client-id" } "). Paste an API key instead."
                    }
                }
                div class="grid2" {
                    div class="field" {
                        label for="api_key" { "API key" }
                        input id="api_key" name="api_key" type="password" autocomplete="new-password" placeholder="0123…-us6";
                        span class="hint" { "Checked with Mailchimp, stored encrypted, never shown again." }
                    }
                    div class="field" {
                        label for="base_url" { "API root (optional)" }
                        input id="base_url" name="base_url" type="text" value=(f.base_url) placeholder="https://<dc>.api.mailchimp.com/3.0";
                        span class="hint" { "Only for a non-standard host; by default from the key's data center." }
                    }
                }
                div class="actions" {
                    button type="submit" name="connect" value="api_key" class="btn btn-primary" id="save" { "Save" }
                    a class="btn btn-secondary" href="/admin/connections" { "Cancel" }
                }
            }
        }
    };
    let page = Page::new(Some(who), Nav::Connections, "Add connection")
        .error(error)
        .render(body);
    with_login_csp(app, (status, page))
}

/// `POST /admin/connections`: adds a connection with an API key, or begins "Authenticate
/// with Mailchimp" and sends the browser to Mailchimp's login page.
pub async fn create(State(app): State<AppState>, Admin(who): Admin, form: FormData) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let f = NewForm::from(&form);
    let name = f.name();
    let refused = |e: ApiError| {
        if e.status == StatusCode::FORBIDDEN {
            super::error_page(Some(&who), &e)
        } else {
            new_page(&app, &who, &f, Some(e.message), e.status)
        }
    };
    if !f.agree {
        return Err(new_page(
            &app,
            &who,
            &f,
            Some("Agree to the data privacy statement below: the connection is added only once you agree to it.".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    if form.get("connect") == Some("oauth") {
        let req = OAuthRequest {
            name: name.clone(),
            display_name: Some(f.display_name.clone()).filter(|d| !d.is_empty()),
            accept_privacy_terms: f.agree,
            share_with_contributors: f.shared,
            export_user: f.export_user(&who),
            reauthenticate: false,
        };
        return match oauth::begin(&app, &who, req) {
            Ok(url) => Ok(Redirect::to(&url).into_response()),
            Err(e) => Err(refused(e)),
        };
    }
    let key = form.text("api_key");
    if key.is_empty() {
        return Err(new_page(
            &app,
            &who,
            &f,
            Some(if app.config.oauth.is_some() {
                "Paste the API key of the Mailchimp account, or use \"Authenticate with Mailchimp\".".into()
            } else {
                "Paste the API key of the Mailchimp account.".into()
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let added = ops::add_connection(
        &app.app,
        &who.actor,
        ops::NewConnection {
            name: name.clone(),
            display_name: Some(f.display_name.clone()).filter(|d| !d.is_empty()),
            credential: ops::CredentialInput {
                secret: SecretString::from(key),
                kind: CredentialKind::ApiKey,
            },
            base_url: Some(f.base_url.clone()).filter(|u| !u.is_empty()),
            accept_privacy_terms: f.agree,
            share_with_contributors: f.shared,
            export_user: f.export_user(&who),
            slot_budget: None,
        },
    )
    .await;
    match added {
        Ok(c) => Ok(redirect_notice(
            "/admin/connections",
            &format!(
                "Connection \"{}\" added: Mailchimp accepts the key.",
                c.display_name
            ),
        )),
        Err(e) => Err(refused(e.into())),
    }
}

/// A connection's page, with a notice or the refusal of the last action.
async fn show_page(
    app: &AppState,
    who: &Authed,
    name: &str,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> PageResult {
    let state = state_of(app).or_page(who)?;
    let c: ConnectionView = ops::connection(&state, &who.actor, name).or_page(who)?;
    let used: Vec<String> = exports_by_connection(app)
        .or_page(who)?
        .into_iter()
        .filter(|(conn, _)| *conn == c.name)
        .map(|(_, e)| e)
        .collect();
    let base = format!("/admin/connections/{}", seg(&c.name));
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let body = html! {
        div class="toolbar" {
            p class="muted" { "Connection " code { (c.name) } " · " (kind_label(&c.credential_kind)) }
            div class="actions" {
                (layout::post_button(who, &format!("{base}/test"), "Test connection", "btn-secondary"))
                a class="btn btn-secondary" href="/admin/connections" { "All connections" }
            }
        }
        div class="card" {
            h2 { "Details" }
            dl class="summary" {
                dt { "Display name" } dd { (c.display_name) }
                dt { "Kind" } dd { (kind_badge(&c.credential_kind)) }
                dt { "API root" } dd { code { (c.base_url) } }
                dt { "Who can use it" } dd { (sharing(c.shared_with_contributors)) }
                dt { "Data privacy consent" } dd { "agreed by " (c.consent_by) " on " (when(&c.consent_at)) }
                dt { "Export user" } dd { (c.export_user.as_deref().unwrap_or("—")) }
                dt { "Mailchimp account" } dd { (c.account_id.as_deref().unwrap_or("not known yet (learned at its first run)")) }
                dt { "Slot budget" } dd id="slot-budget" { (c.slot_budget) " requests in flight at once, shared by every run on the account" }
                dt { "Added" } dd { (when(&c.created_at)) }
                dt { "Used by exports" } dd {
                    @if used.is_empty() { span class="muted" { "none" } }
                    @for (i, e) in used.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href=(format!("/exports/{}", seg(e))) { (e) }
                    }
                }
            }
        }
        (health_card(who, &c, &base, app.config.oauth.is_some()))
        div class="card" {
            h2 { "Sharing and export user" }
            form method="post" action=(base) {
                (csrf(who))
                div class="field" {
                    label for="display_name" { "Display name" }
                    input id="display_name" name="display_name" type="text" value=(c.display_name);
                }
                (sharing_radios(c.shared_with_contributors))
                div class="field" {
                    label for="export_user" { "Export user" }
                    input id="export_user" name="export_user" type="text" value=(c.export_user.as_deref().unwrap_or(""));
                }
                div class="field" {
                    label for="slot_budget" { "Slot budget" }
                    input id="slot_budget" name="slot_budget" type="number" min="1" max="10" value=(c.slot_budget);
                    span class="hint" { "Requests in flight at once over every run on this Mailchimp account, all its connections together. Mailchimp allows 10 per account, shared with its other apps." }
                }
                button type="submit" class="btn btn-primary" { "Save changes" }
            }
        }
        div class="card" id="credential" {
            h2 { "Credential" }
            p class="muted" { "The credential is stored encrypted and never shown. Replace it when Mailchimp stops accepting it." }
            @if app.config.oauth.is_some() {
                (layout::post_button(who, &format!("{base}/reauthenticate"), "Re-authenticate with Mailchimp", "btn-mailchimp"))
                div class="or" { "or replace it with an API key" }
            }
            form method="post" action=(format!("{base}/credential")) autocomplete="off" {
                (csrf(who))
                div class="grid2" {
                    div class="field" {
                        label for="api_key" { "New API key" }
                        input id="api_key" name="api_key" type="password" autocomplete="new-password";
                    }
                    div class="field" {
                        label for="base_url" { "API root (optional)" }
                        input id="base_url" name="base_url" type="text" placeholder=(c.base_url);
                    }
                }
                button type="submit" class="btn btn-secondary" { "Replace credential" }
            }
        }
        div class="card danger-zone" {
            h2 { "Remove" }
            p class="muted" { "Removing the connection wipes its credential; exports that use it stop until they get another connection." }
            a class="btn btn-danger" href=(format!("{base}/remove")) { "Remove connection" }
        }
    };
    let page = Page::new(Some(who), Nav::Connections, c.display_name.clone())
        .notice(notice)
        .error(error.map(|(_, m)| m))
        .render(body);
    Ok(with_login_csp(app, (status, page)))
}

/// An action's refusal: the connection's page with the message (a 403 page when forbidden).
async fn refused_on_page(app: &AppState, who: &Authed, name: &str, e: ApiError) -> Response {
    if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND {
        return super::error_page(Some(who), &e);
    }
    match show_page(app, who, name, None, Some((e.status, e.message))).await {
        Ok(r) | Err(r) => r,
    }
}

pub async fn show(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    show_page(&app, &who, &name, q.notice, None).await
}

/// Changes the display name, sharing, export user and slot budget.
pub async fn change(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let slot_budget = match form.opt("slot_budget").map(|b| b.trim().parse::<u32>()) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(_)) => {
            let e = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "The slot budget must be a whole number from 1 to 10.",
            );
            return Err(refused_on_page(&app, &who, &name, e).await);
        }
    };
    let change = ops::ConnectionChange {
        display_name: form.opt("display_name"),
        share_with_contributors: form.get("shared").map(|s| s == "contributors"),
        export_user: form.opt("export_user"),
        credential: None,
        base_url: None,
        slot_budget,
    };
    match ops::update_connection(&app.app, &who.actor, &name, change).await {
        Ok(_) => Ok(redirect_notice(
            &format!("/admin/connections/{}", seg(&name)),
            "Changes saved.",
        )),
        Err(e) => Err(refused_on_page(&app, &who, &name, e.into()).await),
    }
}

/// "Test connection": asks Mailchimp whether it still accepts the credential.
pub async fn test(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    match ops::test_connection(&app.app, &who.actor, &name).await {
        Ok(()) => Ok(redirect_notice(
            &format!("/admin/connections/{}", seg(&name)),
            "Mailchimp accepts the credential: the connection works.",
        )),
        Err(e) => Err(refused_on_page(&app, &who, &name, e.into()).await),
    }
}

/// "Check now": checks the connection and records its health; the page shows it.
pub async fn check(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    match ops::health::check_connection(&app.app, &who.actor, &name).await {
        Ok(h) => Ok(redirect_notice(
            &format!("/admin/connections/{}", seg(&name)),
            &format!(
                "Checked: {}.",
                h.detail
                    .as_deref()
                    .unwrap_or("Mailchimp accepts the credential")
            ),
        )),
        Err(e) => Err(refused_on_page(&app, &who, &name, e.into()).await),
    }
}

/// "Re-authenticate with Mailchimp": the OAuth flow again, for this connection.
pub async fn reauthenticate(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let req = OAuthRequest {
        name: name.clone(),
        display_name: None,
        accept_privacy_terms: false,
        share_with_contributors: false,
        export_user: None,
        reauthenticate: true,
    };
    match oauth::begin(&app, &who, req) {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(e) => Err(refused_on_page(&app, &who, &name, e).await),
    }
}

/// Replaces the credential with an API key (checked with Mailchimp first).
pub async fn replace_key(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let key = form.text("api_key");
    if key.is_empty() {
        return Err(refused_on_page(
            &app,
            &who,
            &name,
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Paste the new API key.",
            ),
        )
        .await);
    }
    let change = ops::ConnectionChange {
        credential: Some(ops::CredentialInput {
            secret: SecretString::from(key),
            kind: CredentialKind::ApiKey,
        }),
        base_url: form.opt("base_url"),
        ..Default::default()
    };
    match ops::update_connection(&app.app, &who.actor, &name, change).await {
        Ok(_) => Ok(redirect_notice(
            &format!("/admin/connections/{}", seg(&name)),
            "Credential replaced: Mailchimp accepts the new key.",
        )),
        Err(e) => Err(refused_on_page(&app, &who, &name, e.into()).await),
    }
}

pub async fn remove_confirm(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> PageResult {
    let state = state_of(&app).or_page(&who)?;
    let c = ops::connection(&state, &who.actor, &name).or_page(&who)?;
    let used: Vec<String> = exports_by_connection(&app)
        .or_page(&who)?
        .into_iter()
        .filter(|(conn, _)| *conn == c.name)
        .map(|(_, e)| e)
        .collect();
    Ok(layout::removal_page(
        &who,
        layout::Removal {
            nav: Nav::Connections,
            what: "connection",
            object: html! { strong { (c.display_name) } " (" code { (c.name) } ")" },
            consequences:
                "Its credential is wiped at once. Mailchimp keeps the audiences and contacts.",
            warning: (!used.is_empty()).then(|| {
                html! {
                    "These exports use it and stop (a running one is cancelled): " (used.join(", "))
                }
            }),
            action: format!("/admin/connections/{}/remove", seg(&c.name)),
            back: format!("/admin/connections/{}", seg(&c.name)),
        },
    )
    .into_response())
}

pub async fn remove(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let stopped = api::remove_connection_now(&app, &who, &name).or_page(&who)?;
    let mut notice = format!("Connection \"{name}\" removed; its credential is wiped.");
    if !stopped.is_empty() {
        notice.push_str(&format!(" Exports stopped: {}.", stopped.join(", ")));
    }
    Ok(redirect_notice("/admin/connections", &notice))
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn names_are_made_from_display_names() {
        assert_eq!(
            slug("Mailchimp (marketing team)"),
            "mailchimp-marketing-team"
        );
        assert_eq!(slug("  Ștefan's  list "), "ștefan-s-list");
        assert_eq!(slug("!!!"), "");
    }
}
