//! Logging in and out, and `/`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use secrecy::SecretString;
use serde::Deserialize;

use super::layout::{Nav, Page};
use super::{error_page, query_enc, FormData};
use crate::server::auth;
use crate::server::AppState;

/// `/`: the exports for a logged-in person, else the login page.
pub async fn index(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match auth::authenticate(&app, &headers) {
        Ok(Some(_)) => Redirect::to("/exports").into_response(),
        _ => Redirect::to("/login").into_response(),
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    notice: Option<String>,
}

/// Where to go after logging in: a page of this server only (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_string()
        }
        _ => "/exports".to_string(),
    }
}

fn login_form(next: &str, name: &str, error: Option<String>, notice: Option<String>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let body = html! {
        div class="login-brand" { span class="logo" aria-hidden="true" { "s" } }
        div class="card narrow" {
            h1 { "Log in to segsync" }
            p class="muted small" { "Export segments of your customer profiles to Mailchimp audiences." }
            @if let Some(n) = &notice {
                div class="flash flash-ok" role="status" id="notice" { (n) }
            }
            @if let Some(e) = &error {
                div class="flash flash-error" role="alert" id="error" { (e) }
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                div class="field" {
                    label for="name" { "User name" }
                    input id="name" name="name" type="text" value=(name) autocomplete="username" required autofocus[name.is_empty()];
                }
                div class="field" {
                    label for="password" { "Password" }
                    input id="password" name="password" type="password" autocomplete="current-password" required autofocus[!name.is_empty()];
                }
                button type="submit" class="btn btn-primary" { "Log in" }
            }
        }
    };
    (
        status,
        Page::new(None, Nav::None, "Log in")
            .without_heading()
            .render(body),
    )
        .into_response()
}

/// The login form with why it must wait (429, 503), and `Retry-After`.
fn must_wait(next: &str, name: &str, e: &crate::server::ApiError) -> Response {
    let mut message = e.message.clone();
    if let Some(first) = message.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let mut r = login_form(next, name, Some(format!("{message}.")), None);
    *r.status_mut() = e.status;
    if let Some(secs) = e.retry_after_secs() {
        r.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    r
}

pub async fn login_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if let Ok(Some(_)) = auth::authenticate(&app, &headers) {
        return Redirect::to(&next).into_response();
    }
    let notice = q
        .notice
        .map(|n| n.chars().take(super::layout::NOTICE_CHARS).collect());
    login_form(&next, "", None, notice)
}

/// Whether a form comes from this server's own pages: browsers send `Origin` with every
/// form POST, so another site cannot log a visitor in to an account of its choosing.
fn same_origin(app: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true; // not a browser's cross-site form
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let public = app.public_url();
    origin == public
        || origin
            .split_once("://")
            .is_some_and(|(_, authority)| !host.is_empty() && authority == host)
}

pub async fn login_submit(
    State(app): State<AppState>,
    from: auth::ClientAddr,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let next = safe_next(form.get("next"));
    if !same_origin(&app, &headers) {
        return error_page(
            None,
            &crate::server::ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "this login form was sent from another site: log in from segsync's own login page",
            ),
        );
    }
    let name = form.text("name");
    let password = SecretString::from(form.get("password").unwrap_or("").to_string());
    if name.is_empty() {
        return login_form(&next, "", Some("Enter your user name.".into()), None);
    }
    match auth::login(&app, &name, password, from).await {
        Ok((cookie, _csrf, _actor)) => {
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => login_form(
            &next,
            &name,
            Some("Wrong user name or password.".into()),
            None,
        ),
        Err(e) if e.retry_after.is_some() => must_wait(&next, &name, &e),
        Err(e) => error_page(None, &e),
    }
}

/// Ends the session (the form carries its CSRF token, so another site cannot log you out).
pub async fn logout(State(app): State<AppState>, headers: HeaderMap, form: FormData) -> Response {
    let who = match auth::authenticate(&app, &headers) {
        Ok(Some(w)) => w,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return error_page(None, &e),
    };
    if let Err(e) = form.check_csrf(&who) {
        return error_page(Some(&who), &e);
    }
    match auth::logout(&app, &headers) {
        Ok(cookie) => {
            let mut r = Redirect::to(&format!(
                "/login?notice={}",
                query_enc("You are logged out.")
            ))
            .into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        Err(e) => error_page(Some(&who), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next(Some("/exports/a?x=1")), "/exports/a?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/exports");
        assert_eq!(safe_next(Some("/\\evil.example/")), "/exports");
        assert_eq!(safe_next(Some("https://evil.example/")), "/exports");
        assert_eq!(safe_next(Some("/a\nb")), "/exports");
        assert_eq!(safe_next(None), "/exports");
    }
}
