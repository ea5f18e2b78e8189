//! Admin > Users: the people who log in, their roles; add, change role, set a password,
//! remove. Every change through [`crate::ops`] (which keeps at least one admin).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use secrecy::SecretString;
use serde::Deserialize;

use super::layout::{self, csrf, Nav, Page};
use super::{redirect_notice, seg, state_of, when, Admin, FormData, OrPage, PageResult};
use crate::ops;
use crate::server::auth::{self, Authed};
use crate::server::{ApiError, AppState};
use crate::state::Role;

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

const ROLES: [(Role, &str); 3] = [
    (Role::Viewer, "reads segments, exports and runs"),
    (
        Role::Contributor,
        "also segments and exports on shared connections",
    ),
    (Role::Admin, "everything: connections, users"),
];

/// The add form as it was filled (never the password).
#[derive(Default)]
struct AddForm {
    name: String,
    role: Option<Role>,
}

fn page(
    app: &AppState,
    who: &Authed,
    add: &AddForm,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> PageResult {
    let users = state_of(app).and_then(|s| Ok(s.users()?)).or_page(who)?;
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let body = html! {
        div class="card table-wrap" {
            table class="stack" id="users" {
                thead { tr { th { "Name" } th { "Role" } th { "Since" } th { "Password" } th {} } }
                tbody {
                    @for u in &users {
                        @let base = format!("/admin/users/{}", seg(&u.name));
                        tr data-user=(u.name) {
                            td data-label="Name" { strong { (u.name) } @if u.name == who.actor.name { " " span class="badge badge-muted" { "you" } } }
                            td data-label="Role" {
                                form method="post" action=(format!("{base}/role")) class="actions" {
                                    (csrf(who))
                                    select name="role" aria-label=(format!("Role of {}", u.name)) {
                                        @for (r, _) in ROLES {
                                            option value=(r.as_str()) selected[r == u.role] { (r.as_str()) }
                                        }
                                    }
                                    button type="submit" class="btn btn-secondary btn-small" { "Change" }
                                }
                            }
                            td data-label="Since" class="muted small" { (when(&u.created_at)) }
                            td data-label="Password" {
                                form method="post" action=(format!("{base}/password")) class="actions" autocomplete="off" {
                                    (csrf(who))
                                    @if u.name == who.actor.name {
                                        input type="password" name="current_password" autocomplete="current-password" placeholder="current password" aria-label="Your current password" required;
                                    }
                                    input type="password" name="password" autocomplete="new-password" placeholder="new password" aria-label=(format!("New password of {}", u.name));
                                    button type="submit" class="btn btn-secondary btn-small" { "Set" }
                                }
                            }
                            td data-label="Remove" { a class="btn btn-secondary btn-small" href=(format!("{base}/remove")) { "Remove" } }
                        }
                    }
                }
            }
        }
        div class="card" {
            h2 { "Add user" }
            form method="post" action="/admin/users" autocomplete="off" {
                (csrf(who))
                div class="grid2" {
                    div class="field" {
                        label for="new-name" { "User name" }
                        input id="new-name" name="name" type="text" value=(add.name) required;
                    }
                    div class="field" {
                        label for="new-password" { "Password" }
                        input id="new-password" name="password" type="password" autocomplete="new-password" required;
                        span class="hint" { "At least 8 characters." }
                    }
                }
                fieldset {
                    legend { "Role" }
                    @for (r, what) in ROLES {
                        label class="check" {
                            input type="radio" name="role" value=(r.as_str()) checked[add.role.unwrap_or(Role::Contributor) == r];
                            span { (r.as_str()) span class="hint" { (what) } }
                        }
                    }
                }
                button type="submit" class="btn btn-primary" { "Add user" }
            }
        }
    };
    let page = Page::new(Some(who), Nav::Users, "Users")
        .notice(notice)
        .error(error.map(|(_, m)| m))
        .render(body);
    Ok((status, page).into_response())
}

/// A refusal on the users page (a 403 page when forbidden).
fn refused(app: &AppState, who: &Authed, add: &AddForm, e: ApiError) -> Response {
    if e.status == StatusCode::FORBIDDEN {
        return super::error_page(Some(who), &e);
    }
    match page(app, who, add, None, Some((e.status, e.message))) {
        Ok(r) | Err(r) => r,
    }
}

fn role_of(form: &FormData) -> Result<Role, ApiError> {
    let r = form.text("role");
    Role::parse(&r).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("unknown role \"{r}\": choose admin, contributor or viewer"),
        )
    })
}

pub async fn list(
    State(app): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    page(&app, &who, &AddForm::default(), q.notice, None)
}

pub async fn add(State(app): State<AppState>, Admin(who): Admin, form: FormData) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let mut add = AddForm {
        name: form.text("name"),
        role: None,
    };
    let role = role_of(&form).map_err(|e| refused(&app, &who, &add, e))?;
    add.role = Some(role);
    let password = SecretString::from(form.get("password").unwrap_or("").to_string());
    match auth::add_user(&app, &who.actor, &add.name, role, password).await {
        Ok(u) => Ok(redirect_notice(
            "/admin/users",
            &format!("User \"{}\" added ({}).", u.name, u.role.as_str()),
        )),
        Err(e) => Err(refused(&app, &who, &add, e)),
    }
}

pub async fn role(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let none = AddForm::default();
    let role = role_of(&form).map_err(|e| refused(&app, &who, &none, e))?;
    match ops::set_role(&app.app, &who.actor, &name, role) {
        Ok(u) => Ok(redirect_notice(
            "/admin/users",
            &format!("\"{}\" is now {}.", u.name, u.role.as_str()),
        )),
        Err(e) => Err(refused(&app, &who, &none, e.into())),
    }
}

/// Sets a password: another user's, or the admin's own with their current one (after which
/// their session ends too, and the login page says so).
pub async fn password(
    State(app): State<AppState>,
    Admin(who): Admin,
    from: auth::ClientAddr,
    Path(name): Path<String>,
    form: FormData,
) -> PageResult {
    form.check_csrf(&who).or_page(&who)?;
    let refuse = |e: ApiError| refused(&app, &who, &AddForm::default(), e);
    if name == who.actor.name {
        let current = form.get("current_password").map(str::to_string);
        auth::check_current_password(&app, &name, current, from)
            .await
            .map_err(refuse)?;
    }
    let password = SecretString::from(form.get("password").unwrap_or("").to_string());
    let revoked = auth::set_password(&app, &who.actor, &name, password)
        .await
        .map_err(refuse)?;
    let notice = format!(
        "Password of \"{name}\" changed; their sessions ended and {revoked} API token(s) were revoked."
    );
    if name == who.actor.name {
        return Ok(axum::response::Redirect::to(&format!(
            "/login?notice={}",
            super::query_enc(&notice)
        ))
        .into_response());
    }
    Ok(redirect_notice("/admin/users", &notice))
}

pub async fn remove_confirm(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> PageResult {
    let u = state_of(&app)
        .and_then(|s| Ok(s.user(&name)?))
        .or_page(&who)?;
    Ok(layout::removal_page(
        &who,
        layout::Removal {
            nav: Nav::Users,
            what: "user",
            object: html! { strong { (u.name) } " (" (u.role.as_str()) ")" },
            consequences: "Their sessions and API tokens are revoked at once. The audit log keeps what they did.",
            warning: None,
            action: format!("/admin/users/{}/remove", seg(&u.name)),
            back: "/admin/users".to_string(),
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
    match ops::remove_user(&app.app, &who.actor, &name) {
        Ok(()) => Ok(redirect_notice(
            "/admin/users",
            &format!("User \"{name}\" removed, with their sessions and API tokens."),
        )),
        Err(e) => Err(refused(&app, &who, &AddForm::default(), e.into())),
    }
}
