//! Installation settings (admins): where alerts go (`/api/settings/alerts`). See
//! [`super::alerts`] for what they hold and when they fire.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::alerts::{self, password, AlertSettings, DeliveryReport, PasswordSource, SmtpSettings};
use super::auth::Authed;
use super::extract::Json;
use super::{ApiError, AppState, ErrorBody};
use crate::state::Role;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/settings/alerts", get(get_alerts).put(put_alerts))
        .route("/api/settings/alerts/test", post(test_alerts))
}

/// The alert settings, with what may not work as expected. Never a password: only whether
/// the relay's login has one, and where it comes from.
#[derive(Serialize, ToSchema)]
pub struct AlertSettingsView {
    /// A Slack-compatible incoming webhook.
    pub webhook_url: Option<String>,
    /// Who gets alert e-mails.
    pub email_to: Vec<String>,
    /// The mail server alert e-mails go through (no password, ever).
    pub smtp: Option<SmtpSettings>,
    /// Whether the relay's login (`smtp.username`) has a password: one given as
    /// `smtp.password` (stored sealed) or `SEGSYNC_SMTP_PASSWORD` in the server's environment.
    pub smtp_password_set: bool,
    /// Where that password comes from: `settings` or `environment`; null when none is set.
    pub smtp_password_from: Option<PasswordSource>,
    /// Settings that are accepted but will not work as one may think.
    pub warnings: Vec<String>,
}

pub fn view(app: &AppState, settings: AlertSettings) -> Result<AlertSettingsView, ApiError> {
    let from = alerts::password_source(app, &settings).map_err(ApiError::internal)?;
    Ok(AlertSettingsView {
        warnings: alerts::warnings(&settings, from),
        smtp_password_set: from.is_some(),
        smtp_password_from: from,
        webhook_url: settings.webhook_url,
        email_to: settings.email_to,
        smtp: settings.smtp,
    })
}

/// What `PUT /api/settings/alerts` takes: the settings, and the relay's password once.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Read as JSON by [`alerts::check`]; here for the OpenAPI document.
pub struct AlertSettingsChange {
    /// A Slack-compatible incoming webhook (`https://...`).
    webhook_url: Option<String>,
    /// Who gets alert e-mails (needs `smtp`).
    email_to: Option<Vec<String>>,
    smtp: Option<SmtpChange>,
}

/// The mail server, with its password (write-only).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SmtpChange {
    /// Host name (or address) of the relay: `smtp.example.com`.
    host: String,
    /// By default 587 with STARTTLS, 25 without.
    port: Option<u16>,
    /// The sender: `alerts@example.com` or `segsync <alerts@example.com>`.
    from: String,
    /// The login, if the relay wants one.
    username: Option<String>,
    /// The relay's password (needs `username`): stored sealed with the master key, never
    /// shown again, sent only to the relay (username, host and port) it was given for.
    /// Leave it out to keep the one stored; give it again when the relay changes. Without
    /// one, `SEGSYNC_SMTP_PASSWORD` of the server's environment is used.
    #[schema(format = Password, write_only)]
    password: Option<String>,
    /// Upgrade the connection with STARTTLS (default true).
    starttls: Option<bool>,
}

/// Where alerts of failed runs go (admins).
#[utoipa::path(get, path = "/api/settings/alerts", tag = "settings",
    responses((status = 200, body = AlertSettingsView), (status = 403, body = ErrorBody)))]
pub async fn get_alerts(
    State(app): State<AppState>,
    who: Authed,
) -> Result<Json<AlertSettingsView>, ApiError> {
    who.require(Role::Admin, "reading the alert settings")?;
    let settings = alerts::load(&app.app).map_err(ApiError::internal)?;
    Ok(Json(view(&app, settings)?))
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
}

/// The settings a request's body asks for, checked.
fn read_body(body: &[u8], allow_private: bool) -> Result<alerts::Checked, ApiError> {
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(invalid(
            "the body is a JSON object: {\"webhook_url\": ..., \"email_to\": [...], \"smtp\": {...}}",
        ));
    }
    alerts::check(value, allow_private).map_err(invalid)
}

/// Stores, keeps or forgets the relay's sealed password as the new settings need: a stored
/// password goes only to the relay it was given for.
fn settle_password(app: &AppState, checked: &alerts::Checked) -> Result<(), ApiError> {
    let relay = checked.settings.smtp_relay();
    let stored = password::stored_relay(&app.app).map_err(ApiError::internal)?;
    match (&relay, &checked.password, &stored) {
        (Some(relay), Some(p), _) => {
            password::store(&app.app, relay, p).map_err(ApiError::internal)
        }
        (None, _, Some(_)) => password::forget(&app.app).map_err(ApiError::internal),
        (Some(relay), None, Some(old)) if old != relay => Err(invalid(
            "smtp.host, smtp.port or smtp.username changed: give smtp.password again (a stored \
             password is only sent to the relay it was given for)",
        )),
        (Some(_), None, None) if app.config.smtp_password.is_none() => {
            Err(invalid(alerts::no_password_message()))
        }
        _ => Ok(()),
    }
}

/// Replaces where alerts of failed runs go (admins): `webhook_url` (a Slack-compatible
/// incoming webhook), `email_to` (addresses) and `smtp` {host, port, from, username,
/// password, starttls}. `{}` turns alerts off. `smtp.password` is write-only: stored sealed,
/// never shown; left out, the stored one is kept (while the relay stays the same) or
/// `SEGSYNC_SMTP_PASSWORD` of the server's environment is used.
#[utoipa::path(put, path = "/api/settings/alerts", tag = "settings", request_body(content = Option<AlertSettingsChange>, description = "The settings; no body is read as {} (alerts off)"),
    responses((status = 200, body = AlertSettingsView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_alerts(
    State(app): State<AppState>,
    who: Authed,
    body: Bytes,
) -> Result<Json<AlertSettingsView>, ApiError> {
    who.require(Role::Admin, "changing the alert settings")?;
    let checked = read_body(&body, app.app.private_targets())?;
    Ok(Json(change_alerts(&app, &who, checked).await?))
}

/// Checks where the new settings send alerts, settles the relay's password, stores them and
/// audits the change; shared with the web UI's Admin > Alerts.
pub async fn change_alerts(
    app: &AppState,
    who: &Authed,
    checked: alerts::Checked,
) -> Result<AlertSettingsView, ApiError> {
    who.require(Role::Admin, "changing the alert settings")?;
    alerts::check_webhook_target(&checked.settings, app.app.private_targets())
        .await
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m))?;
    settle_password(app, &checked)?;
    let settings = checked.settings;
    alerts::save(&app.app, &settings).map_err(ApiError::internal)?;
    let from = alerts::password_source(app, &settings).map_err(ApiError::internal)?;
    let state = app.app.state().map_err(ApiError::internal)?;
    state.audit(
        &who.actor.name,
        "settings.alerts",
        "alerts",
        &alerts::describe(&settings, from),
    )?;
    view(app, settings)
}

/// Sends a test alert on every configured channel now (admins) and tells how each fared.
#[utoipa::path(post, path = "/api/settings/alerts/test", tag = "settings",
    responses((status = 200, body = DeliveryReport), (status = 403, body = ErrorBody)))]
pub async fn test_alerts(
    State(app): State<AppState>,
    who: Authed,
) -> Result<Json<DeliveryReport>, ApiError> {
    Ok(Json(send_test_alert(&app, &who).await?))
}

/// Sends a test alert and audits it; shared with the web UI.
pub async fn send_test_alert(app: &AppState, who: &Authed) -> Result<DeliveryReport, ApiError> {
    who.require(Role::Admin, "sending a test alert")?;
    let report = alerts::send_test(app, &who.actor.name)
        .await
        .map_err(ApiError::internal)?;
    let state = app.app.state().map_err(ApiError::internal)?;
    state.audit(
        &who.actor.name,
        "settings.alerts.test",
        "alerts",
        &format!(
            "webhook: {}; email: {}",
            report.webhook.status, report.email.status
        ),
    )?;
    Ok(report)
}
