//! Who is asking: a browser session (cookie, with a CSRF token for every change) or an API
//! token (`Authorization: Bearer sst_...`, for scripts). Both are stored only as SHA-256
//! hashes; passwords as argon2id hashes, checked on blocking threads a few at a time, with
//! failed logins limited per account and per address ([`guard`]).

pub mod guard;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::extract::Json;
use super::{ApiError, AppState};
use crate::ops::{self, Actor};
use crate::state::Role;

pub const SESSION_COOKIE: &str = "segsync_session";
/// The header that carries the CSRF token of a cookie session on API changes.
pub const CSRF_HEADER: &str = "x-csrf-token";
const SESSION_HOURS: i64 = 12;

/// How the caller proved who they are.
#[derive(Clone, Debug)]
pub enum Via {
    /// A browser session: changes must carry its CSRF token.
    Session { csrf: String },
    /// An API token.
    Token,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Authed {
    pub actor: Actor,
    pub via: Via,
}

impl Authed {
    /// The CSRF token to put in forms (empty for token callers, who need none).
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf } => csrf,
            Via::Token => "",
        }
    }

    /// Checks the CSRF token a form or header sent, for a cookie session.
    pub fn check_csrf(&self, sent: &str) -> Result<(), ApiError> {
        match &self.via {
            Via::Token => Ok(()),
            Via::Session { csrf } if constant_time_eq(csrf.as_bytes(), sent.as_bytes()) => Ok(()),
            Via::Session { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "the form's security token is missing or stale: reload the page and try again",
            )),
        }
    }

    pub fn require(&self, role: Role, what: &str) -> Result<(), ApiError> {
        ops::require(&self.actor, role, what).map_err(ApiError::from)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Finds the caller from the headers, if any: an API token first, then the session cookie.
pub fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<Option<Authed>, ApiError> {
    let state = app.app.state().map_err(ApiError::internal)?;
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let text = auth.to_str().unwrap_or("");
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "the Authorization header takes \"Bearer <API token>\"",
                )
            })?;
        let user = state
            .token_user(&ops::token_hash(token))
            .map_err(ApiError::internal)?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "the API token is unknown or revoked",
                )
            })?;
        return Ok(Some(Authed {
            actor: Actor {
                name: user.name,
                role: user.role,
            },
            via: Via::Token,
        }));
    }
    if let Some(id) = cookie_value(headers, SESSION_COOKIE) {
        if let Some(s) = state
            .session(&ops::token_hash(id))
            .map_err(ApiError::internal)?
        {
            return Ok(Some(Authed {
                actor: Actor {
                    name: s.user.name,
                    role: s.user.role,
                },
                via: Via::Session { csrf: s.csrf },
            }));
        }
    }
    Ok(None)
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// For the JSON API: a caller, or 401. A cookie session's changes must carry the CSRF token
/// in `X-CSRF-Token`.
impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let authed = authenticate(app, &parts.headers)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "log in (POST /api/login) or send an API token (Authorization: Bearer ...)",
            )
        })?;
        if unsafe_method(&parts.method) && parts.uri.path().starts_with("/api/") {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            authed.check_csrf(sent)?;
        }
        Ok(authed)
    }
}

/// The address of the client, when the server knows it (the peer of the TCP connection: a
/// proxy in front shares its own address among everybody).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Opens a session for `user` after checking the password; the cookie to set and the CSRF
/// token. The same answer, after the same work, for an unknown user and a wrong password;
/// 429 while the account or the address must wait ([`guard`]).
pub async fn login(
    app: &AppState,
    name: &str,
    password: SecretString,
    from: ClientAddr,
) -> Result<(HeaderValue, String, Actor), ApiError> {
    let state = app.app.state().map_err(ApiError::internal)?;
    let hash = state.password_hash(name).map_err(ApiError::internal)?;
    if !app
        .login
        .check_password(name, from.0, hash, password)
        .await?
    {
        tracing::info!(user = name, "login refused");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "wrong user name or password",
        ));
    }
    let user = state.user(name).map_err(ApiError::internal)?;
    let id = ops::new_token_value("");
    let csrf = ops::new_token_value("");
    let expires = chrono::Utc::now() + chrono::Duration::hours(SESSION_HOURS);
    state
        .add_session(
            &ops::token_hash(&id),
            name,
            &csrf,
            &expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
        .map_err(ApiError::internal)?;
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_HOURS * 3600,
        if app.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    Ok((
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
        csrf,
        Actor {
            name: user.name,
            role: user.role,
        },
    ))
}

/// Before someone changes their own password: the current one, checked like a login (a
/// wrong one counts as a failed login of the account). 400 when it is missing, 403 when it
/// is wrong, 429 while the account or the address must wait.
pub async fn check_current_password(
    app: &AppState,
    name: &str,
    current: Option<String>,
    from: ClientAddr,
) -> Result<(), ApiError> {
    let current = current.filter(|c| !c.is_empty()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "current_password is missing: changing your own password needs the one you log in with now",
        )
    })?;
    let state = app.app.state().map_err(ApiError::internal)?;
    let hash = state.password_hash(name).map_err(ApiError::internal)?;
    let ok = app
        .login
        .check_password(name, from.0, hash, SecretString::from(current))
        .await?;
    if !ok {
        tracing::info!(
            user = name,
            "password change refused: wrong current password"
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "current_password is wrong: give the password you log in with now",
        ));
    }
    Ok(())
}

/// Sets `name`'s password (argon2 on a blocking thread): see [`ops::set_password`]. The
/// number of API tokens revoked.
pub async fn set_password(
    app: &AppState,
    actor: &Actor,
    name: &str,
    password: SecretString,
) -> Result<usize, ApiError> {
    let (core, actor, name) = (app.app.clone(), actor.clone(), name.to_string());
    app.login
        .blocking(move || ops::set_password(&core, &actor, &name, &password))
        .await?
        .map_err(ApiError::from)
}

/// Adds a user (argon2 on a blocking thread): see [`ops::add_user`].
pub async fn add_user(
    app: &AppState,
    actor: &Actor,
    name: &str,
    role: Role,
    password: SecretString,
) -> Result<crate::state::UserRecord, ApiError> {
    let (core, actor, name) = (app.app.clone(), actor.clone(), name.to_string());
    app.login
        .blocking(move || ops::add_user(&core, &actor, &name, role, &password))
        .await?
        .map_err(ApiError::from)
}

/// Ends the session of the request's cookie; the cookie that clears it.
pub fn logout(app: &AppState, headers: &HeaderMap) -> Result<HeaderValue, ApiError> {
    if let Some(id) = cookie_value(headers, SESSION_COOKIE) {
        app.app
            .state()
            .map_err(ApiError::internal)?
            .remove_session(&ops::token_hash(id))
            .map_err(ApiError::internal)?;
    }
    Ok(HeaderValue::from_static(
        "segsync_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub name: String,
    /// Never logged, never stored in clear.
    #[schema(format = Password)]
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginAnswer {
    pub name: String,
    pub role: Role,
    /// Send it back in `X-CSRF-Token` with every change made with the session cookie.
    pub csrf_token: String,
}

/// Logs in: sets the session cookie and returns the CSRF token. After 5 failed logins of a
/// user name, or 20 from one client address, within 15 minutes, that name or address must
/// wait (429 with `Retry-After`: 1 minute, doubled at each further failure, at most 15)
/// before any password is checked again, the right one included.
#[utoipa::path(post, path = "/api/login", tag = "session", request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginAnswer), (status = 401, body = super::ErrorBody),
        (status = 429, body = super::ErrorBody, headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 503, body = super::ErrorBody)))]
pub async fn api_login(
    State(app): State<AppState>,
    from: ClientAddr,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let password = SecretString::from(req.password);
    let (cookie, csrf, actor) = login(&app, &req.name, password, from).await?;
    let mut r = Json(LoginAnswer {
        name: actor.name,
        role: actor.role,
        csrf_token: csrf,
    })
    .into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(r)
}

/// Logs out: ends the session of the cookie. Like every change made with a session, it needs
/// the session's CSRF token in `X-CSRF-Token` (else another site could log the user out);
/// without a live session there is nothing to end, and the cookie is cleared.
#[utoipa::path(post, path = "/api/logout", tag = "session", security(()),
    responses((status = 204), (status = 403, body = super::ErrorBody)))]
pub async fn api_logout(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(id) = cookie_value(&headers, SESSION_COOKIE) {
        let state = app.app.state().map_err(ApiError::internal)?;
        if let Some(s) = state
            .session(&ops::token_hash(id))
            .map_err(ApiError::internal)?
        {
            let sent = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let session = Authed {
                actor: Actor {
                    name: s.user.name,
                    role: s.user.role,
                },
                via: Via::Session { csrf: s.csrf },
            };
            session.check_csrf(sent)?;
        }
    }
    let cookie = logout(&app, &headers)?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(r)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub name: String,
    pub role: Role,
}

/// The caller.
#[utoipa::path(get, path = "/api/me", tag = "session", responses((status = 200, body = WhoAmI), (status = 401, body = super::ErrorBody)))]
pub async fn api_me(who: Authed) -> Json<WhoAmI> {
    Json(WhoAmI {
        name: who.actor.name,
        role: who.actor.role,
    })
}
