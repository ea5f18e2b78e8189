//! "Authenticate with Mailchimp": the OAuth2 authorization-code flow as Mailchimp runs it.
//!
//! 1. An admin asks to connect (`POST /api/oauth/mailchimp`, or the UI's button): the request
//!    (connection name, consent, sharing, export user) is kept under a random `state`, and
//!    the admin is sent to `{login}/oauth2/authorize?response_type=code&client_id&redirect_uri&state`.
//! 2. Mailchimp sends the browser back to `/oauth/mailchimp/callback?code&state`.
//! 3. The code is exchanged at `{login}/oauth2/token` (with the app's secret), the token's
//!    data center and API endpoint are read from `{login}/oauth2/metadata`, and the connection
//!    is added (or re-authenticated) with the token sealed like an API key.
//!
//! The login server, client id and secret are configuration (`segsync serve
//! --oauth-login-url --oauth-client-id --oauth-client-secret-env`), so tests run the whole
//! flow against the simulator.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::auth::{authenticate, Authed};
use super::extract::Json;
use super::{ApiError, AppState, ErrorBody, OAuthApp};
use crate::mailchimp::CredentialKind;
use crate::ops::{self, Actor};
use crate::state::Role;

/// A flow older than this is refused at the callback.
const FLOW_TTL_MINUTES: i64 = 15;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/oauth/mailchimp", post(api_begin))
        .route(
            "/oauth/mailchimp/callback",
            get(callback).layer(axum::middleware::map_response(callback_headers)),
        )
}

/// Headers of the callback's answers (the failure page, the redirect): the page runs
/// nothing, loads nothing and cannot be framed (a content security policy, and
/// `X-Frame-Options` for older browsers); the callback URL, which holds the code and the
/// state, is never sent on as a referrer nor kept in a cache.
async fn callback_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// What the admin asked for when the flow began.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OAuthRequest {
    /// The connection to add, or to re-authenticate when `reauthenticate` is set.
    #[schema(schema_with = crate::server::openapi::name)]
    pub name: String,
    #[schema(schema_with = crate::server::openapi::optional_name)]
    pub display_name: Option<String>,
    /// Agreement to the data privacy statement (required for a new connection).
    #[serde(default)]
    pub accept_privacy_terms: bool,
    #[serde(default)]
    pub share_with_contributors: bool,
    #[schema(schema_with = crate::server::openapi::optional_name)]
    pub export_user: Option<String>,
    #[serde(default)]
    pub reauthenticate: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthStart {
    /// Send the admin's browser here.
    pub authorize_url: String,
}

fn app_config(app: &AppState) -> Result<&OAuthApp, ApiError> {
    app.config.oauth.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "\"Authenticate with Mailchimp\" is not set up on this server: start it with --oauth-client-id and --oauth-client-secret-env (or paste an API key instead)",
        )
    })
}

fn redirect_uri(app: &AppState) -> String {
    format!("{}/oauth/mailchimp/callback", app.public_url())
}

/// Checks the request, records the flow and returns the URL of Mailchimp's login page.
pub fn begin(app: &AppState, who: &Authed, req: OAuthRequest) -> Result<String, ApiError> {
    who.require(Role::Admin, "connecting to Mailchimp")?;
    let oauth = app_config(app)?;
    ops::check_name("connection", &req.name)?;
    let state = app.app.state().map_err(ApiError::internal)?;
    let exists = state.connection(&req.name).is_ok();
    if req.reauthenticate && !exists {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no connection named \"{}\" to re-authenticate", req.name),
        ));
    }
    if !req.reauthenticate {
        if exists {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("a connection named \"{}\" exists already", req.name),
            ));
        }
        if !req.accept_privacy_terms {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!(
                    "{}\n\nThe connection is added only once you agree to this statement.",
                    crate::PRIVACY_STATEMENT
                ),
            ));
        }
    }
    let flow = ops::new_token_value("");
    state
        .add_oauth_flow(
            &flow,
            &who.actor.name,
            &serde_json::to_string(&req).expect("request serialises"),
        )
        .map_err(ApiError::internal)?;
    let mut url = oauth
        .login_url
        .join("oauth2/authorize")
        .map_err(ApiError::internal)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &oauth.client_id)
        .append_pair("redirect_uri", &redirect_uri(app))
        .append_pair("state", &flow);
    Ok(url.to_string())
}

/// Begins "Authenticate with Mailchimp" (admins): returns the URL to send the browser to.
#[utoipa::path(post, path = "/api/oauth/mailchimp", tag = "connections", request_body = OAuthRequest,
    responses((status = 200, body = OAuthStart), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn api_begin(
    State(app): State<AppState>,
    who: Authed,
    Json(req): Json<OAuthRequest>,
) -> Result<Json<OAuthStart>, ApiError> {
    Ok(Json(OAuthStart {
        authorize_url: begin(&app, &who, req)?,
    }))
}

#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    api_endpoint: Option<String>,
    #[serde(default)]
    dc: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// The client of Mailchimp's login server. It follows no redirect: the token request carries
/// the app's secret and the code, the metadata request the new token, and a redirect (307,
/// 308 keep the body) would hand them to wherever the answer points.
fn http() -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(ApiError::internal)
}

/// Exchanges the code for a token and reads where its account's API lives.
async fn exchange(
    app: &AppState,
    oauth: &OAuthApp,
    code: &str,
) -> Result<(SecretString, String), ApiError> {
    let mailchimp = |m: String| ApiError::new(StatusCode::BAD_GATEWAY, "mailchimp", m);
    let client = http()?;
    let answer = client
        .post(
            oauth
                .login_url
                .join("oauth2/token")
                .map_err(ApiError::internal)?,
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", oauth.client_id.as_str()),
            ("client_secret", oauth.client_secret.expose_secret()),
            ("redirect_uri", redirect_uri(app).as_str()),
            ("code", code),
        ])
        .send()
        .await
        .map_err(|e| mailchimp(format!("Mailchimp's login server did not answer: {e}")))?;
    let status = answer.status();
    if status.is_redirection() {
        return Err(mailchimp(format!(
            "Mailchimp's login server answered the token request with a redirect ({status}), which segsync does not follow"
        )));
    }
    if !status.is_success() {
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        let why = body
            .get("error_description")
            .or_else(|| body.get("error"))
            .and_then(|v| v.as_str())
            .unwrap_or("no reason given")
            .to_string();
        return Err(mailchimp(format!(
            "Mailchimp refused the authorization ({status}): {why}"
        )));
    }
    let token: TokenAnswer = answer
        .json()
        .await
        .map_err(|e| mailchimp(format!("Mailchimp's token answer was unreadable: {e}")))?;
    let token = SecretString::from(token.access_token);
    let meta = client
        .get(
            oauth
                .login_url
                .join("oauth2/metadata")
                .map_err(ApiError::internal)?,
        )
        .header("Authorization", format!("OAuth {}", token.expose_secret()))
        .send()
        .await
        .map_err(|e| mailchimp(format!("Mailchimp's metadata endpoint did not answer: {e}")))?;
    if meta.status().is_redirection() {
        return Err(mailchimp(format!(
            "Mailchimp's metadata endpoint answered with a redirect ({}), which segsync does not follow",
            meta.status()
        )));
    }
    let meta: Metadata = meta
        .json()
        .await
        .map_err(|e| mailchimp(format!("Mailchimp's metadata answer was unreadable: {e}")))?;
    if let Some(e) = meta.error {
        return Err(mailchimp(format!(
            "Mailchimp's metadata endpoint refused the token: {e}"
        )));
    }
    let endpoint = match (meta.api_endpoint, meta.dc) {
        (Some(e), _) => e,
        (None, Some(dc)) => format!("https://{dc}.api.mailchimp.com"),
        (None, None) => {
            return Err(mailchimp(
                "Mailchimp's metadata named no API endpoint".into(),
            ))
        }
    };
    Ok((token, format!("{}/3.0", endpoint.trim_end_matches('/'))))
}

/// Where Mailchimp sends the admin back: adds (or re-authenticates) the connection, then
/// shows the connections page.
async fn callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    match finish(&app, &headers, p).await {
        Ok(name) => Redirect::to(&format!(
            "/admin/connections?notice={}",
            url::form_urlencoded::byte_serialize(
                format!("Connection \"{name}\" is authenticated with Mailchimp.").as_bytes()
            )
            .collect::<String>()
        ))
        .into_response(),
        Err(e) => {
            let page = maud::html! {
                (maud::DOCTYPE)
                html lang="en" {
                    head { meta charset="utf-8"; title { "Authenticate with Mailchimp: failed" } }
                    body {
                        h1 { "Authenticate with Mailchimp: failed" }
                        p id="error" { (e.message) }
                        p { a href="/admin/connections" { "Back to connections" } }
                    }
                }
            };
            (e.status, page).into_response()
        }
    }
}

async fn finish(
    app: &AppState,
    headers: &HeaderMap,
    p: CallbackParams,
) -> Result<String, ApiError> {
    let oauth = app_config(app)?;
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid", m.to_string());
    let flow_id = p
        .state
        .as_deref()
        .ok_or_else(|| bad("the callback has no state: start again from Admin > Connections"))?;
    let state = app.app.state().map_err(ApiError::internal)?;
    let (user, request, created) = state
        .take_oauth_flow(flow_id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| bad("this authorization is unknown or was used already: start again from Admin > Connections"))?;
    let age = chrono::DateTime::parse_from_rfc3339(&created)
        .map(|t| chrono::Utc::now().signed_duration_since(t))
        .unwrap_or_default();
    if age > chrono::Duration::minutes(FLOW_TTL_MINUTES) {
        return Err(bad(
            "this authorization took too long (over 15 minutes): start again",
        ));
    }
    if let Some(e) = p.error {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "mailchimp",
            format!(
                "Mailchimp did not authorize segsync: {}",
                p.error_description.unwrap_or(e)
            ),
        ));
    }
    let code = p.code.ok_or_else(|| bad("the callback has no code"))?;
    // The browser that comes back, if logged in, must be the admin who began.
    if let Some(who) = authenticate(app, headers)? {
        if who.actor.name != user {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this authorization was begun by another user",
            ));
        }
    }
    let record = state.user(&user)?;
    let actor = Actor {
        name: record.name,
        role: record.role,
    };
    let req: OAuthRequest = serde_json::from_str(&request).map_err(ApiError::internal)?;
    let (token, base_url) = exchange(app, oauth, &code).await?;
    let credential = ops::CredentialInput {
        secret: token,
        kind: CredentialKind::OAuth,
    };
    if req.reauthenticate {
        ops::update_connection(
            &app.app,
            &actor,
            &req.name,
            ops::ConnectionChange {
                credential: Some(credential),
                base_url: Some(base_url),
                ..Default::default()
            },
        )
        .await?;
    } else {
        ops::add_connection(
            &app.app,
            &actor,
            ops::NewConnection {
                name: req.name.clone(),
                display_name: req.display_name,
                credential,
                base_url: Some(base_url),
                accept_privacy_terms: req.accept_privacy_terms,
                share_with_contributors: req.share_with_contributors,
                export_user: req.export_user,
                slot_budget: None,
            },
        )
        .await?;
    }
    Ok(req.name)
}
