//! Mailchimp's login server for the OAuth2 authorization-code flow: the authorize page (one
//! click approves, for tests), the token exchange, and the metadata endpoint that tells the
//! data center and API endpoint of a token. Tokens never expire, as Mailchimp's don't.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::{credential, json_response, AppState};
use crate::config::OAuthRedirect;
use crate::store::random_hex;

/// How long an authorization code may wait for its exchange.
const CODE_TTL: Duration = Duration::from_secs(600);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/oauth2/authorize",
            get(authorize_page).post(authorize_submit),
        )
        .route("/oauth2/token", axum::routing::post(token))
        .route("/oauth2/metadata", get(metadata).post(metadata_form))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error_page(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!("<!doctype html><title>Mailchimp login</title><h1>Something went wrong</h1><p id=\"error\">{}</p>", escape(msg))),
    )
        .into_response()
}

/// Checks the client and redirect URI of an authorize request: the URI must start with the
/// registered one, or equal it under `variants.oauth_redirect: exact`.
fn check_client(sim: &AppState, p: &HashMap<String, String>) -> Result<(), String> {
    let client_id = p.get("client_id").map(String::as_str).unwrap_or("");
    let redirect = p.get("redirect_uri").map(String::as_str).unwrap_or("");
    let exact = sim.settings.read().variants.oauth_redirect == OAuthRedirect::Exact;
    let oauth = sim.oauth.lock();
    let Some(client) = oauth.clients.iter().find(|c| c.client_id == client_id) else {
        return Err(format!(
            "Invalid client_id \"{client_id}\": no app is registered with it."
        ));
    };
    if redirect.is_empty() {
        return Err("The redirect_uri parameter is missing.".into());
    }
    if let Some(registered) = &client.redirect_uri {
        let matches = if exact {
            redirect == registered.as_str()
        } else {
            redirect.starts_with(registered.as_str())
        };
        if !matches {
            return Err(format!(
                "The redirect_uri {redirect} does not match the app's registered redirect URI."
            ));
        }
    }
    Ok(())
}

async fn authorize_page(
    State(sim): State<AppState>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    if p.get("response_type").map(String::as_str) != Some("code") {
        return error_page("response_type must be \"code\".");
    }
    if let Err(e) = check_client(&sim, &p) {
        return error_page(&e);
    }
    let login = sim
        .accounts()
        .first()
        .map(|a| a.login.clone())
        .unwrap_or_default();
    let hidden = |k: &str| {
        format!(
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
            escape(p.get(k).map(String::as_str).unwrap_or(""))
        )
    };
    Html(format!(
        "<!doctype html><html><head><title>Mailchimp login (simulated)</title></head><body>\
         <h1>Log in to Mailchimp (simulated)</h1>\
         <form method=\"post\" action=\"/oauth2/authorize\">{}{}{}\
         <label>Username <input id=\"username\" name=\"username\" value=\"{}\"></label>\
         <button id=\"allow\" type=\"submit\">Allow</button></form></body></html>",
        hidden("client_id"),
        hidden("redirect_uri"),
        hidden("state"),
        escape(&login)
    ))
    .into_response()
}

async fn authorize_submit(
    State(sim): State<AppState>,
    Form(p): Form<HashMap<String, String>>,
) -> Response {
    if let Err(e) = check_client(&sim, &p) {
        return error_page(&e);
    }
    let username = p.get("username").map(String::as_str).unwrap_or("");
    let Some(account) = sim.account_by_login(username) else {
        return error_page(&format!(
            "Sorry, we couldn't find an account with the username \"{username}\"."
        ));
    };
    let code = random_hex(16);
    let redirect_uri = p["redirect_uri"].clone();
    sim.oauth.lock().codes.insert(
        code.clone(),
        crate::store::PendingCode {
            account_id: account.id.clone(),
            client_id: p["client_id"].clone(),
            redirect_uri: redirect_uri.clone(),
            issued: Instant::now(),
        },
    );
    let mut target = url::Url::parse(&redirect_uri).map_err(|_| ()).ok();
    let Some(u) = target.as_mut() else {
        return error_page("The redirect_uri is not a valid URL.");
    };
    u.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = p.get("state").filter(|s| !s.is_empty()) {
        u.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(u.as_str()).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

async fn token(State(sim): State<AppState>, Form(p): Form<HashMap<String, String>>) -> Response {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code",
        );
    }
    let mut oauth = sim.oauth.lock();
    let client_ok = oauth
        .clients
        .iter()
        .any(|c| c.client_id == get("client_id") && c.client_secret == get("client_secret"));
    if !client_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client_id or client_secret",
        );
    }
    let Some(pending) = oauth.codes.remove(get("code")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid authorization code",
        );
    };
    if pending.issued.elapsed() > CODE_TTL
        || pending.client_id != get("client_id")
        || pending.redirect_uri != get("redirect_uri")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid authorization code",
        );
    }
    drop(oauth);
    let token = random_hex(16);
    sim.add_credential(token.clone(), &pending.account_id);
    json_response(
        StatusCode::OK,
        &json!({"access_token": token, "expires_in": 0, "scope": null}),
    )
}

fn metadata_for(sim: &AppState, headers: &HeaderMap, token: Option<String>) -> Response {
    let Some(account) = token.and_then(|t| sim.account_for(&t)) else {
        return json_response(StatusCode::OK, &json!({"error": "invalid_token"}));
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let origin = format!("http://{host}");
    json_response(
        StatusCode::OK,
        &json!({
            "dc": account.dc,
            "role": "owner",
            "accountname": account.name,
            "user_id": account.id,
            "login": {"email": account.email, "avatar": null, "login_id": account.id,
                      "login_name": account.login, "login_email": account.email},
            "login_url": origin,
            "api_endpoint": origin,
        }),
    )
}

async fn metadata(State(sim): State<AppState>, headers: HeaderMap) -> Response {
    let token = credential(&headers);
    metadata_for(&sim, &headers, token)
}

async fn metadata_form(
    State(sim): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form_token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "oauth_token")
        .map(|(_, v)| v.into_owned());
    let token = credential(&headers).or(form_token);
    metadata_for(&sim, &headers, token)
}
