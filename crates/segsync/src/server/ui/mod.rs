//! The web UI: server-rendered pages that follow the seed's flow (Admin > Connections, Data >
//! Segments, Data > Exports, Admin > Users), on the same router as the API.
//!
//! Every page is built with `maud::html!`, so every value is escaped by construction. Pages
//! work without JavaScript: multi-step forms re-render on the server ("Add attribute", the
//! connection before the audience), and a running export's page refreshes itself with a
//! `<meta http-equiv="refresh">`. Every change goes through [`crate::ops`] (or the API's
//! shared helpers), which check roles, validate and audit; a refusal is shown on the page
//! with the form as the person filled it. Every form that changes something carries the
//! session's CSRF token.
//!
//! - `layout`: the shared page frame, style sheet and small components.
//! - `session`: log in, log out, `/`.
//! - `connections`, `users`: the admin pages.
//! - `segments`, `sources`, `exports`, `export_form`, `runs`: the data pages.
//! - `chart`: the inline SVG chart of records sent per run.

// A page handler's error is the page that says why (`Result<Response, Response>`): built
// once per request and sent at once, so its size does not matter.
#![allow(clippy::result_large_err)]

mod builder_js;
mod chart;
mod connections;
mod export_form;
mod export_help;
mod exports;
mod layout;
mod preview;
mod profiles;
mod runs;
mod segments;
mod session;
mod settings;
mod sources;
mod suppressions;
mod users;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::auth::{self, Authed};
use super::{ApiError, AppState};
use crate::state::{Role, StateStore};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(session::index))
        .route(
            "/login",
            get(session::login_page).post(session::login_submit),
        )
        .route("/logout", post(session::logout))
        .route(
            "/admin/connections",
            get(connections::list).post(connections::create),
        )
        .route("/admin/connections/new", get(connections::new_form))
        .route(
            "/admin/connections/{name}",
            get(connections::show).post(connections::change),
        )
        .route("/admin/connections/{name}/test", post(connections::test))
        .route("/admin/connections/{name}/check", post(connections::check))
        .route(
            "/admin/connections/{name}/reauthenticate",
            post(connections::reauthenticate),
        )
        .route(
            "/admin/connections/{name}/credential",
            post(connections::replace_key),
        )
        .route(
            "/admin/connections/{name}/remove",
            get(connections::remove_confirm).post(connections::remove),
        )
        .route(
            "/admin/alerts",
            get(settings::alerts_page).post(settings::alerts_save),
        )
        .route("/admin/alerts/test", post(settings::alerts_test))
        .route("/admin/audit", get(settings::audit_page))
        .route(
            "/admin/suppressions",
            get(suppressions::installation_page).post(suppressions::installation_add),
        )
        .route(
            "/admin/suppressions/remove",
            post(suppressions::installation_remove),
        )
        .route("/admin/users", get(users::list).post(users::add))
        .route("/admin/users/{name}/role", post(users::role))
        .route("/admin/users/{name}/password", post(users::password))
        .route(
            "/admin/users/{name}/remove",
            get(users::remove_confirm).post(users::remove),
        )
        .route("/segments", get(segments::list).post(segments::add))
        .route(
            "/segments/{name}",
            get(segments::show).post(segments::change),
        )
        .route(
            "/segments/{name}/remove",
            get(segments::remove_confirm).post(segments::remove),
        )
        .route("/profiles", get(profiles::page))
        .route(
            "/profiles/uploads",
            post(profiles::upload).layer(axum::extract::DefaultBodyLimit::max(
                crate::server::uploads::UPLOAD_LIMIT,
            )),
        )
        .route("/profiles/uploads/{id}", get(profiles::show))
        .route("/profiles/uploads/{id}/preview", post(profiles::repreview))
        .route("/profiles/uploads/{id}/commit", post(profiles::commit))
        .route("/profiles/uploads/{id}/discard", post(profiles::discard))
        .route("/sources", get(sources::list).post(sources::add))
        .route("/sources/{name}", get(sources::show))
        .route(
            "/sources/{name}/remove",
            get(sources::remove_confirm).post(sources::remove),
        )
        .route("/exports", get(exports::list))
        .route(
            "/exports/new",
            get(export_form::new_form).post(export_form::new_submit),
        )
        .route("/exports/{name}", get(exports::show))
        .route(
            "/exports/{name}/edit",
            get(export_form::edit_form).post(export_form::edit_submit),
        )
        .route("/exports/{name}/preview", get(preview::show))
        .route("/exports/{name}/run", post(exports::run_now))
        .route("/exports/{name}/cancel", post(exports::cancel))
        .route("/exports/{name}/pause", post(exports::pause))
        .route("/exports/{name}/resume", post(exports::resume))
        .route(
            "/exports/{name}/remove",
            get(exports::remove_confirm).post(exports::remove),
        )
        .route(
            "/exports/{name}/suppressions",
            post(suppressions::export_add),
        )
        .route(
            "/exports/{name}/suppressions/remove",
            post(suppressions::export_remove),
        )
        .route(
            "/exports/{name}/refusals/forget",
            post(suppressions::refusal_forget),
        )
        .route(
            "/exports/{name}/refusals/suppress",
            post(suppressions::refusal_suppress),
        )
        .route("/runs/{id}", get(runs::show))
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers of every page: no framing, no caching of pages that hold personal data and CSRF
/// tokens, and a content security policy that allows only this server's own inline style
/// sheet and script (by hash), so injected markup could run nothing. Pages whose forms lead
/// to Mailchimp's login server set their own policy ([`with_login_csp`]).
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            csp_header(&layout::content_security_policy(None)),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn csp_header(policy: &str) -> HeaderValue {
    HeaderValue::from_str(policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// A page whose form sends the browser on to Mailchimp's login server ("Authenticate with
/// Mailchimp"): its policy lets forms lead there.
pub fn with_login_csp(app: &AppState, page: impl IntoResponse) -> Response {
    let mut res = page.into_response();
    let origin = app
        .config
        .oauth
        .as_ref()
        .map(|o| o.login_url.origin().ascii_serialization())
        .filter(|o| o != "null");
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        csp_header(&layout::content_security_policy(origin.as_deref())),
    );
    res
}

// --- who is asking ---

/// A logged-in person (session cookie, or an API token). Without one, a page asks to log in
/// first and comes back afterwards.
pub struct User(pub Authed);

impl FromRequestParts<AppState> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        match auth::authenticate(app, &parts.headers) {
            Ok(Some(who)) => Ok(User(who)),
            Ok(None) => Err(to_login(parts)),
            Err(e) => Err(error_page(None, &e)),
        }
    }
}

/// An admin. Anyone else gets the "Admins only" page.
pub struct Admin(pub Authed);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let User(who) = User::from_request_parts(parts, app).await?;
        if who.actor.role == Role::Admin {
            Ok(Admin(who))
        } else {
            Err(admins_only(&who))
        }
    }
}

/// The login page, with the page asked for as `next` (for a GET; a form sent without a
/// session cannot be replayed, so it starts over from the login page).
fn to_login(parts: &Parts) -> Response {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        Redirect::to(&format!("/login?next={}", query_enc(next))).into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

// --- forms ---

/// A form body (`application/x-www-form-urlencoded`) as its ordered pairs: unlike
/// `axum::Form`, repeated names (checkboxes, rows) keep every value.
pub struct FormData(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(FormData(
            url::form_urlencoded::parse(&bytes).into_owned().collect(),
        ))
    }
}

impl FormData {
    /// The first value of `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or "" when not sent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_string()
    }

    /// The first value of `name`, trimmed, or `None` when not sent or blank.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.text(name)).filter(|s| !s.is_empty())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether a checkbox or button named `name` was sent.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// Checks the form's CSRF token against the session's.
    pub fn check_csrf(&self, who: &Authed) -> Result<(), ApiError> {
        who.check_csrf(self.get("csrf").unwrap_or(""))
    }
}

// --- errors as pages ---

/// Turns a refusal into the page that says it, in the frame of the person's session.
pub trait OrPage<T> {
    fn or_page(self, who: &Authed) -> Result<T, Response>;
}

impl<T, E: Into<ApiError>> OrPage<T> for Result<T, E> {
    fn or_page(self, who: &Authed) -> Result<T, Response> {
        self.map_err(|e| error_page(Some(who), &e.into()))
    }
}

/// What a page handler answers: the page, or the page that says why not.
pub type PageResult = Result<Response, Response>;

/// The page for an error: its status, a title a person understands, the message.
pub fn error_page(who: Option<&Authed>, e: &ApiError) -> Response {
    let title = match e.status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::UNAUTHORIZED => "Log in first",
        StatusCode::CONFLICT => "Not possible now",
        StatusCode::BAD_GATEWAY => "Mailchimp refused",
        s if s.is_server_error() => "Something went wrong",
        _ => "Refused",
    };
    let body = maud::html! {
        div class="card" {
            p class="lead" id="error-message" { (e.message) }
            p { a class="btn btn-secondary" href="/exports" { "Back to exports" } }
        }
    };
    let page = layout::Page::new(who, layout::Nav::None, title).render(body);
    (e.status, page).into_response()
}

/// The page of a path no route has (the server's fallback outside `/api/`), in words a
/// person understands, with the way back.
pub async fn page_not_found() -> Response {
    let body = maud::html! {
        div class="card" {
            p class="lead" id="error-message" { "There is no page at this address." }
            p class="muted" { "The link may be old, or the export, segment or run it named may have been removed." }
            p { a class="btn btn-secondary" href="/exports" { "Go to exports" } }
        }
    };
    let page = layout::Page::new(None, layout::Nav::None, "Page not found").render(body);
    security_headers((StatusCode::NOT_FOUND, page).into_response()).await
}

/// The 403 page of every `/admin` page for people who are not admins.
pub fn admins_only(who: &Authed) -> Response {
    let body = maud::html! {
        div class="card" {
            p class="lead" id="error-message" {
                "This page is for admins. You are logged in as " strong { (who.actor.name) }
                " (" (who.actor.role.as_str()) ")."
            }
            p class="muted" {
                "Connections hold the credentials of Mailchimp accounts and users hold passwords: only admins manage them. "
                "Ask an admin to share a connection with contributors if you need to export with it."
            }
            p { a class="btn btn-secondary" href="/exports" { "Go to exports" } }
        }
    };
    let page = layout::Page::new(Some(who), layout::Nav::None, "Admins only").render(body);
    (StatusCode::FORBIDDEN, page).into_response()
}

// --- small helpers ---

fn state_of(app: &AppState) -> Result<StateStore, ApiError> {
    app.app.state().map_err(ApiError::internal)
}

/// Percent-encodes a name for one path segment (names may hold spaces, slashes, `?`, `#`).
pub fn seg(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes a query-string value.
pub fn query_enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A 303 redirect to `path` with a notice shown on arrival.
pub fn redirect_notice(path: &str, notice: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}notice={}", query_enc(notice))).into_response()
}

/// An RFC 3339 time as people read it: `2026-11-22 22:32:10 UTC`.
pub fn when(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(d) => d
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        Err(_) => t.to_string(),
    }
}

/// Seconds between two RFC 3339 times, as people read them (`0.4 s`, `3 min 5 s`).
pub fn took(start: &str, end: Option<&str>) -> String {
    let (Ok(a), Some(Ok(b))) = (
        chrono::DateTime::parse_from_rfc3339(start),
        end.map(chrono::DateTime::parse_from_rfc3339),
    ) else {
        return "—".into();
    };
    let s = (b - a).num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_as_one_path_segment() {
        assert_eq!(seg("news letter/ro?#"), "news%20letter%2Fro%3F%23");
        assert_eq!(seg("high_value-2.x~"), "high_value-2.x~");
        assert_eq!(seg("ș"), "%C8%99");
    }

    #[test]
    fn numbers_and_times_read_well() {
        assert_eq!(num(0), "0");
        assert_eq!(num(999), "999");
        assert_eq!(num(1000), "1,000");
        assert_eq!(num(1234567), "1,234,567");
        assert_eq!(when("2026-11-22T22:32:10Z"), "2026-11-22 22:32:10 UTC");
        assert_eq!(when("garbage"), "garbage");
        assert_eq!(
            took("2026-11-22T22:32:10Z", Some("2026-11-22T22:35:15Z")),
            "3 min 5 s"
        );
        assert_eq!(took("2026-11-22T22:32:10Z", None), "—");
    }
}
